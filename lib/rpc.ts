// RPC values: copying arguments and results across a stub, stubs for functions and RpcTargets,
// and the pipelining proxies (`stub.a.b()`, `stub.getCounter().increment()`).

import { dataCloneError, remoteError } from "./errors.js";

/** Marker base class: instances travel by reference, as stubs, instead of being copied. */
export abstract class RpcTarget {}

/** Sends a call (`args` given) or a property read along `path` to the other side. */
export type Invoke = (path: string[], args: unknown[] | undefined) => Promise<unknown>;

/** Where a local stub's calls run: in an object's event queue, while its instance lives. */
export interface Owner {
  deliverToTarget(work: () => unknown): Promise<unknown>;
}

const MAX_PATH = 64;
/** Cloudflare's cap on what one RPC call or result carries (spec 203). */
const MAX_PAYLOAD = 32 * 1024 * 1024;
const STUBS = new WeakSet<object>();
const DURABLE_OBJECT_STUBS = new WeakSet<object>();

export function isStub(value: unknown): boolean {
  return (typeof value === "object" || typeof value === "function") && value !== null && STUBS.has(value);
}

export function registerStub<T extends object>(stub: T, durableObject = false): T {
  STUBS.add(stub);
  if (durableObject) DURABLE_OBJECT_STUBS.add(stub);
  return stub;
}

/**
 * A Durable Object stub sent over RPC arrives as a plain stub: calls and fetch() reach the same
 * object, but its `id` and `name` stay behind (spec 205).
 */
function plainStub(stub: any): any {
  return registerStub(
    new Proxy(function RpcStub() {}, {
      get(_target, prop) {
        if (prop === "fetch") return (input: unknown, init?: unknown) => stub.fetch(input, init);
        if (prop === Symbol.dispose) return () => stub[Symbol.dispose]();
        if (typeof prop !== "string" || prop === "then" || prop === "id" || prop === "name") return undefined;
        return stub[prop];
      },
    }),
  );
}

function payloadTooLarge(bytes: number): Error {
  return new Error(
    `Serialized RPC arguments or return values are limited to 32MiB, but the size of this value was: ${bytes} bytes.`,
  );
}

/** A thenable for a remote result that also pipelines calls on what it will resolve to. */
export function rpcPromise(promise: Promise<unknown>): any {
  const pipelined: Invoke = (path, args) => promise.then((value) => pipeline(value, path, args));
  let members: Map<string, unknown> | undefined;
  // An object, not a function: `expect(promise).rejects` and the like call what is a function.
  return new Proxy(Object.create(null), {
    get(_target, prop) {
      if (prop === "then") return promise.then.bind(promise);
      if (prop === "catch") return promise.catch.bind(promise);
      if (prop === "finally") return promise.finally.bind(promise);
      if (typeof prop !== "string") return undefined;
      members ??= new Map();
      let member = members.get(prop);
      if (member === undefined) members.set(prop, (member = rpcProperty(pipelined, [prop])));
      return member;
    },
  });
}

function pipeline(value: any, path: string[], args: unknown[] | undefined): unknown {
  let holder = value;
  for (const name of path.slice(0, -1)) holder = holder[name];
  const last = path[path.length - 1];
  return args ? holder[last](...args) : holder[last];
}

/** `stub.x`: awaiting it reads the property remotely, calling it calls the method. */
export function rpcProperty(invoke: Invoke, path: string[]): any {
  let members: Map<string, unknown> | undefined;
  return new Proxy(function RpcProperty() {}, {
    apply(_target, _this, args: unknown[]) {
      return rpcPromise(invoke(path, args));
    },
    get(_target, prop) {
      if (prop === "then") {
        return (onFulfilled?: (v: unknown) => unknown, onRejected?: (e: unknown) => unknown) =>
          invoke(path, undefined).then(onFulfilled, onRejected);
      }
      if (typeof prop !== "string") return undefined;
      if (path.length >= MAX_PATH) throw new TypeError("RPC pipelined property path is too deep (max 64).");
      members ??= new Map();
      let member = members.get(prop);
      if (member === undefined) members.set(prop, (member = rpcProperty(invoke, [...path, prop])));
      return member;
    },
  });
}

let vitestPoolMessages = false;

/**
 * Words a missing member as @cloudflare/vitest-pool-workers does: its wrappers around the
 * receivers answer before workerd can, so suites written for it assert its wording.
 */
export function useVitestPoolMessages(): void {
  vitestPoolMessages = true;
}

