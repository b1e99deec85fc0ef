// Service bindings to a Worker's own entrypoints (`services` with `entrypoint`, and vitest's SELF):
// fetch and scheduled call the handler; any other member is RPC to a WorkerEntrypoint class.

import { ExecutionContext, callHandler, isEntrypointClass } from "./dev/worker.js";
import { copyResult, copyValue, dispatch, registerStub, remoteCall, rpcProperty, type Invoke } from "./rpc.js";

const RESERVED: ReadonlySet<string> = new Set(["fetch", "connect", "scheduled", "queue", "tail", "dup", "constructor"]);

export interface ScheduledOptions {
  scheduledTime?: number | Date;
  cron?: string;
}

/** What a service binding needs of its Worker: the module, its env, and where waitUntil goes. */
export interface EntrypointHost {
  readonly module: Record<string, unknown>;
  readonly env: Record<string, unknown>;
  /** Each invocation's ctx (a test harness waits on them before restoring storage). */
  onContext?(ctx: ExecutionContext): void;
}

/** The `ScheduledController` a scheduled() handler receives. */
export function scheduledController(options: ScheduledOptions = {}): { scheduledTime: number; cron: string; noRetry(): void } {
  const time = options.scheduledTime ?? Date.now();
  return {
    scheduledTime: time instanceof Date ? time.getTime() : time,
    cron: options.cron ?? "",
    noRetry() {},
  };
}

/** A Fetcher for the export `entrypoint` (default: the default export) of `host.module`. */
export function serviceBinding(host: EntrypointHost, entrypoint = "default"): object {
  const label = entrypoint === "default" ? "the default export" : `the export "${entrypoint}"`;
  const target = (): unknown => {
    const entry = host.module[entrypoint];
    if (entry === undefined) throw new TypeError(`The Worker has no ${label}, which this service binding names.`);
    return entry;
  };
  const context = (): ExecutionContext => {
    const ctx = new ExecutionContext();
    host.onContext?.(ctx);
    return ctx;
  };

  const handle = (name: string, args: unknown[]): Promise<unknown> => {
    try {
      return callHandler(target(), name, args, host.env, context());
    } catch (err) {
      return Promise.reject(err);
    }
  };

  const invoke: Invoke = (path, args) => {
    try {
      const entry = target();
      if (!isEntrypointClass(entry)) {
        throw new TypeError(`${label} is not a WorkerEntrypoint class, so it cannot be called over RPC.`);
      }
      const copied = args && (copyValue(args, undefined) as unknown[]);
      const instance = new entry(context(), host.env);
      return remoteCall(() => dispatch(instance, path, copied, RESERVED)).then((value) => copyResult(value, undefined));
    } catch (err) {
      return Promise.reject(err);
    }
  };

  const members = new Map<string, unknown>();
  const local: Record<string, unknown> = {
    fetch: (input: Request | string | URL, init?: RequestInit) =>
      handle("fetch", [input instanceof Request && init === undefined ? input : new Request(input, init)]),
    scheduled: (options?: ScheduledOptions) =>
      handle("scheduled", [scheduledController(options)]).then(() => ({ outcome: "ok", noRetry: false })),
  };
  return registerStub(
    new Proxy(function ServiceBinding() {}, {
      get(_target, prop) {
        if (typeof prop !== "string" || prop === "then") return undefined;
        if (prop in local) return local[prop];
        let member = members.get(prop);
        if (member === undefined) members.set(prop, (member = rpcProperty(invoke, [prop])));
        return member;
      },
    }),
  );
}
