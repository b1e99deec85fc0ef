// The third-party vitest suites that durable-node/vitest must pass unchanged, and what one run of one takes: the
// suite's files at a fixed commit, extracted from git into a standalone npm project per tool (Cloudflare's
// @cloudflare/vitest-pool-workers in cf/, durable-node under that same name in dn/), then `vitest run` there.
// No third-party code is kept in this repository: it is extracted at run time from a local git mirror, or fetched.
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { childEnv, killGroup } from "./processes.mjs";

/**
 * Each suite: where its files are (`repo` at `commit`; `base`, the repository folder that becomes the project's
 * `suite/` folder; `paths` under it to extract), where `vitest run` starts (`cwd` under `suite/`, with `args`), how
 * many tests it has, and the packages it needs beside the pool, at the versions its own lockfile resolved.
 * `paths` holds the suite's folder and the parent tsconfigs its tsconfig.json files extend: Vite's esbuild transform
 * reads the nearest tsconfig.json of every .ts file and fails when an `extends` target is missing.
 */
export const SUITES = [
  {
    name: "durable-objects",
    repo: "cloudflare/workers-sdk",
    commit: "24f807b04075a2c645fce1e49dd51e26c40a60b0",
    base: "fixtures/vitest-pool-workers-examples",
    paths: ["durable-objects", "tsconfig.node.json", "tsconfig.workerd.json", "tsconfig.workerd-test.json"],
    cwd: "durable-objects",
    args: [],
    tests: 4,
    // The pool is the workspace's own packages/vitest-pool-workers (0.12.21 at this commit); vitest is the pnpm
    // catalog's ~3.2.0, which pnpm-lock.yaml resolves to 3.2.3, and the workspace overrides vitest's vite to ^5.4.21
    // (locked 5.4.21).
    pool: "0.12.21",
    dependencies: { vitest: "3.2.3", vite: "5.4.21" },
  },
  {
    name: "rpc",
    repo: "cloudflare/workers-sdk",
    commit: "24f807b04075a2c645fce1e49dd51e26c40a60b0",
    base: "fixtures/vitest-pool-workers-examples",
    paths: ["rpc", "tsconfig.node.json", "tsconfig.workerd.json", "tsconfig.workerd-test.json"],
    cwd: "rpc",
    args: [],
    tests: 24,
    pool: "0.12.21",
    dependencies: { vitest: "3.2.3", vite: "5.4.21" },
  },
  {
    name: "partyserver",
    repo: "cloudflare/partykit",
    commit: "df989f327976269d104213f166ad5608ef8f33eb",
    base: "",
    paths: ["packages/partyserver", "tsconfig.base.json"],
    cwd: "packages/partyserver",
    // The package's own `test` script: `vitest -r src/tests` (the config is src/tests/vitest.config.ts).
    args: ["-r", "src/tests"],
    tests: 48,
    // The root package.json pins vitest 3.2.4 and the pool ^0.12.16, vite ^7.3.1; package-lock.json has 0.12.16 and
    // 7.3.1. nanoid is partyserver's one runtime dependency (^5.1.6, locked 5.1.6).
    pool: "0.12.16",
    dependencies: { vitest: "3.2.4", vite: "7.3.1", nanoid: "5.1.6" },
  },
  {
    name: "sql-tag",
    repo: "jonasb/durable-objects-sql-tag",
    commit: "fc1ff5b763f98e2b696de10d5a79e8afc8389161",
    base: "",
    // The whole repository: it is small, and its own package.json then sits in `suite/` as in a clone.
    paths: ["."],
    cwd: "",
    args: [],
    tests: 66,
    // package.json: vitest ~3.2.0 and the pool ^0.12.3; package-lock.json resolves 3.2.4, 0.12.18 and vite 7.3.2.
    pool: "0.12.18",
    dependencies: { vitest: "3.2.4", vite: "7.3.2" },
  },
];

/** The two sides of each suite: the folder name and the title the table prints. */
export const TOOLS = {
  cf: { title: "Cloudflare (vitest-pool-workers)" },
  dn: { title: "durable-node" },
};