function missingMember(receiver: object, name: string): TypeError {
  if (!vitestPoolMessages) return new TypeError(`The RPC receiver does not implement the method "${name}".`);
  const quoted = JSON.stringify(name);
  if (!Reflect.has(receiver, name)) return new TypeError(`The RPC receiver does not implement ${quoted}.`);
  return new TypeError(
    [
      `The RPC receiver's prototype does not implement ${quoted}, but the receiver instance does.`,
      "Only properties and methods defined on the prototype can be accessed over RPC.",
      `Ensure properties are declared like \`get ${name}() { ... }\` instead of \`${name} = ...\`,`,
      `and methods are declared like \`${name}() { ... }\` instead of \`${name} = () => { ... }\`.`,
    ].join("\n"),
  );
}

/**
 * The member `name` of an RPC receiver: only what its prototypes define (never own instance
 * properties nor Object.prototype), a getter's value, a method bound to the receiver.
 */
export function memberOf(receiver: object, name: string, reserved: ReadonlySet<string>): unknown {
  if (reserved.has(name)) throw new TypeError(`'${name}' is a reserved method and cannot be called over RPC.`);
  for (let proto = Object.getPrototypeOf(receiver); proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    const desc = Object.getOwnPropertyDescriptor(proto, name);
    if (desc) return desc.get ? desc.get.call(receiver) : desc.value;
  }
  throw missingMember(receiver, name);
}

/** Runs a call or property read along `path`, starting from a member of `receiver`. */
export function dispatch(receiver: object, path: string[], args: unknown[] | undefined, reserved: ReadonlySet<string>): unknown {
  let holder: any = receiver;
  let value: any = memberOf(receiver, path[0], reserved);
  for (let i = 1; i < path.length; i++) {
    holder = value;
    value = holder?.[path[i]];
  }
  if (!args) return value;
  if (typeof value !== "function") throw new TypeError(`"${path.join(".")}" is not a function.`);
  return value.apply(holder, args);
}

const TARGET_RESERVED: ReadonlySet<string> = new Set(["constructor", "dup"]);

/** Runs `work` as the far side of a call does: later, with a failure as a remote error. */
export function remoteCall(work: () => unknown): Promise<unknown> {
  return Promise.resolve()
    .then(work)
    .catch((err) => {
      throw remoteError(err);
    });
}

/** A stub for a local function or RpcTarget; its calls run in `owner`'s queue when it has one. */
export function localStub(target: object, owner: Owner | undefined): any {
  let disposed = false;
  const run = (path: string[], args: unknown[] | undefined) => () => {
    const result =
      path.length === 0
        ? (target as (...a: unknown[]) => unknown)(...(args ?? []))
        : dispatch(target, path, args, TARGET_RESERVED);
    return result;
  };
  const invoke: Invoke = (path, args) => {
    if (disposed) return Promise.reject(new Error("RPC stub used after being disposed."));
    const work = run(path, args && (copyValue(args, undefined) as unknown[]));
    if (owner) return owner.deliverToTarget(work);
    return remoteCall(work).then((value) => copyResult(value, undefined));
  };
  const dispose = () => {
    if (disposed) return;
    disposed = true;
    const onDispose = (target as { [Symbol.dispose]?: () => void })[Symbol.dispose];
    if (typeof onDispose === "function") onDispose.call(target);
  };
  let members: Map<string, unknown> | undefined;
  return registerStub(
    new Proxy(function RpcStub() {}, {
      apply(_t, _this, args: unknown[]) {
        return rpcPromise(invoke([], args));
      },
      get(_t, prop) {
        if (prop === Symbol.dispose) return dispose;
        if (typeof prop !== "string" || prop === "then") return undefined;
        if (prop === "dup") return () => localStub(target, owner);
        members ??= new Map();
        let member = members.get(prop);
        if (member === undefined) members.set(prop, (member = rpcProperty(invoke, [prop])));
        return member;
      },
    }),
  );
}

/**
 * An RPC result as the caller receives it: a copy (see copyValue) which, when it is an object,
 * has workerd's `Symbol.dispose` for the stubs it holds, so `using result = await stub.x()` works.
 */
export function copyResult(value: unknown, owner: Owner | undefined): unknown {
  const copy = copyValue(value, owner);
  if (typeof copy === "object" && copy !== null && !isStub(copy) && !(Symbol.dispose in copy)) {
    Object.defineProperty(copy, Symbol.dispose, { value: () => disposeStubsIn(copy, new Set()), configurable: true });
  }
  return copy;
}

