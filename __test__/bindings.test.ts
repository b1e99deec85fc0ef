// Workers KV and D1 bindings, each namespace or database one hidden Durable Object: KV's API, order,
// cursors, expiry and error strings (workerd kv.c++ and the KV service's answers, as Miniflare's
// KV tests record them); D1's results, meta, bind types, batch atomicity and errors (workerd
// d1-api.ts); readD1Migrations / applyD1Migrations; persistence across a restart.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { D1DatabaseObject, d1Database } from "../lib/bindings/d1.js";
import { applyD1Migrations, readD1Migrations, splitSqlStatements } from "../lib/bindings/d1-migrations.js";
import { KvNamespaceObject, kvNamespace } from "../lib/bindings/kv-namespace.js";
import { createRuntime } from "../lib/index.js";
import { rejection } from "./helpers.js";

const runtimes: { dispose(): Promise<void> }[] = [];
const dirs: string[] = [];
let names = 0;

afterEach(async () => {
  vi.useRealTimers();
  for (const rt of runtimes.splice(0)) await rt.dispose();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function start(persist?: string) {
  const rt = createRuntime({
    durableObjects: {
      KV_STORE: { class: KvNamespaceObject, className: "__kv" },
      DB_STORE: { class: D1DatabaseObject, className: "__d1" },
    },
    persist,
  });
  runtimes.push(rt);
  return rt;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "dn-bindings-"));
  dirs.push(dir);
  return dir;
}

/** A fresh namespace (or the one named `id`) in `rt` (default: a new in-memory runtime). */
function kv(rt = start(), id = `ns-${names++}`) {
  return kvNamespace(rt.env.KV_STORE.getByName(id));
}

function d1(rt = start(), id = `db-${names++}`) {
  return d1Database(rt.env.DB_STORE.getByName(id));
}

/** For calls the types forbid on purpose. */
const loose = (api: object) => api as unknown as Record<string, (...args: any[]) => Promise<any>>;

async function message(promise: PromiseLike<unknown>): Promise<string> {
  const err = await rejection(promise);
  return `${err.name}: ${err.message}`;
}

const NOW = 1_750_000_000; // seconds

function freezeClock(): void {
  // Only Date: the runtime's own timers keep running.
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(NOW * 1000);
}