// A git mirror folder per repository, `<owner>+<name>/repo`, as this workplace keeps them; elsewhere the commit is
// fetched from GitHub into the work folder once.
const MIRROR_ROOT = process.env.DURABLE_NODE_SUITES_MIRROR ?? "/work/.mirror";
const INSTALL_TIMEOUT_MS = 15 * 60_000;

function git(gitDir, args, options = {}) {
  return execFileSync("git", ["--git-dir", gitDir, ...args], { stdio: ["ignore", "pipe", "pipe"], ...options });
}

function hasCommit(gitDir, commit) {
  if (!existsSync(gitDir)) return false;
  try {
    git(gitDir, ["cat-file", "-e", `${commit}^{commit}`]);
    return true;
  } catch {
    return false;
  }
}

/** A git folder that holds the suite's commit: the local mirror if it has it, else a shallow fetch of that commit. */
function gitDirFor(suite, workDir) {
  const slug = suite.repo.replace("/", "+");
  const mirror = path.join(MIRROR_ROOT, slug, "repo");
  if (hasCommit(mirror, suite.commit)) return mirror;
  const cache = path.join(workDir, "git", `${slug}.git`);
  if (hasCommit(cache, suite.commit)) return cache;
  mkdirSync(cache, { recursive: true });
  execFileSync("git", ["init", "--quiet", "--bare", cache]);
  try {
    // GitHub serves any commit by its id, so one shallow fetch brings just this tree.
    git(cache, ["fetch", "--quiet", "--depth", "1", `https://github.com/${suite.repo}.git`, suite.commit], {
      timeout: INSTALL_TIMEOUT_MS,
    });
  } catch (error) {
    throw new Error(
      `${suite.repo}@${suite.commit.slice(0, 12)} is neither in ${mirror} nor fetchable: ` +
        `${String(error.stderr || error.message).trim().split("\n").at(-1)}`,
    );
  }
  return cache;
}

/**
 * Writes the suite's files at its commit, byte for byte, into the project's `suite/` folder, emptied first: every run
 * starts from a fresh checkout, so nothing an earlier run wrote there (a snapshot, vitest's cache) carries over.
 */
export function extractSuite(suite, { gitDir, suiteDir: dest }) {
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dest, { recursive: true });
  // `<commit>:<base>` is the tree of that folder, so paths come out relative to it.
  const tar = git(gitDir, ["archive", "--format=tar", `${suite.commit}:${suite.base}`, "--", ...suite.paths], {
    maxBuffer: 256 * 1024 * 1024,
  });
  execFileSync("tar", ["-x", "-C", dest], { input: tar });
}

/**
 * The package.json of one side: the suite's packages at its versions; on dn/ the pool's name points at durable-node's
 * tarball, as a user swaps an implementation in (a `file:` dependency is installed as a package, so Vite treats
 * durable-node as a dependency, not as source, which a symlink to the repository would make it).
 * `type: module` as in each suite's own package.json, which decides how Vite loads a vitest.config.ts.
 */
function packageJson(suite, tool, tarball) {
  const pool = tool === "dn" ? `file:../../${path.basename(tarball)}` : suite.pool;
  return {
    name: `suite-${suite.name}-${tool}`,
    private: true,
    type: "module",
    devDependencies: { "@cloudflare/vitest-pool-workers": pool, ...suite.dependencies },
  };
}

function npmInstall(dir, log) {
  const out = openSync(log, "w");
  try {
    // The registry may need this machine's CA certificates, so npm gets the full environment (not childEnv).
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline"], {
      cwd: dir,
      stdio: ["ignore", out, out],
      timeout: INSTALL_TIMEOUT_MS,
    });
  } catch (error) {
    throw new Error(`npm install failed in ${dir} (${error.signal ?? `code ${error.status}`}): see ${log}`);
  } finally {
    closeSync(out);
  }
}

