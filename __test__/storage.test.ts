// The storage engine beneath the API: a SQLite file per object, commits and the output gate,
// durability, and what a broken file does (issue 3, DESIGN "Where the state lives").
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createRuntime, type Runtime, type RuntimeOptions } from "../lib/index.js";
import { NativeDb } from "../lib/native-db.js";
import { readStored } from "../lib/values.js";
import { Leftovers, Notes } from "./fixtures/storage-objects.js";
import { rejection } from "./helpers.js";


const runtimes: Runtime[] = [];
const dirs: string[] = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dn-storage-"));
  dirs.push(dir);
  return dir;
}

function start(options: Partial<RuntimeOptions> = {}): Record<string, any> {
  const rt = createRuntime({ durableObjects: { NOTES: Notes, LEFT: Leftovers }, ...options });

  runtimes.push(rt);
  return rt.env as Record<string, any>;
}

afterEach(async () => {
  for (const rt of runtimes.splice(0)) await rt.dispose();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** Reads a KV value through a second connection to the object's file, as another process would. */
function readFromFile(file: string, key: string): unknown {
  const db = new NativeDb(file, false);
  try {
    return readStored(db.kvGet(key));
  } finally {
    db.close();
  }
}

describe("files", () => {
  it("each object has its own database file, named by its hex id under the class", async () => {
    const dir = tempDir();
    const env = start({ persist: dir });
    const a = env.NOTES.getByName("a");
    await a.write("k", 1);
    await env.NOTES.getByName("b").write("k", 2);
    const files = fs.readdirSync(path.join(dir, "Notes")).filter((f) => f.endsWith(".sqlite")).sort();
    expect(files).toEqual([`${a.id}.sqlite`, `${env.NOTES.idFromName("b")}.sqlite`].sort());
    expect(fs.existsSync(path.join(dir, "runtime.sqlite"))).toBe(true);
  });

  it("data survives eviction, dispose and a new runtime on the same folder", async () => {
    const dir = tempDir();
    let env = start({ persist: dir });
    await env.NOTES.getByName("a").write("k", { nested: [1, 2] });
    expect(await env.NOTES.getByName("a").rows()).toEqual([{ n: 1 }]);
    await runtimes[0].evict(env.NOTES.getByName("a"));
    expect(await env.NOTES.getByName("a").read("k")).toEqual({ nested: [1, 2] });
    await runtimes.pop()!.dispose();
    env = start({ persist: dir, durability: "full" });
    expect(await env.NOTES.getByName("a").read("k")).toEqual({ nested: [1, 2] });
    expect(await env.NOTES.getByName("a").rows()).toEqual([{ n: 2 }]);
  });

  it("in memory, state lives as long as the runtime, across evictions", async () => {
    const env = start();
    await env.NOTES.getByName("a").write("k", "v");
    await runtimes[0].evict(env.NOTES.getByName("a"));
    expect(await env.NOTES.getByName("a").read("k")).toBe("v");
  });

  it('durability must be "normal" or "full"', () => {
    expect(() => start({ durability: "sometimes" as never })).toThrow(
      new TypeError('createRuntime(options): durability must be "normal" or "full", got string "sometimes".'),
    );
  });
});

describe("commits and the output gate", () => {
  it("an RPC result is released only after its writes are committed (visible to another connection)", async () => {
    const dir = tempDir();
    const env = start({ persist: dir });
    const stub = env.NOTES.getByName("a");
    const file = path.join(dir, "Notes", `${stub.id}.sqlite`);
    for (let i = 0; i < 20; i++) {
      expect(await stub.write(`k${i}`, i)).toBe("written");
      expect(readFromFile(file, `k${i}`)).toBe(i);
    }
  });

  it("writes of a turn commit at its end even while the event goes on awaiting", async () => {
    const dir = tempDir();
    const env = start({ persist: dir });
    const stub = env.NOTES.getByName("a");
    await stub.rows();
    const file = path.join(dir, "Notes", `${stub.id}.sqlite`);
    const pending = stub.writeThenWait("late", 150);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(readFromFile(file, "late")).toBe("pending");
    expect(await pending).toBe("done");
  });
});

describe("a broken database file", () => {
  it("gives an error naming the object and its file; other objects keep working", async () => {
    const dir = tempDir();
    const env = start({ persist: dir });
    const bad = env.NOTES.getByName("bad");
    fs.mkdirSync(path.join(dir, "Notes"), { recursive: true });
    const file = path.join(dir, "Notes", `${bad.id}.sqlite`);
    fs.writeFileSync(file, Buffer.alloc(8192, 0x5a));
    const err = await bad.read("k").then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toBe(
      `Cannot open the database of Durable Object Notes ${bad.id} (${file}): file is not a database: SQLITE_NOTADB`,
    );
    expect(await env.NOTES.getByName("good").write("k", 1)).toBe("written");
    expect(await env.NOTES.getByName("good").read("k")).toBe(1);
  });
});

const GONE =
  "This Durable Object instance is no longer running (it was reset or evicted, or its runtime was disposed); its ctx can no longer be used.";

describe("an instance that is gone", () => {
  it("cannot write, hold the gate or keep the object alive after its abort; the new instance sees nothing of it", async () => {
    const env = start();
    await env.LEFT.getByName("a").abortLeavingTimers().catch(() => undefined);
    expect(await Leftovers.late).toBe([GONE, GONE, GONE, GONE].join(" | "));
    expect(await env.LEFT.getByName("a").ghosts()).toEqual({ kv: undefined, tables: 0 });
  });

  it("a transaction it left open does not end or undo the new instance's transaction", async () => {
    const env = start();
    await env.LEFT.getByName("a").abortDuringTransaction().catch(() => undefined);
    const fresh = env.LEFT.getByName("a");
    expect(await fresh.newTransaction()).toBe("ok");
    expect(await fresh.values("old", "new", "new2")).toEqual([undefined, 1, 2]);
  });

  it("evicted with a transaction open: later writes are committed, not held back forever", async () => {
    const dir = tempDir();
    const env = start({ persist: dir });
    const stub = env.LEFT.getByName("a");
    expect(await stub.stuckTransaction()).toBe("answered");
    await runtimes[0].evict(stub);
    expect(await env.LEFT.getByName("a").write("k", "v")).toBe("written");
    expect(readFromFile(path.join(dir, "Leftovers", `${stub.id}.sqlite`), "k")).toBe("v");
  });

  it("after dispose, its storage is closed for good: no file is opened again", async () => {
    const dir = tempDir();
    const rt = createRuntime({ durableObjects: { NOTES: Notes }, persist: dir });
    const captured = await rt.runInDurableObject((rt.env as Record<string, any>).NOTES.getByName("a"), (_o, ctx) => ctx.storage);
    await rt.dispose();
    await expect(captured.put("k", 1)).rejects.toThrow(GONE);
  });
});

describe("the output gate and transactions of other events", () => {
  it("a result waits while another event's transaction holds its writes", async () => {
    const dir = tempDir();
    const env = start({ persist: dir });
    const stub = env.LEFT.getByName("a");
    await stub.slowWrite();
    const file = path.join(dir, "Leftovers", `${stub.id}.sqlite`);
    const answer = stub.slowWrite();
    await new Promise((resolve) => setTimeout(resolve, 5));
    const transaction = stub.holdTransaction(100);
    expect(await answer).toBe("answered");
    const db = new NativeDb(file, false);
    try {
      expect(db.exec("SELECT count(*) AS n FROM t", []).values.slice(0, 1)).toEqual([2]);
    } finally {
      db.close();
    }
    expect(await transaction).toBe("transaction done");
  });

  it("an event that wrote nothing is not held back by another's open transaction", async () => {
    const env = start();
    expect(await env.LEFT.getByName("a").stuckTransaction()).toBe("answered");
  });
});

describe("open database files", () => {
  it("past maxOpenDatabases, idle objects close their files and reopen them when used", async () => {
    const dir = tempDir();
    const env = start({ persist: dir, maxOpenDatabases: 3 });
    const names = ["a", "b", "c", "d", "e", "f"];
    for (const name of names) await env.NOTES.getByName(name).write("k", name);
    const openFiles = () =>
      fs
        .readdirSync("/proc/self/fd")
        .map((fd) => {
          try {
            return fs.readlinkSync(`/proc/self/fd/${fd}`);
          } catch {
            return "";
          }
        })
        .filter((target) => target.startsWith(path.join(dir, "Notes")) && target.endsWith(".sqlite")).length;
    expect(openFiles()).toBeLessThanOrEqual(3);
    for (const name of names) expect(await env.NOTES.getByName(name).read("k")).toBe(name);
    expect(openFiles()).toBeLessThanOrEqual(3);
  });

  it("maxOpenDatabases must be a positive integer", () => {
    expect(() => start({ maxOpenDatabases: 0 })).toThrow(
      new TypeError("createRuntime(options): maxOpenDatabases must be a positive integer, got number 0."),
    );
  });
});

describe("database handles", () => {
  it("a closed database's handle cannot reach the database that reuses its slot", () => {
    const closed = new NativeDb(null, false);
    closed.close();
    const reusing = new NativeDb(null, false);
    try {
      reusing.exec("CREATE TABLE t(x)", []);
      expect(() => closed.exec("SELECT * FROM t", [])).toThrow(/this object's database is closed/);
    } finally {
      reusing.close();
    }
  });
});

describe("second review: regressions", () => {
  it("open files are evicted least recently used first: an object used on every request stays open", async () => {
    const dir = tempDir();
    const env = start({ persist: dir, maxOpenDatabases: 2 });
    const hot = env.NOTES.getByName("hot");
    await hot.write("k", 1);
    const hotFile = path.join(dir, "Notes", `${hot.id}.sqlite`);
    const isOpen = () =>
      fs.readdirSync("/proc/self/fd").some((fd) => {
        try {
          return fs.readlinkSync(`/proc/self/fd/${fd}`) === hotFile;
        } catch {
          return false;
        }
      });
    let closed = 0;
    for (let i = 0; i < 10; i++) {
      await hot.read("k");
      await env.NOTES.getByName(`cold${i}`).write("k", i);
      if (!isOpen()) closed++;
    }
    expect(closed).toBe(0);
  });

  it("a failed commit before deleteAll() resets the object, as any failed commit does", async () => {
    const env = start();
    const stub = env.LEFT.getByName("a");
    await stub.write("kept", 1);
    const err = await rejection(
      runtimes[0].runInDurableObject(stub, async (_o, ctx) => {
        const sql = ctx.storage.sql;
        sql.exec("CREATE TABLE p(id INTEGER PRIMARY KEY)");
        sql.exec("CREATE TABLE c(pid INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)");
        sql.exec("INSERT INTO c VALUES (42)");
        await ctx.storage.deleteAll().catch(() => undefined);
      }),
    );
    expect(err.message).toMatch(/^Durable Object was reset and rolled back to its last known good state/);
    expect(err.durableObjectReset).toBe(true);
    expect(await env.LEFT.getByName("a").values("kept")).toEqual([1]);
  });

  it("an ordinary error whose text looks like a critical one is not treated as critical", async () => {
    const env = start();
    const outcome = await runtimes[0].runInDurableObject(env.LEFT.getByName("a"), (_o, ctx) => {
      const sql = ctx.storage.sql;
      sql.exec('CREATE TABLE t(v INTEGER CONSTRAINT "v: SQLITE_FULL" CHECK (v > 0))');
      let caught = "";
      try {
        sql.exec("INSERT INTO t VALUES (0)");
      } catch (err) {
        caught = (err as Error).message;
      }
      sql.exec("INSERT INTO t VALUES (1)");
      return { caught, rows: sql.exec("SELECT count(*) AS n FROM t").one().n };
    });
    expect(outcome).toEqual({
      caught: "CHECK constraint failed: v: SQLITE_FULL: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_CHECK)",
      rows: 1,
    });
  });
});