describe("KV: get and put", () => {
  it("stores text and reads it back; a missing key is null; an empty value is kept", async () => {
    const ns = kv();
    await ns.put("key", "value");
    await ns.put("empty", "");
    expect(await ns.get("key")).toBe("value");
    expect(await ns.get("empty")).toBe("");
    expect(await ns.get("nope")).toBeNull();
    expect(await ns.get("KEY")).toBeNull();
  });

  it("converts to the type asked, as a string or in options", async () => {
    const ns = kv();
    await ns.put("json", '{"a":[1,2]}');
    await ns.put("bytes", new Uint8Array([0, 1, 127, 128, 255]));
    expect(await ns.get("json", "json")).toEqual({ a: [1, 2] });
    expect(await ns.get("json", { type: "json", cacheTtl: 60 })).toEqual({ a: [1, 2] });
    expect(await ns.get("json", "text")).toBe('{"a":[1,2]}');
    const buffer = await ns.get("bytes", "arrayBuffer");
    expect(buffer).toBeInstanceOf(ArrayBuffer);
    expect([...new Uint8Array(buffer!)]).toEqual([0, 1, 127, 128, 255]);
    // workers-types' ReadableStream is not Node's, which is what the binding gives and takes.
    const stream = (await ns.get("bytes", "stream")) as unknown as ReadableStream;
    expect([...new Uint8Array(await new Response(stream).arrayBuffer())]).toEqual([0, 1, 127, 128, 255]);
    expect(await ns.get("nope", "stream")).toBeNull();
  });

  it("accepts ArrayBuffer, views (their window only) and ReadableStream values", async () => {
    const ns = kv();
    const backing = new Uint8Array([9, 1, 2, 3, 9]);
    await ns.put("buffer", backing.buffer);
    await ns.put("view", backing.subarray(1, 4));
    await ns.put("dataview", new DataView(backing.buffer, 3, 2));
    await loose(ns).put("stream", new Blob(["ab", "cd"]).stream());
    const bytes = async (key: string) => [...new Uint8Array((await ns.get(key, "arrayBuffer"))!)];
    expect(await bytes("buffer")).toEqual([9, 1, 2, 3, 9]);
    expect(await bytes("view")).toEqual([1, 2, 3]);
    expect(await bytes("dataview")).toEqual([3, 9]);
    expect(await ns.get("stream")).toBe("abcd");
  });

  it("refuses other values, and streams that do not give bytes", async () => {
    const ns = loose(kv());
    const types = "TypeError: KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as values.";
    expect(await message(ns.put("k", { a: 1 }))).toBe(types);
    expect(await message(ns.put("k", undefined))).toBe(types);
    const strings = new ReadableStream({
      start(controller) {
        controller.enqueue("text");
        controller.close();
      },
    });
    expect(await message(ns.put("k", strings))).toBe("TypeError: This ReadableStream did not return bytes.");
  });

  it("an unknown type fails once there is a value to convert (workerd checks it on the response)", async () => {
    const ns = loose(kv());
    expect(await ns.get("nope", "blob")).toBeNull();
    await ns.put("key", "value");
    expect(await message(ns.get("key", "blob"))).toBe(
      'TypeError: Unknown response type. Possible types are "text", "arrayBuffer", "json", and "stream".',
    );
    expect(await message(ns.get("key", "json"))).toMatch(/^SyntaxError: /);
  });

  it("getWithMetadata: value, metadata (null without) and cacheStatus null", async () => {
    const ns = kv();
    await ns.put("with", "v1", { metadata: { tags: ["a"], n: 1 } });
    await ns.put("number", "v2", { metadata: 123 });
    await ns.put("without", "v3");
    expect(await ns.getWithMetadata("with")).toEqual({ value: "v1", metadata: { tags: ["a"], n: 1 }, cacheStatus: null });
    expect(await ns.getWithMetadata("number")).toEqual({ value: "v2", metadata: 123, cacheStatus: null });
    expect(await ns.getWithMetadata("without")).toEqual({ value: "v3", metadata: null, cacheStatus: null });
    expect(await ns.getWithMetadata("nope")).toEqual({ value: null, metadata: null, cacheStatus: null });
    // A put without metadata replaces the old metadata too.
    await ns.put("with", "v4");
    expect(await ns.getWithMetadata("with")).toEqual({ value: "v4", metadata: null, cacheStatus: null });
  });

  it("delete removes a key; deleting a missing key succeeds", async () => {
    const ns = kv();
    await ns.put("key", "value");
    await ns.delete("key");
    expect(await ns.get("key")).toBeNull();
    await ns.delete("key");
  });

  it("namespaces are separate objects: same key, different values", async () => {
    const rt = start();
    const a = kv(rt, "a");
    const b = kv(rt, "b");
    await a.put("key", "in a");
    expect(await b.get("key")).toBeNull();
    await b.put("key", "in b");
    expect(await a.get("key")).toBe("in a");
    expect(await kv(rt, "a").get("key")).toBe("in a");
  });
});

describe("KV: bulk get", () => {
  it("returns a Map in the order asked, null for missing keys", async () => {
    const ns = kv();
    await ns.put("k1", "v1");
    await ns.put("k3", '{"x":3}');
    expect(await ns.get(["k3", "k1", "k2"])).toEqual(
      new Map<string, unknown>([
        ["k3", '{"x":3}'],
        ["k1", "v1"],
        ["k2", null],
      ]),
    );
    expect(await ns.get(["k3"], "json")).toEqual(new Map([["k3", { x: 3 }]]));
    expect(await ns.get(["k3"], { type: "json" })).toEqual(new Map([["k3", { x: 3 }]]));
  });

  it("getWithMetadata: {value, metadata} per key, null for missing keys, falsy values kept", async () => {
    const ns = kv();
    await ns.put("k1", "0", { metadata: { zero: true } });
    await ns.put("k2", "false");
    expect(await ns.getWithMetadata(["k1", "k2", "k3"], "json")).toEqual(
      new Map<string, unknown>([
        ["k1", { value: 0, metadata: { zero: true } }],
        ["k2", { value: false, metadata: null }],
        ["k3", null],
      ]),
    );
  });

  it("errors as the KV service words them (GET_BULK)", async () => {
    const ns = loose(kv());
    await ns.put("text", "not json");
    expect(await message(ns.get(["text"], "json"))).toBe(
      "Error: KV GET_BULK failed: 400 At least one of the requested keys corresponds to a non-json value",
    );
    expect(await message(ns.get(["text"], "arrayBuffer"))).toBe('Error: KV GET_BULK failed: 400 "arrayBuffer" is not a valid type. Use "json" or "text"');
    expect(await message(ns.get(["text"], { type: "stream" }))).toBe('Error: KV GET_BULK failed: 400 "stream" is not a valid type. Use "json" or "text"');
    const many = Array.from({ length: 101 }, (_, i) => `k${i}`);
    expect(await message(ns.get(many))).toBe("Error: KV GET_BULK failed: 400 You can request a maximum of 100 keys");
    expect(await ns.get(many.slice(0, 100))).toHaveProperty("size", 100);
    expect(await message(ns.get([]))).toBe("Error: KV GET_BULK failed: 400 You must request a minimum of 1 key");
    expect(await message(ns.get([""]))).toBe("Error: KV GET_BULK failed: 400 Key names must not be empty");
    expect(await message(ns.get(["."]))).toBe('Error: KV GET_BULK failed: 400 Illegal key name ".". Please use a different name.');
    expect(await message(ns.get(["x".repeat(513)]))).toBe(
      "Error: KV GET_BULK failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.",
    );
    expect(await message(ns.get(["text"], { cacheTtl: 10 }))).toBe(
      "Error: KV GET_BULK failed: 400 Invalid cache_ttl of 10. Cache TTL must be at least 30.",
    );
  });
});

