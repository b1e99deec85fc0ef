// Runs every scenario against durable-node and Miniflare 4 (workerd) in one go and prints three tables of medians: RPC
// and start-up, then storage with raw SQLite as the floor, then durable-node's alarm scheduler. Each side runs in child
// processes of its own, so one side's crash, hang or heap never touches the other's numbers.
// Usage: node run.mjs [rpc] [storage] [alarms] [dev]   (the tables to run; rpc, storage and alarms without arguments)
import { spawn } from "node:child_process";
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describeDurableNode, readVersion } from "./lib/describe.mjs";
import { buildFloor } from "./lib/floor.mjs";
import { childEnv, killGroup } from "./lib/processes.mjs";
import { parseReport } from "./lib/protocol.mjs";
import { cell, format, goalCell, median, printTable, ratio, summarize } from "./lib/table.mjs";

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const rootDir = path.dirname(benchDir);
const SIDES = ["durable-node", "miniflare"];

// Call counts per side: Miniflare takes milliseconds per call where durable-node aims at microseconds, so it gets
// fewer calls; measure.mjs also shrinks a batch that would overrun its budget, which bounds the whole run.
const PLAN = {
  "durable-node": {
    warmup: 2000,
    sequential: { batches: 9, calls: 2000, budgetMs: 8000 },
    concurrent: { rounds: 50, width: 100, budgetMs: 5000 },
  },
  miniflare: {
    warmup: 50,
    sequential: { batches: 5, calls: 200, budgetMs: 12000 },
    concurrent: { rounds: 10, width: 100, budgetMs: 8000 },
  },
};
// Start-up is timed three ways: durable-node as a bundled app loads it (no module hooks), durable-node the way
// `node --import durable-node/register app.mjs` runs (Node's loader-hook thread included), and Miniflare.
const registerPath = path.join(rootDir, "dist", "register.js");
const START_WAYS = [
  { key: "durable-node", side: "durable-node", nodeArgs: [] },
  { key: "durable-node/register", side: "durable-node", nodeArgs: ["--import", pathToFileURL(registerPath).href] },
  { key: "miniflare", side: "miniflare", nodeArgs: [] },
];
const FIRST_CALL_SAMPLES = 5;
const MEASURE_TIMEOUT_MS = 45_000;
const FIRST_CALL_TIMEOUT_MS = 20_000;
// After a child has printed its result it gets this long to exit by itself before it is killed.
const EXIT_GRACE_MS = 5_000;

// Storage: the same workloads (workers/store.mjs) on both sides and on raw SQLite (floor/sqlite.rs), timed inside.
// Rounds alternate durable-node, Miniflare and the floor, each a fresh process giving `samples` samples after one
// warm-up, so a slow spell of this machine falls on all three alike.
const STORAGE_PLAN = {
  rounds: 3,
  samples: 3,
  kvOps: 10_000,
  insertRows: 100_000,
  selectCalls: 20_000,
  listKeys: 1_000,
  listRepeats: 200,
};
const STORAGE_TIMEOUT_MS = 60_000;
const FLOOR_TIMEOUT_MS = 30_000;
const FLOOR_BUILD_TIMEOUT_MS = 300_000;
const STORAGE_SOURCES = ["durable-node", "miniflare", "floor"];
const count = (n) => n.toLocaleString("en-US");
// Goals from the design: `limit` for durable-node's median, `faster` than Miniflare, `withinFloor` of raw SQLite.
const STORAGE_ROWS = [
  {
    label: `KV put(k, v), ${count(STORAGE_PLAN.kvOps)} awaited in one event, per op`,
    key: "putUs",
    unit: "µs",
    ops: STORAGE_PLAN.kvOps,
    goals: { limit: 4, faster: 2, withinFloor: 3 },
  },
  {
    label: `KV get(k), ${count(STORAGE_PLAN.kvOps)} awaited in one event, per op`,
    key: "getUs",
    unit: "µs",
    ops: STORAGE_PLAN.kvOps,
    goals: { limit: 4, faster: 2, withinFloor: 3 },
  },
  {
    label: `sql.exec INSERT, ${count(STORAGE_PLAN.insertRows)} in one event, per row`,
    key: "insertUs",
    unit: "µs",
    ops: STORAGE_PLAN.insertRows,
    goals: { limit: 2, withinFloor: 2 },
  },
  {
    label: `sql.exec point SELECT by primary key + one(), ${count(STORAGE_PLAN.selectCalls)} in one event, per call`,
    key: "selectUs",
    unit: "µs",
    ops: STORAGE_PLAN.selectCalls,
    goals: { limit: 2 },
  },
  {
    label: `list() of all ${count(STORAGE_PLAN.listKeys)} keys, ${STORAGE_PLAN.listRepeats} in one event, per list`,
    key: "listMs",
    unit: "ms",
    ops: STORAGE_PLAN.listRepeats,
    goals: { limit: 0.3 },
  },
];