/**
 * Makes `<workDir>/<suite>/<tool>/` ready to run: package.json written and dependencies installed, only when
 * package.json changed since the last install (so wrangler and workerd download once), and the suite's commit at hand.
 * Returns the project folder, its `suite/` folder, the folder vitest starts in, and whether it installed.
 */
export function prepareProject(suite, tool, workDir, tarball) {
  const dir = path.join(workDir, suite.name, tool);
  mkdirSync(dir, { recursive: true });
  const manifest = `${JSON.stringify(packageJson(suite, tool, tarball), null, 2)}\n`;
  const manifestPath = path.join(dir, "package.json");
  const stamp = path.join(dir, "node_modules", ".installed-package.json");
  const installed = existsSync(stamp) && readFileSync(stamp, "utf8") === manifest;
  if (!installed) {
    writeFileSync(manifestPath, manifest);
    npmInstall(dir, path.join(dir, "npm-install.log"));
    writeFileSync(stamp, manifest);
  }
  const suiteDir = path.join(dir, "suite");
  const project = { dir, suiteDir, cwd: path.join(suiteDir, suite.cwd), gitDir: gitDirFor(suite, workDir) };
  extractSuite(suite, project);
  return { ...project, installed: !installed };
}

function newestMtime(dir, keep) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !keep(entry.name)) continue;
    newest = Math.max(newest, statSync(path.join(entry.parentPath ?? entry.path, entry.name)).mtimeMs);
  }
  return newest;
}

/**
 * `npm pack` of the repository as it is built now, into `<workDir>/durable-node-<version>-<sha>.tgz`. npm's tarballs
 * are reproducible (fixed mtimes, sorted entries), so the name changes only when the packed files do, and with it the
 * dn/ package.json: npm reinstalls a `file:` tarball only when its spec changes. Older tarballs are removed.
 * Returns { tarball, warnings }; throws if the build is missing.
 */
