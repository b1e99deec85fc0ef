// The `cloudflare:test` module of a test file, over its harness (see harness.ts).

import { ExecutionContext } from "../dev/worker.js";
import type { DurableObjectId } from "../id.js";
import { scheduledController, type ScheduledOptions } from "../service-binding.js";
import type { DurableObjectState } from "../state.js";
import type { DurableObjectStub } from "../stub.js";
import { env } from "../workers.js";
import type { MockAgent } from "undici";
import { currentTestFile } from "./harness.js";

export { env };

/** Applies the migrations not yet recorded in `migrationsTableName`, each once, in order. */
export async function applyD1Migrations(
  db: unknown,
  migrations: { name: string; queries: string[] }[],
  migrationsTableName?: string,
): Promise<void> {
  const { applyD1Migrations: apply } = await import("../bindings/d1-migrations.js");
  return apply(db as Parameters<typeof apply>[0], migrations, migrationsTableName);
}

/** The current test file's Worker, as a service binding to its default export. */
export const SELF: any = new Proxy(
  {},
  {
    get: (_target, prop) => Reflect.get(currentTestFile().self, prop),
    has: (_target, prop) => Reflect.has(currentTestFile().self, prop),
  },
);

export function runInDurableObject<O, R>(
  stub: DurableObjectStub,
  callback: (instance: O, state: DurableObjectState) => R | Promise<R>,
): Promise<R> {
  return currentTestFile().runtime.runInDurableObject(stub, callback);
}

/** Runs the object's alarm now if one is set; resolves whether it ran. */
export function runDurableObjectAlarm(stub: DurableObjectStub): Promise<boolean> {
  return currentTestFile().runtime.runAlarm(stub);
}

/** The ids of the objects in `namespace` that have storage. */
export async function listDurableObjectIds(namespace: unknown): Promise<DurableObjectId[]> {
  return currentTestFile().internals.storedIds(namespace);
}

export interface EvictOptions {
  /** "hibernate" (default): hibernatable WebSockets stay open and wake a new instance; "close": they close (1001). */
  webSockets?: "hibernate" | "close";
}

/** Drops the object's instance now, as an idle eviction or hibernation does; storage stays. */
export async function evictDurableObject(stub: DurableObjectStub, options: EvictOptions = {}): Promise<void> {
  currentTestFile().internals.evictObject(stub, closesSockets(options));
}

/** evictDurableObject for every object with a live instance. */
export async function evictAllDurableObjects(options: EvictOptions = {}): Promise<void> {
  const { internals } = currentTestFile();
  for (const stub of internals.liveObjects()) internals.evictObject(stub, closesSockets(options));
}

function closesSockets(options: EvictOptions): boolean {
  const mode = options.webSockets ?? "hibernate";
  if (mode !== "hibernate" && mode !== "close") {
    throw new TypeError(`webSockets: expected "hibernate" or "close", got ${JSON.stringify(mode)}.`);
  }
  return mode === "close";
}

/** workerd's abortAllDurableObjects(): every live instance is reset; storage stays. */
export async function abortAllDurableObjects(): Promise<void> {
  currentTestFile().internals.abortAll();
}

/** Empties every object's storage (and KV, D1) and resets their instances. */
export async function reset(): Promise<void> {
  const file = currentTestFile();
  await file.settled();
  file.internals.restoreStorage(new Map());
}

export function createExecutionContext(): ExecutionContext {
  return new ExecutionContext();
}

/** Resolves once every promise given to `ctx.waitUntil()` has settled. */
export async function waitOnExecutionContext(ctx: ExecutionContext): Promise<void> {
  if (!(ctx instanceof ExecutionContext)) {
    throw new TypeError("Failed to execute 'waitOnExecutionContext': parameter 1 is not of type 'ExecutionContext'.");
  }
  await ctx.settled();
}

export function createScheduledController(options?: ScheduledOptions): ReturnType<typeof scheduledController> {
  return scheduledController(options);
}

function unsupported(name: string): () => never {
  return () => {
    throw new Error(`cloudflare:test ${name}() is not provided by durable-node yet.`);
  };
}

/**
 * The classic pool's undici MockAgent for the Worker's outbound fetch(): inactive until
 * `activate()`, and a fresh one for each test file (see fetch-mock.ts).
 */
export const fetchMock: MockAgent = new Proxy({} as MockAgent, {
  get(_target, prop) {
    if (prop === "then") return undefined;
    const agent = currentTestFile().fetchMock.agent;
    const value = Reflect.get(agent, prop, agent);
    return typeof value === "function" ? value.bind(agent) : value;
  },
  has: (_target, prop) => Reflect.has(currentTestFile().fetchMock.agent, prop),
});

export const createMessageBatch = unsupported("createMessageBatch");
export const getQueueResult = unsupported("getQueueResult");
export const introspectWorkflowInstance = unsupported("introspectWorkflowInstance");
export const introspectWorkflow = unsupported("introspectWorkflow");
export const createPagesEventContext = unsupported("createPagesEventContext");
