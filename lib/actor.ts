// One object's host on the JS side: its live instance, its events, and the lifecycle (construct,
// critical sections, abort/reset, eviction). Queue and gate state live in the core (`ActorTable`).

import type { ActorTable } from "./actor-table.js";
import { ObjectAlarm, type AlarmHost, type AlarmScheduler } from "./alarms.js";
import type { Compat } from "./compat.js";
import { remoteError, resetError, type DurableObjectError } from "./errors.js";
import { copyResult, type Owner } from "./rpc.js";
import { DurableObjectState } from "./state.js";
import { afterTurn } from "./turn.js";
import { DurableObjectStorage, StorageCore, type StorageHost, type StorageOptions } from "./storage.js";
import type { SocketHub } from "./socket-hub.js";
import { WebSocket, type OutputGate } from "./websocket.js";

/** What the hosts of one runtime share. */
export interface ActorSystem {
  readonly actors: ActorTable;
  readonly events: Map<number, PendingEvent>;
  readonly blockConcurrencyTimeoutMs: number;
  readonly alarms: AlarmScheduler;
  readonly compat: Compat;
  readonly sockets: SocketHub;
  nextToken(): number;
  /** Throws once the runtime is disposed. */
  assertLive(): void;
}

/** The class side of an object: how to build an instance and what it is given. */
export interface ActorClass {
  readonly Class: new (ctx: DurableObjectState, env: unknown) => object;
  readonly env: unknown;
  readonly exports: object;
  /** A DurableObjectId for `hex` carrying `name` (ctx.id). */
  makeId(hex: string, name: string | undefined): unknown;
  /** Where and how the object with id `hex` keeps its state. */
  storageOptions(hex: string): StorageOptions;
  /** The class's number in the alarm index. */
  readonly alarmNamespace: number;
}

/**
 * Stubs bind to the generation of the object they first reach. A reset (abort, failed critical
 * section) breaks the generation: its stubs keep failing with the reason, new stubs reach a new one.
 */
export class Generation {
  broken: DurableObjectError | undefined;
}

export interface PendingEvent {
  readonly host: ActorHost;
  readonly generation: Generation;
  readonly work: (instance: any) => unknown;
  /** Copy the result across the stub (RPC) rather than handing it over (a fetch Response). */
  readonly copyResult: boolean;
  /** For calls on RpcTargets: the instance that must still be live. */
  readonly target: object | undefined;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
  epoch: number;
}

const BCW_TIMEOUT =
  "A call to blockConcurrencyWhile() in a Durable Object waited for too long. The call was canceled and the Durable Object was reset.";
const TARGET_GONE = "The execution context which hosts this callback is no longer running.";
const MAX_CRITICAL_DEPTH = 64;
const INSTANCE_GONE =
  "This Durable Object instance is no longer running (it was reset or evicted, or its runtime was disposed); its ctx can no longer be used.";

export class ActorHost implements StorageHost, AlarmHost, OutputGate {
  readonly handle: number;
  generation = new Generation();
  /** The name the object was reached by, once known (ctx.id.name). */
  name: string | undefined;
  instance: object | undefined;
  #state: DurableObjectState | undefined;
  #owner: Owner | undefined;
  #epoch = 0;
  #criticalDepth = 0;
  #closed = false;
  #storage: StorageCore | undefined;
  #alarm: ObjectAlarm | undefined;
  #constructing = false;
  readonly #inFlight = new Set<PendingEvent>();
  /** The live instance's JS faces of its hibernatable sockets, by the core's socket id. */
  readonly #sockets = new Map<number, WebSocket>();

  constructor(
    readonly system: ActorSystem,
    readonly actorClass: ActorClass,
    readonly hex: string,
  ) {
    this.handle = system.actors.open();
  }

