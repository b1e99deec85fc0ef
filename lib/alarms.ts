// Alarms: the scheduler that wakes objects through the core's index, and one alarm run with its
// retries (spec §7). The alarm itself is a row of the object's own database (`_cf_METADATA`).

import type { Alarms as NativeAlarms } from "../native/binding.js";
import type { ActorHost } from "./actor.js";
import type { Clock } from "./clock.js";
import { resetError } from "./errors.js";
import { call } from "./native.js";

const MAX_RETRIES = 6;
const BACKOFF_MS = 2_000;
const MAX_EXPONENT = 9;
const JITTER = 0.25;
/** How many due alarms one timer tick takes; the rest follow on the next turn. */
const BATCH = 1_000;

const NO_HANDLER =
  "Attempted to run a scheduled alarm without a handler, did you remember to export an alarm() function?";
const TIMED_OUT = "Alarm exceeded its allowed execution time";

export interface AlarmInvocationInfo {
  readonly scheduledTime: number;
  readonly retryCount: number;
  readonly isRetry: boolean;
}

/** An object's side of the scheduler: finding its host by class and id. */
export type HostFinder = (className: string, hex: string) => ActorHost | undefined;

export class AlarmScheduler {
  #timer: unknown;
  #armedFor: number | undefined;
  #closed = false;

  /** The runtime was disposed: runs still in progress end without filing anything again. */
  get closed(): boolean {
    return this.#closed;
  }

  constructor(
    readonly index: NativeAlarms,
    readonly clock: Clock,
    readonly find: HostFinder,
    readonly timeoutMs: number,
  ) {}