describe("KV: validation", () => {
  it("key names: empty, '.', '..' (TypeError), over 512 UTF-8 bytes, for get, put and delete", async () => {
    const ns = loose(kv());
    const calls: [string, (key: string) => Promise<unknown>][] = [
      ["GET", (key) => ns.get(key)],
      ["GET", (key) => ns.getWithMetadata(key)],
      ["PUT", (key) => ns.put(key, "v")],
      ["DELETE", (key) => ns.delete(key)],
    ];
    for (const [method, call] of calls) {
      expect(await message(call(""))).toBe("TypeError: Key name cannot be empty.");
      expect(await message(call("."))).toBe('TypeError: "." is not allowed as a key name.');
      expect(await message(call(".."))).toBe('TypeError: ".." is not allowed as a key name.');
      expect(await message(call("é".repeat(257)))).toBe(
        `Error: KV ${method} failed: 414 UTF-8 encoded length of 514 exceeds key length limit of 512.`,
      );
    }
    await ns.put("é".repeat(256), "512 bytes");
    expect(await ns.get("é".repeat(256))).toBe("512 bytes");
    await ns.put("...", "three dots are fine");
    expect(await ns.get("...")).toBe("three dots are fine");
  });

  it("cacheTtl is checked (at least 30 s; NaN counts as 0) and otherwise ignored", async () => {
    const ns = loose(kv());
    await ns.put("key", "value");
    expect(await message(ns.get("key", { cacheTtl: 10 }))).toBe("Error: KV GET failed: 400 Invalid cache_ttl of 10. Cache TTL must be at least 30.");
    expect(await message(ns.get("key", { cacheTtl: "not a number" }))).toBe(
      "Error: KV GET failed: 400 Invalid cache_ttl of 0. Cache TTL must be at least 30.",
    );
    expect(await ns.get("key", { cacheTtl: 30 })).toBe("value");
  });

  it("expirationTtl must be a number of seconds of at least 60", async () => {
    const ns = loose(kv());
    expect(await message(ns.put("k", "v", { expirationTtl: 0 }))).toBe(
      "Error: KV PUT failed: 400 Invalid expiration_ttl of 0. Please specify integer greater than 0.",
    );
    expect(await message(ns.put("k", "v", { expirationTtl: "nan" }))).toBe(
      "Error: KV PUT failed: 400 Invalid expiration_ttl of 0. Please specify integer greater than 0.",
    );
    expect(await message(ns.put("k", "v", { expirationTtl: 30 }))).toBe(
      "Error: KV PUT failed: 400 Invalid expiration_ttl of 30. Expiration TTL must be at least 60.",
    );
    expect(await ns.get("k")).toBeNull();
  });

  it("expiration must be at least 60 s in the future", async () => {
    freezeClock();
    const ns = loose(kv());
    expect(await message(ns.put("k", "v", { expiration: NOW }))).toBe(
      `Error: KV PUT failed: 400 Invalid expiration of ${NOW}. Please specify integer greater than the current number of seconds since the UNIX epoch.`,
    );
    expect(await message(ns.put("k", "v", { expiration: "nan" }))).toBe(
      "Error: KV PUT failed: 400 Invalid expiration of 0. Please specify integer greater than the current number of seconds since the UNIX epoch.",
    );
    expect(await message(ns.put("k", "v", { expiration: NOW + 59 }))).toBe(
      `Error: KV PUT failed: 400 Invalid expiration of ${NOW + 59}. Expiration times must be at least 60 seconds in the future.`,
    );
    await ns.put("k", "v", { expiration: NOW + 60 });
    expect(await ns.get("k")).toBe("v");
  });

  it("metadata: up to 1024 bytes of JSON", async () => {
    const ns = kv();
    const fits = { key: "x".repeat(1024 - '{"key":""}'.length) };
    await ns.put("k", "v", { metadata: fits });
    expect((await ns.getWithMetadata("k")).metadata).toEqual(fits);
    expect(await message(ns.put("k", "v", { metadata: { key: fits.key + "x" } }))).toBe(
      "Error: KV PUT failed: 413 Metadata length of 1025 exceeds limit of 1024.",
    );
  });

  it("values: up to 25 MiB, counted from strings, buffers and streams", async () => {
    const ns = kv();
    const limit = 25 * 1024 * 1024;
    expect(await message(ns.put("k", "x".repeat(limit + 1)))).toBe(`Error: KV PUT failed: 413 Value length of ${limit + 1} exceeds limit of ${limit}.`);
    const chunk = new Uint8Array(1024 * 1024);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 26; i++) controller.enqueue(chunk);
        controller.close();
      },
    });
    expect(await message(loose(ns).put("k", stream))).toBe(`Error: KV PUT failed: 413 Value length of ${26 * 1024 * 1024} exceeds limit of ${limit}.`);
    await ns.put("k", new Uint8Array(limit));
    expect((await ns.get("k", "arrayBuffer"))!.byteLength).toBe(limit);
  });
});

