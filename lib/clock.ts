// Time for alarms: the system clock by default, or one a test controls.

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * Reads the globals at each call rather than capturing them, so that `vi.useFakeTimers()` (which
 * replaces them) drives alarms too. Its timers do not keep the process alive: a persisted alarm
 * that has not fired when the process ends fires after the next start.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const timer = setTimeout(fn, ms);
    (timer as { unref?: () => void }).unref?.();
    return timer;
  },
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** A clock that moves only when told to: `await clock.advance(2000)` runs what came due. */
export class ManualClock implements Clock {
  #now: number;
  #timers = new Map<number, { at: number; fn: () => void }>();
  #nextHandle = 1;

  constructor(start = Date.now()) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): number {
    const handle = this.#nextHandle++;
    this.#timers.set(handle, { at: this.#now + Math.max(0, ms), fn });
    return handle;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  /** Moves time forward by `ms`, running each timer at its time, and lets what they started run. */
  async advance(ms: number): Promise<void> {
    await this.set(this.#now + ms);
  }

  /**
   * Moves time to `time` (never backwards), running each timer due by then at its own time, in
   * order, including timers that the work started by earlier ones sets.
   */
  async set(time: number): Promise<void> {
    for (;;) {
      const next = this.#firstDue(time);
      if (next === undefined) {
        // Work that earlier timers started may still set one that is due by `time`.
        await settle();
        if (this.#firstDue(time) === undefined) break;
        continue;
      }
      this.#timers.delete(next[0]);
      this.#now = Math.max(this.#now, next[1].at);
      next[1].fn();
      await settle();
    }
    this.#now = Math.max(this.#now, time);
  }

  #firstDue(time: number): [number, { at: number; fn: () => void }] | undefined {
    let first: [number, { at: number; fn: () => void }] | undefined;
    for (const entry of this.#timers) {
      if (entry[1].at <= time && (first === undefined || entry[1].at < first[1].at)) first = entry;
    }
    return first;
  }
}

/** Lets work started by a timer (an alarm handler and its commit) run to completion. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
