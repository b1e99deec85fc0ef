// The cost of durable-node/vitest's isolated storage: one test's save (before it) and restore
// (after it) of every object's storage, for a few sizes of state. `node bench/isolation.mjs`
// (after `npm run build`); the target is under 1 ms per test for small state.

import { createRuntime, DurableObject } from "../dist/index.js";
import { internals } from "../dist/runtime.js";
import { summarize, format } from "./lib/table.mjs";

class Notes extends DurableObject {
  fill(rows) {
    this.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)");
    for (let i = 0; i < rows; i++) this.ctx.storage.sql.exec("INSERT INTO notes (body) VALUES (?)", `note ${i}`);
    this.ctx.storage.kv.put("count", rows);
  }
  count() {
    return this.ctx.storage.sql.exec("SELECT count(*) AS n FROM notes").one().n;
  }
}

const ROUNDS = 200;

async function measure(objects, rows) {
  const runtime = createRuntime({ durableObjects: { NOTES: Notes } });
  const inner = internals(runtime);
  for (let i = 0; i < objects; i++) await runtime.env.NOTES.getByName(`o${i}`).fill(rows);
  const samples = [];
  for (let round = 0; round < ROUNDS; round++) {
    const saveStart = performance.now();
    const snapshot = inner.snapshotStorage();
    const saved = performance.now() - saveStart;
    // What a test does in between (not timed): one write that the restore must undo.
    await runtime.env.NOTES.getByName("o0").fill(1);
    const restoreStart = performance.now();
    inner.restoreStorage(snapshot);
    samples.push(saved + performance.now() - restoreStart);
  }
  // The state is back as it was: the last restore undid the write.
  if ((await runtime.env.NOTES.getByName("o0").count()) !== rows) throw new Error("restore did not undo the write");
  await runtime.dispose();
  return summarize(samples);
}

console.log("| objects × rows | save + restore per test (median, min–max) |");
console.log("| --- | --- |");
for (const [objects, rows] of [
  [1, 10],
  [10, 10],
  [100, 10],
  [10, 1_000],
]) {
  const stat = await measure(objects, rows);
  console.log(`| ${objects} × ${rows} | ${format(stat.median, "ms")} (${format(stat.min, "").trim()}–${format(stat.max, "ms")}) |`);
}
