// Stubs and RPC: spec §8 lines 193–205, and §2 lines 12–13 (fetch and RPC on plain classes).
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RpcStub } from "cloudflare:workers";
import { createRuntime, type Runtime } from "../lib/index.js";
import { Counter, NoFetch, Plain, Rpc } from "./fixtures/objects.js";
import { rejection } from "./helpers.js";

let runtime: Runtime;
let env: Record<string, any>;

beforeEach(() => {
  runtime = createRuntime({ durableObjects: { RPC: Rpc, PLAIN: Plain, NOFETCH: NoFetch } });
  env = runtime.env as Record<string, any>;
});
afterEach(() => runtime.dispose());

describe("calls", () => {
  it("methods are called with copied arguments and return copied results", async () => {
    const stub = env.RPC.getByName("a");
    expect(await stub.add(2, 3)).toBe(5);
    const arg = { x: 1 };
    const result = await stub.mutateAndReturn(arg);
    expect(arg).toEqual({ x: 1 });
    expect(result).toEqual({ x: 99 });
  });

  it("Date, Map, Set, RegExp, Uint8Array, BigInt, cycles and errors round-trip", async () => {
    const stub = env.RPC.getByName("a");
    const cyclic: any = { name: "c" };
    cyclic.self = cyclic;
    const value = {
      date: new Date(1700000000000),
      map: new Map<unknown, unknown>([["k", new Set([1, 2])]]),
      re: /a+b/gi,
      bytes: new Uint8Array([1, 2, 3]),
      big: 10n,
      cyclic,
      error: new RangeError("as a value"),
      nothing: undefined,
    };
    const back = await stub.echo(value);
    expect(back.date).toBeInstanceOf(Date);
    expect(back.date.getTime()).toBe(1700000000000);
    expect(back.map.get("k")).toEqual(new Set([1, 2]));
    expect(back.re.flags).toBe("gi");
    expect(back.bytes).toEqual(new Uint8Array([1, 2, 3]));
    expect(back.bytes).not.toBe(value.bytes);
    expect(back.big).toBe(10n);
    expect(back.cyclic.self).toBe(back.cyclic);
    expect(back.error).toBeInstanceOf(RangeError);
    expect(back.error.message).toBe("as a value");
    expect("nothing" in back).toBe(true);
  });

  it("getters are read over RPC: await stub.greeting", async () => {
    expect(await env.RPC.getByName("a").greeting).toBe("hello");
  });

  it("a property added to a stub is local and callable (spec 197)", () => {
    const stub = env.RPC.getByName("a");
    stub.localHelper = () => "local";
    expect(stub.localHelper()).toBe("local");
  });
});

describe("errors", () => {
  it("errors keep their class and message and gain remote = true (spec 201)", async () => {
    const stub = env.RPC.getByName("a");
    const err = await rejection(stub.throwType());
    expect(err).toBeInstanceOf(TypeError);
    expect(err.message).toBe("thrown from DO");
    expect(err.remote).toBe(true);
    const range = await rejection(stub.throwRange());
    expect(range).toBeInstanceOf(RangeError);
    expect(range.remote).toBe(true);
  });

  it("an error of a custom class arrives as Error with the same message", async () => {
    const err = await rejection(env.RPC.getByName("a").throwCustom());
    expect(err.constructor).toBe(Error);
    expect(err.message).toBe("custom");
    expect(err.remote).toBe(true);
  });

  it("reserved names are refused (spec 198)", async () => {
    const stub = env.RPC.getByName("a");
    for (const name of ["alarm", "connect", "webSocketMessage", "webSocketClose", "webSocketError", "dup", "constructor"]) {
      const err = await rejection(stub[name]());
      expect(err).toBeInstanceOf(TypeError);
      expect(err.message).toBe(`'${name}' is a reserved method and cannot be called over RPC.`);
    }
  });

  it("a missing method, env and ctx are not exposed (spec 199)", async () => {
    const stub = env.RPC.getByName("a");
    for (const name of ["nope", "env", "ctx"]) {
      const err = await rejection(stub[name]());
      expect(err).toBeInstanceOf(TypeError);
      expect(err.message).toBe(`The RPC receiver does not implement the method "${name}".`);
    }
  });

  it("own instance functions and Object.prototype methods are not callable (spec 200)", async () => {
    const stub = env.RPC.getByName("a");
    for (const name of ["ownFn", "toString", "hasOwnProperty"]) {
      const err = await rejection(stub[name]());
      expect(err.message).toBe(`The RPC receiver does not implement the method "${name}".`);
    }
  });

  it("returning a class instance that is not an RpcTarget → DataCloneError (spec 202)", async () => {
    const err = await rejection(env.RPC.getByName("a").returnsClass());
    expect(err.name).toBe("DataCloneError");
    expect(err.message).toBe('Could not serialize object of type "Klass". This type does not support serialization.');
  });

  it("functions and symbols in arguments that cannot be cloned are refused at the call", async () => {
    const err = await rejection(env.RPC.getByName("a").echo(Symbol("q")));
    expect(err.name).toBe("DataCloneError");
    expect(err.message).toBe("Symbol(q) could not be cloned.");
  });

  it("arguments or results over 32 MiB → Error with the size (spec 203)", async () => {
    const stub = env.RPC.getByName("a");
    const big = "x".repeat(32 * 1024 * 1024 + 1);
    const err = await rejection(stub.echo({ big }));
    expect(err.message).toBe(
      "Serialized RPC arguments or return values are limited to 32MiB, but the size of this value was: 33554433 bytes.",
    );
    const bytes = await rejection(stub.echo(new Uint8Array(32 * 1024 * 1024 + 2)));
    expect(bytes.message).toMatch(/^Serialized RPC arguments or return values are limited to 32MiB/);
    expect(await stub.echo("x".repeat(1024))).toHaveLength(1024);
  });

  it("a pipelined property path deeper than 64 → TypeError (spec 203)", () => {
    let member: any = env.RPC.getByName("a");
    expect(() => {
      for (let i = 0; i < 65; i++) member = member[`p${i}`];
    }).toThrow(new TypeError("RPC pipelined property path is too deep (max 64)."));
  });
});