export function packDurableNode(rootDir, workDir) {
  const missing = [];
  if (!existsSync(path.join(rootDir, "dist", "vitest", "index.js"))) missing.push("dist/vitest/index.js");
  const nativeDir = path.join(rootDir, "native");
  const nodeFiles = existsSync(nativeDir) ? readdirSync(nativeDir).filter((f) => f.endsWith(".node")) : [];
  if (nodeFiles.length === 0) missing.push("native/*.node");
  if (missing.length) throw new Error(`durable-node is not built (${missing.join(", ")} missing): run npm run build`);

  // The other side of "assume it is built": say so when the sources are newer than what gets packed.
  const warnings = [];
  const distTime = newestMtime(path.join(rootDir, "dist"), (f) => f.endsWith(".js"));
  if (newestMtime(path.join(rootDir, "lib"), (f) => f.endsWith(".ts")) > distTime)
    warnings.push("lib/ has .ts files newer than dist/: npm run build:ts to test them");
  const nativeTime = Math.max(...nodeFiles.map((f) => statSync(path.join(nativeDir, f)).mtimeMs));
  if (newestMtime(path.join(rootDir, "src"), (f) => f.endsWith(".rs")) > nativeTime)
    warnings.push("src/ has .rs files newer than native/*.node: npm run build:native to test them");

  mkdirSync(workDir, { recursive: true });
  const tmp = mkdtempSync(path.join(os.tmpdir(), "durable-node-pack-"));
  try {
    // --ignore-scripts: `prepare` would rebuild; the point is to test the build as it is.
    const [packed] = JSON.parse(
      execFileSync("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", tmp], {
        cwd: rootDir,
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
    const source = path.join(tmp, packed.filename);
    const sha = createHash("sha256").update(readFileSync(source)).digest("hex").slice(0, 12);
    const name = `durable-node-${packed.version}-${sha}.tgz`;
    for (const old of readdirSync(workDir)) {
      if (/^durable-node-.*\.tgz$/.test(old) && old !== name) rmSync(path.join(workDir, old));
    }
    const tarball = path.join(workDir, name);
    if (!existsSync(tarball)) renameSync(source, tarball);
    return { tarball, files: packed.entryCount, size: packed.size, warnings };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The first non-empty line of an error message, without vitest's colour codes. */
function firstLine(text) {
  return (
    String(text ?? "")
      .replace(/\x1b\[[0-9;]*m/g, "")
      .split("\n")
      .map((l) => l.trim())
      .find(Boolean) ?? "(no message)"
  );
}

/**
 * Counts and failures from vitest's JSON reporter (the Jest-shaped report): a test file that failed to load has no
 * assertion results, only a message, so it is reported as a failure of the file itself.
 */
export function parseReport(report, cwd) {
  const failures = [];
  for (const file of report.testResults) {
    const name = path.relative(cwd, file.name);
    const failed = file.assertionResults.filter((a) => a.status === "failed");
    for (const test of failed) {
      failures.push({ test: `${name} > ${test.fullName}`, error: firstLine(test.failureMessages?.[0]) });
    }
    if (file.status === "failed" && failed.length === 0) failures.push({ test: name, error: firstLine(file.message) });
  }
  return {
    total: report.numTotalTests,
    passed: report.numPassedTests,
    failed: report.numFailedTests,
    skipped: report.numPendingTests + report.numTodoTests,
    failures,
  };
}

/**
 * What a run that wrote no report printed about why: its first line that names an error (vitest and esbuild print the
 * cause first, then stacks and dumps), or else its last lines.
 */
export function logError(log) {
  let text;
  try {
    text = readFileSync(log, "utf8").replace(/\x1b\[[0-9;]*m/g, "");
  } catch {
    return "";
  }
  const lines = text.split("\n").map((l) => l.trim());
  const named = lines.find((l) => /\berror\b|\bERR_/i.test(l) && !l.startsWith("at "));
  return named ?? lines.filter(Boolean).slice(-3).join(" / ");
}

/**
 * One `vitest run` of the suite in `cwd` (the vitest the project installed, run by node directly: what `npx vitest
 * run` does, without npm's own start-up, and without npx's lookup, which in a folder with its own package.json
 * would not find the project's node_modules), its output to `log`, in a process group of its own (workerd included)
 * that is killed on time-out. Resolves to { wallMs, exit, counts } or { wallMs, exit, error }.
 */
export function runVitest({ dir, cwd }, suite, log, running, timeoutMs) {
  const json = `${log.replace(/\.log$/, "")}.json`;
  rmSync(json, { force: true });
  const bin = path.join(dir, "node_modules", "vitest", "vitest.mjs");
  const argv = [bin, "run", ...suite.args, "--reporter=default", "--reporter=json", `--outputFile.json=${json}`];
  const out = openSync(log, "w");
  const started = performance.now();
  const child = spawn(process.execPath, argv, {
    cwd,
    env: { ...childEnv, NO_COLOR: "1", FORCE_COLOR: "0" },
    detached: true,
    stdio: ["ignore", out, out],
  });
  closeSync(out);
  if (child.pid !== undefined) running.add(child.pid);
  return new Promise((resolve) => {
    let timedOut = false;
    let done = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, timeoutMs);
    const finish = (exit) => {
      if (done) return;
      done = true;
      const wallMs = performance.now() - started;
      clearTimeout(timer);
      // vitest leaves nothing behind when it exits by itself; a stray workerd of a crashed pool goes with the group.
      killGroup(child.pid);
      running.delete(child.pid);
      if (timedOut) return resolve({ wallMs, exit, error: `timed out after ${timeoutMs / 1000} s; log: ${log}` });
      if (!existsSync(json)) {
        const why = logError(log);
        return resolve({ wallMs, exit, error: `no JSON report (exit ${exit})${why ? `: ${why}` : ""}; log: ${log}` });
      }
      resolve({ wallMs, exit, counts: parseReport(JSON.parse(readFileSync(json, "utf8")), cwd) });
    };
    child.once("error", (error) => finish(error.message));
    child.once("exit", (code, signal) => finish(signal ?? code));
  });
}