// Alarms (durable-node only: the index is its own). `fire` rows: objects of workers/alarmed.mjs all given an alarm
// for the same time T, a fresh process per sample, timed from T to the last alarm() run. `index` rows: the core's
// alarm index (native.Alarms) on its own, 1,000,000 future alarms, its RSS growth and the cost of its calls.
const ALARM_PLAN = {
  fire: [
    { key: "memory", objects: 10_000, persist: false, samples: 5 },
    // Persisted, each loaded object holds its database, WAL and shared-memory files open: 10,000 objects need about
    // 30,000 file descriptors, so the row at 5,000 gives a number where the descriptor limit is 20,000.
    { key: "persist", objects: 10_000, persist: true, samples: 3 },
    { key: "persist-5k", objects: 5_000, persist: true, samples: 3 },
  ],
  // T comes this long after the setup's (estimated) end; objects are loaded and armed this many at a time.
  leadMs: 2_000,
  chunk: 1_000,
  // How long after T the last handler may take before the sample counts as failed.
  fireTimeoutMs: 60_000,
  entries: 1_000_000,
  // Memory of the in-memory index: fresh processes, each filing `entries`; next() and takeDue() are timed in them.
  indexSamples: 3,
  nextCalls: 100_000,
  takeBatches: 100,
  // Persisted: one process fills runtime.sqlite (its per-set time is timed per batch), then fresh processes load it.
  batch: 100_000,
  loadSamples: 3,
  goalMb: 100,
};
const ALARM_TIMEOUT_MS = { fire: 240_000, index: 60_000, fill: 600_000 };

// Miniflare keeps Durable Object storage in SQLite files under its temporary directory (os.tmpdir()); the storage
// children put that directory on tmpfs when there is one, so its storage is in memory as durable-node's is.
const TMPFS = "/dev/shm";
const storageTmpfs = (() => {
  try {
    accessSync(TMPFS, constants.W_OK);
    return TMPFS;
  } catch {
    return undefined;
  }
})();
const storageEnv = storageTmpfs ? { ...childEnv, TMPDIR: storageTmpfs } : childEnv;

const running = new Set();
const notes = [];

process.on("SIGINT", () => {
  for (const pid of running) killGroup(pid);
  process.exit(130);
});

/** Runs `node ...nodeArgs <script> ...args` in its own process group; resolves to its result or `{ error }`, never rejects. */
function runChild(nodeArgs, script, args, timeoutMs, env = childEnv) {
  return runProcess(process.execPath, [...nodeArgs, script, ...args], `${args[0]}: ${script}`, timeoutMs, env);
}