describe("KV: expiry", () => {
  it("expirationTtl: visible until now + ttl, then gone (Date moved by fake timers)", async () => {
    freezeClock();
    const ns = kv();
    await ns.put("ttl", "v", { expirationTtl: 60 });
    await ns.put("at", "v", { expiration: NOW + 120, metadata: "m" });
    expect((await ns.list()).keys).toEqual([
      { name: "at", expiration: NOW + 120, metadata: "m" },
      { name: "ttl", expiration: NOW + 60 },
    ]);
    vi.setSystemTime((NOW + 60) * 1000 - 1);
    expect(await ns.get("ttl")).toBe("v");
    vi.setSystemTime((NOW + 60) * 1000);
    expect(await ns.get("ttl")).toBeNull();
    expect(await ns.get(["ttl", "at"])).toEqual(
      new Map([
        ["ttl", null],
        ["at", "v"],
      ]),
    );
    expect(await ns.list()).toEqual({ keys: [{ name: "at", expiration: NOW + 120, metadata: "m" }], list_complete: true, cacheStatus: null });
    vi.setSystemTime((NOW + 120) * 1000);
    expect(await ns.getWithMetadata("at")).toEqual({ value: null, metadata: null, cacheStatus: null });
    expect(await ns.list()).toEqual({ keys: [], list_complete: true, cacheStatus: null });
  });

  it("a put without expiration makes a key permanent again", async () => {
    freezeClock();
    const ns = kv();
    await ns.put("k", "v1", { expirationTtl: 60 });
    await ns.put("k", "v2");
    vi.setSystemTime((NOW + 3600) * 1000);
    expect(await ns.get("k")).toBe("v2");
    expect((await ns.list()).keys).toEqual([{ name: "k" }]);
  });
});

describe("KV: list", () => {
  async function fill(ns: ReturnType<typeof kv>, keys: string[]) {
    for (const key of keys) await ns.put(key, "v");
  }

  it("orders keys by UTF-8 bytes and reports the shape KV does", async () => {
    const ns = kv();
    await fill(ns, ["b", "é", "😀", "a", "B", ", ", "!", "\uffff", "a\u0000"]);
    expect(await ns.list()).toEqual({
      keys: ["!", ", ", "B", "a", "a\u0000", "b", "é", "\uffff", "😀"].map((name) => ({ name })),
      list_complete: true,
      cacheStatus: null,
    });
  });

  it("prefix: case-sensitive, with LIKE/GLOB characters taken literally", async () => {
    const ns = kv();
    await fill(ns, ["key\\_%1", "key\\a", "key\\_%2", "KEY1", "key1", "ke", "kez", "key\u{10ffff}x", "key\u{10ffff}"]);
    expect((await ns.list({ prefix: "key\\_%" })).keys).toEqual([{ name: "key\\_%1" }, { name: "key\\_%2" }]);
    expect((await ns.list({ prefix: "KEY" })).keys).toEqual([{ name: "KEY1" }]);
    expect((await ns.list({ prefix: "key\u{10ffff}" })).keys).toEqual([{ name: "key\u{10ffff}" }, { name: "key\u{10ffff}x" }]);
    expect((await ns.list({ prefix: "none" })).keys).toEqual([]);
    expect((await ns.list({ prefix: null })).keys).toHaveLength(9);
  });

  it("pages with limit and cursor; the last page has no cursor", async () => {
    const ns = kv();
    await fill(ns, ["s1k1", "s1k2", "s1k3", "s2k1"]);
    const first = await ns.list({ prefix: "s1", limit: 2 });
    expect(first).toEqual({ keys: [{ name: "s1k1" }, { name: "s1k2" }], list_complete: false, cursor: expect.any(String), cacheStatus: null });
    const cursor = (first as { cursor: string }).cursor;
    const second = await ns.list({ prefix: "s1", limit: 2, cursor });
    expect(second).toEqual({ keys: [{ name: "s1k3" }], list_complete: true, cacheStatus: null });
    expect("cursor" in second).toBe(false);
    // A page that ends exactly at the last key is complete: no empty page follows.
    expect(await ns.list({ prefix: "s2", limit: 1 })).toEqual({ keys: [{ name: "s2k1" }], list_complete: true, cacheStatus: null });
  });

  it("a cursor resumes after its key: keys added before it are skipped, after it are seen", async () => {
    const ns = kv();
    await fill(ns, ["k1", "k3", "k5"]);
    const first = await ns.list({ limit: 2 });
    await fill(ns, ["k2", "k4"]);
    const cursor = (first as { cursor: string }).cursor;
    expect((await ns.list({ limit: 2, cursor })).keys).toEqual([{ name: "k4" }, { name: "k5" }]);
  });

  it("limit: default and maximum 1000; 0 or less means the default; more is refused", async () => {
    const ns = loose(kv());
    for (let i = 0; i < 1001; i++) await ns.put(`k${String(i).padStart(4, "0")}`, "v");
    const page = await ns.list();
    expect(page.keys).toHaveLength(1000);
    expect(page.list_complete).toBe(false);
    expect((await ns.list({ cursor: page.cursor })).keys).toEqual([{ name: "k1000" }]);
    expect((await ns.list({ limit: 0 })).keys).toHaveLength(1000);
    expect((await ns.list({ limit: -5 })).keys).toHaveLength(1000);
    expect(await message(ns.list({ limit: 1001 }))).toBe(
      "Error: KV GET failed: 400 Invalid key_count_limit of 1001. Please specify an integer less than 1000.",
    );
    expect(await message(ns.list({ prefix: "x".repeat(513) }))).toBe(
      "Error: KV GET failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.",
    );
  });
});

