// The `dev` table: `durable-node dev` and `wrangler dev` (workerd) serving the same project (workers/dev-json/: a
// Worker that calls a Durable Object over RPC and answers JSON), in one run: requests/s and latency under wrk, and the
// time from spawning the dev server to its first 200.
// Usage: node bench/dev.mjs   (build first: npm run build; wrangler from bench/node_modules; wrk: apt-get install wrk)
import { execFile, spawn } from "node:child_process";
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { describeDurableNode, readVersion } from "./lib/describe.mjs";
import { canPin, childEnv, killGroup, onCpu } from "./lib/processes.mjs";
import { cell, format, goalCell, median, printTable, ratio, summarize } from "./lib/table.mjs";

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const rootDir = path.dirname(benchDir);
const projectDir = path.join(benchDir, "workers", "dev-json");
const modulesDir = path.join(benchDir, "node_modules");

// Throughput: `rounds` alternating rounds, a fresh server each, `warmupS` of load then `durationS` measured with
// `connections` connections. Start-up: `starts` fresh servers per side, alternating, polled every `pollMs`.
const PLAN = { rounds: 3, connections: 50, warmupS: 3, durationS: 10, starts: 5, pollMs: 10 };
const START_TIMEOUT_MS = 60_000;
// After SIGTERM a server gets this long to shut down (wrangler stops its workerd) before its group is killed.
const STOP_GRACE_MS = 5_000;
// wrk's own limit per request; the default (2 s) would drop slow responses from the percentiles as timeouts.
const WRK_TIMEOUT = "10s";

const SIDES = {
  "durable-node": {
    title: "durable-node dev",
    bin: path.join(rootDir, "bin", "durable-node.js"),
    missing: "bin/durable-node.js not found (durable-node dev is not built: npm run build)",
    args: ({ dir, port, persist }) => ["dev", dir, "--port", String(port), "--persist-to", persist],
    env: () => childEnv,
  },
  wrangler: {
    title: "wrangler dev",
    bin: path.join(modulesDir, "wrangler", "bin", "wrangler.js"),
    missing: "wrangler is not installed (npm --prefix bench install)",
    args: ({ dir, port, persist }) => [
      "dev",
      "-c",
      path.join(dir, "wrangler.jsonc"),
      "--port",
      String(port),
      "--ip",
      "127.0.0.1",
      "--persist-to",
      persist,
    ],
    // Nothing that needs the internet or a person: no metrics or error reports (and no prompt about them); no banner,
    // whose update check waits up to 100 ms for the npm registry; no fetch of the Request.cf object from
    // workers.cloudflare.com (unreachable here; with a network it is cached for 30 days, so a steady-state
    // `wrangler dev` skips it too). Its debug log goes to the server's temporary folder instead of ~/.config.
    env: ({ tmp }) => ({
      ...childEnv,
      WRANGLER_SEND_METRICS: "false",
      WRANGLER_SEND_ERROR_REPORTS: "false",
      WRANGLER_HIDE_BANNER: "true",
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
      WRANGLER_LOG_PATH: path.join(tmp, "logs"),
    }),
  },
};
const SIDE_NAMES = Object.keys(SIDES);

const running = new Set();
process.on("SIGINT", () => {
  for (const pid of running) killGroup(pid);
  process.exit(130);
});

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** The last lines the server printed, for an error message. */
function logTail(log) {
  try {
    return readFileSync(log, "utf8").trim().split("\n").slice(-3).join(" / ");
  } catch {
    return "";
  }
}

/**
 * Starts `side` on a fresh copy of the project with a fresh --persist-to folder (both in a new temporary folder, so
 * nothing is cached from an earlier start and the repository stays clean), on `cpu` if given, in a process group of
 * its own; resolves once GET / has answered 200 with the object's first hit. `startMs`: from spawn() to that 200.
 */
