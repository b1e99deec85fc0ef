// ctx.storage.sql: the SQL API (spec §6, lines 102–163), the SQL rows of the limits table (§12), the
// storage and cursor shape checks of §1 (4–6) and §14 items 2–5. Statements run inside the object;
// values are returned and asserted outside it, errors compared as "<class>: <message>" strings.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { createRuntime, type DurableObjectNamespace, type Runtime } from "../lib/index.js";
import type { DurableObjectState } from "../lib/state.js";
import { KvOnly, SqlProbe } from "./fixtures/sql-objects.js";

// `ctx.storage` is typed `unknown` until the storage layer lands; these mirror spec §1 (workers-types),
// declared here because @cloudflare/workers-types clashes with Node's globals.
type SqlStorageValue = ArrayBuffer | string | number | null;
type Row = Record<string, SqlStorageValue>;
interface RawIterator<U> extends IterableIterator<U> {
  toArray(): U[];
}
interface SqlStorageCursor<T extends Row = Row> {
  next(): { done?: false; value: T } | { done: true; value?: never };
  toArray(): T[];
  one(): T;
  raw<U extends SqlStorageValue[] = SqlStorageValue[]>(): RawIterator<U>;
  readonly columnNames: string[];
  readonly rowsRead: number;
  readonly rowsWritten: number;
  [Symbol.iterator](): IterableIterator<T>;
}
interface SqlStorage {
  exec<T extends Row = Row>(query: string, ...bindings: unknown[]): SqlStorageCursor<T>;
  readonly databaseSize: number;
}
interface DurableObjectStorage {
  readonly sql: SqlStorage;
  put(key: string, value: unknown): Promise<void>;
  deleteAll(): Promise<void>;
  setAlarm(scheduledTime: number): Promise<void>;
}

const NOT_SQLITE_BACKED =
  "Error: This Durable Object is not backed by SQLite storage, so the SQL API is not available. SQL can be enabled on a new Durable Object class by using the `new_sqlite_classes` instead of `new_classes` under `[[migrations]]` in your wrangler.toml, but an already-deployed class cannot be converted to SQLite (except by deleting the existing data).";
const USE_TRANSACTION_API =
  "Error: To execute a transaction, please use the state.storage.transaction() or state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT statements. The JavaScript API is safer because it will automatically roll back on exceptions, and because it interacts correctly with Durable Objects' automatic atomic write coalescing.";
const NOT_AUTHORIZED = "Error: not authorized: SQLITE_AUTH";
const NO_STATEMENT = "Error: SQL code did not contain a statement.";
const WRONG_BINDINGS = "Error: Wrong number of parameter bindings for SQL query.";
const ONLY_LAST_HAS_PARAMETERS =
  "Error: When executing multiple SQL statements in a single call, only the last statement can have parameters.";
const MISMATCH = "Error: datatype mismatch: SQLITE_MISMATCH";
const TOO_BIG = "Error: string or blob too big: SQLITE_TOOBIG";
const PAGE = 4096;

let current: Runtime | undefined;
const dirs: string[] = [];
let objects = 0;

function runtime(persist?: string): Runtime {
  current ??= createRuntime({
    durableObjects: { SQL: SqlProbe, KVONLY: { class: KvOnly, sqlite: false } },
    persist,
  });
  return current;
}

afterEach(async () => {
  await current?.dispose();
  current = undefined;
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function freshName(): string {
  return `sql-${++objects}`;
}

/** Runs `fn` as one event of the object `name` (a new one by default) of `binding`. */
function inObject<T>(
  fn: (ctx: DurableObjectState) => T | Promise<T>,
  name = freshName(),
  binding = "SQL",
): Promise<T> {
  const rt = runtime();
  const ns = rt.env[binding] as DurableObjectNamespace;
  return rt.runInDurableObject(ns.getByName(name), (_instance, ctx) => fn(ctx));
}

function storageOf(ctx: DurableObjectState): DurableObjectStorage {
  return ctx.storage as unknown as DurableObjectStorage;
}

/** Runs `fn` with the object's `ctx.storage.sql`, as one event of the object `name` (a new one by default). */
function withSql<T>(
  fn: (sql: SqlStorage, storage: DurableObjectStorage, ctx: DurableObjectState) => T | Promise<T>,
  name?: string,
): Promise<T> {
  return inObject((ctx) => {
    const storage = storageOf(ctx);
    return fn(storage.sql, storage, ctx);
  }, name);
}

/** What `fn` throws, as "<class>: <message>" (the spec's notation), or "nothing thrown". */
function thrown(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof Error) return `${err.constructor.name}: ${err.message}`;
    return `non-Error thrown: ${String(err)}`;
  }
  return "nothing thrown";
}

/** The bytes of an ArrayBuffer result (BLOBs are ArrayBuffers, not views), or what it is instead. */
function bytes(value: unknown): number[] | string {
  if (value instanceof ArrayBuffer) return [...new Uint8Array(value)];
  return `not an ArrayBuffer: ${Object.prototype.toString.call(value)}`;
}

/** The names on a prototype other than `constructor` (whose place the spec does not give). */
function protoNames(value: object): string[] {
  return Object.getOwnPropertyNames(Object.getPrototypeOf(value)).filter((name) => name !== "constructor");
}

const repeat = (n: number, make: (i: number) => string, sep: string): string =>
  Array.from({ length: n }, (_, i) => make(i)).join(sep);

describe("shape of storage, sql and cursors (spec §1, shape checks 3–6)", () => {
  it("storage prototype methods; sql and kv are lazy own properties (shape check 4)", async () => {
    const shape = await inObject((ctx) => {
      const storage = storageOf(ctx);
      return { methods: protoNames(storage), own: Object.keys(storage).sort() };
    });
    expect(shape.methods).toEqual([
      "get",
      "list",
      "put",
      "delete",
      "deleteAll",
      "transaction",
      "getAlarm",
      "setAlarm",
      "deleteAlarm",
      "sync",
      "transactionSync",
      "getCurrentBookmark",
      "getBookmarkForTime",
      "onNextSessionRestoreBookmark",
    ]);
    expect(shape.own).toEqual(["kv", "sql"]);
  });

  it("ctx.storage.sql is memoised (shape check 3)", async () => {
    expect(await inObject((ctx) => storageOf(ctx).sql === storageOf(ctx).sql)).toBe(true);
  });

  it("cursor prototype: next, toArray, one, raw, columnNames, rowsRead, rowsWritten, Symbol.iterator (shape check 5)", async () => {
    const shape = await withSql((sql) => {
      const cursor = sql.exec("SELECT 1");
      const proto = Object.getPrototypeOf(cursor) as Record<PropertyKey, unknown>;
      return { names: protoNames(cursor), iterator: typeof proto[Symbol.iterator] };
    });
    expect(shape.names).toEqual(["next", "toArray", "one", "raw", "columnNames", "rowsRead", "rowsWritten"]);
    expect(shape.iterator).toBe("function");
  });

  it("sql.prepare and sql.ingest are undefined without the experimental flag (shape check 6)", async () => {
    const types = await withSql((sql) => {
      const loose = sql as unknown as Record<string, unknown>;
      return [typeof loose.prepare, typeof loose.ingest];
    });
    expect(types).toEqual(["undefined", "undefined"]);
  });
});

describe("enablement (spec 102–103)", () => {
  // We chose production's message (line 102); workerd's localDisk with enableSql=false says line 103's.
  it("a class with sqlite: false has no SQL API, with production's message (spec 102)", async () => {
    const error = await inObject((ctx) => thrown(() => storageOf(ctx).sql), freshName(), "KVONLY");
    expect(error).toBe(NOT_SQLITE_BACKED);
  });
});

describe("type mapping: results (spec 104–109)", () => {
  it("a result column is named after its expression text (spec 104)", async () => {
    const rows = await withSql((sql) => [sql.exec("SELECT 123").toArray(), sql.exec("SELECT 1+1, upper('a')").toArray()]);
    expect(rows).toEqual([[{ "123": 123 }], [{ "1+1": 2, "upper('a')": "A" }]]);
  });

  it("INTEGER is a number, never a BigInt, rounded past 2^53 (spec 105)", async () => {
    const row = await withSql((sql) => sql.exec("SELECT 9007199254740993 AS a, 9223372036854775807 AS b, 42 AS c").one());
    expect(row).toEqual({ a: 2 ** 53, b: 2 ** 63, c: 42 });
    expect(Object.values(row).map((v) => typeof v)).toEqual(["number", "number", "number"]);
  });

  it("REAL is a number: SELECT 1.0 gives 1 of SQLite type real (spec 106)", async () => {
    const rows = await withSql((sql) => sql.exec("SELECT 1.0 AS v, typeof(1.0) AS t, 2.5 AS h").toArray());
    expect(rows).toEqual([{ v: 1, t: "real", h: 2.5 }]);
  });

  it("TEXT is a string and NULL is null (spec 107)", async () => {
    const rows = await withSql((sql) => sql.exec("SELECT 'héllo 😀' AS s, '' AS e, NULL AS n").toArray());
    expect(rows).toEqual([{ s: "héllo 😀", e: "", n: null }]);
  });

  it("BLOB results are ArrayBuffer, not Uint8Array, empty included (spec 108)", async () => {
    const row = await withSql((sql) => sql.exec("SELECT x'ff' AS a, x'' AS b, zeroblob(3) AS c").one());
    expect(bytes(row.a)).toEqual([255]);
    expect(bytes(row.b)).toEqual([]);
    expect(bytes(row.c)).toEqual([0, 0, 0]);
    expect(ArrayBuffer.isView(row.a)).toBe(false);
  });

  it("duplicate column names: the object keeps the last value, raw() and columnNames keep all (spec 109)", async () => {
    const seen = await withSql((sql) => {
      const q = "SELECT 1 AS a, 2 AS a";
      return { rows: sql.exec(q).toArray(), raw: [...sql.exec(q).raw()], names: sql.exec(q).columnNames };
    });
    expect(seen).toEqual({ rows: [{ a: 2 }], raw: [[1, 2]], names: ["a", "a"] });
  });
});

