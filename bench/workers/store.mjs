// The Store Durable Object both sides run for the storage scenarios: each method does one whole workload inside
// one event and times it itself, with performance.now() around the loop, so the caller's bridge (Node ↔ workerd
// on Miniflare) is not in the numbers. Keys and values are made before the clock starts, on both sides alike.
import { DurableObject } from "cloudflare:workers";

/** Key i and value i: the same bytes the raw SQLite floor uses (bench/floor/sqlite.rs). */
const key = (i) => `key:${String(i).padStart(8, "0")}`;
/** 16 characters, which V8 serializes to 20 bytes: the size of the floor's values. */
const value = (i) => `value-${String(i).padStart(10, "0")}`;

function pairs(n) {
  const keys = new Array(n);
  const values = new Array(n);
  for (let i = 0; i < n; i++) {
    keys[i] = key(i);
    values[i] = value(i);
  }
  return { keys, values };
}

const usPer = (ms, n) => (ms * 1000) / n;

export class Store extends DurableObject {
  /**
   * `n` awaited put(k, v), then `n` awaited get(k) of the same keys; µs per op of each loop. Every value read back
   * is checked, so a side that skipped the work would fail rather than look fast.
   */
  async kvPutGet(n) {
    const storage = this.ctx.storage;
    const { keys, values } = pairs(n);
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await storage.put(keys[i], values[i]);
    const t1 = performance.now();
    let wrong = 0;
    for (let i = 0; i < n; i++) if ((await storage.get(keys[i])) !== values[i]) wrong++;
    const t2 = performance.now();
    if (wrong) throw new Error(`get() returned ${wrong} wrong values of ${n}`);
    return { putUs: usPer(t1 - t0, n), getUs: usPer(t2 - t1, n) };
  }

  /** `n` single-row INSERTs into a new table t; µs per row. */
  sqlInsert(n) {
    const sql = this.ctx.storage.sql;
    sql.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    const t0 = performance.now();
    for (let i = 0; i < n; i++) sql.exec("INSERT INTO t VALUES (?, ?)", i, "x");
    const t1 = performance.now();
    const rows = sql.exec("SELECT count(*) AS n FROM t").one().n;
    if (rows !== n) throw new Error(`t holds ${rows} rows after ${n} inserts`);
    return { insertUs: usPer(t1 - t0, n) };
  }

  /** `selects` point SELECTs by primary key on the `rows` rows sqlInsert() left, in a later event; µs per call. */
  sqlSelect(selects, rows) {
    const sql = this.ctx.storage.sql;
    let found = 0;
    const t0 = performance.now();
    // A stride through the table (7919 is prime), so the reads are spread over its pages.
    for (let j = 0; j < selects; j++) found += sql.exec("SELECT v FROM t WHERE id = ?", (j * 7919) % rows).one().v.length;
    const t1 = performance.now();
    if (found !== selects) throw new Error(`point selects read ${found} characters, expected ${selects}`);
    return { selectUs: usPer(t1 - t0, selects) };
  }

  /** Fills a new object with exactly `n` keys, in one put(), committed before the reply. */
  async fill(n) {
    const { keys, values } = pairs(n);
    const entries = {};
    for (let i = 0; i < n; i++) entries[keys[i]] = values[i];
    await this.ctx.storage.put(entries);
  }

  /** list() of the whole object (`n` keys), `repeats` times in one event; ms per list. */
  async listAll(repeats, n) {
    const storage = this.ctx.storage;
    let listed = 0;
    const t0 = performance.now();
    for (let r = 0; r < repeats; r++) listed += (await storage.list()).size;
    const t1 = performance.now();
    if (listed !== repeats * n) throw new Error(`list() returned ${listed / repeats} keys on average, expected ${n}`);
    return { listMs: (t1 - t0) / repeats };
  }
}

export default {
  fetch() {
    return new Response("ok");
  },
};