function disposeStubsIn(value: unknown, seen: Set<object>): void {
  if (typeof value !== "object" || value === null || seen.has(value)) return;
  seen.add(value);
  if (isStub(value)) {
    (value as { [Symbol.dispose]?: () => void })[Symbol.dispose]?.();
    return;
  }
  if (Array.isArray(value) || Object.getPrototypeOf(value) === Object.prototype) {
    for (const item of Object.values(value)) disposeStubsIn(item, seen);
  }
}

/**
 * A copy of `value` as the other side of a stub receives it (structured clone), with functions
 * and RpcTarget instances replaced by stubs whose calls run in `owner`.
 */
export function copyValue(value: unknown, owner: Owner | undefined): unknown {
  if (value === null || (typeof value !== "object" && typeof value !== "function")) {
    if (typeof value === "symbol") throw dataCloneError(`${String(value)} could not be cloned.`);
    if (typeof value === "string" && value.length > MAX_PAYLOAD) throw payloadTooLarge(value.length);
    return value;
  }
  const copier = new Copier(owner);
  const copy = copier.copy(value as object);
  if (copier.bytes > MAX_PAYLOAD) throw payloadTooLarge(copier.bytes);
  return copy;
}

class Copier {
  readonly #seen = new Map<object, unknown>();
  /** Bytes of strings and binary data seen: V8's serialized size, near enough for the cap. */
  bytes = 0;
  constructor(readonly owner: Owner | undefined) {}

  copy(value: unknown): unknown {
    if (value === null || (typeof value !== "object" && typeof value !== "function")) {
      if (typeof value === "symbol") throw dataCloneError(`${String(value)} could not be cloned.`);
      if (typeof value === "string") this.bytes += value.length;
      return value;
    }
    const seen = this.#seen.get(value);
    if (seen !== undefined) return seen;
    if (isStub(value)) return DURABLE_OBJECT_STUBS.has(value) ? plainStub(value) : value;
    if (typeof value === "function" || value instanceof RpcTarget) {
      const stub = localStub(value, this.owner);
      this.#seen.set(value, stub);
      return stub;
    }
    return this.#copyObject(value);
  }

  #copyObject(value: object): unknown {
    if (Array.isArray(value)) {
      const out: unknown[] = new Array(value.length);
      this.#seen.set(value, out);
      for (const key of Object.keys(value)) out[key as unknown as number] = this.copy(value[key as unknown as number]);
      return out;
    }
    const proto = Object.getPrototypeOf(value);
    if (proto === Object.prototype || proto === null) {
      const out: Record<string, unknown> = proto === null ? Object.create(null) : {};
      this.#seen.set(value, out);
      for (const key of Object.keys(value)) out[key] = this.copy((value as Record<string, unknown>)[key]);
      return out;
    }
    if (value instanceof Map) {
      const out = new Map();
      this.#seen.set(value, out);
      for (const [k, v] of value) out.set(this.copy(k), this.copy(v));
      return out;
    }
    if (value instanceof Set) {
      const out = new Set();
      this.#seen.set(value, out);
      for (const v of value) out.add(this.copy(v));
      return out;
    }
    if (value instanceof Error) {
      const out = remoteError(value) as Error & { remote?: boolean };
      delete out.remote;
      this.#seen.set(value, out);
      return out;
    }
    if (passedThrough(value)) return value;
    if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) this.bytes += value.byteLength;
    if (CLONEABLE.some((Class) => value instanceof Class) || ArrayBuffer.isView(value)) {
      const out = structuredClone(value);
      this.#seen.set(value, out);
      return out;
    }
    const name = (proto?.constructor as { name?: string } | undefined)?.name || "Object";
    throw dataCloneError(`Could not serialize object of type "${name}". This type does not support serialization.`);
  }
}

// Cloned by value, as the V8 serializer does.
const CLONEABLE: Function[] = [Date, RegExp, ArrayBuffer, Number, String, Boolean, BigInt];
// Bodies and streams move to the receiver rather than being copied, as over Cloudflare's RPC.
// Read on first use: touching Node's fetch classes at import costs ~30 ms of start-up.
let PASSED_THROUGH: (Function | undefined)[] | undefined;
function passedThrough(value: object): boolean {
  PASSED_THROUGH ??= [Request, Response, Headers, ReadableStream, WritableStream, Blob];
  return PASSED_THROUGH.some((Class) => Class !== undefined && value instanceof Class);
}
