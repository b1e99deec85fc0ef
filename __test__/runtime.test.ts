// createRuntime(): env and bindings, the ambient cloudflare:workers env, bad options, dispose, evict, Workers globals.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { env as ambientEnv } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DurableObjectNamespace } from "../lib/namespace.js";
import { createRuntime, type Runtime, type RuntimeOptions } from "../lib/runtime.js";
import type { DurableObjectStub } from "../lib/stub.js";
import { IdProbe, OtherProbe, type Remote } from "./fixtures/ids-objects.js";

const DISPOSED = "This durable-node runtime has been disposed; create a new one with createRuntime().";
const PENDING_AT_DISPOSE = "The durable-node runtime was disposed while this call was pending.";

const runtimes: Runtime[] = [];
const dirs: string[] = [];

function start(options: RuntimeOptions): Runtime {
  const rt = createRuntime(options);
  runtimes.push(rt);
  return rt;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "durable-node-runtime-"));
  dirs.push(dir);
  return dir;
}

function binding(rt: Runtime, name = "NS"): DurableObjectNamespace {
  return rt.env[name] as DurableObjectNamespace;
}

function probe(stub: DurableObjectStub): Remote<IdProbe> {
  return stub as Remote<IdProbe>;
}

/** Asserts the exact class and message of what `fn` throws. */
function expectThrow(fn: () => unknown, Class: ErrorConstructor, message: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(Class);
  expect((err as Error).message).toBe(message);
}

/** Asserts the exact class and message `promise` rejects with. */
async function expectReject(promise: Promise<unknown>, Class: ErrorConstructor, message: string): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Class);
  expect((err as Error).message).toBe(message);
}

beforeEach(() => {
  IdProbe.constructed = 0;
  IdProbe.lastEnv = undefined;
});