async function startServer(side, cpu) {
  const { bin, args, env } = SIDES[side];
  const tmp = mkdtempSync(path.join(os.tmpdir(), `durable-node-bench-dev-${side}-`));
  const dir = path.join(tmp, "project");
  // Without the state of a wrangler dev run by hand in the project folder.
  cpSync(projectDir, dir, { recursive: true, filter: (source) => path.basename(source) !== ".wrangler" });
  const persist = path.join(tmp, "state");
  mkdirSync(persist);
  const port = await freePort();
  const log = path.join(tmp, "server.log");
  const argv = [bin, ...args({ dir, port, persist })];
  const [command, commandArgs] = cpu === undefined ? [process.execPath, argv] : onCpu(cpu, process.execPath, argv);
  const out = openSync(log, "w");
  const spawned = performance.now();
  const child = spawn(command, commandArgs, { cwd: dir, env: env({ tmp }), detached: true, stdio: ["ignore", out, out] });
  closeSync(out);
  running.add(child.pid);
  let exit;
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve((exit = signal ?? `code ${code}`))));
  const url = `http://127.0.0.1:${port}/`;

  const stop = async () => {
    if (exit === undefined) {
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(STOP_GRACE_MS, undefined, { ref: false })]);
    }
    killGroup(child.pid);
    running.delete(child.pid);
    rmSync(tmp, { recursive: true, force: true });
  };

  const deadline = spawned + START_TIMEOUT_MS;
  let last = "no answer";
  try {
    while (performance.now() < deadline) {
      if (exit !== undefined) throw new Error(`exited with ${exit} before answering 200`);
      try {
        const signal = AbortSignal.timeout(Math.max(1, Math.ceil(deadline - performance.now())));
        const response = await fetch(url, { signal });
        const body = await response.text();
        if (response.status === 200) {
          const startMs = performance.now() - spawned;
          const hits = JSON.parse(body).hits;
          if (hits !== 1) throw new Error(`first 200 was ${body}, not the object's first hit ({"hits":1})`);
          return { url, startMs, stop };
        }
        last = `HTTP ${response.status}: ${body.slice(0, 100)}`;
      } catch (error) {
        if (!(error instanceof TypeError || error.name === "TimeoutError")) throw error;
        last = error.cause?.code ?? error.message;
      }
      await sleep(PLAN.pollMs);
    }
    throw new Error(`no 200 within ${START_TIMEOUT_MS / 1000} s (last: ${last})`);
  } catch (error) {
    const tail = logTail(log);
    await stop();
    throw new Error(`${error.message}${tail ? `; it printed: ${tail}` : ""}`);
  }
}

/** The object's count after one more hit. */
async function hits(url) {
  const response = await fetch(url);
  if (response.status !== 200) throw new Error(`GET / answered ${response.status}`);
  return (await response.json()).hits;
}

/** Runs wrk with `connections` connections for `seconds` on CPU 0 (one thread); resolves to its report. */
function wrk(url, seconds) {
  const args = ["-t1", `-c${PLAN.connections}`, `-d${seconds}s`, "--timeout", WRK_TIMEOUT, "--latency", url];
  const [command, argv] = onCpu(0, "wrk", args);
  return new Promise((resolve, reject) => {
    execFile(command, argv, { timeout: (seconds + 30) * 1000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`wrk failed: ${(stderr || error.message).trim().split("\n")[0]}`));
      else resolve(parseWrk(stdout));
    });
  });
}

const TIME_UNITS_MS = { us: 1e-3, ms: 1, s: 1e3, m: 60e3 };

/** requests/s, the requests completed, p50/p99 in ms, non-2xx responses and socket errors from wrk's report. */
function parseWrk(report) {
  const match = (pattern) => {
    const m = pattern.exec(report);
    if (!m) throw new Error(`unexpected wrk output: no ${pattern}`);
    return m[1];
  };
  const ms = (text) => {
    const [, value, unit] = /^([\d.]+)(us|ms|s|m)$/.exec(text);
    return Number(value) * TIME_UNITS_MS[unit];
  };
  return {
    rps: Number(match(/^Requests\/sec:\s+([\d.]+)/m)),
    requests: Number(match(/(\d+) requests in /)),
    p50: ms(match(/^\s+50%\s+(\S+)$/m)),
    p99: ms(match(/^\s+99%\s+(\S+)$/m)),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(report)?.[1] ?? 0),
    socketErrors: /Socket errors: (.*)/.exec(report)?.[1],
  };
}

/**
 * One throughput round on a fresh server pinned to CPU 1 (wrk runs on CPU 0): a warm-up run, then the measured run.
 * The object's count before and after checks that every response the measured run counted went through it.
 */
async function throughputRound(side) {
  const server = await startServer(side, 1);
  try {
    await wrk(server.url, PLAN.warmupS);
    const before = await hits(server.url);
    const run = await wrk(server.url, PLAN.durationS);
    const served = (await hits(server.url)) - before - 1;
    if (run.non2xx > 0) throw new Error(`${run.non2xx} of ${run.requests} responses were not 2xx`);
    if (served < run.requests) throw new Error(`the object counted ${served} hits for ${run.requests} responses`);
    return { ...run, served, pinnedStartMs: server.startMs };
  } finally {
    await server.stop();
  }
}

const results = Object.fromEntries(SIDE_NAMES.map((side) => [side, { rounds: [], starts: [] }]));
for (const side of SIDE_NAMES) {
  if (!existsSync(SIDES[side].bin)) results[side].error = SIDES[side].missing;
}
const wrkMissing = await new Promise((resolve) => execFile("wrk", ["-v"], (error) => resolve(error?.code === "ENOENT")));
if (wrkMissing) {
  console.error("wrk is not installed: apt-get install -y wrk (bench/README.md, dev scenarios)");
  process.exit(2);
}

const started = performance.now();
for (let round = 0; round < PLAN.rounds; round++) {
  for (const side of SIDE_NAMES) {
    if (results[side].error) continue;
    process.stderr.write(`${SIDES[side].title}: ${PLAN.connections} connections, round ${round + 1}/${PLAN.rounds}…\n`);
    try {
      results[side].rounds.push(await throughputRound(side));
    } catch (error) {
      results[side].error = error.message;
    }
  }
}
// Start-up after the throughput rounds, so both sides start with their files in the page cache.
for (let i = 0; i < PLAN.starts; i++) {
  for (const side of SIDE_NAMES) {
    if (results[side].startError ?? results[side].error) continue;
    process.stderr.write(`${SIDES[side].title}: start to first 200 (${i + 1}/${PLAN.starts})…\n`);
    try {
      const server = await startServer(side);
      results[side].starts.push(server.startMs);
      await server.stop();
    } catch (error) {
      results[side].startError = error.message;
    }
  }
}