describe("type mapping: bindings (spec 110–120)", () => {
  it("a JS number is always bound as REAL (spec 110)", async () => {
    const rows = await withSql((sql) => sql.exec("SELECT typeof(?) AS t, ? AS v", 1, 1).toArray());
    expect(rows).toEqual([{ t: "real", v: 1 }]);
  });

  it("binding 5 stores integer, real, text '5.0', real, real by column affinity (spec 111)", async () => {
    const row = await withSql((sql) => {
      sql.exec("CREATE TABLE t(i INTEGER, r REAL, t TEXT, b BLOB, n)");
      sql.exec("INSERT INTO t VALUES (?, ?, ?, ?, ?)", 5, 5, 5, 5, 5);
      return sql.exec("SELECT typeof(i) ti, typeof(r) tr, typeof(t) tt, typeof(b) tb, typeof(n) tn, t FROM t").one();
    });
    expect(row).toEqual({ ti: "integer", tr: "real", tt: "text", tb: "real", tn: "real", t: "5.0" });
  });

  it("1.5 or 'yeah' into INTEGER PRIMARY KEY is a datatype mismatch; 2 is accepted (spec 112)", async () => {
    const seen = await withSql((sql) => {
      sql.exec("CREATE TABLE p(id INTEGER PRIMARY KEY, v TEXT)");
      return {
        real: thrown(() => sql.exec("INSERT INTO p VALUES (?, 'x')", 1.5)),
        text: thrown(() => sql.exec("INSERT INTO p(rowid, v) VALUES ('yeah', 'nah')")),
        integral: thrown(() => sql.exec("INSERT INTO p VALUES (?, 'x')", 2)),
        rows: sql.exec("SELECT id, typeof(id) AS t FROM p").toArray(),
      };
    });
    expect(seen).toEqual({ real: MISMATCH, text: MISMATCH, integral: "nothing thrown", rows: [{ id: 2, t: "integer" }] });
  });

  it("LIMIT ? with 2 works, 2.0 being losslessly integral (spec 113)", async () => {
    const rows = await withSql((sql) => sql.exec("SELECT column1 AS v FROM (VALUES (1), (2), (3)) LIMIT ?", 2).toArray());
    expect(rows).toEqual([{ v: 1 }, { v: 2 }]);
  });

  it("booleans, objects, arrays and Dates are bound as their string forms (spec 114)", async () => {
    const date = new Date(0);
    const row = await withSql((sql) =>
      sql
        .exec(
          "SELECT typeof(?) AS tt, ? AS t, ? AS f, ? AS o, ? AS a, typeof(?) AS td, ? AS d",
          ...[true, true, false, {}, [1, 2], date, date],
        )
        .one(),
    );
    expect(row).toEqual({ tt: "text", t: "true", f: "false", o: "[object Object]", a: "1,2", td: "text", d: String(date) });
  });

  it("undefined, null and NaN bind as NULL; ±Infinity and -0 keep their value (spec 115)", async () => {
    const row = await withSql((sql) =>
      sql
        .exec(
          "SELECT ? AS u, ? AS n, ? AS nan, ? AS inf, ? AS ninf, ? AS nz, typeof(?) AS t",
          ...[undefined, null, NaN, Infinity, -Infinity, -0, Infinity],
        )
        .one(),
    );
    expect(row).toEqual({ u: null, n: null, nan: null, inf: Infinity, ninf: -Infinity, nz: -0, t: "real" });
    expect(Object.is(row.nz, -0)).toBe(true);
  });

  it("ArrayBuffer and every ArrayBufferView bind as BLOB, views only their window (spec 116)", async () => {
    const row = await withSql((sql) => {
      const u8 = new Uint8Array([1, 2, 3, 4, 5]);
      return sql
        .exec(
          "SELECT ? AS buffer, ? AS u8, ? AS sub, ? AS view, ? AS u16, typeof(?) AS t",
          u8.buffer,
          u8,
          u8.subarray(1, 3),
          new DataView(u8.buffer, 3, 2),
          new Uint16Array([0x0102]),
          u8.subarray(4),
        )
        .one();
    });
    expect(bytes(row.buffer)).toEqual([1, 2, 3, 4, 5]);
    expect(bytes(row.u8)).toEqual([1, 2, 3, 4, 5]);
    expect(bytes(row.sub)).toEqual([2, 3]);
    expect(bytes(row.view)).toEqual([4, 5]);
    // Native byte order: this runs on little-endian machines only (x86-64, arm64).
    expect(bytes(row.u16)).toEqual([0x02, 0x01]);
    expect(row.t).toBe("blob");
  });

  it("a resizable ArrayBuffer is copied at bind time: shrinking it after exec() changes nothing (spec 116)", async () => {
    type Resizable = ArrayBuffer & { resize(length: number): void };
    const ResizableBuffer = ArrayBuffer as unknown as new (length: number, options: { maxByteLength: number }) => Resizable;
    const seen = await withSql((sql) => {
      const whole = new ResizableBuffer(64, { maxByteLength: 256 });
      new Uint8Array(whole).forEach((_, i, view) => (view[i] = i));
      const wholeCursor = sql.exec("SELECT ? AS x", whole);
      whole.resize(0);
      const windowed = new ResizableBuffer(64, { maxByteLength: 256 });
      new Uint8Array(windowed).forEach((_, i, view) => (view[i] = 100 + i));
      const windowCursor = sql.exec("SELECT ? AS x", new Uint8Array(windowed, 16, 4));
      windowed.resize(0);
      return { whole: bytes(wholeCursor.one().x), window: bytes(windowCursor.one().x) };
    });
    expect(seen.whole).toEqual(Array.from({ length: 64 }, (_, i) => i));
    expect(seen.window).toEqual([116, 117, 118, 119]);
  });

  it("BigInt and Symbol bindings throw TypeErrors (spec 117)", async () => {
    const errors = await withSql((sql) => [thrown(() => sql.exec("SELECT ?", 10n)), thrown(() => sql.exec("SELECT ?", Symbol()))]);
    expect(errors).toEqual([
      "TypeError: Cannot convert a BigInt value to a number",
      "TypeError: Cannot convert a Symbol value to a string",
    ]);
  });

  it("too few or too many bindings: Wrong number of parameter bindings (spec 118)", async () => {
    const errors = await withSql((sql) => [
      thrown(() => sql.exec("SELECT ?")),
      thrown(() => sql.exec("SELECT ?", 1, 2)),
      thrown(() => sql.exec("SELECT 1", 1)),
    ]);
    expect(errors).toEqual([WRONG_BINDINGS, WRONG_BINDINGS, WRONG_BINDINGS]);
  });

  it("?1 used twice takes one binding; named parameters are positional in order of first appearance (spec 119)", async () => {
    const seen = await withSql((sql) => ({
      numbered: sql.exec("SELECT ?1 AS a, ?1 AS b", 7).toArray(),
      numberedTwoArgs: thrown(() => sql.exec("SELECT ?1 AS a, ?1 AS b", 7, 8)),
      named: sql.exec("SELECT :a AS a, :b AS b, :a AS c", 1, 2).toArray(),
    }));
    expect(seen).toEqual({
      numbered: [{ a: 7, b: 7 }],
      numberedTwoArgs: WRONG_BINDINGS,
      named: [{ a: 1, b: 2, c: 1 }],
    });
  });

  it("?101 and 101 `?` are SQLite errors; 100 parameters work (spec 120)", async () => {
    const seen = await withSql((sql) => ({
      numbered101: thrown(() => sql.exec("SELECT ?101", 1)),
      many101: thrown(() => sql.exec(`SELECT ${repeat(101, () => "?", ",")}`, ...Array<number>(101).fill(1))),
      many100: sql.exec(`SELECT ${repeat(100, () => "?", ",")}`, ...Array<number>(100).fill(1)).raw().toArray()[0]!.length,
      numbered100: sql.exec("SELECT ?100 AS v", ...Array.from({ length: 100 }, (_, i) => i + 1)).toArray(),
    }));
    expect(seen).toEqual({
      numbered101: "Error: variable number must be between ?1 and ?100 at offset 7: SQLITE_ERROR",
      many101: "Error: too many SQL variables at offset 207: SQLITE_ERROR",
      many100: 100,
      numbered100: [{ v: 100 }],
    });
  });
});

