// The `cloudflare:workers` module: base classes and the ambient `env`, as Workers code imports them.

import "./globals.js";
import { RpcTarget, localStub } from "./rpc.js";
import { DurableObjectState } from "./state.js";

export { RpcTarget };

/** Base class of Durable Objects; only subclasses of it accept RPC calls. */
export abstract class DurableObject<Env = unknown> {
  protected ctx: DurableObjectState;
  protected env: Env;

  constructor(ctx: DurableObjectState, env: Env) {
    if (!(ctx instanceof DurableObjectState)) {
      throw new TypeError("Failed to construct 'DurableObject': parameter 1 is not of type 'DurableObjectState'.");
    }
    this.ctx = ctx;
    this.env = env;
  }
}

/** Base class of a Worker's named entrypoints (service bindings). */
export abstract class WorkerEntrypoint<Env = unknown> {
  protected ctx: unknown;
  protected env: Env;

  constructor(ctx: unknown, env: Env) {
    this.ctx = ctx;
    this.env = env;
  }
}

/** `new RpcStub(value)`: a stub for a local function or RpcTarget. */
export const RpcStub = function RpcStub(value: object) {
  if (typeof value !== "function" && !(value instanceof RpcTarget)) {
    throw new TypeError("RpcStub can only wrap a function or an RpcTarget.");
  }
  return localStub(value, undefined);
} as unknown as new <T extends object>(value: T) => T;

let currentEnv: Record<string, unknown> = {};
let currentExports: Record<string, unknown> = {};

/** @internal the runtime whose bindings `env` and `exports` show (the latest one created). */
export function setAmbient(env: Record<string, unknown>, exports: Record<string, unknown>): void {
  currentEnv = env;
  currentExports = exports;
}

/** @internal */
export function clearAmbient(env: Record<string, unknown>): void {
  if (currentEnv === env) setAmbient({}, {});
}

function ambient(get: () => Record<string, unknown>): Record<string, unknown> {
  return new Proxy(
    {},
    {
      get: (_t, key) => Reflect.get(get(), key),
      has: (_t, key) => Reflect.has(get(), key),
      ownKeys: () => Reflect.ownKeys(get()),
      getOwnPropertyDescriptor: (_t, key) => {
        const desc = Reflect.getOwnPropertyDescriptor(get(), key);
        return desc && { ...desc, configurable: true };
      },
    },
  );
}

export const env = ambient(() => currentEnv);
export const exports = ambient(() => currentExports);