afterEach(async () => {
  for (const rt of runtimes.splice(0)) await rt.dispose();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("env and bindings", () => {
  it("env: a DurableObjectNamespace per class binding and the plain bindings as given", () => {
    const config = { level: 3 };
    const rt = start({
      durableObjects: { NS: IdProbe, OTHER: OtherProbe },
      bindings: { GREETING: "hello", CONFIG: config },
    });
    expect(Object.keys(rt.env)).toEqual(["NS", "OTHER", "GREETING", "CONFIG"]);
    expect(rt.env.NS).toBeInstanceOf(DurableObjectNamespace);
    expect(rt.env.OTHER).toBeInstanceOf(DurableObjectNamespace);
    expect(rt.env.GREETING).toBe("hello");
    expect(rt.env.CONFIG).toBe(config);
  });

  it("this.env inside the object is the runtime's env (spec 8)", async () => {
    const rt = start({ durableObjects: { NS: IdProbe }, bindings: { GREETING: "hello" } });
    const stub = probe(binding(rt).getByName("a"));
    expect(await stub.greeting()).toBe("hello");
    expect(IdProbe.lastEnv).toBe(rt.env);
  });

  it("two bindings to one class share a namespace: the same ids and the same instance", async () => {
    const rt = start({ durableObjects: { A: IdProbe, B: IdProbe } });
    const a = binding(rt, "A");
    const b = binding(rt, "B");
    expect(a.idFromName("x").toString()).toBe(b.idFromName("x").toString());
    expect(b.idFromString(a.newUniqueId().toString()).jurisdiction).toBe(undefined);
    expect(await probe(a.getByName("x")).increment()).toBe(1);
    expect(await probe(b.getByName("x")).increment()).toBe(2);
    expect(await probe(b.get(a.idFromName("x"))).increment()).toBe(3);
    expect(IdProbe.constructed).toBe(1);
  });

  it("ctx.exports: the class name holds a namespace of that class (spec 2, enable_ctx_exports)", async () => {
    const rt = start({ durableObjects: { NS: IdProbe, OTHER: OtherProbe } });
    const seen = await probe(binding(rt).getByName("x")).exportsSeen();
    expect(seen).toEqual({
      keys: ["IdProbe", "OtherProbe"],
      isNamespace: true,
      idOfA: binding(rt).idFromName("a").toString(),
    });
  });

  it("ctx.exports needs enable_ctx_exports: absent with an earlier compatibility date, unless the flag is given (spec §13)", async () => {
    const rt = start({ durableObjects: { NS: IdProbe }, compatibilityDate: "2025-11-16" });
    expect(await rt.runInDurableObject(binding(rt).getByName("x"), (_o, ctx) => "exports" in ctx)).toBe(false);
    const flagged = start({ durableObjects: { NS: IdProbe }, compatibilityDate: "2025-11-16", compatibilityFlags: ["enable_ctx_exports"] });
    expect(await flagged.runInDurableObject(binding(flagged).getByName("x"), (_o, ctx) => Object.keys(ctx.exports))).toEqual(["IdProbe"]);
    const dated = start({ durableObjects: { NS: IdProbe }, compatibilityDate: "2025-11-17" });
    expect(await dated.runInDurableObject(binding(dated).getByName("x"), (_o, ctx) => "exports" in ctx)).toBe(true);
  });
});

describe('env from "cloudflare:workers"', () => {
  it("shows the latest runtime's bindings", () => {
    start({ bindings: { GREETING: "first" } });
    expect(ambientEnv.GREETING).toBe("first");
    start({ durableObjects: { NS: IdProbe }, bindings: { GREETING: "second" } });
    expect(ambientEnv.GREETING).toBe("second");
    expect(Object.keys(ambientEnv)).toEqual(["NS", "GREETING"]);
    expect(ambientEnv.NS).toBeInstanceOf(DurableObjectNamespace);
  });

  it("is emptied of a runtime's bindings by its dispose", async () => {
    const rt = start({ bindings: { GREETING: "hello" } });
    expect(ambientEnv.GREETING).toBe("hello");
    await rt.dispose();
    expect(ambientEnv.GREETING).toBe(undefined);
    expect(Object.keys(ambientEnv)).toEqual([]);
  });

  it("keeps the latest runtime's bindings when an older runtime is disposed", async () => {
    const older = start({ bindings: { GREETING: "older" } });
    start({ bindings: { GREETING: "newer" } });
    await older.dispose();
    expect(ambientEnv.GREETING).toBe("newer");
  });
});

describe("class names (state is kept by class name)", () => {
  it("two different classes under one name → Error naming the binding", () => {
    const Twin = { IdProbe: class extends OtherProbe {} }.IdProbe;
    expectThrow(
      () => createRuntime({ durableObjects: { A: IdProbe, B: Twin } }),
      Error,
      'durableObjects.B: the name "IdProbe" is already bound to a different class or with different options; state is kept by class name, so each name must mean one class.',
    );
  });

  it("one class bound twice with different options → Error; with the same options it is one namespace", () => {
    expectThrow(
      () => createRuntime({ durableObjects: { A: IdProbe, B: { class: IdProbe, sqlite: false } } }),
      Error,
      'durableObjects.B: the name "IdProbe" is already bound to a different class or with different options; state is kept by class name, so each name must mean one class.',
    );
    const rt = start({ durableObjects: { A: IdProbe, B: { class: IdProbe } } });
    expect(binding(rt, "A").idFromName("x").toString()).toBe(binding(rt, "B").idFromName("x").toString());
  });

  it("className names the state's folder, whatever the class is called (minified code)", async () => {
    const dir = tempDir();
    const rt = start({ durableObjects: { NS: { class: IdProbe, className: "Room" } }, persist: dir });
    const stub = binding(rt).getByName("a");
    await rt.runInDurableObject(stub, (_instance, ctx) => ctx.storage.put("k", 1));
    expect(existsSync(join(dir, "Room", `${stub.id}.sqlite`))).toBe(true);
    expect(existsSync(join(dir, "IdProbe"))).toBe(false);

  });

  it("an empty className or an anonymous class → TypeError", () => {
    expectThrow(
      () => createRuntime({ durableObjects: { NS: { class: IdProbe, className: "" } } }),
      TypeError,
      'durableObjects.NS.className: expected a non-empty string, got string "".',
    );
    const anonymous = (() => class extends IdProbe {})();
    Object.defineProperty(anonymous, "name", { value: "" });
    expectThrow(
      () => createRuntime({ durableObjects: { NS: anonymous } }),
      TypeError,
      "durableObjects.NS: the class has no name; give it one, or { className }.",
    );
  });

  it("compatibilityDate must be YYYY-MM-DD and compatibilityFlags an array of strings", () => {
    expectThrow(
      () => createRuntime({ compatibilityDate: "2026-2-24" }),
      TypeError,
      'createRuntime(options): compatibilityDate must be a date as YYYY-MM-DD, got string "2026-2-24".',
    );
    expectThrow(
      () => createRuntime({ compatibilityFlags: "delete_all_preserves_alarm" as never }),
      TypeError,
      'createRuntime(options): compatibilityFlags must be an array of strings, got string "delete_all_preserves_alarm".',
    );
  });
});

describe("bad options", () => {
  const expected = "expected a Durable Object class (a constructor) or { class, sqlite?, uniqueKey? }";


  it("durableObjects entry that is a number → TypeError", () => {
    expectThrow(
      () => start({ durableObjects: { NS: 5 as never } }),
      TypeError,
      `durableObjects.NS: ${expected}, got number 5.`,
    );
  });

  it("durableObjects entry that is an arrow function → TypeError", () => {
    expectThrow(
      () => start({ durableObjects: { NS: (() => {}) as never } }),
      TypeError,
      `durableObjects.NS: ${expected}, got a function that is not a constructor.`,
    );
  });

  it("durableObjects entry { class: 5 } → TypeError", () => {
    expectThrow(
      () => start({ durableObjects: { NS: { class: 5 as never } } }),
      TypeError,
      `durableObjects.NS: ${expected}, got number 5.`,
    );
  });

  it('sqlite: "yes" → TypeError', () => {
    expectThrow(
      () => start({ durableObjects: { NS: { class: IdProbe, sqlite: "yes" as never } } }),
      TypeError,
      'durableObjects.NS.sqlite: expected a boolean, got string "yes".',
    );
  });

  it("uniqueKey: 1 → TypeError", () => {
    expectThrow(
      () => start({ durableObjects: { NS: { class: IdProbe, uniqueKey: 1 as never } } }),
      TypeError,
      "durableObjects.NS.uniqueKey: expected a string, got number 1.",
    );
  });

  it("a name in both durableObjects and bindings → Error", () => {
    expectThrow(
      () => start({ durableObjects: { NS: IdProbe }, bindings: { NS: "clash" } }),
      Error,
      'Binding "NS" is defined twice: in durableObjects and in bindings.',
    );
  });

  it("persist: 5 → TypeError", () => {
    expectThrow(
      () => start({ persist: 5 as never }),
      TypeError,
      "createRuntime(options): persist must be a folder path, true or false, got number 5.",
    );
  });

  it("idleTimeoutMs: -1 → TypeError", () => {
    expectThrow(
      () => start({ idleTimeoutMs: -1 }),
      TypeError,
      "createRuntime(options): idleTimeoutMs must be a positive number of milliseconds, got number -1.",
    );
  });

  it("createRuntime(null) → TypeError", () => {
    expectThrow(() => start(null as never), TypeError, "createRuntime(options): options must be an object.");
  });

  it("a refused runtime leaves the ambient env alone", () => {
    start({ bindings: { GREETING: "kept" } });
    expect(() => start({ durableObjects: { NS: IdProbe }, bindings: { NS: "clash" } })).toThrow();
    expect(ambientEnv.GREETING).toBe("kept");
  });
});

describe("dispose", () => {
  it("namespace methods throw the disposed error afterwards", async () => {
    const rt = start({ durableObjects: { NS: IdProbe } });
    const ns = binding(rt);
    await rt.dispose();
    expectThrow(() => ns.idFromName("a"), Error, DISPOSED);
    expectThrow(() => ns.newUniqueId(), Error, DISPOSED);
    expectThrow(() => ns.getByName("a"), Error, DISPOSED);
  });

  it("a stub made before dispose and never used rejects with the disposed error", async () => {
    const rt = start({ durableObjects: { NS: IdProbe } });
    const stub = probe(binding(rt).getByName("a"));
    await rt.dispose();
    await expectReject(stub.increment(), Error, DISPOSED);
  });

  it("a stub used before dispose rejects with the disposed error", async () => {
    const rt = start({ durableObjects: { NS: IdProbe } });
    const stub = probe(binding(rt).getByName("a"));
    expect(await stub.increment()).toBe(1);
    await rt.dispose();
    await expectReject(stub.increment(), Error, DISPOSED);
    await expectReject(stub.fetch("https://example.com/"), Error, DISPOSED);
  });

  it("a call pending at dispose rejects", async () => {
    const rt = start({ durableObjects: { NS: IdProbe } });
    const stub = probe(binding(rt).getByName("a"));
    const pending = stub.hang();
    expect(await stub.increment()).toBe(1);
    await rt.dispose();
    await expectReject(pending, Error, PENDING_AT_DISPOSE);
  });

  it("dispose twice resolves both times", async () => {
    const rt = start({ durableObjects: { NS: IdProbe } });
    await rt.dispose();
    await expect(rt.dispose()).resolves.toBe(undefined);
  });

  it("await using disposes the runtime at the end of the block (Symbol.asyncDispose)", async () => {
    let ns: DurableObjectNamespace;
    {
      await using rt = createRuntime({ durableObjects: { NS: IdProbe } });
      ns = binding(rt);
      expect(await probe(ns.getByName("a")).increment()).toBe(1);
    }
    expectThrow(() => ns.idFromName("a"), Error, DISPOSED);
  });
});

describe("evict", () => {
  it("evict: the next call constructs the object again, with its in-memory fields reset (spec 10)", async () => {
    const rt = start({ durableObjects: { NS: IdProbe } });
    const stub = probe(binding(rt).getByName("a"));
    expect(await stub.increment()).toBe(1);
    expect(await stub.increment()).toBe(2);
    await rt.evict(stub);
    expect(IdProbe.constructed).toBe(1);
    expect(await stub.increment()).toBe(1);
    expect(IdProbe.constructed).toBe(2);
  });

  it("evict of something that is not a stub → TypeError", async () => {
    const rt = start({ durableObjects: { NS: IdProbe } });
    const message = "runtime.evict(stub): expected a Durable Object stub.";
    await expectReject(rt.evict({} as never), TypeError, message);
    await expectReject(rt.evict(binding(rt).idFromName("a") as never), TypeError, message);
  });

  it("evict of a stub from another runtime → TypeError", async () => {
    const rt = start({ durableObjects: { NS: IdProbe } });
    const other = start({ durableObjects: { NS: IdProbe } });
    await expectReject(
      rt.evict(binding(other).getByName("a")),
      TypeError,
      "runtime.evict(stub): the stub belongs to another runtime.",
    );
  });
});

describe("runInDurableObject", () => {
  it("hands the live instance and its ctx to the callback, as an event of the object", async () => {
    const rt = start({ durableObjects: { NS: IdProbe } });
    const stub = probe(binding(rt).getByName("a"));
    expect(await stub.increment()).toBe(1);
    const seen = await rt.runInDurableObject(stub, (instance: IdProbe, ctx) => {
      expect(instance).toBeInstanceOf(IdProbe);
      return { id: ctx.id.toString(), name: ctx.id.name, count: instance.increment() };
    });
    expect(seen).toEqual({ id: stub.id.toString(), name: "a", count: 2 });
    expect(IdProbe.constructed).toBe(1);
  });

  it("returns the callback's value uncopied and rejects with what it throws", async () => {
    const rt = start({ durableObjects: { NS: IdProbe } });
    const stub = binding(rt).getByName("a");
    const marker = new Map();
    expect(await rt.runInDurableObject(stub, async () => marker)).toBe(marker);
    await expectReject(
      rt.runInDurableObject(stub, () => {
        throw new RangeError("inside");
      }),
      RangeError,
      "inside",
    );
    await expectReject(rt.runInDurableObject(stub, 5 as never), TypeError, "runtime.runInDurableObject(stub, fn): fn must be a function.");
    await expectReject(rt.runInDurableObject({} as never, () => 1), TypeError, "runtime.runInDurableObject(stub): expected a Durable Object stub.");
  });
});

describe("Workers globals", () => {
  it("scheduler.wait(10) resolves after at least 10 ms (spec 97 relies on it)", async () => {
    const scheduler = (globalThis as unknown as { scheduler: { wait(ms: number): Promise<void> } }).scheduler;
    const begin = performance.now();
    await expect(scheduler.wait(10)).resolves.toBe(undefined);
    // Timers may fire up to a millisecond early against performance.now(); the bound allows for that.
    expect(performance.now() - begin).toBeGreaterThanOrEqual(9);
  });

  it('navigator.userAgent is "Cloudflare-Workers"', () => {
    const navigator = (globalThis as unknown as { navigator: { userAgent: string } }).navigator;
    expect(navigator.userAgent).toBe("Cloudflare-Workers");
  });
  it("the Workers Response is made on first use: an app that never uses one does not load Node's fetch", () => {
    const dist = pathToFileURL(join(import.meta.dirname, "../dist/index.js")).href;
    const script = `
      const fetchLoaded = () => process.moduleLoadList.some((m) => m.includes("internal/deps/undici"));
      const { createRuntime, DurableObject } = await import(${JSON.stringify(dist)});
      class Counter extends DurableObject { n = 0; bump() { return ++this.n; } }
      const rt = createRuntime({ durableObjects: { COUNTER: Counter } });
      const seen = { called: await rt.env.COUNTER.getByName("a").bump(), before: fetchLoaded() };
      const { WebSocketPair } = globalThis;
      const upgrade = new Response(null, { status: 101, webSocket: new WebSocketPair()[0] });
      Object.assign(seen, { after: fetchLoaded(), status: upgrade.status, ours: upgrade instanceof Response });
      Object.assign(seen, { same: globalThis.Response === Response, plain: (await new Response("x").text()) });
      globalThis.Response = "replaced";
      seen.replaced = globalThis.Response;
      await rt.dispose();
      console.log(JSON.stringify(seen));
    `;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
    expect(JSON.parse(out)).toEqual({
      called: 1,
      before: false,
      after: true,
      status: 101,
      ours: true,
      same: true,
      plain: "x",
      replaced: "replaced",
    });
  });
});

describe("persist", () => {
  it("persist: dir creates dir/runtime.sqlite (DESIGN, where the state lives)", () => {
    const dir = tempDir();
    start({ persist: dir, durableObjects: { NS: IdProbe } });
    expect(existsSync(join(dir, "runtime.sqlite"))).toBe(true);
  });
});