describe("exec semantics (spec 121–132)", () => {
  it("exec() steps to the first row at once: an INSERT whose cursor is never read still inserts (spec 121)", async () => {
    const name = freshName();
    const inTurn = await withSql((sql) => {
      sql.exec("CREATE TABLE t(x)");
      sql.exec("INSERT INTO t VALUES (1)");
      return sql.exec("SELECT count(*) AS c FROM t").toArray();
    }, name);
    expect(inTurn).toEqual([{ c: 1 }]);
    expect(await withSql((sql) => sql.exec("SELECT x FROM t").toArray(), name)).toEqual([{ x: 1 }]);
  });

  it("statements separated by ; run in order and the cursor is the last one's (spec 122)", async () => {
    const rows = await withSql((sql) =>
      sql.exec("CREATE TABLE m(x); INSERT INTO m VALUES (1); SELECT count(*) AS c FROM m").toArray(),
    );
    expect(rows).toEqual([{ c: 1 }]);
  });

  it("only the last of several statements may have parameters (spec 123)", async () => {
    const seen = await withSql((sql) => ({
      first: thrown(() => sql.exec("SELECT ?; SELECT 1", 1)),
      middle: thrown(() => sql.exec("CREATE TABLE q(x); INSERT INTO q VALUES (?); SELECT 1", 1)),
      // The CREATE before the statement with a parameter has run (spec 124).
      created: sql.exec("SELECT name FROM sqlite_master WHERE name = 'q'").toArray(),
      last: sql.exec("SELECT 1; SELECT ? AS v", 5).toArray(),
    }));
    expect(seen).toEqual({
      first: ONLY_LAST_HAS_PARAMETERS,
      middle: ONLY_LAST_HAS_PARAMETERS,
      created: [{ name: "q" }],
      last: [{ v: 5 }],
    });
  });

  it("statements before a failing one have run and are not rolled back (spec 124)", async () => {
    const name = freshName();
    const seen = await withSql(
      (sql) => ({
        error: thrown(() => sql.exec("CREATE TABLE partial1(x); SELECT * FROM nope")),
        tables: sql.exec("SELECT name FROM sqlite_master WHERE name = 'partial1'").toArray(),
      }),
      name,
    );
    expect(seen).toEqual({ error: "Error: no such table: nope: SQLITE_ERROR", tables: [{ name: "partial1" }] });
    const later = await withSql((sql) => sql.exec("SELECT name FROM sqlite_master WHERE name = 'partial1'").toArray(), name);
    expect(later).toEqual([{ name: "partial1" }]);
  });

  it("empty, blank, ';' and comment-only SQL: SQL code did not contain a statement (spec 125)", async () => {
    const errors = await withSql((sql) => ["", "   ", ";", "-- hi", "/* c */", " ; ; "].map((q) => thrown(() => sql.exec(q))));
    expect(errors).toEqual(Array(6).fill(NO_STATEMENT));
  });

  it("a trailing comment after the last ; throws after running the statements; trailing whitespace is fine (spec 126)", async () => {
    const seen = await withSql((sql) => {
      sql.exec("CREATE TABLE tc(x)");
      return {
        select: thrown(() => sql.exec("SELECT 1; -- hi")),
        insert: thrown(() => sql.exec("INSERT INTO tc VALUES (1); -- hi")),
        inserted: sql.exec("SELECT count(*) AS c FROM tc").toArray(),
        whitespace: [" ", "\t", "\n", "\r", "\v", "\f", "\r\n"].map((w) => sql.exec(`SELECT 1 AS one;${w}`).toArray()),
        // Observed on workerd 1.20260426: a comment with no ; before it ends the statement quietly.
        noSemicolon: sql.exec("SELECT 1 AS one -- hi").toArray(),
      };
    });
    expect(seen).toEqual({
      select: NO_STATEMENT,
      insert: NO_STATEMENT,
      inserted: [{ c: 1 }],
      whitespace: Array(7).fill([{ one: 1 }]),
      noSemicolon: [{ one: 1 }],
    });
  });

  it("syntax errors name the token and its byte offset (spec 127)", async () => {
    const errors = await withSql((sql) => ["SELEC 1", "SELECT ;", "SELECT -;"].map((q) => thrown(() => sql.exec(q))));
    expect(errors).toEqual([
      'Error: near "SELEC": syntax error at offset 0: SQLITE_ERROR',
      'Error: near ";": syntax error at offset 7: SQLITE_ERROR',
      'Error: near ";": syntax error at offset 8: SQLITE_ERROR',
    ]);
  });

  it("no such table / no such column (spec 128)", async () => {
    const errors = await withSql((sql) => [thrown(() => sql.exec("SELECT * FROM nope")), thrown(() => sql.exec("SELECT nope"))]);
    expect(errors).toEqual([
      "Error: no such table: nope: SQLITE_ERROR",
      "Error: no such column: nope at offset 7: SQLITE_ERROR",
    ]);
  });

  it("constraint failures carry the primary and extended codes (spec 129)", async () => {
    const errors = await withSql((sql) => {
      sql.exec(
        "CREATE TABLE ck(x CHECK (x > 0)); CREATE TABLE uq(x UNIQUE); CREATE TABLE nn(x NOT NULL);" +
          " CREATE TABLE par(id INTEGER PRIMARY KEY); CREATE TABLE chi(p REFERENCES par(id))",
      );
      sql.exec("INSERT INTO uq VALUES (1)");
      return [
        thrown(() => sql.exec("INSERT INTO ck VALUES (0)")),
        thrown(() => sql.exec("INSERT INTO uq VALUES (1)")),
        thrown(() => sql.exec("INSERT INTO nn VALUES (NULL)")),
        thrown(() => sql.exec("INSERT INTO chi VALUES (5)")),
      ];
    });
    expect(errors).toEqual([
      "Error: CHECK constraint failed: x > 0: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_CHECK)",
      "Error: UNIQUE constraint failed: uq.x: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_UNIQUE)",
      "Error: NOT NULL constraint failed: nn.x: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_NOTNULL)",
      "Error: FOREIGN KEY constraint failed: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_FOREIGNKEY)",
    ]);
  });

  it("foreign keys are on by default (spec 130)", async () => {
    const seen = await withSql((sql) => {
      const pragma = sql.exec("PRAGMA foreign_keys").toArray();
      sql.exec("CREATE TABLE par(id INTEGER PRIMARY KEY); CREATE TABLE chi(p REFERENCES par(id))");
      return { pragma, orphan: thrown(() => sql.exec("INSERT INTO chi VALUES (5)")) };
    });
    expect(seen).toEqual({
      pragma: [{ foreign_keys: 1 }],
      orphan: "Error: FOREIGN KEY constraint failed: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_FOREIGNKEY)",
    });
  });

  it("PRAGMA foreign_keys = OFF takes effect only outside a write transaction (spec 131)", async () => {
    const name = freshName();
    // After a write in the same turn the implicit transaction is open, and SQLite ignores the pragma.
    const inWrite = await withSql((sql) => {
      sql.exec("CREATE TABLE w(x)");
      sql.exec("PRAGMA foreign_keys = OFF");
      return sql.exec("PRAGMA foreign_keys").toArray();
    }, name);
    expect(inWrite).toEqual([{ foreign_keys: 1 }]);
    // As in workerd's own test: inside blockConcurrencyWhile, before any write of the event.
    const outside = await withSql(async (sql, _storage, ctx) => {
      await ctx.blockConcurrencyWhile(async () => {
        sql.exec("PRAGMA foreign_keys = OFF");
      });
      const pragma = sql.exec("PRAGMA foreign_keys").toArray();
      sql.exec("CREATE TABLE par(id INTEGER PRIMARY KEY); CREATE TABLE chi(p REFERENCES par(id)); INSERT INTO chi VALUES (5)");
      return { pragma, check: sql.exec("PRAGMA foreign_key_check").toArray() };
    }, name);
    expect(outside).toEqual({
      pragma: [{ foreign_keys: 0 }],
      check: [{ table: "chi", rowid: 1, parent: "par", fkid: 0 }],
    });
  });

  it("FTS5 and fts5vocab work: MATCH, highlight, bm25 (spec 132)", async () => {
    const seen = await withSql((sql) => {
      sql.exec("CREATE VIRTUAL TABLE docs USING fts5(body)");
      sql.exec("INSERT INTO docs(body) VALUES ('hello world'), ('goodbye world')");
      sql.exec("CREATE VIRTUAL TABLE vocab USING fts5vocab(docs, row)");
      return {
        match: sql.exec("SELECT body FROM docs WHERE docs MATCH 'hello'").toArray(),
        highlight: sql
          .exec("SELECT highlight(docs, 0, '[', ']') AS h, bm25(docs) < 0 AS neg FROM docs WHERE docs MATCH 'world' ORDER BY rowid")
          .toArray(),
        vocab: sql.exec("SELECT term, doc FROM vocab ORDER BY term").toArray(),
      };
    });
    expect(seen).toEqual({
      match: [{ body: "hello world" }],
      highlight: [
        { h: "hello [world]", neg: 1 },
        { h: "goodbye [world]", neg: 1 },
      ],
      vocab: [
        { term: "goodbye", doc: 1 },
        { term: "hello", doc: 1 },
        { term: "world", doc: 2 },
      ],
    });
  });

  it("RTREE and rtree_i32 work (spec 132)", async () => {
    const seen = await withSql((sql) => {
      sql.exec("CREATE VIRTUAL TABLE box USING rtree(id, minX, maxX)");
      sql.exec("INSERT INTO box VALUES (1, 0, 10), (2, 20, 30)");
      sql.exec("CREATE VIRTUAL TABLE boxi USING rtree_i32(id, minX, maxX)");
      sql.exec("INSERT INTO boxi VALUES (7, -5, 5)");
      return {
        box: sql.exec("SELECT id FROM box WHERE minX <= 25 AND maxX >= 25").toArray(),
        boxi: sql.exec("SELECT id, minX, maxX FROM boxi WHERE minX <= 0").toArray(),
      };
    });
    expect(seen).toEqual({ box: [{ id: 2 }], boxi: [{ id: 7, minX: -5, maxX: 5 }] });
  });

  it("math functions work (spec 132)", async () => {
    const row = await withSql((sql) =>
      sql.exec("SELECT cos(0) AS c, sqrt(16) AS s, pi() AS p, ln(1) AS l, trunc(2.7) AS t, pow(2, 10) AS w").one(),
    );
    expect(row).toEqual({ c: 1, s: 4, p: Math.PI, l: 0, t: 2, w: 1024 });
  });

  it("JSON functions and the -> / ->> operators work (spec 132)", async () => {
    const row = await withSql((sql) =>
      sql
        .exec(
          `SELECT json_extract('{"a":[1,2]}', '$.a[1]') AS a, '{"a":2}' -> '$.a' AS b, '{"a":"x"}' ->> '$.a' AS c,` +
            ` json_array(1, 'x') AS d, (SELECT group_concat(value) FROM json_each('[10,20]')) AS e`,
        )
        .one(),
    );
    expect(row).toEqual({ a: 2, b: "2", c: "x", d: '[1,"x"]', e: "10,20" });
  });

  it("RETURNING works (spec 132)", async () => {
    const rows = await withSql((sql) => {
      sql.exec("CREATE TABLE r(x)");
      return sql.exec("INSERT INTO r VALUES (1), (2) RETURNING x * 10 AS y").toArray();
    });
    expect(rows).toEqual([{ y: 10 }, { y: 20 }]);
  });

  // Known deviation from spec 132: `DELETE/UPDATE … LIMIT` needs SQLite's parser generated with
  // SQLITE_ENABLE_UPDATE_DELETE_LIMIT, and the amalgamation bundled by libsqlite3-sys was generated
  // without it (the flag in .cargo/config.toml cannot add grammar). These tests pin what happens
  // instead — a clear syntax error, nothing changed — and will fail once the grammar is there.
  it("DELETE … LIMIT is a syntax error here and changes nothing (deviation from spec 132)", async () => {
    const seen = await withSql((sql) => {
      sql.exec("CREATE TABLE r(x); INSERT INTO r VALUES (1), (2), (3)");
      return { error: thrown(() => sql.exec("DELETE FROM r ORDER BY x LIMIT 1")), rows: sql.exec("SELECT x FROM r ORDER BY x").toArray() };
    });
    expect(seen).toEqual({
      error: 'Error: near "ORDER": syntax error at offset 14: SQLITE_ERROR',
      rows: [{ x: 1 }, { x: 2 }, { x: 3 }],
    });
  });

  it("UPDATE … LIMIT is a syntax error here and changes nothing (deviation from spec 132)", async () => {
    const seen = await withSql((sql) => {
      sql.exec("CREATE TABLE r(x); INSERT INTO r VALUES (1), (2), (3)");
      return { error: thrown(() => sql.exec("UPDATE r SET x = 0 LIMIT 1")), rows: sql.exec("SELECT x FROM r ORDER BY x").toArray() };
    });
    expect(seen).toEqual({
      error: 'Error: near "LIMIT": syntax error at offset 19: SQLITE_ERROR',
      rows: [{ x: 1 }, { x: 2 }, { x: 3 }],
    });
  });

});

