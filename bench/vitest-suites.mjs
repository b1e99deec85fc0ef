// The acceptance harness of durable-node/vitest: four third-party suites written for @cloudflare/vitest-pool-workers
// (workers-sdk's durable-objects and rpc fixtures, partykit's partyserver, durable-objects-sql-tag), each run unchanged
// with Cloudflare's pool and with durable-node installed under the pool's name. Prints tests passed and the wall time
// of `vitest run` per tool, then what still fails under durable-node.
// Usage: node bench/vitest-suites.mjs [--rounds N] [--only name[,name]] [--side cf|dn] [--work DIR] [--timeout S]
//   (build first: npm run build; the suites' packages are installed into the work folder, bench/.suites/ by default)
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { describeDurableNode, readVersion } from "./lib/describe.mjs";
import { killGroup } from "./lib/processes.mjs";
import { SUITES, TOOLS, extractSuite, packDurableNode, prepareProject, runVitest } from "./lib/suites.mjs";
import { cell, format, printTable, ratio, summarize } from "./lib/table.mjs";

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const rootDir = path.dirname(benchDir);

const { values: options } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    only: { type: "string", multiple: true },
    side: { type: "string" },
    work: { type: "string", default: path.join(benchDir, ".suites") },
    timeout: { type: "string", default: "300" },
  },
});
const rounds = Number(options.rounds);
const timeoutMs = Number(options.timeout) * 1000;
const workDir = path.resolve(options.work);
const only = options.only?.flatMap((names) => names.split(","));
const unknown = only?.filter((name) => !SUITES.some((s) => s.name === name)) ?? [];
const tools = options.side ? [options.side] : Object.keys(TOOLS);
if (!(rounds >= 1) || !(timeoutMs > 0) || unknown.length || tools.some((t) => !TOOLS[t])) {
  console.error(
    `usage: node bench/vitest-suites.mjs [--rounds N] [--only ${SUITES.map((s) => s.name).join("|")}] ` +
      `[--side ${Object.keys(TOOLS).join("|")}] [--work DIR] [--timeout S]` +
      (unknown.length ? `\nunknown suite: ${unknown.join(", ")}` : ""),
  );
  process.exit(2);
}
const suites = only ? SUITES.filter((s) => only.includes(s.name)) : SUITES;

const running = new Set();
process.on("SIGINT", () => {
  for (const pid of running) killGroup(pid);
  process.exit(130);
});

// durable-node is packed before anything else, so a missing build stops the run at once with one clear message.
let pack;
if (tools.includes("dn")) {
  try {
    pack = packDurableNode(rootDir, workDir);
  } catch (error) {
    console.error(error.message);
    process.exit(2);
  }
  for (const warning of pack.warnings) console.error(`warning: ${warning}`);
}

// results[suite][tool]: the prepared project, or the error that stopped it, and one sample per round.
const results = {};
const started = performance.now();
for (const suite of suites) {
  results[suite.name] = {};
  for (const tool of tools) {
    const result = (results[suite.name][tool] = { samples: [] });
    process.stderr.write(`${suite.name}: preparing ${tool}/…\n`);
    try {
      const t0 = performance.now();
      result.project = prepareProject(suite, tool, workDir, pack?.tarball);
      if (result.project.installed) {
        process.stderr.write(`  npm install took ${format((performance.now() - t0) / 1000, "s")}\n`);
      }
    } catch (error) {
      result.error = error.message;
    }
  }
}

// Rounds alternate which tool goes first, so neither always runs on the caches the other just warmed.
for (let round = 0; round < rounds; round++) {
  const order = round % 2 ? [...tools].reverse() : tools;
  for (const suite of suites) {
    for (const tool of order) {
      const result = results[suite.name][tool];
      if (result.error) continue;
      process.stderr.write(`${suite.name}: vitest run in ${tool}/, round ${round + 1}/${rounds}…`);
      const log = path.join(result.project.dir, "logs", `round-${round + 1}.log`);
      mkdirSync(path.dirname(log), { recursive: true });
      extractSuite(suite, result.project);
      const sample = await runVitest(result.project, suite, log, running, timeoutMs);
      result.samples.push(sample);
      const summary = sample.error ? "no report" : `${sample.counts.passed}/${suite.tests} passed`;
      process.stderr.write(` ${summary}, ${format(sample.wallMs / 1000, "s")}\n`);
    }
  }
}

/** Tests passed over the suite's count, the spread over rounds if it moved, and what else the report said. */
function testsCell(suite, result) {
  if (result.error) return "error (see below)";
  const reported = result.samples.filter((s) => s.counts);
  if (reported.length === 0) return "no report (see below)";
  const passed = reported.map((s) => s.counts.passed);
  const [lo, hi] = [Math.min(...passed), Math.max(...passed)];
  const last = reported.at(-1).counts;
  const notes = [];
  if (last.failed) notes.push(`${last.failed} failed`);
  if (last.skipped) notes.push(`${last.skipped} skipped`);
  if (last.total !== suite.tests) notes.push(`${last.total} collected`);
  if (reported.length < result.samples.length) notes.push(`${result.samples.length - reported.length} runs no report`);
  return `${lo === hi ? lo : `${lo}–${hi}`}/${suite.tests}${notes.length ? ` (${notes.join(", ")})` : ""}`;
}

/** Whether every round ran every test of the suite and passed it. */
function allPassed(suite, result) {
  return (
    !result.error &&
    result.samples.length > 0 &&
    result.samples.every((s) => s.counts && s.counts.passed === suite.tests && s.counts.total === suite.tests)
  );
}