const stat = (side, pick) => {
  const r = results[side];
  return r.error ? { error: r.error } : summarize(r.rounds.map(pick));
};
const startStat = (side) => {
  const r = results[side];
  const error = r.error ?? r.startError;
  return error ? { error } : summarize(r.starts);
};
const [dn, wr] = SIDE_NAMES;
const rows = [
  {
    label: `GET / → Worker → DO RPC → Response.json, ${PLAN.connections} connections: requests/s`,
    pick: (r) => r.rps,
    unit: "req/s",
    higherIsBetter: true,
    goal: 5_000,
  },
  { label: "latency p50", pick: (r) => r.p50, unit: "ms", goal: 10 },
  { label: "latency p99", pick: (r) => r.p99, unit: "ms" },
].map(({ pick, ...row }) => ({ ...row, dn: stat(dn, pick), wr: stat(wr, pick) }));
rows.push({ label: "start: spawn the dev server → first 200", unit: "ms", goal: 400, dn: startStat(dn), wr: startStat(wr) });

const date = new Date().toISOString();
const cpus = os.cpus();
console.log(`# durable-node dev vs wrangler dev (workerd) — ${date}`);
console.log(`node ${process.version}, ${os.platform()} ${os.arch()}, ${cpus.length} × ${cpus[0]?.model ?? "unknown CPU"}`);
console.log(`${describeDurableNode()}: bin/durable-node.js dev`);
console.log(
  `wrangler ${readVersion(path.join(modulesDir, "wrangler", "package.json"))} (miniflare ` +
    `${readVersion(path.join(modulesDir, "miniflare", "package.json"))}, workerd ` +
    `${readVersion(path.join(modulesDir, "workerd", "package.json"))})`,
);
console.log(
  `project: bench/workers/dev-json (fetch → env.COUNTER.getByName("x").hit(), an in-memory count → Response.json); ` +
    `each server on a fresh copy of it with a fresh --persist-to folder under ${os.tmpdir()}`,
);
console.log();
printTable(
  ["scenario", SIDES[dn].title, SIDES[wr].title, "ratio (above 1× durable-node is better)", "goal (durable-node)"],
  rows.map((row) => [
    row.label,
    cell(row.dn, row.unit),
    cell(row.wr, row.unit),
    row.higherIsBetter ? ratio(row.wr, row.dn) : ratio(row.dn, row.wr),
    goalCell(row.dn, row.goal, row.unit, row.higherIsBetter),
  ]),
);
console.log();
console.log(
  `Load rows: ${PLAN.rounds} alternating rounds, each a fresh server; wrk -t1 -c${PLAN.connections} --latency, ` +
    `a ${PLAN.warmupS} s warm-up run, then ${PLAN.durationS} s measured; ` +
    (canPin
      ? "wrk on CPU 0, the server (all its processes and threads) on CPU 1. "
      : "not pinned to CPUs (taskset missing or one CPU). ") +
    "Each cell is the median (min–max) over rounds of that round's requests/s or wrk's percentile.",
);
console.log(
  `Start row: ${PLAN.starts} starts per side, alternating, not pinned, each a fresh project copy and --persist-to ` +
    `folder: from spawn() of \`node <bin> dev …\` to the first 200 of GET / (fetch every ${PLAN.pollMs} ms), ` +
    `which must be the object's first hit.`,
);
for (const side of SIDE_NAMES) {
  const r = results[side];
  if (r.error) {
    console.log(`${SIDES[side].title} failed: ${r.error}`);
    continue;
  }
  if (r.startError) console.log(`${SIDES[side].title} start-up failed: ${r.startError}`);
  const socketErrors = r.rounds.map((run) => run.socketErrors).filter(Boolean);
  console.log(
    `${SIDES[side].title}: ${r.rounds.map((run) => run.requests.toLocaleString("en-US")).join(", ")} responses in the ` +
      `measured runs, every one counted by the object; started in ` +
      `${format(median(r.rounds.map((run) => run.pinnedStartMs)), "ms")} (median) when pinned to one CPU` +
      (socketErrors.length ? `; wrk socket errors: ${socketErrors.join(" / ")}` : ""),
  );
}
console.log(`Total bench time ${format((performance.now() - started) / 1000, "s")}.`);

const resultDir = path.join(benchDir, "results");
mkdirSync(resultDir, { recursive: true });
const resultFile = path.join(resultDir, `dev-${date.replace(/[:.]/g, "-")}.json`);
writeFileSync(resultFile, JSON.stringify({ date, node: process.version, plan: PLAN, pinned: canPin, results }, null, 2));
console.log(`Raw samples: ${path.relative(rootDir, resultFile)}`);