describe("stubs for functions and RpcTargets", () => {
  it("a returned RpcTarget is a stub whose methods run in the object (pipelining)", async () => {
    const stub = env.RPC.getByName("a");
    expect(await stub.getCounter(10).increment()).toBe(11);
    const counter = await stub.getCounter(1);
    expect(await counter.increment(5)).toBe(6);
    expect(await counter.increment()).toBe(7);
    expect(await counter.current).toBe(7);
  });

  it("results nest stubs: objects, arrays and functions inside a result", async () => {
    const result = await env.RPC.getByName("a").nested();
    expect(result.list).toEqual([1, 2]);
    expect(await result.counter.increment()).toBe(6);
    expect(await result.fn(21)).toBe(42);
    expect(await env.RPC.getByName("a").nested().counter.increment(2)).toBe(7);
  });

  it("a Durable Object stub sent over RPC arrives as a plain stub: no id or name, calls still reach it (spec 205)", async () => {
    const stub = env.RPC.getByName("a");
    await env.RPC.getByName("b").record(7);
    const peer = await stub.peer("b");
    expect(peer.id).toBeUndefined();
    expect(peer.name).toBeUndefined();
    expect(await peer.order()).toEqual([7]);
    expect(await (await peer.fetch("https://do/peer")).text()).toBe("GET /peer ");
  });

  it("a returned function is a callable stub (spec 202)", async () => {
    const fn = await env.RPC.getByName("a").returnsFunction();
    expect(typeof fn).toBe("function");
    expect(await fn(1)).toBe(101);
  });

  it("a function passed as an argument is called back from the object", async () => {
    const calls: number[] = [];
    const result = await env.RPC.getByName("a").callBack(async (x: number) => {
      calls.push(x);
      return x * 10;
    }, 4);
    expect(result).toBe(41);
    expect(calls).toEqual([4]);
  });

  it("an RpcTarget stub's prototype-less members follow the RPC rules", async () => {
    const counter = await env.RPC.getByName("a").getCounter(1);
    const err = await rejection(counter.value());
    expect(err.message).toBe('The RPC receiver does not implement the method "value".');
  });

  it("new RpcStub(target) wraps a local RpcTarget", async () => {
    const stub = new RpcStub(new Counter(3)) as any;
    expect(await stub.increment()).toBe(4);
  });

  it("a disposed stub rejects: RPC stub used after being disposed (spec 204)", async () => {
    const counter = await env.RPC.getByName("a").getCounter(1);
    counter[Symbol.dispose]();
    const err = await rejection(counter.increment());
    expect(err.message).toBe("RPC stub used after being disposed.");
    const stub = env.RPC.getByName("b");
    {
      using scoped = stub;
      expect(await scoped.ping()).toBe(1);
    }
    expect((await rejection(stub.ping())).message).toBe("RPC stub used after being disposed.");
    expect(await env.RPC.getByName("b").ping()).toBe(1);
  });
});

describe("fetch", () => {
  it("stub.fetch delivers a Request and returns the object's Response", async () => {
    const res = await env.RPC.getByName("a").fetch("https://do/path", { method: "POST", body: "body" });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-object")).toBe("rpc");
    expect(await res.text()).toBe("POST /path body");
    const viaRequest = await env.RPC.getByName("a").fetch(new Request("http://x/r"));
    expect(await viaRequest.text()).toBe("GET /r ");
  });

  it("a relative URL → TypeError: Invalid URL: /rel (spec 196)", async () => {
    const err = await rejection(env.RPC.getByName("a").fetch("/rel"));
    expect(err).toBeInstanceOf(TypeError);
    expect(err.message).toBe("Invalid URL: /rel");
  });

  it("fetch to a class without fetch() → Handler does not export a fetch() function. (spec 12)", async () => {
    const err = await rejection(env.NOFETCH.getByName("a").fetch("http://x/"));
    expect(err.message).toBe("Handler does not export a fetch() function.");
  });

  it("a class not extending DurableObject serves fetch but refuses RPC (spec 13)", async () => {
    const stub = env.PLAIN.getByName("a");
    expect(await (await stub.fetch("http://x/")).text()).toBe("plain");
    const err = await rejection(stub.hello());
    expect(err).toBeInstanceOf(TypeError);
    expect(err.message).toBe(
      "The receiving Durable Object does not support RPC, because its class was not declared with `extends DurableObject`. In order to enable RPC, make sure your class extends the special class `DurableObject`, which can be imported from the module \"cloudflare:workers\".",
    );
  });
});

describe("ordering and re-entrancy", () => {
  it("calls to one object are delivered in FIFO order", async () => {
    const stub = env.RPC.getByName("fifo");
    await Promise.all(Array.from({ length: 200 }, (_, i) => stub.record(i)));
    expect(await stub.order()).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });

  it("A → B → A re-entrant calls complete instead of deadlocking", async () => {
    expect(await env.RPC.getByName("A").callPeer("B", 3)).toBe("bottom<-A<-B<-A");
  });

  it("the input gate does not cover non-storage awaits: 5 concurrent calls interleave (spec 97)", async () => {
    const stub = env.RPC.getByName("interleave");
    expect(await Promise.all(Array.from({ length: 5 }, () => stub.slowIncrement()))).toEqual([1, 1, 1, 1, 1]);
  });
});