/** Runs `command ...argv` as runChild does; `label` names it in notes. */
function runProcess(command, argv, label, timeoutMs, env = childEnv) {
  return new Promise((resolve) => {
    const child = spawn(command, argv, {
      cwd: benchDir,
      env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    running.add(child.pid);
    let stdout = "";
    let stderr = "";
    let failure;
    let result;
    let graceTimer;
    const finish = (forcedError) => {
      clearTimeout(deadline);
      clearTimeout(graceTimer);
      killGroup(child.pid);
      running.delete(child.pid);
      failure ??= forcedError;
      resolve(result ?? { error: failure });
    };
    const deadline = setTimeout(() => {
      failure = `timed out after ${timeoutMs / 1000} s`;
      killGroup(child.pid);
    }, timeoutMs);
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      if (result === undefined && (result = parseReport(stdout)) !== undefined) {
        graceTimer = setTimeout(() => {
          notes.push(`${label} did not exit within ${EXIT_GRACE_MS / 1000} s of its result; killed.`);
          killGroup(child.pid);
        }, EXIT_GRACE_MS);
      }
    });
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("error", (error) => finish(error.message));
    child.on("close", (code, signal) => {
      const lastLine = stderr.trim().split("\n").pop();
      // Code 13: the child's top-level await never settled, i.e. a call that never answered with nothing else pending.
      const why = code === 13 ? " (a call never answered)" : lastLine ? `: ${lastLine}` : "";
      finish(`exited with ${signal ?? `code ${code}`}${why}`);
    });
  });
}

/** durable-node's median as a multiple of the floor's: `1.5×` means 1.5 times the raw SQLite time. */
function overFloor(dn, floor) {
  if (dn.error || floor.error) return "—";
  return `${(dn.median / floor.median).toFixed(1)}×`;
}

/**
 * The goals of a storage row, each marked met or not: `limit` (durable-node's median at most this), `faster` (at least
 * this many times faster than Miniflare), `withinFloor` (at most this many times raw SQLite's time).
 */
function storageGoalCell({ dn, mf, floor, unit, goals: { limit, faster, withinFloor } }) {
  const parts = [];
  const mark = (text, inputs, ok) => parts.push(inputs.some((s) => s.error) ? text : `${text} ${ok() ? "met" : "not met"}`);
  if (limit !== undefined) mark(`≤ ${limit} ${unit}`, [dn], () => dn.median <= limit);
  if (faster !== undefined) mark(`≥ ${faster}× faster than miniflare`, [dn, mf], () => mf.median / dn.median >= faster);
  if (withinFloor !== undefined) mark(`≤ ${withinFloor}× raw`, [dn, floor], () => dn.median / floor.median <= withinFloor);
  return parts.join("; ");
}

const TABLES = ["rpc", "storage", "alarms"];
// `dev` runs only when named: dev.mjs serves a project with `durable-node dev` and `wrangler dev` under wrk (a system
// package), about 1.5 minutes; its table comes first, in its own process.
const NAMED_ONLY = ["dev"];
const chosen = process.argv.slice(2);
for (const table of chosen) {
  if (![...TABLES, ...NAMED_ONLY].includes(table)) {
    console.error(
      `Unknown table "${table}"; usage: node run.mjs [${[...TABLES, ...NAMED_ONLY].join("] [")}] ` +
        `(${TABLES.join(", ")} without arguments).`,
    );
    process.exit(2);
  }
}
const want = (table) => (chosen.length === 0 ? TABLES.includes(table) : chosen.includes(table));
const withMiniflare = want("rpc") || want("storage");

if (want("dev")) {
  const code = await new Promise((resolve) => {
    spawn(process.execPath, [path.join(benchDir, "dev.mjs")], { stdio: "inherit" }).on("close", resolve);
  });
  if (code !== 0) process.exitCode = 1;
  if (!TABLES.some(want)) process.exit();
  console.log();
}

const started = performance.now();
const date = new Date().toISOString();
const cpus = os.cpus();
console.log(`# durable-node${withMiniflare ? " vs Miniflare 4" : ""} — ${date}`);
console.log(`node ${process.version}, ${os.platform()} ${os.arch()}, ${cpus.length} × ${cpus[0]?.model ?? "unknown CPU"}`);
console.log(`${describeDurableNode()}${withMiniflare ? ": in memory, no persistence" : ""}`);
if (withMiniflare) {
  console.log(
    `miniflare ${readVersion(path.join(benchDir, "node_modules", "miniflare", "package.json"))}, workerd ${readVersion(path.join(benchDir, "node_modules", "workerd", "package.json"))}: ` +
      `its default storage (no persist option: SQLite files in a temporary directory, removed on dispose)`,
  );
}
console.log();