describe("D1: prepared statements", () => {
  async function people() {
    const db = d1();
    await db.exec("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INTEGER)");
    await db.batch([
      db.prepare("INSERT INTO people (name, age) VALUES (?, ?)").bind("Ada", 36),
      db.prepare("INSERT INTO people (name, age) VALUES (?, ?)").bind("Bo", 7),
    ]);
    return db;
  }

  it("all(): rows as objects, success and meta as D1 reports them", async () => {
    const db = await people();
    const result = await db.prepare("SELECT name, age FROM people ORDER BY id").all();
    expect(result.success).toBe(true);
    expect(result.results).toEqual([
      { name: "Ada", age: 36 },
      { name: "Bo", age: 7 },
    ]);
    expect(Object.keys(result.meta)).toEqual([
      "served_by",
      "served_by_region",
      "served_by_primary",
      "timings",
      "duration",
      "changes",
      "last_row_id",
      "changed_db",
      "size_after",
      "rows_read",
      "rows_written",
    ]);
    expect(result.meta).toMatchObject({ served_by_primary: true, changes: 0, last_row_id: 2, changed_db: false, rows_read: 2, rows_written: 0 });
    expect(result.meta.size_after).toBeGreaterThan(0);
    expect(result.meta.timings!.sql_duration_ms).toBe(result.meta.duration);
  });

  it("run(): an alias of all(); writes report changes, last_row_id and changed_db", async () => {
    const db = await people();
    const insert = await db.prepare("INSERT INTO people (name) VALUES (?)").bind("Cy").run();
    expect(insert.results).toEqual([]);
    expect(insert.meta).toMatchObject({ changes: 1, last_row_id: 3, changed_db: true, rows_written: 1 });
    const update = await db.prepare("UPDATE people SET age = age + 1 WHERE age IS NOT NULL").run();
    expect(update.meta).toMatchObject({ changes: 2, changed_db: true });
    const returning = await db.prepare("DELETE FROM people WHERE name = ? RETURNING id").bind("Cy").run();
    expect(returning.results).toEqual([{ id: 3 }]);
    expect(returning.meta.changes).toBe(1);
  });

  it("first(): the first row, one column of it, or null; a missing column is an error", async () => {
    const db = await people();
    const query = db.prepare("SELECT name, age FROM people ORDER BY id");
    expect(await query.first()).toEqual({ name: "Ada", age: 36 });
    expect(await query.first("age")).toBe(36);
    expect(await db.prepare("SELECT name FROM people WHERE id = 99").first()).toBeNull();
    expect(await db.prepare("SELECT name FROM people WHERE id = 99").first("name")).toBeNull();
    const err = await rejection(query.first("nope"));
    expect(err.message).toBe("D1_COLUMN_NOTFOUND: Column not found (nope)");
    expect(err.cause.message).toBe("Column not found");
  });

  it("raw(): rows as arrays, with the column names first when asked (even with no rows)", async () => {
    const db = await people();
    const query = db.prepare("SELECT id, name FROM people ORDER BY id");
    expect(await query.raw()).toEqual([
      [1, "Ada"],
      [2, "Bo"],
    ]);
    expect(await query.raw({ columnNames: true })).toEqual([
      ["id", "name"],
      [1, "Ada"],
      [2, "Bo"],
    ]);
    expect(await db.prepare("SELECT id, name FROM people WHERE 0").raw({ columnNames: true })).toEqual([["id", "name"]]);
  });

  it("bind() returns a new statement and leaves the prepared one unbound", async () => {
    const db = await people();
    const query = db.prepare("SELECT name FROM people WHERE id = ?");
    const one = query.bind(1);
    const two = query.bind(2);
    expect(one).not.toBe(query);
    expect(await one.first("name")).toBe("Ada");
    expect(await two.first("name")).toBe("Bo");
    expect((query as unknown as { params: unknown[] }).params).toEqual([]);
    expect(await message(query.all())).toBe("Error: D1_ERROR: Wrong number of parameter bindings for SQL query.");
    expect(await db.prepare("SELECT ?2 AS b, ?1 AS a").bind("x", "y").first()).toEqual({ b: "y", a: "x" });
  });

  it("bind types: booleans as 1/0, null, bytes as BLOBs returned as arrays of numbers", async () => {
    const db = d1();
    const row = await db
      .prepare("SELECT ? AS t, ? AS f, ? AS n, ? AS buffer, ? AS view, ? AS array, typeof(?) AS kind")
      .bind(true, false, null, new Uint8Array([1, 2, 3]).buffer, new Uint8Array([9, 4, 5, 9]).subarray(1, 3), [6, 7], new Uint8Array([1]))
      .first();
    expect(row).toEqual({ t: 1, f: 0, n: null, buffer: [1, 2, 3], view: [4, 5], array: [6, 7], kind: "blob" });
  });

  it("bind refuses other types with D1_TYPE_ERROR", () => {
    const statement = d1().prepare("SELECT ?");
    const error = (value: unknown) => {
      try {
        statement.bind(value);
      } catch (err) {
        return `${(err as Error).message} / ${((err as Error).cause as Error).message}`;
      }
      return "bound";
    };
    expect(error(undefined)).toBe("D1_TYPE_ERROR: Type 'undefined' not supported for value 'undefined' / Type 'undefined' not supported for value 'undefined'");
    expect(error(1n)).toBe("D1_TYPE_ERROR: Type 'bigint' not supported for value '1' / Type 'bigint' not supported for value '1'");
    expect(error({ a: 1 })).toBe("D1_TYPE_ERROR: Type 'object' not supported for value '[object Object]' / Type 'object' not supported for value '[object Object]'");
    expect(error([1, 256])).toBe("D1_TYPE_ERROR: Type 'object' not supported for value '1,256' / Type 'object' not supported for value '1,256'");
  });

  it("SQL errors reject with D1_ERROR and SQLite's message, the bare message as cause", async () => {
    const db = d1();
    const err = await rejection(db.prepare("SELECT * FROM nope").all());
    expect(err.message).toBe("D1_ERROR: no such table: nope: SQLITE_ERROR");
    expect(err.cause.message).toBe("no such table: nope: SQLITE_ERROR");
    expect(await message(db.prepare("SELEC 1").run())).toBe('Error: D1_ERROR: near "SELEC": syntax error at offset 0: SQLITE_ERROR');
    expect(await message(db.prepare("-- nothing but a comment").all())).toBe("Error: D1_ERROR: No SQL statements detected.");
  });

  it("the Durable Object authorizer applies: SQL transactions and _cf_ tables are refused", async () => {
    const db = d1();
    expect(await message(db.prepare("BEGIN TRANSACTION").run())).toMatch(/^Error: D1_ERROR: To execute a transaction, please use the state.storage.transaction\(\)/);
    expect(await message(db.prepare("CREATE TABLE _cf_x (a)").run())).toBe("Error: D1_ERROR: not authorized: SQLITE_AUTH");
    expect(await message(db.prepare("PRAGMA user_version").run())).toBe("Error: D1_ERROR: not authorized: SQLITE_AUTH");
    await db.exec("CREATE TABLE t (a)");
    expect((await db.prepare("PRAGMA table_info(t)").all()).results).toEqual([{ cid: 0, name: "a", type: "", notnull: 0, dflt_value: null, pk: 0 }]);
  });
});