describe("cursor (spec 133–142)", () => {
  // 141 (toArray() on a result larger than the heap) and 142 (a docs caution) cannot be observed here.
  const THREE = "SELECT 1 AS v UNION ALL SELECT 2 UNION ALL SELECT 3";

  it("next() gives {done: false, value} per row, then {done: true, value: undefined} with the value key (spec 133)", async () => {
    // ⚠ workerd's own test compares loosely with {done: true}; the key is present on workerd [P].
    const seen = await withSql((sql) => {
      const cursor = sql.exec("SELECT 1 AS v UNION ALL SELECT 2");
      const results = [cursor.next(), cursor.next(), cursor.next(), cursor.next()];
      return { results, keys: results.map((r) => Object.keys(r)) };
    });
    expect(seen.results).toStrictEqual([
      { done: false, value: { v: 1 } },
      { done: false, value: { v: 2 } },
      { done: true, value: undefined },
      { done: true, value: undefined },
    ]);
    expect(seen.keys).toEqual(Array(4).fill(["done", "value"]));
  });

  it("toArray() gives the remaining rows and a consumed cursor iterates as [] (spec 134)", async () => {
    const seen = await withSql((sql) => {
      const cursor = sql.exec(THREE);
      const first = cursor.next().value;
      const rest = cursor.toArray();
      const again = cursor.toArray();
      const spread = sql.exec(THREE);
      return { first, rest, again, spreads: [[...spread], [...spread]] };
    });
    expect(seen).toEqual({
      first: { v: 1 },
      rest: [{ v: 2 }, { v: 3 }],
      again: [],
      spreads: [[{ v: 1 }, { v: 2 }, { v: 3 }], []],
    });
  });

  it("one(): exactly one row, else the no-results / multiple-results errors; it consumes the cursor (spec 135)", async () => {
    const seen = await withSql((sql) => {
      sql.exec("CREATE TABLE e(x)");
      const cursor = sql.exec("SELECT 1 AS a, 'x' AS b");
      return {
        one: cursor.one(),
        after: [...cursor],
        none: thrown(() => sql.exec("SELECT * FROM e").one()),
        many: thrown(() => sql.exec("SELECT 1 UNION ALL SELECT 2").one()),
      };
    });
    expect(seen).toEqual({
      one: { a: 1, b: "x" },
      after: [],
      none: "Error: Expected exactly one result from SQL query, but got no results.",
      many: "Error: Expected exactly one result from SQL query, but got multiple results.",
    });
  });

  it("raw() iterates the same cursor as arrays, and has toArray() (spec 136)", async () => {
    const seen = await withSql((sql) => {
      const a = sql.exec(THREE);
      const rawFirst = a.raw().next();
      const objectRest = a.toArray();
      const b = sql.exec(THREE);
      const objectFirst = b.next();
      const rawRest = b.raw().toArray();
      const raw = sql.exec("SELECT 1 AS v, 'w' AS w").raw();
      return { rawFirst, objectRest, objectFirst, rawRest, spread: [...raw], end: raw.next() };
    });
    expect(seen).toEqual({
      rawFirst: { done: false, value: [1] },
      objectRest: [{ v: 2 }, { v: 3 }],
      objectFirst: { done: false, value: { v: 1 } },
      rawRest: [[2], [3]],
      spread: [[1, "w"]],
      end: { done: true, value: undefined },
    });
  });

  it("columnNames before, during and after iteration; [] without result columns (spec 137)", async () => {
    const seen = await withSql((sql) => {
      sql.exec("CREATE TABLE t(a, b)");
      sql.exec("INSERT INTO t VALUES (1, 2), (3, 4)");
      const cursor = sql.exec("SELECT a, b AS bee FROM t");
      const before = cursor.columnNames;
      cursor.next();
      const during = cursor.columnNames;
      cursor.toArray();
      return {
        before,
        during,
        after: cursor.columnNames,
        update: sql.exec("UPDATE t SET a = 5").columnNames,
        insert: sql.exec("INSERT INTO t VALUES (6, 7)").columnNames,
        create: sql.exec("CREATE TABLE z(q)").columnNames,
      };
    });
    expect(seen).toEqual({
      before: ["a", "bee"],
      during: ["a", "bee"],
      after: ["a", "bee"],
      update: [],
      insert: [],
      create: [],
    });
  });

  it("rowsWritten counts inserted rows and rowsRead the rows a SELECT read (spec 138)", async () => {
    const seen = await withSql((sql) => {
      sql.exec("CREATE TABLE t(x)");
      const insert = sql.exec("INSERT INTO t VALUES (1), (2), (3)");
      const select = sql.exec("SELECT x FROM t");
      select.toArray();
      return {
        insert: { rowsRead: insert.rowsRead, rowsWritten: insert.rowsWritten },
        select: { rowsRead: select.rowsRead, rowsWritten: select.rowsWritten },
      };
    });
    expect(seen).toEqual({ insert: { rowsRead: 0, rowsWritten: 3 }, select: { rowsRead: 3, rowsWritten: 0 } });
  });

  it("rowsRead grows while iterating, one row ahead; temp b-trees are not counted as written (spec 138)", async () => {
    // ⚠ workerd counts with its patched SQLite (LIBSQL_STMTSTATUS_ROWS_READ/WRITTEN); these are its values.
    const seen = await withSql((sql) => {
      sql.exec("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3)");
      const cursor = sql.exec("SELECT x FROM t");
      const reads = [cursor.rowsRead];
      for (let r = cursor.next(); ; r = cursor.next()) {
        reads.push(cursor.rowsRead);
        if (r.done) break;
      }
      const withIn = sql.exec("SELECT x FROM t WHERE x IN (1, 2, 5, 6, 7)");
      withIn.toArray();
      return { reads, withIn: { rowsRead: withIn.rowsRead, rowsWritten: withIn.rowsWritten } };
    });
    expect(seen).toEqual({ reads: [1, 2, 3, 3, 3], withIn: { rowsRead: 3, rowsWritten: 0 } });
  });

  // The rowsWritten values below were measured against workerd 1.20260426.1 through Miniflare 4.20260426.0: its
  // patched SQLite counts one per b-tree write (a table row, an index entry), one per row deleted, none for temp
  // b-trees, and the sqlite_master rows of DDL; the cursor of a multi-statement exec() counts its last statement.
  /** rowsWritten of each statement, each run by its own exec(). */
  const writtenBy = (sql: SqlStorage, statements: string[]): number[] =>
    statements.map((statement) => {
      const cursor = sql.exec(statement);
      cursor.toArray();
      return cursor.rowsWritten;
    });
  const USERS =
    "CREATE TABLE users (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE) STRICT";

  it("rowsWritten counts each row and the index entries it writes, as workerd does (spec 138)", async () => {
    const seen = await withSql((sql) =>
      writtenBy(sql, [
        USERS,
        "INSERT INTO users (id, name, email) VALUES ('u1', 'n1', 'e1')",
        "INSERT INTO users (id, name, email) VALUES ('u2', 'n', 'e2'), ('u3', 'n', 'e3'), ('u4', 'n', 'e4')",
        "UPDATE users SET name = 'x' WHERE id = 'u1'",
        "UPDATE users SET email = 'x' WHERE id = 'u1'",
        "UPDATE users SET email = 'y', id = 'v1' WHERE id = 'u1'",
        "UPDATE users SET rowid = 100 WHERE id = 'u2'",
        "DELETE FROM users WHERE id = 'u3'",
        "INSERT OR REPLACE INTO users (id, name, email) VALUES ('u4', 'nn', 'ee')",
        "INSERT INTO users (id, name, email) VALUES ('v1', 'a', 'b') ON CONFLICT(id) DO UPDATE SET name = excluded.name",
        "INSERT INTO users (id, name, email) VALUES ('v1', 'a', 'c'), ('w', 'a', 'd') ON CONFLICT(id) DO UPDATE SET email = excluded.email",
        "INSERT OR IGNORE INTO users (id, name, email) VALUES ('w', 'a', 'b')",
        "DELETE FROM users",
      ]),
    );
    // One row into a table with two UNIQUE constraints writes 3 (what jonasb/durable-objects-sql-tag asserts);
    // an UPDATE writes the indexes of the columns it sets, all of them when the rowid changes; a DELETE writes 1.
    expect(seen).toEqual([4, 3, 9, 1, 2, 3, 3, 1, 3, 1, 5, 0, 4]);
  });

  it("rowsWritten follows CREATE INDEX, expression indexes and WITHOUT ROWID tables (spec 138)", async () => {
    const seen = await withSql((sql) =>
      writtenBy(sql, [
        "CREATE TABLE t(a, b, c)",
        "INSERT INTO t VALUES (1, 2, 3)",
        "CREATE INDEX ta ON t(a)",
        "CREATE INDEX te ON t(b + c)",
        "INSERT INTO t VALUES (1, 2, 3)",
        "UPDATE t SET c = 9",
        "UPDATE t SET a = a",
        "CREATE TABLE w(k TEXT PRIMARY KEY, v) WITHOUT ROWID",
        "INSERT INTO w VALUES ('a', 1), ('b', 2)",
        "CREATE INDEX wv ON w(v)",
        "INSERT INTO w VALUES ('c', 1)",
        "UPDATE w SET v = 4 WHERE k = 'c'",
        "UPDATE w SET k = 'z' WHERE k = 'c'",
        "INSERT INTO w VALUES ('a', 1), ('d', 1) ON CONFLICT(k) DO UPDATE SET v = 7",
        "DELETE FROM w WHERE k = 'b'",
      ]),
    );
    expect(seen).toEqual([2, 1, 2, 2, 3, 4, 4, 2, 2, 3, 2, 2, 2, 4, 1]);
  });

  it("rowsWritten includes triggers, foreign key actions and AUTOINCREMENT's sqlite_sequence (spec 138)", async () => {
    const seen = await withSql((sql) =>
      writtenBy(sql, [
        "CREATE TABLE t(a, b UNIQUE)",
        "CREATE TABLE log(x)",
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.a); END",
        "INSERT INTO t VALUES (1, 2), (3, 4)",
        "CREATE TABLE p(id INTEGER PRIMARY KEY)",
        "CREATE TABLE c(id INTEGER PRIMARY KEY, p REFERENCES p(id) ON DELETE CASCADE ON UPDATE CASCADE)",
        "CREATE INDEX cp ON c(p)",
        "INSERT INTO p VALUES (1), (2)",
        "INSERT INTO c VALUES (10, 1), (11, 2)",
        "UPDATE p SET id = 3 WHERE id = 2",
        "DELETE FROM p",
        "CREATE TABLE r(id INTEGER PRIMARY KEY AUTOINCREMENT, v)",
        "INSERT INTO r(v) VALUES (1)",
        "INSERT INTO r(v) VALUES (1), (2)",
        "INSERT OR IGNORE INTO r(id, v) VALUES (1, 1)",
        "INSERT INTO r(id, v) VALUES (0, 1)",
      ]),
    );
    expect(seen).toEqual([3, 2, 1, 6, 2, 2, 1, 2, 4, 3, 4, 4, 2, 3, 0, 1]);
  });

  it("rowsWritten of DDL counts the schema rows and index entries it made; DROP writes none (spec 138)", async () => {
    const seen = await withSql((sql) =>
      writtenBy(sql, [
        "CREATE TABLE a(x UNIQUE)",
        "CREATE TABLE IF NOT EXISTS a(x UNIQUE)",
        "INSERT INTO a VALUES (1), (2), (3)",
        "CREATE INDEX ai ON a(x)",
        "CREATE INDEX IF NOT EXISTS ai ON a(x)",
        "CREATE INDEX ap ON a(x) WHERE x > 1",
        "CREATE TABLE b AS SELECT * FROM a",
        "CREATE VIEW v AS SELECT 1",
        "CREATE TRIGGER tt AFTER INSERT ON a BEGIN SELECT 1; END",
        "ALTER TABLE a ADD COLUMN z DEFAULT 5",
        "DROP TABLE a",
        "CREATE VIRTUAL TABLE f USING fts5(body)",
        "INSERT INTO f VALUES ('hello world'), ('hi')",
        "DELETE FROM f",
      ]),
    );
    expect(seen).toEqual([3, 0, 6, 4, 0, 3, 5, 2, 1, 1, 0, 2, 2, 2]);
  });

  it("rowsWritten leaves out temp b-trees; a multi-statement exec() counts its last statement (spec 138)", async () => {
    const seen = await withSql((sql) =>
      writtenBy(sql, [
        "CREATE TABLE t(a, b)",
        "INSERT INTO t VALUES (1, 2), (3, 4), (1, 5)",
        "SELECT DISTINCT a FROM t WHERE b IN (2, 4, 7) ORDER BY a",
        "UPDATE t SET b = b + 1 WHERE a IN (1, 7)",
        "INSERT INTO t SELECT DISTINCT a, a FROM t ORDER BY a",
        "CREATE TABLE u(a UNIQUE); INSERT INTO u VALUES (1); INSERT INTO u VALUES (2), (3)",
        "INSERT INTO u VALUES (4); SELECT 1",
      ]),
    );
    expect(seen).toEqual([2, 3, 0, 2, 2, 4, 0]);
  });

  it("several cursors can be interleaved (spec 139)", async () => {
    const seen = await withSql((sql) => {
      sql.exec("CREATE TABLE a(x); CREATE TABLE b(y); INSERT INTO a VALUES (1), (2); INSERT INTO b VALUES (10), (20)");
      const nested: number[][] = [];
      for (const row of sql.exec<{ x: number }>("SELECT x FROM a ORDER BY x")) {
        for (const inner of sql.exec<{ y: number }>("SELECT y FROM b ORDER BY y")) nested.push([row.x, inner.y]);
      }
      const c1 = sql.exec("SELECT x FROM a ORDER BY x");
      const c2 = sql.exec("SELECT y FROM b ORDER BY y");
      const alternating = [c1.next(), c2.next(), c1.next(), c2.next(), c1.next(), c2.next()].map((r) => r.value ?? "done");
      return { nested, alternating };
    });
    expect(seen).toEqual({
      nested: [
        [1, 10],
        [1, 20],
        [2, 10],
        [2, 20],
      ],
      alternating: [{ x: 1 }, { y: 10 }, { x: 2 }, { y: 20 }, "done", "done"],
    });
  });

  it("the same SQL text runs again while its previous cursor is still open (spec 140)", async () => {
    const seen = await withSql((sql) => {
      sql.exec("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3)");
      const q = "SELECT x FROM t ORDER BY x";
      const first = sql.exec(q);
      const head = first.next().value;
      const second = sql.exec(q);
      const all = second.toArray();
      const rest = first.toArray();
      return { head, all, rest, third: sql.exec(q).toArray() };
    });
    expect(seen).toEqual({
      head: { x: 1 },
      all: [{ x: 1 }, { x: 2 }, { x: 3 }],
      rest: [{ x: 2 }, { x: 3 }],
      third: [{ x: 1 }, { x: 2 }, { x: 3 }],
    });
  });
});

