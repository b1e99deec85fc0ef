// A Worker's module as wrangler sees it: the Durable Object classes its config binds, and its
// default export (`export default { fetch, scheduled }` or a WorkerEntrypoint class) as handlers.

import path from "node:path";
import type { WorkerConfig } from "../config.js";
import { ConfigError } from "../errors.js";
import type { DurableObjectClassOptions } from "../runtime.js";
import { WorkerEntrypoint } from "../workers.js";

export interface LoadedWorker {
  config: WorkerConfig;
  module: Record<string, unknown>;
}

/**
 * `{ BINDING: { class, className, sqlite } }` for the bindings of `worker`; a binding with
 * `script_name` takes its class from that Worker among `others`.
 */
export function durableObjectClasses(worker: LoadedWorker, others: LoadedWorker[] = []): Record<string, DurableObjectClassOptions> {
  const file = path.basename(worker.config.path);
  const classes: Record<string, DurableObjectClassOptions> = {};
  worker.config.durableObjects.forEach((binding, i) => {
    const key = `${file}: durable_objects.bindings[${i}]`;
    const own = binding.scriptName === undefined || binding.scriptName === worker.config.name;
    const owner = own ? worker : others.find((other) => other.config.name === binding.scriptName);
    if (owner === undefined) {
      throw new ConfigError(`${key}.script_name: "${binding.scriptName}" is another Worker, and it is not loaded here`);
    }
    const Class = owner.module[binding.className];
    if (typeof Class !== "function") {
      throw new ConfigError(`${key}.class_name: "${binding.className}" is not exported by ${owner.config.main}`);
    }
    classes[binding.name] = {
      class: Class as DurableObjectClassOptions["class"],
      className: binding.className,
      sqlite: !owner.config.kvClasses.has(binding.className),
    };
  });
  return classes;
}

/** The `ctx` of a Worker invocation. */
export class ExecutionContext {
  readonly props: Record<string, unknown> = {};
  readonly #pending: Promise<unknown>[] = [];

  waitUntil(promise: Promise<unknown>): void {
    const settled = Promise.resolve(promise).catch((err) => console.error("✘ [ERROR] Uncaught (in waitUntil)", err));
    this.#pending.push(settled);
  }

  passThroughOnException(): void {}

  /** Settles once every promise given to waitUntil so far has. */
  settled(): Promise<unknown> {
    return Promise.all(this.#pending);
  }
}

type Handler = (this: unknown, ...args: unknown[]) => unknown;

/** Whether `entry` is a WorkerEntrypoint class (served per call) rather than a handler object. */
export function isEntrypointClass(entry: unknown): entry is new (ctx: unknown, env: unknown) => object {
  return typeof entry === "function" && entry.prototype instanceof WorkerEntrypoint;
}

/**
 * Calls handler `name` (fetch, scheduled, …) of an export: a WorkerEntrypoint class gets a new
 * instance with `ctx` and `env`; a handler object gets them as trailing arguments.
 */
export function callHandler(entry: unknown, name: string, args: unknown[], env: unknown, ctx: ExecutionContext): Promise<unknown> {
  try {
    if (isEntrypointClass(entry)) {
      const instance = new entry(ctx, env) as Record<string, unknown>;
      const handler = instance[name];
      if (typeof handler !== "function") throw missing(name);
      return Promise.resolve((handler as Handler).apply(instance, args));
    }
    const handler = (entry as Record<string, unknown> | undefined)?.[name];
    if (typeof handler !== "function") throw missing(name);
    return Promise.resolve((handler as Handler).call(entry, ...args, env, ctx));
  } catch (err) {
    return Promise.reject(err);
  }
}

/** The handlers of a Worker module's default export. */
export class WorkerHandlers {
  constructor(
    readonly module: Record<string, unknown>,
    readonly env: Record<string, unknown>,
  ) {}

  /** Calls the `name` handler (fetch, scheduled, …) with `args` and a fresh ctx. */
  call(name: string, args: unknown[]): { result: Promise<unknown>; ctx: ExecutionContext } {
    const ctx = new ExecutionContext();
    return { result: callHandler(this.module.default, name, args, this.env, ctx), ctx };
  }
}

function missing(name: string): Error {
  return new Error(`Handler does not export a ${name}() function.`);
}