describe("D1: batch, exec, sessions", () => {
  it("batch(): one result per statement, in order", async () => {
    const db = d1();
    await db.exec("CREATE TABLE t (a)");
    const results = await db.batch([
      db.prepare("INSERT INTO t VALUES (?)").bind(1),
      db.prepare("INSERT INTO t VALUES (?)").bind(2),
      db.prepare("SELECT count(*) AS n FROM t"),
    ]);
    expect(results.map((result) => result.results)).toEqual([[], [], [{ n: 2 }]]);
    expect(results.map((result) => result.meta.changes)).toEqual([1, 1, 0]);
  });

  it("batch(): all or nothing — a failing statement undoes the ones before it", async () => {
    const db = d1();
    await db.exec("CREATE TABLE t (a UNIQUE)");
    const failing = db.batch([
      db.prepare("INSERT INTO t VALUES (1)"),
      db.prepare("CREATE TABLE u (b)"),
      db.prepare("INSERT INTO t VALUES (1)"),
    ]);
    expect(await message(failing)).toBe("Error: D1_ERROR: UNIQUE constraint failed: t.a: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_UNIQUE)");
    expect((await db.prepare("SELECT count(*) AS n FROM t").first("n"))).toBe(0);
    expect(await message(db.prepare("SELECT * FROM u").all())).toBe("Error: D1_ERROR: no such table: u: SQLITE_ERROR");
  });

  it("exec(): one statement per line in one transaction → count and duration", async () => {
    const db = d1();
    const result = await db.exec("CREATE TABLE t (a);\nINSERT INTO t VALUES (1);\n\n-- a comment line\nINSERT INTO t VALUES (2)");
    expect(result.count).toBe(3);
    expect(result.duration).toBeGreaterThanOrEqual(0);
    expect(await db.prepare("SELECT sum(a) AS s FROM t").first("s")).toBe(3);
  });

  it("exec() errors: D1_EXEC_ERROR naming line 1, as D1 does, and nothing applied", async () => {
    const db = d1();
    const err = await rejection(db.exec("CREATE TABLE t (a);\nINSERT INTO nope VALUES (1)"));
    expect(err.message).toBe("D1_EXEC_ERROR: Error in line 1: CREATE TABLE t (a);: no such table: nope: SQLITE_ERROR");
    expect(err.cause.message).toBe("Error in line 1: CREATE TABLE t (a);: no such table: nope: SQLITE_ERROR");
    expect(await message(db.prepare("SELECT * FROM t").all())).toBe("Error: D1_ERROR: no such table: t: SQLITE_ERROR");
    expect(await message(db.exec("   "))).toBe("Error: D1_EXEC_ERROR: Error in line 1: : No SQL statements detected.");
  });

  it("withSession(): statements and batches like the database; bookmarks only after a query", async () => {
    const db = d1();
    await db.exec("CREATE TABLE t (a)");
    const session = db.withSession();
    expect(session.getBookmark()).toBeNull();
    expect(db.withSession("first-primary").getBookmark()).toBeNull();
    await session.prepare("INSERT INTO t VALUES (?)").bind(5).run();
    const first = session.getBookmark();
    expect(first).toEqual(expect.any(String));
    await session.batch([session.prepare("INSERT INTO t VALUES (6)")]);
    const second = session.getBookmark()!;
    expect(first!.localeCompare(second)).toBeLessThan(0);
    const resumed = db.withSession(second);
    expect(resumed.getBookmark()).toBe(second);
    expect(await resumed.prepare("SELECT sum(a) AS s FROM t").first("s")).toBe(11);
    expect("exec" in session).toBe(false);
  });

  it("dump() is not supported", async () => {
    expect(await message(d1().dump())).toMatch(/^Error: D1_DUMP_ERROR: dump\(\) is not supported/);
  });
});

