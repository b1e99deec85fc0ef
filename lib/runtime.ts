// createRuntime(): namespaces, bindings and lifecycle of one set of Durable Objects in this process.

import fs from "node:fs";
import type { IncomingMessage } from "node:http";
import path from "node:path";
import type { Duplex } from "node:stream";
import type { RuntimeStore } from "../native/binding.js";
import type { ActorHost, ActorSystem, PendingEvent } from "./actor.js";
import { ActorTable } from "./actor-table.js";
import { AlarmScheduler } from "./alarms.js";
import { systemClock, type Clock } from "./clock.js";
import { compat, type Compat } from "./compat.js";
import { resetError } from "./errors.js";
import { DurableObjectId } from "./id.js";
import { call, native } from "./native.js";
import { DurableObjectNamespace, NamespaceCore } from "./namespace.js";
import { OpenFiles } from "./open-files.js";
import { SocketHub } from "./socket-hub.js";
import type { DurableObjectState } from "./state.js";
import { makeStub, type DurableObjectStub } from "./stub.js";
import { clearAmbient, setAmbient } from "./workers.js";

export type DurableObjectClass = new (ctx: any, env: any) => object;

export interface DurableObjectClassOptions {
  class: DurableObjectClass;
  /** SQLite-backed storage (the default, Cloudflare's recommended backend); false: legacy KV-backed. */
  sqlite?: boolean;
  /** workerd's `uniqueKey`: the same key gives byte-identical ids. Default: random, persisted. */
  uniqueKey?: string;
  /**
   * The name the namespace's state is kept under (folder, ids, alarms): wrangler's `class_name`.
   * Default: the class's own `name`, which a minifier may change — set it for code you bundle.
   */
  className?: string;
}

export interface RuntimeOptions {
  durableObjects?: Record<string, DurableObjectClass | DurableObjectClassOptions>;
  /** Other bindings (vars and the like), given to objects as `env`. */
  bindings?: Record<string, unknown>;
  /** A folder for state (`true`: ./.durable); false or absent: in memory. */
  persist?: string | boolean;
  /**
   * "normal" (default): WAL + synchronous=NORMAL, committed writes survive a killed process.
   * "full": synchronous=FULL, they also survive power loss, at several times the commit cost.
   */
  durability?: "normal" | "full";
  /**
   * How many persisted objects may keep their database files open at once (each holds three file
   * descriptors); past it, idle ones close their files until used again. Default: what the
   * process's open-files limit allows with room to spare (256 where the limit cannot be read).
   */
  maxOpenDatabases?: number;
  /** Evict an object after this long without events. Default 70 s (Cloudflare: 70–140 s). */
  idleTimeoutMs?: number;
  /**
   * Hibernate an object whose only work is hibernatable WebSockets after this long without events:
   * its instance is dropped, its sockets stay open in the core. Default 10 s (as Cloudflare).
   */
  hibernationTimeoutMs?: number;
  /** How long blockConcurrencyWhile() may run before the object is reset. Default 30 s. */
  blockConcurrencyTimeoutMs?: number;
  /** The time alarms follow: the system clock by default; `new ManualClock()` in tests. */
  clock?: Clock;
  /** How long an alarm handler may run before it counts as failed. Default 15 min. */
  alarmTimeoutMs?: number;
  /** Cloudflare's compatibility date (default: today) and flags, for behaviour that depends on them. */
  compatibilityDate?: string;
  compatibilityFlags?: string[];
}

type ClassOf<Entry> = Entry extends { class: infer C } ? C : Entry;
type InstanceOf<C> = C extends abstract new (...args: any[]) => infer I ? I : never;

/**
 * `env` as the options describe it: a typed namespace per Durable Object binding (stubs expose the
 * class's methods over RPC), and the other bindings with their own types.
 */
export type RuntimeEnv<O extends RuntimeOptions> = {
  readonly [K in keyof O["durableObjects"]]: DurableObjectNamespace<InstanceOf<ClassOf<O["durableObjects"][K]>>>;
} & (O["bindings"] extends Record<string, unknown> ? O["bindings"] : {});

