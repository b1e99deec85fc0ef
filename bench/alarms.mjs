// Child process for the alarm table, fresh for every sample. Two kinds of work:
//   fire  — a runtime with `objects` objects of workers/alarmed.mjs, each given an alarm for the same time T; prints
//           the setup time and, measured from T, when the first and the last alarm() handler ran.
//   index — the core's alarm index (native.Alarms) on its own, without objects: files `entries` future alarms and
//           prints the RSS it grew by and the cost of set / next / takeDue; or, persisted, fills runtime.sqlite
//           (`fill`) or loads it at start (`load`).
// Usage: node --expose-gc alarms.mjs fire|index '<plan as JSON>' (run.mjs passes the plan).
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { report } from "./lib/protocol.mjs";

const [kind, planJson] = process.argv.slice(2);
const plan = JSON.parse(planJson);
// Read at start: once a process is out of file descriptors it cannot open /proc/self/limits either.
const fdLimit = fileDescriptors().limit;

/** Wall-clock milliseconds with performance.now()'s resolution, comparable with the Date.now() alarms are set by. */
const wallNow = () => performance.timeOrigin + performance.now();

/** RSS, the JS heap (committed and used) and memory outside it that V8 knows of, after full collections, in bytes. */
async function settledMemory() {
  if (typeof globalThis.gc !== "function") throw new Error("run with node --expose-gc");
  // Array buffers are freed by a sweeper after the collection that found them dead: give it time, then collect again.
  globalThis.gc();
  await new Promise((resolve) => setTimeout(resolve, 100));
  for (let i = 0; i < 2; i++) globalThis.gc();
  const { rss, heapTotal, heapUsed, external } = process.memoryUsage();
  return { rss, heapTotal, heapUsed, external };
}

/**
 * How much each measure grew from `before` to `after`; `nativeBytes` is the RSS growth less the JS heap's own change
 * (V8 may give back or take pages of its heap while the core's memory is being measured).
 */
function growth(before, after) {
  const delta = Object.fromEntries(Object.keys(before).map((key) => [`${key}Bytes`, after[key] - before[key]]));
  return { ...delta, nativeBytes: delta.rssBytes - delta.heapTotalBytes };
}