const summaryOf = (result, samples) => (result.error ? { error: result.error } : summarize(samples(result)));
const failed = (what, error) => {
  const hint = /Cannot find module '[^']*\/dist\//.test(error) ? " (build it first: npm run build)" : "";
  console.log(`${what} failed: ${error}${hint}`);
};

/** RPC calls and start-up on both sides; resolves to the raw results. */
async function measureRpc() {
  const measured = {};
  for (const side of SIDES) {
    process.stderr.write(`measuring RPC calls on ${side}…\n`);
    measured[side] = await runChild([], "measure.mjs", [side, JSON.stringify(PLAN[side])], MEASURE_TIMEOUT_MS);
  }

  // Samples alternate between the ways of starting so that a slow spell of this noisy machine falls on all alike.
  const firstCalls = Object.fromEntries(START_WAYS.map(({ key }) => [key, { samples: [] }]));
  for (let i = 0; i < FIRST_CALL_SAMPLES; i++) {
    for (const { key, side, nodeArgs } of START_WAYS) {
      if (firstCalls[key].error) continue;
      process.stderr.write(`start + first call on ${key} (${i + 1}/${FIRST_CALL_SAMPLES})…\n`);
      const sample = await runChild(nodeArgs, "first-call.mjs", [side], FIRST_CALL_TIMEOUT_MS);
      if (sample.error) firstCalls[key].error = sample.error;
      else firstCalls[key].samples.push(sample);
    }
  }
  return { plan: PLAN, measured, firstCalls };
}

async function measureStorage() {
  process.stderr.write("building the raw SQLite floor (cargo build --release --example sqlite-floor)…\n");
  const floor = await buildFloor(rootDir, FLOOR_BUILD_TIMEOUT_MS);
  const storage = Object.fromEntries(STORAGE_SOURCES.map((source) => [source, { samples: [] }]));
  if (floor.error) storage.floor.error = floor.error;
  const { samples: perRound, kvOps, insertRows, selectCalls, listKeys, listRepeats } = STORAGE_PLAN;
  const floorArgs = [perRound, kvOps, insertRows, selectCalls, listKeys, listRepeats].map(String);
  for (let round = 0; round < STORAGE_PLAN.rounds; round++) {
    for (const source of STORAGE_SOURCES) {
      if (storage[source].error) continue;
      process.stderr.write(`storage on ${source} (${round + 1}/${STORAGE_PLAN.rounds})…\n`);
      const result =
        source === "floor"
          ? await runProcess(floor.path, floorArgs, "raw SQLite floor", FLOOR_TIMEOUT_MS)
          : await runChild([], "storage.mjs", [source, JSON.stringify({ ...STORAGE_PLAN, round })], STORAGE_TIMEOUT_MS, storageEnv);
      if (result.error) storage[source].error = result.error;
      else storage[source].samples.push(...result.samples);
    }
  }
  return { storagePlan: STORAGE_PLAN, storage };
}