  /** Before a commit: the object may need waking at `time` (the index only ever moves earlier). */
  file(ns: number, hex: string, time: number): void {
    const filed = call(() => this.index.lower(ns, hex, time));
    if (this.#armedFor === undefined || filed < this.#armedFor) this.arm();
  }

  /** After a commit (or a run): the index says exactly what the object's database says. */
  settle(ns: number, hex: string, time: number | null): void {
    call(() => this.index.set(ns, hex, time));
    this.arm();
  }

  /** Keeps one timer, for the earliest time any object needs waking. */
  arm(): void {
    if (this.#closed) return;
    const next = this.index.next();
    if (next === this.#armedFor && this.#timer !== undefined) return;
    if (this.#timer !== undefined) this.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedFor = next ?? undefined;
    if (next === null || next === undefined) return;
    // Timers take at most 2^31-1 ms; a later alarm re-arms when that one fires.
    const delay = Math.min(Math.max(0, next - this.clock.now()), 2 ** 31 - 1);
    this.#timer = this.clock.setTimeout(() => this.#fire(), delay);
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedFor = undefined;
    if (this.#closed) return;
    const due = this.index.takeDue(this.clock.now(), BATCH);
    for (const { namespace, id } of due) {
      const host = this.find(namespace, id);
      if (host === undefined) {
        console.warn(`durable-node: an alarm is due for ${namespace} ${id}, but no binding of this runtime serves that class.`);
        continue;
      }
      // A failure is answered by its retry (ObjectAlarm); it is reported, not left unhandled.
      host.alarm.run({ force: false }).catch((err) => console.error(`durable-node: alarm of ${namespace} ${id} failed:`, err));
    }
    if (due.length === BATCH) {
      this.#armedFor = this.clock.now();
      this.#timer = this.clock.setTimeout(() => this.#fire(), 0);
    } else {
      this.arm();
    }
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) this.clock.clearTimeout(this.#timer);
    this.index.close();
  }
}

/** What an alarm run needs of its object's host. */
export interface AlarmHost {
  readonly hex: string;
  /** The instance's alarm handler exists (constructing it if needed). */
  deliverAlarm(work: (instance: { alarm?: (info: AlarmInvocationInfo) => unknown }) => unknown): Promise<unknown>;
  storedAlarm(): number | null;
  setStoredAlarm(time: number | null): void;
  /** Ends the instance (a handler past its time limit). */
  reset(reason: Error): void;
  /** The live instance, if any. */
  readonly instance: object | undefined;
  /** Loads the name the object was reached by, if only its database knows it. */
  recallName(): void;
}

/** One object's alarm state: its retries, and whether the run in progress may be retried. */
export class ObjectAlarm {
  #retry: { scheduledTime: number; retryCount: number; at: number } | undefined;
  /**
   * One run at a time (spec 179): an alarm that comes due during a run is not started beside it;
   * the run files the object again when it ends, and the scheduler starts the next one then.
   */
  #running = false;
  /** The scheduled time of the alarm whose handler is running: hidden from getAlarm(). */
  #masked: number | undefined;
  #changedByHandler = false;
  /** `ctx.abort(reason, { retryAlarm: false })` during a run. */
  retryAllowed = true;

  constructor(
    readonly host: AlarmHost,
    readonly scheduler: AlarmScheduler,
    readonly ns: number,
  ) {}

  /**
   * After a commit that touched the alarm row: files the object for it, or for its pending retry
   * while the row still holds the alarm being retried. A different alarm supersedes the retry.
   */
  committed(time: number | null): void {
    if (this.#running) return;
    const retry = this.#retry;
    if (retry !== undefined && time === retry.scheduledTime) {
      this.scheduler.settle(this.ns, this.host.hex, retry.at);
      return;
    }
    this.#retry = undefined;
    this.scheduler.settle(this.ns, this.host.hex, time);
  }

  /**
   * Runs the alarm as an event of the object. Unless `force`, only when it is due. Resolves true
   * when a handler ran (and succeeded); a failure schedules its retry and rejects.
   */
  async run({ force }: { force: boolean }): Promise<boolean> {
    if (this.#running) return false;
    this.#running = true;
    try {
      return await this.#run(force);
    } finally {
      this.#running = false;
      this.#refile();
    }
  }

  async #run(force: boolean): Promise<boolean> {
    const { scheduler, host } = this;
    this.retryAllowed = true;
    this.#changedByHandler = false;
    const retry = this.#retry;
    let info: AlarmInvocationInfo | undefined;
    let timer: unknown;
    // Before the instance is built: a process woken by the alarm knows the name only from storage.
    host.recallName();
    try {
      await host.deliverAlarm((instance) => {
        const stored = host.storedAlarm();
        if (stored === null) return undefined;
        const retrying = retry !== undefined && stored === retry.scheduledTime;
        if (!force && !retrying && stored > scheduler.clock.now()) return undefined;
        if (typeof instance.alarm !== "function") {
          console.warn(NO_HANDLER);
          host.setStoredAlarm(null);
          return undefined;
        }
        const retryCount = retrying ? retry.retryCount : 0;
        // Own enumerable, in this order (spec 172).
        const run: AlarmInvocationInfo = { scheduledTime: stored, retryCount, isRetry: retryCount > 0 };
        info = run;
        // The row stays until the handler succeeds, so a crash during it loses nothing; the
        // handler itself sees no alarm unless it sets one (spec 173).
        this.#masked = stored;
        // Past the time limit (spec 177) this instance is reset, so that the handler stops before
        // its retry starts; the reset fails the run, which counts as an attempt.
        timer = scheduler.clock.setTimeout(() => {
          if (!scheduler.closed && host.instance === instance) host.reset(resetError(new Error(TIMED_OUT)));
        }, scheduler.timeoutMs);
        return Promise.resolve(instance.alarm(run)).then(() => {
          // Only while this instance is the live one: a reset already answered the run.
          if (host.instance !== instance) return;
          if (!this.#changedByHandler && host.storedAlarm() === run.scheduledTime) host.setStoredAlarm(null);
        });
      });
    } catch (err) {
      this.#masked = undefined;
      // A disposed runtime ends its runs without filing retries (its storage is closed).
      if (info !== undefined && !scheduler.closed) this.#failed(info);
      throw err;
    } finally {
      if (timer !== undefined) scheduler.clock.clearTimeout(timer);
    }
    this.#masked = undefined;
    if (info !== undefined) this.#retry = undefined;
    return info !== undefined;
  }

  /** What `getAlarm()` shows the object: not the alarm whose handler is running. */
  visible(stored: number | null): number | null {
    return stored !== null && stored === this.#masked ? null : stored;
  }

  /** The object's own code set or deleted its alarm (it may be running the handler). */
  changedByObject(): void {
    this.#changedByHandler = true;
    this.#masked = undefined;
  }

  /**
   * A failed run is retried with backoff (spec 175) while its alarm is still the one set: not
   * when the handler deleted it or set a newer one (spec 179), nor after abort(…, { retryAlarm:
   * false }) (spec 27).
   */
  #failed(info: AlarmInvocationInfo): void {
    const { host, scheduler } = this;
    if (host.storedAlarm() !== info.scheduledTime) {
      this.#retry = undefined;
      return;
    }
    if (!this.retryAllowed || info.retryCount >= MAX_RETRIES) {
      if (info.retryCount >= MAX_RETRIES) {
        console.warn(`durable-node: alarm of ${host.hex} failed ${MAX_RETRIES + 1} times; giving up.`);
      }
      this.#retry = undefined;
      host.setStoredAlarm(null);
      return;
    }
    const delay = BACKOFF_MS * 2 ** Math.min(info.retryCount, MAX_EXPONENT) * (1 + Math.random() * JITTER);
    const at = scheduler.clock.now() + delay;
    this.#retry = { scheduledTime: info.scheduledTime, retryCount: info.retryCount + 1, at };
    scheduler.settle(this.ns, host.hex, at);
  }

  /** Files the object again by what its database now says, or for its pending retry. */
  #refile(): void {
    if (this.scheduler.closed) return;
    this.committed(this.host.storedAlarm());
  }
}