  /** Queues `work` for the instance; settles with its (copied) result or remote error. */
  deliver(generation: Generation, work: (instance: any) => unknown, copyResult: boolean, target?: object): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.system.assertLive();
      const { actors, events } = this.system;
      const token = this.system.nextToken();
      events.set(token, { host: this, generation, work, copyResult, target, resolve, reject, epoch: 0 });
      if (actors.enqueue(this.handle, token)) queueMicrotask(this.#drain);
    });
  }

  /** Runs `fn` with the instance and its ctx as one of the object's events, result uncopied. */
  run(fn: (instance: object, state: DurableObjectState) => unknown): Promise<unknown> {
    return this.deliver(this.generation, (instance) => fn(instance, this.#state!), false);
  }

  readonly #drain = (): void => {
    const { actors, events } = this.system;
    for (let token; !this.#closed && (token = actors.nextEvent(this.handle)) >= 0; ) {
      const event = events.get(token)!;
      const refusal = this.#refusal(event);
      if (refusal) {
        events.delete(token);
        actors.finish(this.handle, this.#epoch);
        event.reject(refusal);
        continue;
      }
      if (this.instance === undefined) {
        const failure = this.#construct();
        if (failure !== undefined) {
          events.delete(token);
          actors.finish(this.handle, this.#epoch);
          event.reject(remoteError(failure));
          continue;
        }
        // A constructor that began blockConcurrencyWhile() keeps its first event waiting too.
        if (actors.waitForGate(this.handle, token)) return;
      }
      events.delete(token);
      this.#start(event);
    }
  };

  #refusal(event: PendingEvent): unknown {
    if (event.generation.broken) return event.generation.broken;
    if (event.target !== undefined && event.target !== this.instance) return new Error(TARGET_GONE);
    return undefined;
  }

  /** Builds the instance; returns what the constructor threw, if it did. */
  #construct(): unknown {
    const { Class, env, makeId } = this.actorClass;
    this.#epoch = this.system.actors.epoch(this.handle);
    const exports = this.system.compat.ctxExports ? this.actorClass.exports : undefined;
    const state = new DurableObjectState(this, makeId(this.hex, this.name), exports);
    this.#state = state;
    this.#constructing = true;
    try {
      // A restore to a bookmark, scheduled by the previous instance, takes effect as this one starts.
      this.#storage?.applyPendingRestore();
      const instance = new Class(state, env);
      this.instance = instance;
      this.#owner = { deliverToTarget: (work) => this.deliver(this.generation, work, true, instance) };
      this.system.actors.setLive(this.handle, true);
      return undefined;
    } catch (err) {
      this.#forget();
      this.system.actors.reset(this.handle);
      this.#epoch = this.system.actors.epoch(this.handle);
      return err;
    } finally {
      this.#constructing = false;
    }
  }

  #start(event: PendingEvent): void {
    event.epoch = this.#epoch;
    this.#inFlight.add(event);
    let result: unknown;
    try {
      result = event.work(this.instance);
    } catch (err) {
      this.#settle(event, false, err);
      return;
    }
    if (isThenable(result)) {
      result.then(
        (value) => this.#settle(event, true, value),
        (err) => this.#settle(event, false, err),
      );
    } else {
      this.#settle(event, true, result);
    }
  }

  #settle(event: PendingEvent, ok: boolean, value: unknown): void {
    if (!this.#inFlight.has(event)) return; // a reset already answered it
    // The output gate: nothing leaves before the writes made until now are durable — after any
    // transaction() still open, which holds them. A failed commit resets the object, which
    // answers this event too.
    const storage = this.#storage;
    // A critical SQLite error broke the output gate: nothing this turn produced may leave.
    if (storage?.critical) {
      this.fail(storage.critical);
      return;
    }
    if (storage?.unconfirmed) {
      if (storage.transactions > 0) {
        void storage.whenNoTransaction().then(() => this.#settle(event, ok, value));
        return;
      }
      if (storage.flush()) return;
    }
    this.#inFlight.delete(event);
    this.system.actors.finish(this.handle, event.epoch);
    if (!ok) {
      event.reject(remoteError(value));
      return;
    }
    try {
      event.resolve(event.copyResult ? copyResult(value, this.#owner) : value);
    } catch (err) {
      event.reject(remoteError(err));
    }
  }

  /**
   * The output gate for what the object's WebSockets send: after the writes made before it are
   * durable, as results are (see #settle); dropped if committing them fails (the object resets).
   */
  afterWrites(send: () => void): void {
    const storage = this.#storage;
    if (storage?.critical) return;
    if (storage?.unconfirmed) {
      if (storage.transactions > 0) {
        void storage.whenNoTransaction().then(() => this.afterWrites(send));
        return;
      }
      if (storage.flush()) return;
    }
    send();
  }

  /** A hibernatable socket's event: wakes the instance if it hibernated; settles when handled. */
  deliverSocketEvent(work: (instance: object) => unknown): Promise<unknown> {
    return this.deliver(this.generation, work, false);
  }

  rememberSocket(id: number, ws: WebSocket): void {
    this.#sockets.set(id, ws);
  }

  /** The instance's face of socket `id`, made on first use after waking. */
  socketFor(id: number, make: () => WebSocket): WebSocket {
    let ws = this.#sockets.get(id);
    if (ws === undefined) this.#sockets.set(id, (ws = make()));
    return ws;
  }

  socketIfAlive(id: number): WebSocket | undefined {
    return this.#sockets.get(id);
  }

  forgetSocket(id: number): void {
    this.#sockets.delete(id);
  }

  /** ctx.storage of the instance whose ctx is `state`, over a database that outlives instances. */
  storage(state: DurableObjectState): DurableObjectStorage {
    return new DurableObjectStorage(this.#storageCore(), () => this.assertCurrent(state));
  }

  /** An instance that is gone must not act on the object any more (its timers may still run). */
  assertCurrent(state: DurableObjectState): void {
    if (!this.isCurrent(state)) throw new Error(INSTANCE_GONE);
  }

  #storageCore(): StorageCore {
    if (this.#storage === undefined) {
      this.#storage = new StorageCore(this.actorClass.storageOptions(this.hex));
      this.#storage.host = this;
    }
    return this.#storage;
  }

  /** The object's alarm: its runs and retries. */
  get alarm(): ObjectAlarm {
    return (this.#alarm ??= new ObjectAlarm(this, this.system.alarms, this.actorClass.alarmNamespace));
  }

  deliverAlarm(work: (instance: any) => unknown): Promise<unknown> {
    return this.deliver(this.generation, work, false);
  }

  storedAlarm(): number | null {
    return this.#storageCore().getAlarm();
  }

  setStoredAlarm(time: number | null): void {
    this.#storageCore().setAlarm(time);
  }

  /** What ctx.storage.getAlarm() shows: not the alarm whose handler is running (spec 173). */
  visibleAlarm(stored: number | null): number | null {
    return this.#alarm ? this.#alarm.visible(stored) : stored;
  }

  alarmChangedByObject(): void {
    this.#alarm?.changedByObject();
  }

  recallName(): void {
    this.name ??= this.#storageCore().db.getName() ?? undefined;
  }

  mayScheduleAlarm(): boolean {
    return this.#constructing || typeof (this.instance as { alarm?: unknown } | undefined)?.alarm === "function";
  }

  fileAlarm(time: number): void {
    this.system.alarms.file(this.actorClass.alarmNamespace, this.hex, time);
  }

  alarmCommitted(time: number | null): void {
    this.alarm.committed(time);
  }

  clockNow(): number {
    return this.system.alarms.clock.now();
  }

  get deleteAllDeletesAlarm(): boolean {
    return this.system.compat.deleteAllDeletesAlarm;
  }

  get experimental(): boolean {
    return this.system.compat.experimental;
  }

  /** `abort(reason, { retryAlarm: false })`: the alarm run in progress is not retried. */
  noAlarmRetry(): void {
    if (this.#alarm) this.#alarm.retryAllowed = false;
  }

  /** A commit failed: the object resets, rolled back to its last good state. */
  fail(reason: Error): void {
    this.reset(resetError(reason));
  }

  /** Whether `state` is the live instance's (a dead instance's ctx must not affect the next). */
  isCurrent(state: DurableObjectState): boolean {
    return state === this.#state && !this.#closed;
  }

  /** Closes the input gate until `release` (storage operations, critical sections). */
  hold(): number {
    return this.system.actors.hold(this.handle);
  }

  /** Reopens the gate after this turn: the code awaiting a storage result runs first. */
  releaseLater(epoch: number): void {
    afterTurn(() => this.release(epoch));
  }

  /** Reopens the gate now (once for each hold). */
  release(epoch: number): void {
    if (!this.#closed && this.system.actors.release(this.handle, epoch)) queueMicrotask(this.#drain);
  }

  /** blockConcurrencyWhile(): the gate stays closed until `callback` settles; a failure resets. */
  critical<T>(state: DurableObjectState, callback: () => T | Promise<T>): Promise<T> {
    this.assertCurrent(state);
    if (this.#criticalDepth >= MAX_CRITICAL_DEPTH) throw new Error("blockConcurrencyWhile() calls are nested too deeply.");
    const epoch = this.hold();
    this.#criticalDepth++;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const end = (): boolean => {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        if (epoch === this.#epoch) this.#criticalDepth--;
        this.releaseLater(epoch);
        return true;
      };
      const fail = (err: unknown) => {
        if (!end()) return;
        const reason = resetError(err);
        if (epoch === this.#epoch && !this.#closed) this.reset(reason);
        reject(reason);
      };
      const timer = setTimeout(() => fail(new Error(BCW_TIMEOUT)), this.system.blockConcurrencyTimeoutMs);
      timer.unref();
      let result: T | Promise<T>;
      try {
        result = callback();
      } catch (err) {
        fail(err);
        return;
      }
      Promise.resolve(result).then((value) => {
        if (end()) resolve(value);
      }, fail);
    });
  }

  /** ctx.waitUntil(): keeps the object from eviction until `promise` settles. */
  keepAlive(state: DurableObjectState, promise: unknown): void {
    this.assertCurrent(state);
    const epoch = this.#epoch;
    this.system.actors.keepAlive(this.handle);
    Promise.resolve(promise)
      .catch((err) => console.error("Uncaught (in waitUntil)", err))
      .finally(() => {
        if (!this.#closed) this.system.actors.finish(this.handle, epoch);
      });
  }

  /** A standard (accept()ed) socket the object answered with keeps it in memory until it closes. */
  holdForSocket(ws: WebSocket): void {
    const epoch = this.#epoch;
    this.system.actors.keepAlive(this.handle);
    WebSocket.whenClosed(ws, () => {
      if (!this.#closed) this.system.actors.finish(this.handle, epoch);
    });
  }

  /** abort() or a failed critical section: the generation breaks and the instance is dropped. */
  reset(reason: DurableObjectError): void {
    const error = remoteError(reason) as DurableObjectError;
    this.generation.broken = error;
    this.generation = new Generation();
    // Writes not yet committed are discarded (spec 24).
    this.#storage?.rollback();
    this.#drop(error);
  }

  /** Isolated storage: the object's committed database (with its alarm row), if it has one. */
  snapshotStorage(): Buffer | undefined {
    return this.#storage?.snapshot();
  }

  /** Whether the object has a database: it used its storage, or a restore gave it one. */
  get hasStorage(): boolean {
    return this.#storage?.exists ?? false;
  }

  /**
   * Puts the object's storage back as `bytes` had it (undefined: as if never used). The instance
   * is dropped first and its pending events fail with `reason`; stubs stay usable (a test's
   * stubs, and those behind KV and D1 bindings, outlive the test).
   */
  restoreStorage(bytes: Buffer | undefined, reason: DurableObjectError): void {
    this.#storage?.rollback();
    this.#drop(remoteError(reason));
    if (bytes === undefined && this.#storage === undefined) return;
    const storage = this.#storageCore();
    storage.replace(bytes);
    this.alarm.committed(bytes === undefined ? null : storage.getAlarm());
  }

  /** Drops the instance, keeping the generation: the next event builds a new one. */
  evict(): void {
    if (this.instance === undefined) return;
    this.#storage?.evicted();
    this.#drop(remoteError(resetError(new Error("Durable Object was evicted while this request was running."))));
  }

  /** The runtime is going away: every pending event fails with `reason`. */
  close(reason: Error): void {
    if (this.#closed) return;
    this.#storage?.dispose();
    this.#drop(reason);
    this.#closed = true;
    const { actors, events } = this.system;
    for (const [token, event] of events) {
      if (event.host !== this) continue;
      events.delete(token);
      event.reject(reason);
    }
    actors.close(this.handle);
  }

  #drop(reason: unknown): void {
    const pending = [...this.#inFlight];
    this.#inFlight.clear();
    this.#forget();
    if (this.system.actors.reset(this.handle)) queueMicrotask(this.#drain);
    this.#epoch = this.system.actors.epoch(this.handle);
    for (const event of pending) event.reject(reason);
  }

  #forget(): void {
    this.instance = undefined;
    this.#state = undefined;
    this.#owner = undefined;
    this.#criticalDepth = 0;
    this.#sockets.clear();
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    ((typeof value === "object" && value !== null) || typeof value === "function") &&
    typeof (value as PromiseLike<unknown>).then === "function"
  );
}