function printRpc({ measured, firstCalls }) {
  const rpc = (side, scenario) => summaryOf(measured[side], (m) => m[scenario].samples);
  const startUp = (way, pick) => summaryOf(firstCalls[way], (f) => f.samples.map(pick));
  const fromUserCode = (s) => s.firstCall - s.userCode;
  const fromProcess = (s) => s.firstCall;

  const rows = [
    ["Node → DO trivial RPC, sequential, per call", rpc("durable-node", "sequential"), rpc("miniflare", "sequential"), "µs", 10],
    ["Node → DO trivial RPC, 100 concurrent, per call", rpc("durable-node", "concurrent"), rpc("miniflare", "concurrent"), "µs"],
    [
      "start runtime + first call to a new object (import → reply)",
      startUp("durable-node", fromUserCode),
      startUp("miniflare", fromUserCode),
      "ms",
      50,
    ],
    [
      "the same from process start; durable-node under --import durable-node/register",
      startUp("durable-node/register", fromProcess),
      startUp("miniflare", fromProcess),
      "ms",
    ],
  ];
  printTable(
    ["scenario", "durable-node", "miniflare", "ratio (miniflare / durable-node)", "goal (durable-node)"],
    rows.map(([label, dn, mf, unit, limit]) => [label, cell(dn, unit), cell(mf, unit), ratio(dn, mf), goalCell(dn, limit, unit)]),
  );

  console.log();
  console.log("Medians, with (min–max) of the samples they were taken from.");
  for (const side of SIDES) {
    const m = measured[side];
    if (m.error) failed(`${side}: RPC calls`, m.error);
    else {
      console.log(
        `${side}: sequential = median of ${m.sequential.samples.length} batch means of ${m.sequential.calls} calls ` +
          `(after ${PLAN[side].warmup} warm-up calls); concurrent = median of ${m.concurrent.samples.length} rounds of ` +
          `Promise.all(${m.concurrent.width}) to one object.`,
      );
    }
  }
  for (const { key, nodeArgs } of START_WAYS) {
    const { samples, error } = firstCalls[key];
    if (error) {
      failed(`${key}: start + first call`, error);
      continue;
    }
    const ms = (pick) => format(median(samples.map(pick)), "ms");
    const beforeUserCode = nodeArgs.length ? "node boot + --import hooks" : "node boot";
    console.log(
      `${key}: start + first call over ${samples.length} fresh processes = import ${ms((s) => s.imported - s.userCode)} + ` +
        `runtime start ${ms((s) => s.started - s.imported)} + first reply ${ms((s) => s.firstCall - s.started)}; ` +
        `${beforeUserCode} before it ${ms((s) => s.userCode)}.`,
    );
  }
  return rows;
}

function printStorage({ storage }) {
  const { kvOps, insertRows, listKeys } = STORAGE_PLAN;
  const stored = (source, key) => summaryOf(storage[source], (r) => r.samples.map((s) => s[key]));
  const storageRows = STORAGE_ROWS.map((row) => ({
    ...row,
    dn: stored("durable-node", row.key),
    mf: stored("miniflare", row.key),
    floor: stored("floor", row.key),
  }));
  console.log(`## Storage, timed inside the object — ${STORAGE_PLAN.rounds * STORAGE_PLAN.samples} samples per cell`);
  console.log("durable-node: in-memory SQLite (createRuntime() without persist), the class SQLite-backed (its default)");
  console.log(
    `miniflare: the class SQLite-backed (useSQLite), in Miniflare's default storage, SQLite files in its temporary ` +
      (storageTmpfs
        ? `directory, here on tmpfs (TMPDIR=${storageTmpfs}), so in memory too`
        : `directory, here on disk (no writable ${TMPFS}): not in memory`) +
      `; workerd's own in-memory storage (unsafeEphemeralDurableObjects) has no SQL API`,
  );
  console.log(
    "raw SQLite: floor/sqlite.rs, rusqlite on an in-memory database, the same schema and bytes, cached statements, " +
      "one transaction around each loop; no JS, no N-API, no value serialization",
  );
  console.log();
  printTable(
    ["storage scenario", "durable-node", "miniflare", "raw SQLite", "miniflare / durable-node", "durable-node / raw", "goals (durable-node)"],
    storageRows.map((row) => [
      row.label,
      cell(row.dn, row.unit),
      cell(row.mf, row.unit),
      cell(row.floor, row.unit),
      ratio(row.dn, row.mf),
      overFloor(row.dn, row.floor),
      storageGoalCell(row),
    ]),
  );
  console.log();
  console.log(
    "Each cell is the median, (min–max), of per-op means: every sample is one whole loop inside one event on a new " +
      `object, timed by the object itself with performance.now() around the loop and returned by the RPC method, so ` +
      "the Node ↔ workerd bridge and the RPC call are not counted. " +
      `${STORAGE_PLAN.rounds} rounds alternate durable-node, Miniflare and the floor, each a fresh process giving ` +
      `${STORAGE_PLAN.samples} samples after one warm-up sample that is not kept.`,
  );
  console.log(
    `KV: await put(k, v) ${count(kvOps)} times (12-character keys, 16-character string values, 20 bytes serialized), ` +
      `then await get(k) of each, values checked. INSERT: sql.exec("INSERT INTO t VALUES (?, ?)", i, "x") into a new ` +
      `t(id INTEGER PRIMARY KEY, v TEXT). SELECT: sql.exec("SELECT v FROM t WHERE id = ?", id).one() in a later event, ` +
      `ids striding those ${count(insertRows)} rows. list(): the whole object (values deserialized), filled with ` +
      `${count(listKeys)} keys by one earlier put().`,
  );
  if (!storage.miniflare.error) {
    // workerd's clock inside an object moves in whole milliseconds, so each of its timed loops must be long.
    const shortest = Math.min(
      ...storageRows.flatMap((row) => storage.miniflare.samples.map((s) => (s[row.key] * row.ops) / (row.unit === "µs" ? 1000 : 1))),
    );
    console.log(
      `workerd's performance.now() advances in whole milliseconds; its shortest timed loop here lasted ${format(shortest, "ms")}, ` +
        `so the rounding is within ${format(100 / shortest, "%")}.`,
    );
  }
  for (const source of STORAGE_SOURCES) {
    if (storage[source].error) failed(`${source}: storage`, storage[source].error);
  }
  return storageRows;
}

