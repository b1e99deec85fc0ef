// DurableObjectStub: `ns.get(id)`; methods and properties become RPC calls into the object.

import type { ActorHost, Generation } from "./actor.js";
import type { DurableObjectId } from "./id.js";
import { copyValue, dispatch, registerStub, rpcProperty, type Invoke } from "./rpc.js";
import { WebSocket } from "./websocket.js";
import { DurableObject } from "./workers.js";

const RESERVED: ReadonlySet<string> = new Set([
  "fetch",
  "connect",
  "alarm",
  "webSocketMessage",
  "webSocketClose",
  "webSocketError",
  "dup",
  "constructor",
]);

const NOT_RPC =
  "The receiving Durable Object does not support RPC, because its class was not declared with `extends DurableObject`. In order to enable RPC, make sure your class extends the special class `DurableObject`, which can be imported from the module \"cloudflare:workers\".";

const CORE = Symbol("durable-node.stub");

/** Finds (or creates) the host of an id; throws once the runtime is disposed. */
export type HostLookup = (id: DurableObjectId) => ActorHost;

class StubCore {
  #host: ActorHost | undefined;
  #generation: Generation | undefined;
  #disposed = false;
  readonly members = new Map<string, unknown>();

  constructor(
    readonly lookup: HostLookup,
    readonly id: DurableObjectId,
  ) {}

  /** The host, and the generation this stub is bound to from its first use on. */
  #route(): [ActorHost, Generation] {
    if (this.#disposed) throw new Error("RPC stub used after being disposed.");
    const host = (this.#host ??= this.lookup(this.id));
    const generation = (this.#generation ??= host.generation);
    return [host, generation];
  }

  readonly invoke: Invoke = (path, args) => {
    try {
      const [host, generation] = this.#route();
      const copied = args && (copyValue(args, undefined) as unknown[]);
      return host.deliver(generation, (instance) => callInto(instance, path, copied), true);
    } catch (err) {
      return Promise.reject(err);
    }
  };

  fetch(input: Request | string | URL, init?: RequestInit): Promise<Response> {
    try {
      const request = toRequest(input, init);
      const [host, generation] = this.#route();
      return host.deliver(generation, (instance) => fetchInto(instance, request), false).then((response) => {
        // The object answered with a socket it accept()ed: it stays in memory while that is open.
        const client = (response as { webSocket?: unknown } | null)?.webSocket;
        const server = client instanceof WebSocket ? WebSocket.peerOf(client) : undefined;
        if (server !== undefined && WebSocket.isAccepted(server)) host.holdForSocket(server);
        return response as Response;
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  dispose(): void {
    this.#disposed = true;
  }
}

function callInto(instance: object, path: string[], args: unknown[] | undefined): unknown {
  if (!(instance instanceof DurableObject)) throw new TypeError(NOT_RPC);
  return dispatch(instance, path, args, RESERVED);
}

function fetchInto(instance: { fetch?: (r: Request) => unknown }, request: Request): unknown {
  if (typeof instance.fetch !== "function") throw new Error("Handler does not export a fetch() function.");
  return instance.fetch(request);
}

function toRequest(input: Request | string | URL, init: RequestInit | undefined): Request {
  if (input instanceof Request) return init === undefined ? input : new Request(input, init);
  const url = input instanceof URL ? input.href : String(input);
  // Relative URLs are refused since compat date 2021-11-10 (durable_object_fetch_requires_full_url).
  if (!URL.canParse(url)) throw new TypeError(`Invalid URL: ${url}`);
  return new Request(url, init);
}

export class DurableObjectStub {
  // Own enumerable, in this order (`Object.keys(stub)` → ["name", "id"]).
  readonly name: string | undefined;
  readonly id: DurableObjectId;
  declare readonly [CORE]: StubCore;

  constructor(lookup: HostLookup, id: DurableObjectId) {
    this.name = id.name;
    this.id = id;
    Object.defineProperty(this, CORE, { value: new StubCore(lookup, id) });
  }

  fetch(input: Request | string | URL, init?: RequestInit): Promise<Response> {
    return this[CORE].fetch(input, init);
  }

  [Symbol.dispose](): void {
    this[CORE].dispose();
  }
}

// Object.prototype members (toString, hasOwnProperty…) and `constructor` are RPC names like any
// other, refused by the receiver (spec 198, 200).
Object.setPrototypeOf(DurableObjectStub.prototype, null);
delete (DurableObjectStub.prototype as { constructor?: unknown }).constructor;

const STUB_HANDLER: ProxyHandler<DurableObjectStub> = {
  get(target, prop) {
    // Local members win: id, name, fetch, and whatever the caller added to the stub (spec 197).
    if (prop in target) return Reflect.get(target, prop);
    if (typeof prop !== "string" || prop === "then") return undefined;
    const core = target[CORE];
    let member = core.members.get(prop);
    if (member === undefined) core.members.set(prop, (member = rpcProperty(core.invoke, [prop])));
    return member;
  },
};

/**
 * What a caller sees of an object's class through a stub: each method as an RPC call returning
 * a Promise of its (awaited) result, each other public member as a Promise of its value.
 * (Pipelining — calling on a result before awaiting it — works at runtime beyond these types.)
 */
export type Rpc<T> = {
  readonly [K in keyof T as K extends keyof DurableObjectStub ? never : K]: T[K] extends (...args: infer A) => infer R
    ? (...args: A) => Pipelined<Awaited<R>>
    : Pipelined<Awaited<T[K]>>;
};

/** A result not awaited yet, on which calls already work (`stub.session(u).click()`). */
export type Pipelined<R> = Promise<R> & (R extends object ? Rpc<R> : unknown);

/** A stub to an object of class `T`: its id, name and fetch, and `T`'s members over RPC. */
export type TypedStub<T = unknown> = DurableObjectStub & Rpc<T>;

export function makeStub(lookup: HostLookup, id: DurableObjectId): DurableObjectStub {
  return registerStub(new Proxy(new DurableObjectStub(lookup, id), STUB_HANDLER), true);
}
