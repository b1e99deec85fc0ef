// The object's life: spec §1 shape checks (1–3, 7), §2 construction, critical sections, abort and
// resets (8–10, 14–18, 22–26), the input gate (§5 lines 95–97) and eviction.
import { afterEach, describe, expect, it } from "vitest";
import { DurableObject } from "cloudflare:workers";
import { createRuntime, type Runtime, type RuntimeOptions } from "../lib/index.js";
import { FailingConstructor, Life } from "./fixtures/lifecycle-objects.js";
import { rejection } from "./helpers.js";

let runtime: Runtime | undefined;

function start(options: Partial<RuntimeOptions> = {}): Record<string, any> {
  Life.constructed = 0;
  runtime = createRuntime({ durableObjects: { LIFE: Life, FAILING: FailingConstructor }, ...options });
  return runtime.env as Record<string, any>;
}
afterEach(async () => {
  await runtime?.dispose();
  runtime = undefined;
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("ctx shape (spec 1–3, 7–8)", () => {
  it("prototype methods, lazy own properties and memoisation", async () => {
    const shape = await start().LIFE.getByName("a").ctxShape();
    expect(shape.protoNames).toEqual([
      "waitUntil",
      "blockConcurrencyWhile",
      "acceptWebSocket",
      "getWebSockets",
      "setWebSocketAutoResponse",
      "getWebSocketAutoResponse",
      "getWebSocketAutoResponseTimestamp",
      "setHibernatableWebSocketEventTimeout",
      "getHibernatableWebSocketEventTimeout",
      "getTags",
      "abort",
      "constructor",
    ]);
    expect(shape.keys).toEqual(["facets", "container", "storage", "id", "props", "exports"]);
    expect(shape.idMemoised).toBe(true);
    expect(shape.props).toEqual({});
    expect(shape.container).toBeUndefined();
    expect(shape.facetsType).toBe("object");
  });

  it("this.ctx and this.env are the constructor's arguments, own enumerable first keys (spec 8)", async () => {
    const env = start({ bindings: { GREETING: "hi" } });
    const shape = await env.LIFE.getByName("a").ctxShape();
    expect(shape.sameCtx).toBe(true);
    expect(shape.sameEnv).toBe(true);
    expect(Life.lastEnv).toBe(env);
    expect(Life.ownKeys.slice(0, 2)).toEqual(["ctx", "env"]);
  });

  it("super(ctx, env) with something that is not a DurableObjectState → TypeError (spec 9)", () => {
    class Fake extends DurableObject {}
    expect(() => new Fake({} as never, {})).toThrow(
      new TypeError("Failed to construct 'DurableObject': parameter 1 is not of type 'DurableObjectState'."),
    );
  });

  it("setHibernatableWebSocketEventTimeout: null until set, cleared by 0, max 7 days (spec 234–235)", () => {
    start();
    return runInObject(async () => {
      const ctx = Life.lastCtx!;
      expect(ctx.getHibernatableWebSocketEventTimeout()).toBeNull();
      ctx.setHibernatableWebSocketEventTimeout(1000);
      expect(ctx.getHibernatableWebSocketEventTimeout()).toBe(1000);
      ctx.setHibernatableWebSocketEventTimeout(0);
      expect(ctx.getHibernatableWebSocketEventTimeout()).toBeNull();
      expect(() => ctx.setHibernatableWebSocketEventTimeout(604800001)).toThrow(
        new Error("Event timeout should not exceed 604800000 ms."),
      );
    });
  });
});

async function runInObject(check: () => Promise<void>): Promise<void> {
  await (runtime!.env as Record<string, any>).LIFE.getByName("a").getField();
  await check();
}

describe("construction", () => {
  it("the constructor runs on the first call, not when the stub is made", async () => {
    const env = start();
    const stub = env.LIFE.getByName("a");
    expect(Life.constructed).toBe(0);
    await stub.getField();
    await stub.getField();
    expect(Life.constructed).toBe(1);
  });

  it("a constructor that throws fails the call that needed it; the next call constructs again", async () => {
    FailingConstructor.attempts = 0;
    const env = start();
    const err = await rejection(env.FAILING.getByName("a").ping());
    expect(err).toBeInstanceOf(RangeError);
    expect(err.message).toBe("constructor failed");
    expect(err.remote).toBe(true);
    expect(await env.FAILING.getByName("a").ping()).toBe(2);
  });

  it("blockConcurrencyWhile in the constructor holds the first call until it finishes", async () => {
    const env = start({ bindings: { SLOW_START: true } });
    expect(await env.LIFE.getByName("a").isReady()).toBe(true);
  });
});

describe("blockConcurrencyWhile", () => {
  it("returns the callback's value, async or sync (spec 15)", async () => {
    const stub = start().LIFE.getByName("a");
    expect(await stub.bcwValue(false)).toBe(5);
    expect(await stub.bcwValue(true)).toBe(6);
  });

  it("holds the input gate: a call made during the critical section waits for it and for the code awaiting it (spec 95)", async () => {
    const stub = start().LIFE.getByName("gate");
    const first = stub.guarded("a", 30);
    await sleep(5);
    await Promise.all([first, stub.quick("b")]);
    expect(await stub.getLog()).toEqual(["a start", "a critical done", "a end", "b"]);
  });

  it("a throwing callback resets the object; the caller gets the error with durableObjectReset (spec 16, 25)", async () => {
    const env = start();
    const stub = env.LIFE.getByName("a");
    await stub.setField("changed");
    const err = await rejection(stub.bcwThrows("bcw boom"));
    expect(err.message).toBe("bcw boom");
    expect(err.durableObjectReset).toBe(true);
    const again = await rejection(stub.getField());
    expect(again.message).toBe("bcw boom");
    expect(again.durableObjectReset).toBe(true);
    expect(await env.LIFE.getByName("a").getField()).toBe("fresh");
    expect(Life.constructed).toBe(2);
  });

  it("a callback running past the timeout resets the object (spec 17)", async () => {
    const env = start({ blockConcurrencyTimeoutMs: 40 });
    const err = await rejection(env.LIFE.getByName("a").bcwForever());
    expect(err.message).toBe(
      "A call to blockConcurrencyWhile() in a Durable Object waited for too long. The call was canceled and the Durable Object was reset.",
    );
    expect(err.durableObjectReset).toBe(true);
    expect(await env.LIFE.getByName("a").getField()).toBe("fresh");
  });

  it("nesting: depth 64 is allowed, the 65th call throws synchronously and is catchable (spec 18)", async () => {
    const stub = start().LIFE.getByName("a");
    expect(await stub.nestCritical(63)).toBe("no error");
    expect(await stub.nestCritical(64)).toBe("caught: blockConcurrencyWhile() calls are nested too deeply.");
  });
});

describe("abort", () => {
  it("abort(reason): the caller gets Error(reason) with durableObjectReset (spec 22)", async () => {
    const stub = start().LIFE.getByName("a");
    const err = await rejection(stub.abortWith("myreason"));
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toBe("myreason");
    expect(err.durableObjectReset).toBe(true);
  });

  it("abort() without a reason (spec 23)", async () => {
    const err = await rejection(start().LIFE.getByName("a").abortWith());
    expect(err.message).toBe("Application called abort() to reset Durable Object.");
  });

  it("the same stub keeps failing with the reason; a new stub reaches a fresh instance (spec 10, 25)", async () => {
    const env = start();
    const stub = env.LIFE.getByName("a");
    await stub.setField("changed");
    await rejection(stub.abortWith("myreason"));
    const again = await rejection(stub.getField());
    expect(again.message).toBe("myreason");
    expect(again.durableObjectReset).toBe(true);
    expect(await env.LIFE.getByName("a").getField()).toBe("fresh");
    expect(await env.LIFE.get(env.LIFE.idFromName("a")).getField()).toBe("fresh");
    expect(Life.constructed).toBe(2);
  });

  it("in-flight calls and RpcTarget calls reject with the reason; later target calls fail (spec 26)", async () => {
    const env = start();
    const stub = env.LIFE.getByName("a");
    const ticket = await stub.ticket();
    expect(await ticket.ping()).toBe("pong");
    const pending = rejection(stub.hang());
    const pendingOnTarget = rejection(ticket.wait());
    await sleep(1);
    await rejection(env.LIFE.getByName("a").abortWith("gone"));
    expect((await pending).message).toBe("gone");
    expect((await pendingOnTarget).message).toBe("gone");
    const later = await rejection(ticket.ping());
    expect(later.message).toBe("The execution context which hosts this callback is no longer running.");
  });
});

describe("waitUntil and eviction", () => {
  it("waitUntil returns undefined and does not delay the response (spec 14)", async () => {
    const stub = start().LIFE.getByName("a");
    const t0 = performance.now();
    expect(await stub.background(200)).toBe("undefined");
    expect(performance.now() - t0).toBeLessThan(150);
  });

  it("an idle object is evicted: the constructor runs again and fields are lost (spec 10)", async () => {
    const env = start({ idleTimeoutMs: 20 });
    const stub = env.LIFE.getByName("a");
    await stub.setField("changed");
    await sleep(120);
    expect(await stub.getField()).toBe("fresh");
    expect(Life.constructed).toBe(2);
  });

  it("an object with a call in flight or a waitUntil pending is not evicted", async () => {
    const env = start({ idleTimeoutMs: 20 });
    const stub = env.LIFE.getByName("a");
    await stub.setField("changed");
    expect(await stub.wait(100)).toBe("waited");
    await stub.background(150);
    await sleep(80);
    expect(await stub.getField()).toBe("changed");
    expect(Life.constructed).toBe(1);
  });

  it("runtime.evict(stub) forces it; the same stub keeps working", async () => {
    const env = start();
    const stub = env.LIFE.getByName("a");
    await stub.setField("changed");
    await runtime!.evict(stub);
    expect(await stub.getField()).toBe("fresh");
    expect(Life.constructed).toBe(2);
  });
});
