// Alarms: the scheduler that wakes objects through the core's index, and one alarm run with its
// retries (spec §7). The alarm itself is a row of the object's own database (`_cf_METADATA`).

import type { Alarms as NativeAlarms } from "../native/binding.js";
import type { ActorHost } from "./actor.js";
import type { Clock } from "./clock.js";


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

  constructor(
    readonly index: NativeAlarms,
    readonly clock: Clock,
    readonly find: HostFinder,
    readonly timeoutMs: number,
  ) {}

  /** Before a commit: the object may need waking at `time` (the index only ever moves earlier). */
  file(ns: number, hex: string, time: number): void {
    const filed = this.index.lower(ns, hex, time);
    if (this.#armedFor === undefined || filed < this.#armedFor) this.arm();
  }

  /** After a commit (or a run): the index says exactly what the object's database says. */
  settle(ns: number, hex: string, time: number | null): void {
    this.index.set(ns, hex, time);
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
    if (due.length === BATCH) this.clock.setTimeout(() => this.#fire(), 0);
    else this.arm();
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
  /** Writes the alarm row; `file` also has the object filed for it in the index. */
  setStoredAlarm(time: number | null, file?: boolean): void;
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
    if (retry !== undefined && (time === retry.scheduledTime || time === null)) {
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
    const retry = this.#retry;
    let info: AlarmInvocationInfo | undefined;
    // Before the instance is built: a process woken by the alarm knows the name only from storage.
    host.recallName();
    try {
      await host.deliverAlarm((instance) => {
        const stored = host.storedAlarm();
        const now = scheduler.clock.now();
        if (stored === null && retry === undefined) return undefined;
        if (!force && retry === undefined && stored !== null && stored > now) return undefined;
        if (typeof instance.alarm !== "function") {
          console.warn(NO_HANDLER);
          host.setStoredAlarm(null);
          return undefined;
        }
        const retryCount = retry && (stored === null || stored === retry.scheduledTime) ? retry.retryCount : 0;
        const scheduledTime = retryCount > 0 ? retry!.scheduledTime : (stored ?? retry!.scheduledTime);
        // Own enumerable, in this order (spec 172).
        info = { scheduledTime, retryCount, isRetry: retryCount > 0 };
        // getAlarm() is null inside the handler unless it sets a new one (spec 173).
        host.setStoredAlarm(null);
        return this.#withTimeout(instance.alarm(info));
      });
    } catch (err) {
      if (info !== undefined) this.#failed(info);
      throw err;
    }
    if (info !== undefined) this.#retry = undefined;
    return info !== undefined;
  }


  #withTimeout(result: unknown): unknown {
    if (!(result instanceof Promise)) return result;
    const { clock, timeoutMs } = this.scheduler;
    return new Promise((resolve, reject) => {
      const timer = clock.setTimeout(() => reject(new Error(TIMED_OUT)), timeoutMs);
      result.then(resolve, reject).finally(() => clock.clearTimeout(timer));
    });
  }

  /** A failed run is retried with backoff, unless the handler set a newer alarm (spec 175, 179). */
  #failed(info: AlarmInvocationInfo): void {
    const { host, scheduler } = this;
    const newer = host.storedAlarm();
    if (newer !== null && newer !== info.scheduledTime) {
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
    // The alarm stays set while it is being retried, so a restart still finds it.
    host.setStoredAlarm(info.scheduledTime, false);
    scheduler.settle(this.ns, host.hex, at);
  }

  /** Files the object again by what its database now says, or for its pending retry. */
  #refile(): void {
    this.committed(this.host.storedAlarm());
  }

}