export interface Runtime<Env = Record<string, unknown>> {
  readonly env: Env;
  /** Drops the object's instance as if it had been idle; its next event constructs a new one. */
  evict(stub: DurableObjectStub): Promise<void>;
  /**
   * Hibernates the object now: its instance is dropped, its hibernatable WebSockets stay open
   * (with their tags and attachments) and the next event on one of them wakes a new instance.
   */
  hibernate(stub: DurableObjectStub): Promise<void>;
  /**
   * Hands a Node HTTP server's upgrade request to the runtime (the server's `upgrade` event):
   * `response` is what the Worker or object answered, a 101 whose `webSocket` is the client end
   * of a pair. From then on the connection is served by the core; any other response is written
   * to the client as is.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, response: Response): void;
  /** Runs the object's alarm now, due or not; resolves whether one ran (a failure rejects). */
  runAlarm(stub: DurableObjectStub): Promise<boolean>;
  /**
   * Runs `fn(instance, ctx)` inside the object, as one of its events (gates and storage apply);
   * resolves with what it returns, uncopied.
   */
  runInDurableObject<T, O = any>(stub: DurableObjectStub, fn: (instance: O, ctx: DurableObjectState) => T | Promise<T>): Promise<T>;
  /** Fails pending calls, releases every object and closes files; the runtime is unusable after. */
  dispose(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Every object's committed storage at one moment, by namespace and id (isolated storage). */
export type StorageSnapshot = Map<NamespaceCore, Map<string, Buffer>>;

/** @internal what `durable-node dev` and the vitest integration reach beyond the public Runtime. */
export interface RuntimeInternals {
  readonly sockets: SocketHub;
  readonly exports: Record<string, unknown>;
  replaceClasses(classes: Record<string, DurableObjectClassOptions>): void;
  /** The committed state of every object, alarms included (in-memory runtimes only). */
  snapshotStorage(): StorageSnapshot;
  /** Puts every object back as `snapshot` had it; live instances are reset first. */
  restoreStorage(snapshot: StorageSnapshot): void;
  /** workerd's abortAllDurableObjects(): every live instance is reset, its pending calls fail. */
  abortAll(): void;
  /** The objects of `namespace` (an env binding) that have storage. */
  storedIds(namespace: unknown): DurableObjectId[];
  /** Evicts an object; `closeSockets` closes its hibernatable WebSockets instead of keeping them. */
  evictObject(stub: DurableObjectStub, closeSockets: boolean): void;
  /** Every object with a live instance, as stubs would reach them. */
  liveObjects(): DurableObjectStub[];
}

/** @internal */
export function internals(runtime: Runtime): RuntimeInternals {
  return runtime as unknown as RuntimeInternals;
}

const ISOLATION_RESET = "Durable Object reset: the test's isolated storage was restored.";
const DEFAULT_IDLE_MS = 70_000;
const DEFAULT_HIBERNATION_MS = 10_000;
const DEFAULT_BCW_TIMEOUT_MS = 30_000;
const DEFAULT_ALARM_TIMEOUT_MS = 15 * 60_000;

export function createRuntime<const O extends RuntimeOptions = {}>(options?: O): Runtime<RuntimeEnv<O>> {
  // Only a missing argument means "no options": null and the like are refused by name.
  return new RuntimeImpl(options === undefined ? {} : options) as unknown as Runtime<RuntimeEnv<O>>;
}

class RuntimeImpl implements Runtime, ActorSystem {
  readonly env: Record<string, unknown> = {};
  readonly exports: Record<string, unknown> = {};
  readonly actors = new ActorTable();
  readonly events = new Map<number, PendingEvent>();
  readonly blockConcurrencyTimeoutMs: number;
  readonly alarms: AlarmScheduler;
  readonly compat: Compat;
  readonly sockets: SocketHub;
  readonly #hosts: ActorHost[] = [];
  readonly #cores = new Map<string, NamespaceCore>();
  readonly #store: RuntimeStore | undefined;
  readonly #persistDir: string | undefined;
  readonly #files: OpenFiles;
  readonly #fullSync: boolean;
  readonly #sweep: NodeJS.Timeout;
  #token = 0;
  #disposed = false;

  constructor(options: RuntimeOptions) {
    if (options === null || typeof options !== "object") {
      throw new TypeError("createRuntime(options): options must be an object.");
    }
    const idleMs = positiveMs(options.idleTimeoutMs, DEFAULT_IDLE_MS, "idleTimeoutMs");
    const hibernateMs = positiveMs(options.hibernationTimeoutMs, DEFAULT_HIBERNATION_MS, "hibernationTimeoutMs");
    this.blockConcurrencyTimeoutMs = positiveMs(
      options.blockConcurrencyTimeoutMs,
      DEFAULT_BCW_TIMEOUT_MS,
      "blockConcurrencyTimeoutMs",
    );
    const dir = persistDir(options.persist);
    this.#persistDir = dir;
    this.#fullSync = durability(options.durability);
    this.#files = new OpenFiles(positiveCount(options.maxOpenDatabases, defaultOpenDatabases(), "maxOpenDatabases"));
    this.#store = dir === undefined ? undefined : call(() => new native.RuntimeStore(dir));
    this.compat = compat(compatibilityDate(options.compatibilityDate), compatibilityFlags(options.compatibilityFlags));
    const alarmTimeoutMs = positiveMs(options.alarmTimeoutMs, DEFAULT_ALARM_TIMEOUT_MS, "alarmTimeoutMs");
    this.alarms = new AlarmScheduler(
      call(() => new native.Alarms(dir ?? null)),
      options.clock ?? systemClock,
      (className, hex) => this.#cores.get(className)?.hostByHex(hex),
      alarmTimeoutMs,
    );
    this.sockets = new SocketHub((handle) => this.#hosts[handle]);
    try {
      this.#bind(options);
    } catch (err) {
      this.alarms.close();
      this.sockets.free();
      this.#store?.close();
      throw err;
    }
    // Alarms that came due while no process ran fire now.
    this.alarms.arm();
    const period = Math.max(10, Math.min(idleMs / 2, hibernateMs / 2, 5_000));
    this.#sweep = setInterval(() => this.#evictIdle(idleMs, hibernateMs), period);
    this.#sweep.unref();
    setAmbient(this.env, this.exports);
  }

  #bind(options: RuntimeOptions): void {
    const classes = options.durableObjects ?? {};
    const bindings = options.bindings ?? {};
    if (typeof classes !== "object" || typeof bindings !== "object") {
      throw new TypeError("createRuntime(options): durableObjects and bindings must be objects.");
    }
    const specs = new Map<string, DurableObjectClassOptions>();
    for (const [binding, entry] of Object.entries(classes)) {
      const spec = classOptions(binding, entry);
      const className = spec.className ?? spec.class.name;
      if (!className) {
        throw new TypeError(`durableObjects.${binding}: the class has no name; give it one, or { className }.`);
      }
      const earlier = specs.get(className);
      if (earlier !== undefined && !sameNamespace(earlier, spec)) {
        throw new Error(
          `durableObjects.${binding}: the name "${className}" is already bound to a different class or with different options; state is kept by class name, so each name must mean one class.`,
        );
      }
      specs.set(className, spec);
      let core = this.#cores.get(className);
      if (core === undefined) {
        core = this.#namespace(className, spec);
        this.exports[className] = new DurableObjectNamespace(core);
      }
      this.env[binding] = new DurableObjectNamespace(core);
    }
    for (const [binding, value] of Object.entries(bindings)) {
      if (binding in this.env) {
        throw new Error(`Binding "${binding}" is defined twice: in durableObjects and in bindings.`);
      }
      this.env[binding] = value;
    }
  }

  #namespace(className: string, spec: DurableObjectClassOptions): NamespaceCore {
    const uniqueKey =
      spec.uniqueKey ?? (this.#store ? call(() => this.#store!.namespaceKey(className)) : native.randomUniqueKey());
    const core = new NamespaceCore(
      this,
      {
        className,

        Class: spec.class,
        sqlite: spec.sqlite ?? true,
        keys: new native.Namespace(uniqueKey),
        persistDir: this.#persistDir,
        fullSync: this.#fullSync,
        alarmNamespace: this.alarms.index.namespace(className),
        files: this.#files,
      },
      this,
    );
    this.#cores.set(className, core);
    return core;
  }

  nextToken(): number {
    this.#token = (this.#token + 1) >>> 0;
    return this.#token;
  }

  assertLive(): void {
    if (this.#disposed) {
      throw new Error("This durable-node runtime has been disposed; create a new one with createRuntime().");
    }
  }

  onHost(host: ActorHost): void {
    this.#hosts[host.handle] = host;
  }

  #evictIdle(idleMs: number, hibernateMs: number): void {
    const idle = new Set(this.actors.idle(idleMs));
    // An object with hibernatable sockets hibernates sooner; the others wait out idleMs.
    for (const handle of this.actors.idle(Math.min(idleMs, hibernateMs))) {
      if (idle.has(handle) || this.sockets.count(handle) > 0) this.#hosts[handle]?.evict();
    }
  }

  /** @internal dev's reload: each bound class name gets its new class (see NamespaceCore.replaceClass). */
  replaceClasses(classes: Record<string, DurableObjectClassOptions>): void {
    for (const spec of Object.values(classes)) {
      this.#cores.get(spec.className ?? spec.class.name)?.replaceClass(spec.class);
    }
  }

  snapshotStorage(): StorageSnapshot {
    this.assertLive();
    if (this.#persistDir !== undefined) {
      throw new Error("Isolated storage needs an in-memory runtime (createRuntime without persist).");
    }
    const snapshot: StorageSnapshot = new Map();
    for (const core of this.#cores.values()) snapshot.set(core, core.snapshot());
    return snapshot;
  }

  restoreStorage(snapshot: StorageSnapshot): void {
    this.assertLive();
    const reason = resetError(new Error(ISOLATION_RESET));
    for (const core of this.#cores.values()) core.restore(snapshot.get(core) ?? new Map(), reason);
  }

  abortAll(): void {
    this.assertLive();
    const reason = resetError(new Error(ISOLATION_RESET));
    for (const core of this.#cores.values()) {
      for (const host of core.hosts.values()) if (host.instance !== undefined) host.reset(reason);
    }
  }

  storedIds(namespace: unknown): DurableObjectId[] {
    this.assertLive();
    const core = namespace instanceof DurableObjectNamespace ? DurableObjectNamespace.coreOf(namespace) : undefined;
    if (core === undefined || core.system !== this) {
      throw new TypeError(
        "Failed to execute 'listDurableObjectIds': parameter 1 is not of type 'DurableObjectNamespace'.",
      );
    }
    return core.storedIds();
  }

  evictObject(stub: DurableObjectStub, closeSockets: boolean): void {
    const host = this.#hostOf(stub, "evict");
    if (host === undefined) return;
    if (closeSockets) {
      for (const ws of this.sockets.list(host, undefined)) ws.close(1001, "Durable Object evicted");
    }
    host.evict();
  }

  liveObjects(): DurableObjectStub[] {
    const stubs: DurableObjectStub[] = [];
    for (const core of this.#cores.values()) {
      for (const [hex, host] of core.hosts) {
        if (host.instance !== undefined) stubs.push(makeStub(core.host, core.makeId(hex, host.name)));
      }
    }
    return stubs;
  }

  async evict(stub: DurableObjectStub): Promise<void> {
    this.#hostOf(stub, "evict")?.evict();
  }

  async hibernate(stub: DurableObjectStub): Promise<void> {
    this.#hostOf(stub, "hibernate")?.evict();
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, response: Response): void {
    this.assertLive();
    this.sockets.handleUpgrade(req, socket, head, response);
  }

  runAlarm(stub: DurableObjectStub): Promise<boolean> {
    try {
      const id = this.#idOf(stub, "runAlarm");
      return (DurableObjectId.namespaceOf(id) as NamespaceCore).host(id).alarm.run({ force: true });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  runInDurableObject<T, O = any>(
    stub: DurableObjectStub,
    fn: (instance: O, ctx: DurableObjectState) => T | Promise<T>,
  ): Promise<T> {
    try {
      if (typeof fn !== "function") throw new TypeError("runtime.runInDurableObject(stub, fn): fn must be a function.");
      const id = this.#idOf(stub, "runInDurableObject");
      const core = DurableObjectId.namespaceOf(id) as NamespaceCore;
      return core.host(id).run((instance, ctx) => fn(instance as O, ctx)) as Promise<T>;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #idOf(stub: DurableObjectStub, method: string): DurableObjectId {
    this.assertLive();
    const id = (stub as { id?: unknown } | undefined)?.id;
    if (!(id instanceof DurableObjectId)) throw new TypeError(`runtime.${method}(stub): expected a Durable Object stub.`);
    const core = DurableObjectId.namespaceOf(id);
    if (!(core instanceof NamespaceCore) || core.system !== this) {
      throw new TypeError(`runtime.${method}(stub): the stub belongs to another runtime.`);
    }
    return id;
  }

  #hostOf(stub: DurableObjectStub, method: string): ActorHost | undefined {
    const id = this.#idOf(stub, method);
    return (DurableObjectId.namespaceOf(id) as NamespaceCore).hosts.get(id.toString());
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    clearInterval(this.#sweep);
    const reason = new Error("The durable-node runtime was disposed while this call was pending.");
    this.alarms.close();
    for (const host of this.#hosts) host?.close(reason);
    this.sockets.free();
    this.actors.free();

    this.#store?.close();
    clearAmbient(this.env);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}

function classOptions(binding: string, entry: unknown): DurableObjectClassOptions {
  const spec = (typeof entry === "function" ? { class: entry } : entry) as DurableObjectClassOptions | undefined;
  const Class = spec?.class as unknown;
  if (typeof Class !== "function" || typeof (Class as { prototype?: unknown }).prototype !== "object") {
    throw new TypeError(
      `durableObjects.${binding}: expected a Durable Object class (a constructor) or { class, sqlite?, uniqueKey? }, got ${describe(Class ?? entry)}.`,
    );
  }
  if (spec!.sqlite !== undefined && typeof spec!.sqlite !== "boolean") {
    throw new TypeError(`durableObjects.${binding}.sqlite: expected a boolean, got ${describe(spec!.sqlite)}.`);
  }
  if (spec!.className !== undefined && (typeof spec!.className !== "string" || spec!.className === "")) {
    throw new TypeError(`durableObjects.${binding}.className: expected a non-empty string, got ${describe(spec!.className)}.`);
  }
  if (spec!.uniqueKey !== undefined && typeof spec!.uniqueKey !== "string") {
    throw new TypeError(`durableObjects.${binding}.uniqueKey: expected a string, got ${describe(spec!.uniqueKey)}.`);
  }
  return spec!;
}

function sameNamespace(a: DurableObjectClassOptions, b: DurableObjectClassOptions): boolean {
  return a.class === b.class && (a.sqlite ?? true) === (b.sqlite ?? true) && a.uniqueKey === b.uniqueKey;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "function") return "a function that is not a constructor";
  if (typeof value === "object") return "an object";
  return `${typeof value} ${JSON.stringify(value) ?? String(value)}`;
}

function positiveMs(value: unknown, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value)) {
    throw new TypeError(`createRuntime(options): ${name} must be a positive number of milliseconds, got ${describe(value)}.`);
  }
  return value;
}

/**
 * Three descriptors per database, a quarter of the limit left to the rest of the process. Closing
 * and reopening costs milliseconds per object (WAL recovery), so the cap should be as high as the
 * limit allows.
 */
function defaultOpenDatabases(): number {
  try {
    const limit = /^Max open files\s+(\d+)/m.exec(fs.readFileSync("/proc/self/limits", "utf8"))?.[1];
    if (limit !== undefined) return Math.max(64, Math.floor((Number(limit) * 3) / 4 / 3));
  } catch {
    // Not Linux: the conservative default below.
  }
  return 256;
}

function positiveCount(value: unknown, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new TypeError(`createRuntime(options): ${name} must be a positive integer, got ${describe(value)}.`);
  }
  return value;
}

function compatibilityDate(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !/^\d{4}-\d{2}-\d{2}$/.test(value)) {
    throw new TypeError(`createRuntime(options): compatibilityDate must be a date as YYYY-MM-DD, got ${describe(value)}.`);
  }
  return value;
}

function compatibilityFlags(value: unknown): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.some((flag) => typeof flag !== "string")) {
    throw new TypeError(`createRuntime(options): compatibilityFlags must be an array of strings, got ${describe(value)}.`);
  }
  return value;
}

function durability(value: unknown): boolean {
  if (value === undefined || value === "normal") return false;
  if (value === "full") return true;
  throw new TypeError(`createRuntime(options): durability must be "normal" or "full", got ${describe(value)}.`);
}

function persistDir(persist: unknown): string | undefined {
  if (persist === undefined || persist === false) return undefined;
  if (persist === true) return path.resolve(".durable");
  if (typeof persist === "string" && persist !== "") return path.resolve(persist);
  throw new TypeError(`createRuntime(options): persist must be a folder path, true or false, got ${describe(persist)}.`);
}