describe("D1 migrations", () => {
  function migrationsFolder(files: Record<string, string>): string {
    const dir = join(tempDir(), "migrations");
    mkdirSync(dir);
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    return dir;
  }

  it("splitSqlStatements: comments dropped, ';' in strings, identifiers and trigger bodies kept", () => {
    const sql = `-- leading comment
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE "a;b" (x TEXT DEFAULT 'it''s; fine', [y;z] INT); /* block; comment */
CREATE TRIGGER trg AFTER INSERT ON "a;b" BEGIN
  UPDATE "a;b" SET x = CASE WHEN x = ';' THEN 'semi' ELSE x END;
  SELECT 1;
END;
INSERT INTO "a;b" VALUES ('--not a comment', 1)
;;
COMMIT;`;
    expect(splitSqlStatements(sql)).toEqual([
      "PRAGMA foreign_keys=OFF",
      `CREATE TABLE "a;b" (x TEXT DEFAULT 'it''s; fine', [y;z] INT)`,
      `CREATE TRIGGER trg AFTER INSERT ON "a;b" BEGIN\n  UPDATE "a;b" SET x = CASE WHEN x = ';' THEN 'semi' ELSE x END;\n  SELECT 1;\nEND`,
      `INSERT INTO "a;b" VALUES ('--not a comment', 1)`,
    ]);
  });

  it("readD1Migrations: the .sql files by migration number, split into statements", async () => {
    const dir = migrationsFolder({
      "0010_tags.sql": "CREATE TABLE tags (name TEXT);",
      "0002_users.sql": "-- users\nCREATE TABLE users (id INTEGER PRIMARY KEY);\nINSERT INTO users VALUES (1);\n",
      "README.md": "not a migration",
      "0001_init.sql": "CREATE TABLE init (a);",
    });
    expect(await readD1Migrations(dir)).toEqual([
      { name: "0001_init.sql", queries: ["CREATE TABLE init (a)"] },
      { name: "0002_users.sql", queries: ["CREATE TABLE users (id INTEGER PRIMARY KEY)", "INSERT INTO users VALUES (1)"] },
      { name: "0010_tags.sql", queries: ["CREATE TABLE tags (name TEXT)"] },
    ]);
    expect(await message(readD1Migrations(42 as unknown as string))).toBe(
      "TypeError: Failed to execute 'readD1Migrations': parameter 1 is not of type 'string'.",
    );
  });

  it("applyD1Migrations: applies each migration once, records it, and is idempotent", async () => {
    const db = d1();
    const first = [
      { name: "0001_init.sql", queries: ["CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"] },
      { name: "0002_seed.sql", queries: ["INSERT INTO users (name) VALUES ('ada')"] },
    ];
    await applyD1Migrations(db, first);
    await applyD1Migrations(db, first);
    await applyD1Migrations(db, [...first, { name: "0003_more.sql", queries: ["INSERT INTO users (name) VALUES ('bo')"] }]);
    expect((await db.prepare("SELECT name FROM users ORDER BY id").raw()).flat()).toEqual(["ada", "bo"]);
    const applied = await db.prepare("SELECT id, name, applied_at FROM d1_migrations ORDER BY id").all<{ id: number; name: string; applied_at: string }>();
    expect(applied.results.map(({ id, name }) => [id, name])).toEqual([
      [1, "0001_init.sql"],
      [2, "0002_seed.sql"],
      [3, "0003_more.sql"],
    ]);
    expect(applied.results[0].applied_at).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
  });

  it("applyD1Migrations: a failing migration leaves neither its statements nor its record", async () => {
    const db = d1();
    const broken = [{ name: "0001_broken.sql", queries: ["CREATE TABLE a (x)", "INSERT INTO missing VALUES (1)"] }];
    expect(await message(applyD1Migrations(db, broken, "my migrations"))).toBe("Error: D1_ERROR: no such table: missing: SQLITE_ERROR");
    expect(await db.prepare('SELECT count(*) AS n FROM "my migrations"').first("n")).toBe(0);
    expect(await message(db.prepare("SELECT * FROM a").all())).toBe("Error: D1_ERROR: no such table: a: SQLITE_ERROR");
    expect(await message(applyD1Migrations({} as never, []))).toBe(
      "TypeError: Failed to execute 'applyD1Migrations': parameter 1 is not of type 'D1Database'.",
    );
    expect(await message(applyD1Migrations(db, [{ name: 1 }] as never))).toBe(
      "TypeError: Failed to execute 'applyD1Migrations': parameter 2 is not of type 'D1Migration[]'.",
    );
  });

  it("readD1Migrations + applyD1Migrations on a folder", async () => {
    const dir = migrationsFolder({
      "0001_init.sql": "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\n-- seed\nINSERT INTO notes (body) VALUES ('a;b');",
    });
    const db = d1();
    await applyD1Migrations(db, await readD1Migrations(dir));
    expect(await db.prepare("SELECT body FROM notes").first("body")).toBe("a;b");
  });
});

describe("persistence", () => {
  it("KV entries and D1 tables survive disposing the runtime and creating it again", async () => {
    const dir = tempDir();
    const before = start(dir);
    await kv(before, "cache").put("key", "kept", { metadata: { v: 1 } });
    const db = d1(before, "main");
    await db.exec("CREATE TABLE t (a)");
    await db.prepare("INSERT INTO t VALUES (?)").bind("kept").run();
    const bookmark = db.withSession();
    await bookmark.prepare("SELECT 1").run();
    expect(bookmark.getBookmark()).toMatch(/^[0-9a-f]+(-[0-9a-f]+)+$/);
    await before.dispose();

    const after = start(dir);
    expect(await kv(after, "cache").getWithMetadata("key")).toEqual({ value: "kept", metadata: { v: 1 }, cacheStatus: null });
    expect(await d1(after, "main").prepare("SELECT a FROM t").first("a")).toBe("kept");
    expect(await kv(after, "other").get("key")).toBeNull();
  });
});