/** A temporary folder for a persisted runtime, on disk (os.tmpdir()), as a real `persist` folder would be. */
const tempDir = (what) => mkdtempSync(path.join(os.tmpdir(), `durable-node-bench-${what}-`));

/** The alarm rows: fresh processes of alarms.mjs; resolves to the raw results. */
async function measureAlarms() {
  const { leadMs, chunk, fireTimeoutMs, entries, batch, nextCalls, takeBatches } = ALARM_PLAN;
  const alarmChild = (kind, plan, timeoutMs) =>
    runChild(["--expose-gc"], "alarms.mjs", [kind, JSON.stringify(plan)], timeoutMs);
  const fire = {};
  for (const { key, objects, persist, samples } of ALARM_PLAN.fire) {
    fire[key] = { samples: [] };
    for (let i = 0; i < samples && !fire[key].error; i++) {
      process.stderr.write(`alarms: ${count(objects)} objects${persist ? ", persisted" : ""} (${i + 1}/${samples})…\n`);
      const dir = persist ? tempDir("fire") : null;
      try {
        const plan = { objects, leadMs, chunk, persist: dir, timeoutMs: fireTimeoutMs };
        const result = await alarmChild("fire", plan, ALARM_TIMEOUT_MS.fire);
        if (result.error) fire[key].error = result.error;
        else fire[key].samples.push(result);
      } finally {
        if (dir) rmSync(dir, { recursive: true, force: true });
      }
    }
  }

  const index = { samples: [] };
  for (let i = 0; i < ALARM_PLAN.indexSamples && !index.error; i++) {
    process.stderr.write(`alarms: index of ${count(entries)} in memory (${i + 1}/${ALARM_PLAN.indexSamples})…\n`);
    const result = await alarmChild("index", { mode: "fill", entries, batch, persist: null, nextCalls, takeBatches }, ALARM_TIMEOUT_MS.index);
    if (result.error) index.error = result.error;
    else index.samples.push(result);
  }

  const dir = tempDir("index");
  const persisted = { fill: { samples: [] }, load: { samples: [] } };
  try {
    process.stderr.write(`alarms: index of ${count(entries)} persisted, filling runtime.sqlite…\n`);
    const fill = await alarmChild("index", { mode: "fill", entries, batch, persist: dir }, ALARM_TIMEOUT_MS.fill);
    if (fill.error) persisted.fill.error = persisted.load.error = fill.error;
    else persisted.fill.samples.push(fill);
    for (let i = 0; i < ALARM_PLAN.loadSamples && !persisted.load.error; i++) {
      process.stderr.write(`alarms: loading ${count(entries)} persisted alarms (${i + 1}/${ALARM_PLAN.loadSamples})…\n`);
      const result = await alarmChild("index", { mode: "load", entries, persist: dir }, ALARM_TIMEOUT_MS.index);
      if (result.error) persisted.load.error = result.error;
      else persisted.load.samples.push(result);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { plan: ALARM_PLAN, fire, index, persisted };
}

const MB = 1e6;
const signed = (text) => (text.startsWith("-") ? text : `+${text}`);

function printAlarms({ fire, index, persisted }) {
  const { entries, goalMb } = ALARM_PLAN;
  const pick = (result, key, scale = 1) => summaryOf(result, (r) => r.samples.map((s) => s[key] * scale));
  const med = (result, key, unit, scale = 1) => format(median(result.samples.map((s) => s[key] * scale)), unit);
  const mbGoal = (stat) => {
    if (stat.error) return `< ${goalMb} MB`;
    if (stat.median < goalMb) return `< ${goalMb} MB met`;
    return `< ${goalMb} MB not met (+${format(stat.median - goalMb, "MB")}, ${(stat.median / goalMb).toFixed(1)}×)`;
  };
  const rows = [];
  for (const { key, objects, persist } of ALARM_PLAN.fire) {
    const result = fire[key];
    const stat = pick(result, "lastMs");
    let detail = "—";
    if (!result.error) {
      const rate = median(result.samples.map((s) => (objects * 1000) / s.lastMs));
      detail =
        `${count(Math.round(rate))} handlers/s; timer fired +${med(result, "timerMs", "ms")}, first handler ` +
        `+${med(result, "firstMs", "ms")}; setup ${med(result, "setupMs", "s", 1 / 1000)} (load objects ` +
        `${med(result, "loadMs", "s", 1 / 1000)} + setAlarm ${med(result, "armMs", "s", 1 / 1000)}), T ` +
        `${med(result, "slackMs", "s", 1 / 1000)} after it`;
    }
    const where = persist ? "persisted (objects' databases and runtime.sqlite on disk)" : "in memory";
    rows.push([`${count(objects)} objects ${where}, alarms due at the same T: T → ${count(objects)}th alarm() ran`, cell(stat, "ms"), detail, "—"]);
  }

  // The RSS growth less the JS heap's own change (V8 may give back or take pages while the core's memory is measured).
  const heapNote = (result) =>
    `RSS itself +${med(result, "rssBytes", "MB", 1 / MB)}, JS heap ${signed(med(result, "heapTotalBytes", "MB", 1 / MB))}`;
  const rss = pick(index, "nativeBytes", 1 / MB);
  rows.push([
    `idle index, ${count(entries)} future alarms in memory: RSS growth`,
    cell(rss, "MB"),
    index.error ? "—" : `${med(index, "nativeBytes", "B", 1 / entries)} per alarm; ${heapNote(index)}`,
    mbGoal(rss),
  ]);
  rows.push([
    `set(ns, id, t) filing ${count(entries)} (in memory), per call`,
    cell(pick(index, "setUs"), "µs"),
    index.error ? "—" : `${med(index, "fillMs", "s", 1 / 1000)} in all`,
    "—",
  ]);
  rows.push([
    `next() with ${count(entries)} filed, per call`,
    cell(pick(index, "nextUs"), "µs"),
    index.error ? "—" : `over ${count(ALARM_PLAN.nextCalls)} calls`,
    "—",
  ]);
  rows.push([
    `takeDue(now, 1000) with ${count(entries)} filed, per entry taken`,
    cell(pick(index, "takeUs"), "µs"),
    index.error ? "—" : `${count(ALARM_PLAN.takeBatches * 1000)} taken; with none due ${med(index, "takeNoneUs", "µs")} per call`,
    "—",
  ]);

  const { fill, load } = persisted;
  const fillStat = fill.error ? { error: fill.error } : summarize(fill.samples[0].batchSetUs);
  rows.push([
    `set() persisted (runtime.sqlite on disk), ${count(entries)} one by one, per call`,
    cell(fillStat, "µs"),
    fill.error
      ? "—"
      : `${med(fill, "fillMs", "s", 1 / 1000)} in all; file ${med(fill, "fileBytes", "MB", 1 / MB)}; RSS growth ` +
        `+${med(fill, "nativeBytes", "MB", 1 / MB)} (index + SQLite's cache; ${heapNote(fill)})`,
    "—",
  ]);
  rows.push([
    `start: new Alarms(dir) loading ${count(entries)} persisted alarms`,
    cell(pick(load, "loadMs"), "ms"),
    load.error ? "—" : `peak RSS +${med(load, "peakBytes", "MB", 1 / MB)} while loading (rows read, then filed)`,
    "—",
  ]);
  const loaded = pick(load, "nativeBytes", 1 / MB);
  rows.push([
    `RSS growth after loading ${count(entries)} persisted alarms`,
    cell(loaded, "MB"),
    load.error ? "—" : `${med(load, "nativeBytes", "B", 1 / entries)} per alarm; ${heapNote(load)}`,
    mbGoal(loaded),
  ]);

  console.log(`## Alarms — durable-node's scheduler (its index is in the Rust core; no Miniflare counterpart)`);
  console.log();
  printTable(["alarm scenario", "durable-node", "detail (medians)", "goal"], rows);
  console.log();
  const [memory, ...persistedRows] = ALARM_PLAN.fire;
  console.log(
    `Firing rows: a fresh process per sample (${memory.samples} in memory, ${persistedRows[0].samples} persisted), each ` +
      `an own runtime with objects of workers/alarmed.mjs: all loaded first, then each given setAlarm(T) for one ` +
      `T, fixed before that step at ${format(ALARM_PLAN.leadMs / 1000, "s")} after its estimated end; the cell is ` +
      `from T to the moment the last alarm() ran (alarm() only counts itself), by performance.timeOrigin + now(). ` +
      `Persisted rows use a new folder under ${os.tmpdir()} per sample.`,
  );
  console.log(
    `Index rows: the core's alarm index through the binding (native.Alarms) without objects, ids random 64-hex-digit ` +
      `strings, times over 30 days from tomorrow. RSS growth is process.memoryUsage().rss after filing minus before, ` +
      `each after forced GCs (node --expose-gc), with ids and times made before the baseline, less the change of the ` +
      `JS heap (heapTotal), which V8 may shrink or grow meanwhile (the detail shows both); ` +
      `${ALARM_PLAN.indexSamples} fresh processes. The persisted set() cell is the median (min–max) of the per-call ` +
      `means of ${entries / ALARM_PLAN.batch} batches of ${count(ALARM_PLAN.batch)} in one process (a sample each, ` +
      `later batches on a fuller table); each set() is its own SQLite transaction. Loading: ` +
      `${ALARM_PLAN.loadSamples} fresh processes on that file.`,
  );
  for (const { key, objects, persist } of ALARM_PLAN.fire) {
    const what = `${count(objects)} objects${persist ? ", persisted" : ""}`;
    if (fire[key].error) failed(what, fire[key].error);
    else if (persist) {
      const fds = median(fire[key].samples.map((s) => s.fdsPerObject));
      console.log(`${what}: ${fds} file descriptors held per loaded object.`);
    }
  }
  if (index.error) failed("index in memory", index.error);
  if (fill.error) failed("persisted index fill", fill.error);
  else if (load.error) failed("persisted index load", load.error);
  return rows;
}

const raw = { date, node: process.version, notes };
if (want("rpc")) Object.assign(raw, await measureRpc());
if (want("storage")) Object.assign(raw, await measureStorage());
if (want("alarms")) raw.alarms = await measureAlarms();
if (want("rpc")) raw.rows = printRpc(raw);
if (want("storage")) {
  if (want("rpc")) console.log();
  raw.storageRows = printStorage(raw);
}
if (want("alarms")) {
  if (withMiniflare) console.log();
  raw.alarmRows = printAlarms(raw.alarms);
}
if (notes.length) console.log();
for (const note of notes) console.log(note);
console.log(`Total bench time ${format((performance.now() - started) / 1000, "s")}.`);

const resultDir = path.join(benchDir, "results");
mkdirSync(resultDir, { recursive: true });
const resultFile = path.join(resultDir, `${date.replace(/[:.]/g, "-")}.json`);
writeFileSync(resultFile, JSON.stringify(raw, null, 2));
console.log(`Raw samples: ${path.relative(rootDir, resultFile)}`);