/** Wall times of the rounds that produced a report. */
function wallStat(result) {
  if (result.error) return { error: result.error };
  const times = result.samples.filter((s) => s.counts).map((s) => s.wallMs / 1000);
  return times.length ? summarize(times) : { error: "no run produced a report" };
}

const date = new Date().toISOString();
const cpus = os.cpus();
const versionOf = (result, name) =>
  readVersion(path.join(result.project?.dir ?? "", "node_modules", name, "package.json"));
console.log(`# vitest suites: Cloudflare's vitest-pool-workers vs durable-node — ${date}`);
console.log(`node ${process.version}, ${os.platform()} ${os.arch()}, ${cpus.length} × ${cpus[0]?.model ?? "unknown CPU"}`);
if (pack) {
  console.log(
    `${describeDurableNode()}: ${path.basename(pack.tarball)} (${pack.files} files, ` +
      `${format(pack.size / 1e6, "MB")}) as @cloudflare/vitest-pool-workers`,
  );
}
for (const suite of suites) {
  const { cf, dn } = results[suite.name];
  const parts = [];
  if (cf?.project) {
    parts.push(
      `cf/ vitest-pool-workers ${versionOf(cf, "@cloudflare/vitest-pool-workers")} (miniflare ` +
        `${versionOf(cf, "miniflare")}, workerd ${versionOf(cf, "workerd")}), vitest ${versionOf(cf, "vitest")}, ` +
        `vite ${versionOf(cf, "vite")}`,
    );
  }
  if (dn?.project) parts.push(`dn/ vitest ${versionOf(dn, "vitest")}, vite ${versionOf(dn, "vite")}`);
  console.log(`${suite.name} (${suite.repo}@${suite.commit.slice(0, 12)}): ${parts.join("; ")}`);
}
console.log();

const header = [
  "suite",
  ...tools.map((t) => `tests: ${TOOLS[t].title}`),
  ...tools.map((t) => `wall: ${TOOLS[t].title}`),
];
if (tools.length === 2) header.push("ratio (above 1× durable-node is faster)");
let partial = false;
printTable(
  header,
  suites.map((suite) => {
    const r = results[suite.name];
    const row = [
      `${suite.name} (${suite.tests} tests)`,
      ...tools.map((t) => testsCell(suite, r[t])),
      ...tools.map((t) => cell(wallStat(r[t]), "s")),
    ];
    if (tools.length === 2) {
      const same = allPassed(suite, r.cf) && allPassed(suite, r.dn);
      partial ||= !same && !wallStat(r.cf).error && !wallStat(r.dn).error;
      row.push(`${ratio(wallStat(r.dn), wallStat(r.cf))}${same ? "" : " *"}`);
    }
    return row;
  }),
);
console.log();
console.log(
  `${rounds} round(s); each round runs every suite once per tool, the tool that goes first alternating by round. ` +
    "Wall time: from spawn() of `node node_modules/vitest/vitest.mjs run <suite args>` (what `npx vitest run` " +
    "starts) in the suite's folder to that process's exit: config load, pool start-up, all tests, teardown. " +
    "Each cell is the median (min–max) over the rounds that produced a report. Tests: passed / the suite's count " +
    "(the spread over rounds if it moved; failed, skipped and collected from the last round).",
);
if (partial) console.log("* Not every test passed on both sides in every round: the times are not of the same work.");

// What still fails: durable-node first (the work left), then anything Cloudflare's own pool failed.
const clip = (text) => (text.length > 200 ? `${text.slice(0, 199)}…` : text);
for (const tool of ["dn", "cf"].filter((t) => tools.includes(t))) {
  const lines = [];
  for (const suite of suites) {
    const result = results[suite.name][tool];
    if (result.error) {
      lines.push(`- ${suite.name}: not run: ${clip(result.error)}`);
      continue;
    }
    const failing = new Map();
    const errors = new Set();
    for (const sample of result.samples) {
      if (sample.error) errors.add(sample.error.replace(/round-\d+/, "round-N"));
      else if (sample.counts.failures.length === 0 && sample.exit !== 0) {
        errors.add(`no test failed, but vitest exited with ${sample.exit} (an unhandled error? see the log)`);
      }
      for (const { test, error } of sample.counts?.failures ?? []) {
        const seen = failing.get(test) ?? { error, rounds: 0 };
        seen.rounds++;
        failing.set(test, seen);
      }
    }
    for (const error of errors) lines.push(`- ${suite.name}: ${clip(error)}`);
    for (const [test, { error, rounds: n }] of failing) {
      const flaky = n < result.samples.length ? ` (in ${n}/${result.samples.length} rounds)` : "";
      lines.push(`- ${suite.name}: ${test}${flaky} — ${clip(error)}`);
    }
  }
  if (lines.length === 0) continue;
  console.log();
  const logs = path.join(workDir, "<suite>", tool, "logs");
  console.log(`## Failing under ${TOOLS[tool].title} (test — first line of its error; logs in ${logs}/)`);
  for (const line of lines) console.log(line);
}
console.log();
console.log(`Total time ${format((performance.now() - started) / 1000, "s")}, npm installs included.`);

const resultDir = path.join(benchDir, "results");
mkdirSync(resultDir, { recursive: true });
const resultFile = path.join(resultDir, `vitest-suites-${date.replace(/[:.]/g, "-")}.json`);
writeFileSync(
  resultFile,
  JSON.stringify({ date, node: process.version, rounds, tarball: pack?.tarball, results }, null, 2),
);
console.log(`Raw samples: ${path.relative(rootDir, resultFile)}`);