/** Open file descriptors of this process and its limit on them (Linux), or why they could not be counted. */
function fileDescriptors() {
  try {
    const open = readdirSync("/proc/self/fd").length;
    const limit = Number(/^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"))?.[1]);
    return { open, limit };
  } catch (error) {
    return { why: error.code };
  }
}

/** Runs `call(stub)` on objects o0…o<objects-1>, `chunk` at a time; rethrows the first failure with where it was. */
async function onObjects(runtime, objects, chunk, what, call) {
  for (let start = 0; start < objects; start += chunk) {
    const calls = [];
    for (let i = start; i < Math.min(objects, start + chunk); i++) calls.push(call(runtime.env.ALARMED.getByName(`o${i}`)));
    try {
      await Promise.all(calls);
    } catch (error) {
      // Each persisted object keeps its database open (with its WAL and shared-memory files) while loaded.
      const { open, limit, why } = fileDescriptors();
      const fds =
        why === "EMFILE"
          ? `; no file descriptor left (limit ${fdLimit})`
          : open !== undefined
            ? `; ${open} of ${limit} file descriptors open`
            : "";
      throw new Error(`${error.message.split("\n")[0]} (${what} objects ${start}–${start + calls.length - 1}${fds})`);
    }
  }
}

async function fire({ objects, leadMs, chunk, persist, timeoutMs }) {
  const { createRuntime } = await import("../dist/index.js");
  const { loadWorker } = await import("./sides/durable-node.mjs");
  const { Alarmed } = await loadWorker(new URL("./workers/alarmed.mjs", import.meta.url));

  let due = Infinity;
  let timerAt;
  let count = 0;
  let firstAt;
  let lastAt;
  let allRan;
  const done = new Promise((resolve) => (allRan = resolve));
  const HITS = {
    hit() {
      const now = wallNow();
      firstAt ??= now;
      if (++count === objects) {
        lastAt = now;
        allRan();
      }
    },
  };
  // The system clock (as lib/clock.ts has it), noting when the first timer fires at or after the due time: the
  // scheduler's one timer, whose lateness is then told apart from the handlers' own time.
  const clock = {
    now: () => Date.now(),
    setTimeout(fn, ms) {
      const timer = setTimeout(() => {
        if (Date.now() >= due) timerAt ??= wallNow();
        fn();
      }, ms);
      timer.unref();
      return timer;
    },
    clearTimeout: (timer) => clearTimeout(timer),
  };
  const runtime = createRuntime({
    durableObjects: { ALARMED: Alarmed },
    bindings: { HITS },
    persist: persist ?? undefined,
    clock,
  });
  try {
    const fdsBefore = fileDescriptors().open;
    // Setup, in two steps: every object is loaded (its database opened or created), then each is given its alarm.
    // Every object gets the very same T, so T is fixed before the second step: leadMs after the step's estimated end.
    // The estimate comes from arming the first chunk once beforehand (for a day ahead; T overwrites it), times 1.5.
    const setupStart = wallNow();
    await onObjects(runtime, objects, chunk, "loading", (stub) => stub.load());
    const loadedAt = wallNow();
    const sample = Math.min(chunk, objects);
    await onObjects(runtime, sample, chunk, "arming", (stub) => stub.arm(Date.now() + 86_400_000));
    const armEstimateMs = ((wallNow() - loadedAt) / sample) * objects;
    const armStart = wallNow();
    due = Math.round(Date.now() + 1.5 * armEstimateMs + leadMs);
    let wrong = 0;
    await onObjects(runtime, objects, chunk, "arming", async (stub) => (wrong += (await stub.arm(due)) ? 0 : 1));
    const setupEnd = wallNow();
    if (wrong > 0) throw new Error(`${wrong} objects did not read their alarm back after setAlarm(T)`);
    if (count > 0) throw new Error(`${count} handlers ran during setup`);
    if (setupEnd >= due) throw new Error(`setup ran ${Math.round(setupEnd - due)} ms past the due time`);
    const fdsPerObject = (fileDescriptors().open - fdsBefore) / objects;
    let timer;
    const timedOut = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`only ${count} of ${objects} handlers ran within ${timeoutMs} ms of the due time`)),
        due - wallNow() + timeoutMs,
      );
    });
    await Promise.race([done, timedOut]);
    clearTimeout(timer);
    return {
      loadMs: loadedAt - setupStart,
      armMs: setupEnd - armStart,
      setupMs: setupEnd - setupStart - (armStart - loadedAt),
      slackMs: due - setupEnd,
      timerMs: timerAt - due,
      firstMs: firstAt - due,
      lastMs: lastAt - due,
      fdsPerObject,
    };
  } finally {
    // A persisted runtime is left to the process's exit: disposing closes (and checkpoints) every object's database,
    // seconds of fsyncs here that time nothing; run.mjs removes the folder after.
    if (!persist) await runtime.dispose();
  }
}

/** `count` random 64-hex-digit ids: real ids are hashes, so they land all over the index. */
function randomIds(count) {
  const ids = new Array(count);
  const chunk = 10_000;
  for (let start = 0; start < count; start += chunk) {
    const bytes = randomBytes(32 * chunk);
    for (let i = start; i < Math.min(count, start + chunk); i++) ids[i] = bytes.toString("hex", 32 * (i - start), 32 * (i - start + 1));
  }
  return ids;
}

const DAY_MS = 86_400_000;

/**
 * Files every id for its time, timing each batch of `batch` sets; returns the ms of each batch. Ids and times are
 * made before (and outlive) the RSS baseline, so the loop allocates nothing that stays in the JS heap.
 */
function fill(idx, ns, ids, times, batch) {
  const batchMs = [];
  for (let start = 0; start < ids.length; start += batch) {
    const end = Math.min(ids.length, start + batch);
    const t0 = performance.now();
    for (let i = start; i < end; i++) idx.set(ns, ids[i], times[i]);
    batchMs.push(performance.now() - t0);
  }
  return batchMs;
}