describe("forbidden and restricted SQL (spec 143–154)", () => {
  it("BEGIN, COMMIT, ROLLBACK, SAVEPOINT and RELEASE point to the transaction APIs (spec 143)", async () => {
    const statements = ["BEGIN TRANSACTION", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT x", "RELEASE x", "END TRANSACTION"];
    const errors = await withSql((sql) => statements.map((q) => thrown(() => sql.exec(q))));
    expect(errors).toEqual(Array(statements.length).fill(USE_TRANSACTION_API));
  });

  it("names starting with _cf_, in any case, are not authorized; _cfx and _cf are (spec 144)", async () => {
    const seen = await withSql((sql) => ({
      denied: [
        "CREATE TABLE _cf_x(a)",
        "CREATE TABLE _CF_y(a)",
        "CREATE TABLE _Cf_test(a)",
        "CREATE TABLE _cF_test(a)",
        'CREATE TABLE "_cf_quoted"(a)',
        "CREATE VIEW _cf_v AS SELECT 1",
      ].map((q) => thrown(() => sql.exec(q))),
      allowed: ["CREATE TABLE _cfx(a)", "CREATE TABLE _cf(a)", "CREATE TABLE cf_x(a)"].map((q) => thrown(() => sql.exec(q))),
      renamed: thrown(() => sql.exec("ALTER TABLE _cfx RENAME TO _cf_x")),
      index: thrown(() => sql.exec("CREATE INDEX _cf_idx ON _cfx(a)")),
    }));
    expect(seen).toEqual({
      denied: Array(6).fill(NOT_AUTHORIZED),
      allowed: Array(3).fill("nothing thrown"),
      renamed: NOT_AUTHORIZED,
      index: NOT_AUTHORIZED,
    });
  });

  it("_cf_KV cannot be read, indexed, inspected or shadowed (spec 145)", async () => {
    const seen = await withSql(async (sql, storage) => {
      await storage.put("blah", 123);
      return {
        select: thrown(() => sql.exec("SELECT * FROM _cf_KV")),
        index: thrown(() => sql.exec("CREATE INDEX i ON _cf_KV(value)")),
        tableInfo: thrown(() => sql.exec("PRAGMA table_info(_cf_KV)")),
        quickCheck: thrown(() => sql.exec("PRAGMA quick_check(_cf_KV)")),
        fts: thrown(() => sql.exec("CREATE VIRTUAL TABLE _cf_fts USING fts5(a)")),
      };
    });
    expect(seen).toMatchObject({
      select: "Error: access to _cf_KV.key is prohibited: SQLITE_AUTH",
      index: NOT_AUTHORIZED,
      tableInfo: NOT_AUTHORIZED,
      quickCheck: NOT_AUTHORIZED,
    });
    // workerd 1.20260426 fails this one while creating the FTS5 shadow tables:
    // "fts5: error creating shadow table _cf_fts_data: not authorized: SQLITE_AUTH".
    expect(seen.fts).toMatch(/^Error: (.+: )?not authorized: SQLITE_AUTH$/);
  });

  it("_cf_KV exists after the first KV write and shows in sqlite_master and PRAGMA table_list (spec 146)", async () => {
    const seen = await withSql(async (sql, storage) => {
      const before = sql.exec("SELECT name FROM sqlite_master WHERE name = '_cf_KV'").toArray();
      await storage.put("blah", 123);
      return {
        before,
        master: sql.exec("SELECT type, name FROM sqlite_master WHERE name = '_cf_KV'").toArray(),
        tableList: sql.exec("PRAGMA table_list").toArray().filter((row) => row.name === "_cf_KV"),
      };
    });
    expect(seen).toEqual({
      before: [],
      master: [{ type: "table", name: "_cf_KV" }],
      tableList: [{ schema: "main", name: "_cf_KV", type: "table", ncol: 2, wr: 1, strict: 0 }],
    });
  });

  it("_cf_METADATA exists after setAlarm() (spec 146)", async () => {
    const tables = await withSql(async (sql, storage) => {
      await storage.setAlarm(Date.now() + 3_600_000);
      return sql.exec("SELECT name FROM sqlite_master WHERE name = '_cf_METADATA'").toArray();
    });
    expect(tables).toEqual([{ name: "_cf_METADATA" }]);
  });

  it("ATTACH, DETACH and TEMP tables, views and triggers are not authorized (spec 147)", async () => {
    // There is no CREATE TEMP INDEX: an index is temporary only on a temporary table, which cannot exist.
    const statements = [
      "ATTACH DATABASE ':memory:' AS other",
      "DETACH DATABASE other",
      "CREATE TEMP TABLE tt(a)",
      "CREATE TEMPORARY TABLE tt(a)",
      "CREATE TABLE temp.tt(a)",
      "CREATE TEMP VIEW tv AS SELECT 1",
      "CREATE TEMP TRIGGER ttr AFTER INSERT ON t BEGIN SELECT 1; END",
    ];
    const errors = await withSql((sql) => {
      sql.exec("CREATE TABLE t(a)");
      return statements.map((q) => thrown(() => sql.exec(q)));
    });
    expect(errors).toEqual(Array(statements.length).fill(NOT_AUTHORIZED));
  });

  it("only fts5, fts5vocab, rtree and rtree_i32 virtual tables, module names in any case (spec 148)", async () => {
    const seen = await withSql((sql) => ({
      denied: ["dbstat", "fts5abcd(id)", "fts3(a)", "fts4(a)"].map((module, i) =>
        thrown(() => sql.exec(`CREATE VIRTUAL TABLE d${i} USING ${module}`)),
      ),
      allowed: [
        "CREATE VIRTUAL TABLE f USING FtS5(a)",
        "CREATE VIRTUAL TABLE fv USING fTs5VoCaB(f, col)",
        "CREATE VIRTUAL TABLE r USING RtReE(id, x0, x1)",
        "CREATE VIRTUAL TABLE ri USING RTREE_I32(id, x0, x1)",
      ].map((q) => thrown(() => sql.exec(q))),
    }));
    expect(seen).toEqual({ denied: Array(4).fill(NOT_AUTHORIZED), allowed: Array(4).fill("nothing thrown") });
  });

  it("functions outside the allow-list: not authorized to use function (spec 149)", async () => {
    const errors = await withSql((sql) =>
      ["SELECT sqlite_version()", "SELECT json_pretty('[1]')", "SELECT sqlite_source_id()", "SELECT 1, sqlite_version()"].map((q) =>
        thrown(() => sql.exec(q)),
      ),
    );
    expect(errors).toEqual([
      "Error: not authorized to use function: sqlite_version at offset 7: SQLITE_ERROR",
      "Error: not authorized to use function: json_pretty at offset 7: SQLITE_ERROR",
      "Error: not authorized to use function: sqlite_source_id at offset 7: SQLITE_ERROR",
      "Error: not authorized to use function: sqlite_version at offset 10: SQLITE_ERROR",
    ]);
  });

  it("allow-listed core, date/time, aggregate, window and JSON functions work (spec 149)", async () => {
    const seen = await withSql((sql) => ({
      core: sql
        .exec(
          "SELECT abs(-1) AS a, concat('a', 'b') AS b, concat_ws('-', 'a', 'b') AS c, format('%d', 5) AS d, iif(1, 'y', 'n') AS e," +
            " hex(unhex('4142')) AS f, octet_length('é') AS g, sign(-3) AS h, substring('abc', 2) AS i, unicode('A') AS j," +
            " printf('%.1f', 1.25) AS k, typeof(random()) AS l, length(randomblob(4)) AS m, quote('x') AS n, changes() AS o",
        )
        .one(),
      dates: sql
        .exec(
          "SELECT date('2024-01-02') AS a, time('12:34:56') AS b, datetime(0, 'unixepoch') AS c, julianday('2000-01-01') AS d," +
            " unixepoch('1970-01-02') AS e, strftime('%Y', '2024-05-06') AS f, timediff('2024-01-02', '2024-01-01') AS g," +
            " typeof(current_timestamp) AS h",
        )
        .one(),
      aggregates: sql
        .exec(
          "WITH v(x) AS (VALUES (1), (2), (3)) SELECT avg(x) AS a, count(*) AS b, group_concat(x) AS c, string_agg(x, ';') AS d," +
            " sum(x) AS e, total(x) AS f FROM v",
        )
        .one(),
      window: sql
        .exec(
          "WITH v(x) AS (VALUES (3), (1), (2))" +
            " SELECT x, row_number() OVER (ORDER BY x) AS rn, lag(x) OVER (ORDER BY x) AS lg FROM v ORDER BY x",
        )
        .toArray(),
      json: sql.exec("SELECT json_object('a', 1) AS a, typeof(jsonb_array(1)) AS b, json_valid('{}') AS c").one(),
    }));
    expect(seen).toEqual({
      core: {
        ...{ a: 1, b: "ab", c: "a-b", d: "5", e: "y", f: "4142", g: 2, h: -1 },
        ...{ i: "bc", j: 65, k: "1.3", l: "integer", m: 4, n: "'x'", o: 0 },
      },
      dates: {
        a: "2024-01-02",
        b: "12:34:56",
        c: "1970-01-01 00:00:00",
        d: 2451544.5,
        e: 86400,
        f: "2024",
        g: "+0000-00-01 00:00:00.000",
        h: "text",
      },
      aggregates: { a: 2, b: 3, c: "1,2,3", d: "1;2;3", e: 6, f: 6 },
      window: [
        { x: 1, rn: 1, lg: null },
        { x: 2, rn: 2, lg: 1 },
        { x: 3, rn: 3, lg: 2 },
      ],
      json: { a: '{"a":1}', b: "blob", c: 1 },
    });
  });

  it("PRAGMAs outside the allow-list are not authorized (spec 150)", async () => {
    const statements = [
      "PRAGMA journal_mode",
      "PRAGMA user_version",
      "PRAGMA compile_options",
      "PRAGMA hard_heap_limit = 1024",
      "PRAGMA max_page_count = 65536",
      "PRAGMA page_size = 8192",
      "PRAGMA data_version = 5",
      "PRAGMA page_count",
      "PRAGMA integrity_check",
      "PRAGMA writable_schema = ON",
    ];
    const errors = await withSql((sql) => statements.map((q) => thrown(() => sql.exec(q))));
    expect(errors).toEqual(Array(statements.length).fill(NOT_AUTHORIZED));
  });

  it("allow-listed PRAGMAs and ANALYZE work (spec 150)", async () => {
    const seen = await withSql((sql) => {
      sql.exec("CREATE TABLE t(a INTEGER, b TEXT); CREATE INDEX ti ON t(a)");
      const run = (q: string) => sql.exec(q).toArray();
      return {
        dataVersion: run("PRAGMA data_version").map((row) => Object.keys(row)),
        pageSize: run("PRAGMA page_size"),
        booleans: [
          "foreign_keys",
          "defer_foreign_keys",
          "ignore_check_constraints",
          "legacy_alter_table",
          "recursive_triggers",
          "reverse_unordered_selects",
        ].map((p) => run(`PRAGMA ${p}`)),
        caseSensitiveLike: [run("PRAGMA case_sensitive_like = ON"), run("PRAGMA case_sensitive_like")],
        foreignKeyCheck: [run("PRAGMA foreign_key_check"), run("PRAGMA foreign_key_check(t)"), run("PRAGMA foreign_key_list(t)")],
        indexInfo: run("PRAGMA index_info(ti)"),
        indexList: run("PRAGMA index_list(t)"),
        indexXinfo: run("PRAGMA index_xinfo(ti)").length,
        tableInfo: run("PRAGMA table_info(t)").map((row) => row.name),
        tableXinfo: run("PRAGMA table_xinfo(t)").map((row) => row.hidden),
        tableList: run("PRAGMA table_list(t)"),
        quickCheck: [run("PRAGMA quick_check"), run("PRAGMA quick_check(1)"), run("PRAGMA quick_check(t)")],
        optimize: [thrown(() => run("PRAGMA optimize")), thrown(() => run("PRAGMA optimize(-1)")), thrown(() => run("ANALYZE"))],
      };
    });
    expect(seen).toEqual({
      dataVersion: [["data_version"]],
      pageSize: [{ page_size: PAGE }],
      booleans: [
        [{ foreign_keys: 1 }],
        [{ defer_foreign_keys: 0 }],
        [{ ignore_check_constraints: 0 }],
        [{ legacy_alter_table: 0 }],
        [{ recursive_triggers: 0 }],
        [{ reverse_unordered_selects: 0 }],
      ],
      caseSensitiveLike: [[], []],
      foreignKeyCheck: [[], [], []],
      indexInfo: [{ seqno: 0, cid: 0, name: "a" }],
      indexList: [{ seq: 0, name: "ti", unique: 0, origin: "c", partial: 0 }],
      indexXinfo: 2,
      tableInfo: ["a", "b"],
      tableXinfo: [0, 0],
      tableList: [{ schema: "main", name: "t", type: "table", ncol: 2, wr: 0, strict: 0 }],
      quickCheck: Array(3).fill([{ quick_check: "ok" }]),
      optimize: Array(3).fill("nothing thrown"),
    });
  });

  it("boolean PRAGMA values: true/false/on/off/yes/no/1/0, any case, quoted; others refused (spec 151)", async () => {
    const valid: [string, number][] = [
      ["true", 1],
      ["false", 0],
      ["on", 1],
      ["off", 0],
      ["yes", 1],
      ["no", 0],
      ["1", 1],
      ["0", 0],
      ["tRuE", 1],
      ["NO", 0],
      ["'true'", 1],
      ['"yes"', 1],
      ['"0"', 0],
      ["  true    ", 1],
    ];
    const seen = await withSql((sql) => {
      const set = (value: string) => {
        sql.exec(`PRAGMA defer_foreign_keys = ${value}`);
        return sql.exec("PRAGMA defer_foreign_keys").one().defer_foreign_keys;
      };
      return {
        valid: valid.map(([value]) => set(value)),
        invalid: ["abcd", '"foo"', "'yes"].map((value) => thrown(() => set(value))),
      };
    });
    expect(seen).toEqual({
      valid: valid.map(([, expected]) => expected),
      invalid: [NOT_AUTHORIZED, NOT_AUTHORIZED, "Error: unrecognized token: \"'yes\" at offset 28: SQLITE_ERROR"],
    });
  });

  it("VACUUM inside the implicit transaction fails (spec 152)", async () => {
    const error = await withSql((sql) => {
      sql.exec("CREATE TABLE t(x)");
      return thrown(() => sql.exec("VACUUM"));
    });
    expect(error).toBe("Error: cannot VACUUM from within a transaction: SQLITE_ERROR");
  });

  it("CHECK constraints, ignore_check_constraints and quick_check behave as in SQLite (spec 153)", async () => {
    const seen = await withSql((sql) => {
      sql.exec("CREATE TABLE c(v TEXT); INSERT INTO c VALUES ('A')");
      sql.exec("ALTER TABLE c ADD COLUMN k TEXT CHECK (k IN ('A', 'B'))");
      const checked = thrown(() => sql.exec("INSERT INTO c(k) VALUES ('C')"));
      sql.exec("PRAGMA ignore_check_constraints = ON");
      sql.exec("INSERT INTO c(k) VALUES ('C')");
      sql.exec("PRAGMA ignore_check_constraints = OFF");
      return { checked, rows: sql.exec("SELECT v, k FROM c").toArray(), quickCheck: sql.exec("PRAGMA quick_check").toArray() };
    });
    expect(seen).toEqual({
      checked: "Error: CHECK constraint failed: k IN ('A', 'B'): SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_CHECK)",
      rows: [
        { v: "A", k: null },
        { v: null, k: "C" },
      ],
      quickCheck: [{ quick_check: "CHECK constraint failed in c" }],
    });
  });

  it("ALTER TABLE RENAME TO / ADD / RENAME / DROP COLUMN work and cached statements follow (spec 154)", async () => {
    const seen = await withSql((sql) => {
      const all = () => sql.exec("SELECT * FROM a").toArray();
      sql.exec("CREATE TABLE a(x INTEGER)");
      sql.exec("INSERT INTO a VALUES (?)", 1);
      const start = all();
      sql.exec("ALTER TABLE a ADD COLUMN y INTEGER");
      const added = all();
      sql.exec("INSERT INTO a VALUES (?, ?)", 2, 2);
      const inserted = all();
      sql.exec("ALTER TABLE a RENAME COLUMN y TO z");
      const renamed = all();
      sql.exec("ALTER TABLE a DROP COLUMN z");
      const dropped = all();
      sql.exec("ALTER TABLE a RENAME TO b");
      return { start, added, inserted, renamed, dropped, moved: sql.exec("SELECT * FROM b").toArray(), gone: thrown(all) };
    });
    expect(seen).toEqual({
      start: [{ x: 1 }],
      added: [{ x: 1, y: null }],
      inserted: [
        { x: 1, y: null },
        { x: 2, y: 2 },
      ],
      renamed: [
        { x: 1, z: null },
        { x: 2, z: 2 },
      ],
      dropped: [{ x: 1 }, { x: 2 }],
      moved: [{ x: 1 }, { x: 2 }],
      gone: "Error: no such table: a: SQLITE_ERROR",
    });
  });
});

describe("limits (spec 155–162, §12 SQL rows)", () => {
  it("compound SELECT: 5 terms work, 6 do not (spec 155)", async () => {
    const union = (n: number) => repeat(n, (i) => `SELECT ${i + 1}`, " UNION ALL ");
    const seen = await withSql((sql) => ({ five: sql.exec(union(5)).toArray().length, six: thrown(() => sql.exec(union(6))) }));
    expect(seen).toEqual({ five: 5, six: "Error: too many terms in compound SELECT: SQLITE_ERROR" });
  });

  it("100 columns per table and per result set (spec 156)", async () => {
    const columns = (n: number) => repeat(n, (i) => `c${i}`, ", ");
    const select = (n: number) => `SELECT ${repeat(n, (i) => `${i} AS c${i}`, ", ")}`;
    const seen = await withSql((sql) => ({
      table100: thrown(() => sql.exec(`CREATE TABLE ok100(${columns(100)})`)),
      table101: thrown(() => sql.exec(`CREATE TABLE wide(${columns(101)})`)),
      result100: sql.exec(select(100)).columnNames.length,
      result101: thrown(() => sql.exec(select(101))),
    }));
    expect(seen).toEqual({
      table100: "nothing thrown",
      table101: "Error: too many columns on wide: SQLITE_ERROR",
      result100: 100,
      result101: "Error: too many columns in result set: SQLITE_ERROR",
    });
  });

  it("LIKE and GLOB patterns: 50 bytes work, 51 do not (spec 157)", async () => {
    const complex = "Error: LIKE or GLOB pattern too complex: SQLITE_ERROR";
    const seen = await withSql((sql) => ({
      like50: sql.exec("SELECT 'a' LIKE ? AS m", "a".repeat(50)).toArray(),
      glob50: sql.exec("SELECT 'a' GLOB ? AS m", "a".repeat(50)).toArray(),
      multibyte50: sql.exec("SELECT 'é' LIKE ? AS m", "é".repeat(25)).toArray(),
      like51: thrown(() => sql.exec("SELECT 'a' LIKE ? AS m", "a".repeat(51))),
      glob51: thrown(() => sql.exec("SELECT 'a' GLOB ? AS m", "a".repeat(51))),
      multibyte51: thrown(() => sql.exec("SELECT 'a' LIKE ? AS m", `${"é".repeat(25)}a`)),
    }));
    expect(seen).toEqual({
      like50: [{ m: 0 }],
      glob50: [{ m: 0 }],
      multibyte50: [{ m: 0 }],
      like51: complex,
      glob51: complex,
      multibyte51: complex,
    });
  });

  it("function arguments: 127 work, 128 do not (spec 158)", async () => {
    const max = (n: number) => `SELECT max(${repeat(n, (i) => String(i), ", ")}) AS m`;
    const seen = await withSql((sql) => ({
      forty: sql.exec(max(40)).toArray(),
      limit: sql.exec(max(127)).toArray(),
      over: thrown(() => sql.exec(max(128))),
    }));
    expect(seen).toEqual({
      forty: [{ m: 39 }],
      limit: [{ m: 126 }],
      over: "Error: too many arguments on function max at offset 7: SQLITE_ERROR",
    });
  });

  it("SQL text: 100,000 bytes work, 100,001 do not (spec 159)", async () => {
    const sized = (length: number) => {
      const head = "SELECT 1 AS v -- ";
      return head + "x".repeat(length - head.length);
    };
    const seen = await withSql((sql) => ({
      limit: sql.exec(sized(100_000)).toArray(),
      over: thrown(() => sql.exec(sized(100_001))),
      afterOffsetError: [thrown(() => sql.exec("SELECT nope")), thrown(() => sql.exec(sized(100_001)))],
    }));
    // SQLite reports "statement too long" without touching the error offset, so the message repeats
    // the offset of the previous error, if any: spec 159's "at offset 7" came right after spec 158's
    // error at offset 7. Both forms observed on workerd 1.20260426.
    expect(seen).toEqual({
      limit: [{ v: 1 }],
      over: "Error: statement too long: SQLITE_TOOBIG",
      afterOffsetError: [
        "Error: no such column: nope at offset 7: SQLITE_ERROR",
        "Error: statement too long at offset 7: SQLITE_TOOBIG",
      ],
    });
  });

  it("expression depth above 100 fails (spec 160)", async () => {
    const tooLarge = "Error: Expression tree is too large (maximum depth 100): SQLITE_ERROR";
    const nested = (n: number) => `SELECT ${"abs(".repeat(n)}1${")".repeat(n)} AS v`;
    const seen = await withSql((sql) => ({
      nested99: sql.exec(nested(99)).toArray(),
      nested101: thrown(() => sql.exec(nested(101))),
      sum200: thrown(() => sql.exec(`SELECT ${repeat(200, () => "1", "+")}`)),
    }));
    expect(seen).toEqual({ nested99: [{ v: 1 }], nested101: tooLarge, sum200: tooLarge });
  });

  it("trigger depth above 10 fails (spec 161)", async () => {
    const seen = await withSql((sql) => {
      sql.exec("PRAGMA recursive_triggers = ON");
      sql.exec("CREATE TABLE tr(n INTEGER)");
      sql.exec("CREATE TRIGGER up AFTER INSERT ON tr WHEN new.n < 100 BEGIN INSERT INTO tr VALUES (new.n + 1); END");
      // From 91 the trigger program runs 10 times (the last only to test WHEN); from 90, 11 times.
      const ten = thrown(() => sql.exec("INSERT INTO tr VALUES (91)"));
      const rows = sql.exec("SELECT count(*) AS c FROM tr").toArray();
      return { ten, rows, eleven: thrown(() => sql.exec("INSERT INTO tr VALUES (90)")) };
    });
    expect(seen).toEqual({ ten: "nothing thrown", rows: [{ c: 10 }], eleven: "Error: triggers nested too deep: SQLITE_ERROR" });
  });

  it("strings and blobs above the length limit are too big (spec 162)", async () => {
    // ⚠ The limit has moved (docs 2 MB, workerd 1.20261117.1 measured 8 MiB): 4 MiB is under it, 16 MiB over.
    const seen = await withSql((sql) => ({
      under: sql.exec("SELECT length(?) AS l", "x".repeat(4 * 1024 * 1024)).toArray(),
      string: thrown(() => sql.exec("SELECT length(?) AS l", "x".repeat(16 * 1024 * 1024))),
      blob: thrown(() => sql.exec("SELECT length(zeroblob(?)) AS l", 16 * 1024 * 1024)),
    }));
    expect(seen).toEqual({ under: [{ l: 4 * 1024 * 1024 }], string: TOO_BIG, blob: TOO_BIG });
  });
});

describe("databaseSize (spec 163)", () => {
  async function sizes(): Promise<number[]> {
    return withSql(async (sql, storage) => {
      const seen = [sql.databaseSize];
      sql.exec("CREATE TABLE one(x)");
      seen.push(sql.databaseSize);
      sql.exec("CREATE TABLE two(x)");
      seen.push(sql.databaseSize);
      sql.exec("DROP TABLE two");
      seen.push(sql.databaseSize);
      await storage.deleteAll();
      seen.push(sql.databaseSize);
      return seen;
    });
  }
  const expected = [PAGE, 2 * PAGE, 3 * PAGE, 2 * PAGE, PAGE];

  it("4096 when fresh, a page more per table, smaller after DROP and deleteAll (spec 163)", async () => {
    expect(await sizes()).toEqual(expected);
  });

  it("the same on a persisted runtime (spec 163)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "durable-node-sql-"));
    dirs.push(dir);
    runtime(dir);
    expect(await sizes()).toEqual(expected);
  });
});