async function index({ entries, batch, persist, mode, nextCalls, takeBatches }) {
  const { native } = await import("../dist/native.js");
  // Loaded and exercised once before the baseline, so the baseline holds the module's code and a first index.
  new native.Alarms(null).close();

  if (mode === "load") {
    const before = await settledMemory();
    const t0 = performance.now();
    const idx = new native.Alarms(persist);
    const loadMs = performance.now() - t0;
    const after = await settledMemory();
    const size = idx.size;
    if (size !== entries) throw new Error(`loaded ${size} alarms, expected ${entries}`);
    if (!(idx.next() > Date.now())) throw new Error(`next() = ${idx.next()}, expected a future time`);
    idx.close();
    // The high-water mark: loading reads every row into memory before filing it.
    const peakBytes = process.resourceUsage().maxRSS * 1024 - before.rss;
    return { loadMs, ...growth(before, after), peakBytes };
  }

  // Alarms spread over the 30 days after tomorrow, so none comes due and they land all over the time order too.
  const ids = randomIds(entries);
  const base = Date.now() + DAY_MS;
  const times = new Float64Array(entries);
  for (let i = 0; i < entries; i++) times[i] = base + Math.floor(Math.random() * 30 * DAY_MS);
  const before = await settledMemory();
  const idx = new native.Alarms(persist ?? null);
  const ns = idx.namespace("C");
  const batchMs = fill(idx, ns, ids, times, batch);
  const after = await settledMemory();
  // (ids and times are read here so that they stay alive, in the baseline, until after the measurement; idx is
  // used after it, as the index is freed with it.)
  if (idx.size !== ids.length || times.length !== ids.length) throw new Error(`the index holds ${idx.size} alarms`);
  const fillMs = batchMs.reduce((a, b) => a + b, 0);
  const result = {
    setUs: (fillMs * 1000) / entries,
    batchSetUs: batchMs.map((ms, i) => (ms * 1000) / (Math.min(entries, (i + 1) * batch) - i * batch)),
    fillMs,
    ...growth(before, after),
  };
  if (persist) {
    idx.close();
    const size = (name) => {
      try {
        return statSync(path.join(persist, name)).size;
      } catch {
        return 0;
      }
    };
    return { ...result, fileBytes: size("runtime.sqlite") + size("runtime.sqlite-wal") };
  }

  // next(): what arm() asks after every settle; the earliest of 1M entries.
  let t0 = performance.now();
  let next = 0;
  for (let i = 0; i < nextCalls; i++) next = idx.next();
  result.nextUs = ((performance.now() - t0) * 1000) / nextCalls;
  if (!(next > Date.now())) throw new Error(`next() = ${next}, expected a future time`);
  // takeDue(now, 1000) with nothing due, as a timer that fired early asks.
  t0 = performance.now();
  for (let i = 0; i < nextCalls; i++) idx.takeDue(Date.now(), 1000);
  result.takeNoneUs = ((performance.now() - t0) * 1000) / nextCalls;
  // takeDue(now, 1000) of full batches, as the scheduler's timer takes them: per entry taken (hex ids, JS objects).
  let taken = 0;
  t0 = performance.now();
  for (let i = 0; i < takeBatches; i++) taken += idx.takeDue(Number.MAX_SAFE_INTEGER, 1000).length;
  result.takeUs = ((performance.now() - t0) * 1000) / taken;
  if (taken !== takeBatches * 1000) throw new Error(`takeDue took ${taken} entries, expected ${takeBatches * 1000}`);
  idx.close();
  return result;
}

try {
  if (kind === "fire") report(await fire(plan));
  else if (kind === "index") report(await index(plan));
  else throw new Error(`unknown kind ${kind}`);
} catch (error) {
  report(error);
} finally {
  // An undisposed persisted runtime's databases would be closed one by one (checkpoints, fsyncs) as the process
  // tears down; the result is out, so it leaves at once (pipes to run.mjs are written synchronously on Linux).
  if (kind === "fire" && plan.persist) process.exit();
}