describe("the core's fast storage calls", () => {
  it("two copies of the package in one process each read their own results", () => {
    // Runs report their counters through one status array per thread (src/storage_napi.rs): a second
    // copy of the package, loaded under another URL, must share it rather than take it over.
    const nativeDb = pathToFileURL(join(import.meta.dirname, "../dist/native-db.js")).href;
    const script = `
      const copies = [await import(${JSON.stringify(nativeDb)}), await import(${JSON.stringify(`${nativeDb}?copy`)})];
      const dbs = copies.map(({ NativeDb }) => new NativeDb(null, false));
      const seen = [];
      for (const [i, db] of dbs.entries()) {
        db.exec("CREATE TABLE t(v)", []);
        db.run(db.prepare("INSERT INTO t VALUES (?), (?)"), [i, i + 10]);
      }
      for (const [i, db] of dbs.entries()) {
        const rows = db.run(db.prepare("SELECT v FROM t ORDER BY v"), []);
        seen.push([rows.values.slice(0, rows.count), rows.width, rows.rowsRead]);
        const select = db.prepare("SELECT v FROM t WHERE v = ?");
        for (const v of [i, i + 10]) {
          const one = db.run(select, [v]);
          seen.push([one.values, one.count, one.width]);
        }
      }
      console.log(JSON.stringify(seen));
    `;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
    expect(JSON.parse(out)).toEqual([
      [[0, 10], 1, 2],
      [[0, "v"], 1, 1], // the first run of a statement sends its column names
      [[10], 1, -1],
      [[1, 11], 1, 2],
      [[1, "v"], 1, 1],
      [[11], 1, -1],
    ]);
  });
});
