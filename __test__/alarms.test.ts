// Alarms (spec §7, lines 164–181; abort's retryAlarm, 27; deleteAll and the alarm, 51), driven by a
// ManualClock: every firing is checked just before its time and at it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createRuntime, ManualClock, type Runtime, type RuntimeOptions } from "../lib/index.js";
import { NativeDb } from "../lib/native-db.js";

import { Alarmed, alarmCtx, NoHandler, type AlarmCtx, type AlarmRun } from "./fixtures/alarm-objects.js";
import { rejection } from "./helpers.js";

/** A fixed start, far from the real time, so that nothing can pass for the system clock's. */
const START = 1_900_000_000_000;
const NO_HANDLER_WARNING =
  "Attempted to run a scheduled alarm without a handler, did you remember to export an alarm() function?";

let clock: ManualClock;
const runtimes: Runtime[] = [];
const folders: string[] = [];

function start(options: Partial<RuntimeOptions> = {}): { runtime: Runtime; env: Record<string, any> } {
  const runtime = createRuntime({
    durableObjects: { ALARMED: Alarmed, NO_HANDLER: NoHandler },
    bindings: { CLOCK: clock },
    clock,
    ...options,
  });
  runtimes.push(runtime);
  return { runtime, env: runtime.env as Record<string, any> };
}

beforeEach(() => {
  clock = new ManualClock(START);
  Alarmed.reset();
  NoHandler.setInConstructor = undefined;
  NoHandler.constructorResult = undefined;
});
afterEach(async () => {
  // Alarm runs that dispose() cuts short report it on the console: not news here.
  vi.spyOn(console, "error").mockImplementation(() => {});
  for (const runtime of runtimes.splice(0)) await runtime.dispose();
  await turn();
  vi.restoreAllMocks();
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

function folder(): string {
  const dir = mkdtempSync(join(tmpdir(), "durable-alarms-"));
  folders.push(dir);
  return dir;
}

/** Runs `fn` inside the object, as one of its events; its result comes back uncopied. */
function inObject<T>(runtime: Runtime, stub: unknown, fn: (ctx: AlarmCtx) => T | Promise<T>): Promise<T> {
  return runtime.runInDurableObject(stub as never, (_instance, ctx) => fn(alarmCtx(ctx)));
}

/** Failing runs are reported on the console; the tests check them through their retries instead. */
function quietConsole(): { warn: ReturnType<typeof vi.spyOn>; error: ReturnType<typeof vi.spyOn> } {
  return {
    warn: vi.spyOn(console, "warn").mockImplementation(() => {}),
    error: vi.spyOn(console, "error").mockImplementation(() => {}),
  };
}

function infos(runs: AlarmRun[]): { scheduledTime: number; retryCount: number; isRetry: boolean }[] {
  return runs.map(({ info }) => ({ ...info }));
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Moves the clock to `time`, running what comes due. A clock that cannot get there (alarm runs
 * that keep starting at the same instant) fails the test within 3 s rather than at its timeout.
 */
async function advanceTo(time: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `the clock did not reach START + ${time - START} ms within 3 s of real time: ${Alarmed.runs.length} alarm runs so far, the last at START + ${(Alarmed.runs.at(-1)?.at ?? START) - START} ms`,
          ),
        ),
      3_000,
    );
  });
  try {
    await Promise.race([clock.set(time), stuck]);
  } finally {
    clearTimeout(timer);
  }
}

function advance(ms: number): Promise<void> {
  return advanceTo(clock.now() + ms);
}

describe("setAlarm / getAlarm / deleteAlarm (spec 164–171)", () => {
  it("getAlarm() with no alarm set → null (spec 164)", async () => {
    const { runtime, env } = start();
    expect(await inObject(runtime, env.ALARMED.getByName("a"), (ctx) => ctx.storage.getAlarm())).toBeNull();
  });

  it("setAlarm(0) and setAlarm(-5) → TypeError: setAlarm() cannot be called with an alarm time <= 0 (spec 165)", async () => {
    const { runtime, env } = start();
    const stub = env.ALARMED.getByName("a");
    const errors = await inObject(runtime, stub, async (ctx) => [
      await rejection(ctx.storage.setAlarm(0)),
      await rejection(ctx.storage.setAlarm(-5)),
    ]);
    for (const err of errors) {
      expect(err).toBeInstanceOf(TypeError);
      expect(err.message).toBe("setAlarm() cannot be called with an alarm time <= 0");
    }
    expect(await inObject(runtime, stub, (ctx) => ctx.storage.getAlarm())).toBeNull();
  });

  it("setAlarm('x') and setAlarm(NaN) → the TypeErrors of a non-date argument (spec 166)", async () => {
    const { runtime, env } = start();
    const [notDate, nan] = await inObject(runtime, env.ALARMED.getByName("a"), async (ctx) => [
      await rejection(ctx.storage.setAlarm("x" as never)),
      await rejection(ctx.storage.setAlarm(NaN)),
    ]);
    expect(notDate).toBeInstanceOf(TypeError);
    expect(notDate.message).toBe(
      "Failed to execute 'setAlarm' on 'DurableObjectStorage': parameter 1 is not of type 'date'.",
    );
    expect(nan).toBeInstanceOf(TypeError);
    expect(nan.message).toBe("The value cannot be converted because it is not a valid Date.");
  });

  it("setAlarm() takes ms or a Date; getAlarm() returns integer ms, the fraction truncated (spec 167)", async () => {
    const { runtime, env } = start();
    const stub = env.ALARMED.getByName("a");
    const seen = await inObject(runtime, stub, async (ctx) => {
      const out: unknown[] = [];
      await ctx.storage.setAlarm(START + 3_600_000.7);
      out.push(await ctx.storage.getAlarm());
      await ctx.storage.setAlarm(new Date(START + 7_200_000));
      out.push(await ctx.storage.getAlarm());
      return out;
    });
    expect(seen).toEqual([START + 3_600_000, START + 7_200_000]);
  });

  it("setAlarm(pastTime) stores the current time and fires at once (spec 168)", async () => {
    const { runtime, env } = start();
    const stub = env.ALARMED.getByName("a");
    expect(
      await inObject(runtime, stub, async (ctx) => {
        await ctx.storage.setAlarm(1);
        return ctx.storage.getAlarm();
      }),
    ).toBe(START);
    expect(Alarmed.runs, "not before the clock moves").toHaveLength(0);
    await advance(0);
    expect(infos(Alarmed.runs)).toEqual([{ scheduledTime: START, retryCount: 0, isRetry: false }]);
    expect(Alarmed.runs[0]!.at).toBe(START);
  });

  it("one alarm per object: a later setAlarm() replaces an earlier one, which never fires (spec 169)", async () => {
    const { runtime, env } = start();
    const stub = env.ALARMED.getByName("a");
    await inObject(runtime, stub, async (ctx) => {
      await ctx.storage.setAlarm(START + 1_000);
      await ctx.storage.setAlarm(START + 5_000);
    });
    expect(await inObject(runtime, stub, (ctx) => ctx.storage.getAlarm())).toBe(START + 5_000);
    await advanceTo(START + 4_999);
    expect(Alarmed.runs, "the replaced alarm (START + 1000) must not fire").toHaveLength(0);
    await advanceTo(START + 5_000);
    expect(infos(Alarmed.runs)).toEqual([{ scheduledTime: START + 5_000, retryCount: 0, isRetry: false }]);
  });

  it("one alarm per object: an earlier setAlarm() replaces a later one, which never fires (spec 169)", async () => {
    const { runtime, env } = start();
    const stub = env.ALARMED.getByName("a");
    await inObject(runtime, stub, async (ctx) => {
      await ctx.storage.setAlarm(START + 5_000);
      await ctx.storage.setAlarm(START + 1_000);
    });
    expect(await inObject(runtime, stub, (ctx) => ctx.storage.getAlarm())).toBe(START + 1_000);
    await advanceTo(START + 999);
    expect(Alarmed.runs).toHaveLength(0);
    await advanceTo(START + 1_000);
    expect(Alarmed.runs).toHaveLength(1);
    await advanceTo(START + 60_000);
    expect(infos(Alarmed.runs)).toEqual([{ scheduledTime: START + 1_000, retryCount: 0, isRetry: false }]);
  });

  it("setAlarm() with the time already set is a no-op: one alarm, one run (spec 169)", async () => {
    const { runtime, env } = start();
    const stub = env.ALARMED.getByName("a");
    await inObject(runtime, stub, (ctx) => ctx.storage.setAlarm(START + 1_000));
    await inObject(runtime, stub, (ctx) => ctx.storage.setAlarm(START + 1_000));
    expect(await inObject(runtime, stub, (ctx) => ctx.storage.getAlarm())).toBe(START + 1_000);
    await advanceTo(START + 999);
    expect(Alarmed.runs).toHaveLength(0);
    await advanceTo(START + 60_000);
    expect(infos(Alarmed.runs)).toEqual([{ scheduledTime: START + 1_000, retryCount: 0, isRetry: false }]);
  });

  it("deleteAlarm() → undefined, twice without error; the deleted alarm does not fire (spec 170)", async () => {
    const { runtime, env } = start();
    const stub = env.ALARMED.getByName("a");
    const results = await inObject(runtime, stub, async (ctx) => {
      await ctx.storage.setAlarm(START + 1_000);
      return [await ctx.storage.deleteAlarm(), await ctx.storage.deleteAlarm(), await ctx.storage.getAlarm()];
    });
    expect(results).toEqual([undefined, undefined, null]);
    await advanceTo(START + 60_000);
    expect(Alarmed.runs).toHaveLength(0);
  });

  it("a class without alarm(): setAlarm() after construction → TypeError (spec 171)", async () => {
    const { runtime, env } = start();
    const stub = env.NO_HANDLER.getByName("a");
    expect(await stub.ping()).toBe("pong");
    const err = await inObject(runtime, stub, (ctx) => rejection(ctx.storage.setAlarm(START + 1_000)));
    expect(err).toBeInstanceOf(TypeError);
    expect(err.message).toBe("Your Durable Object class must have an alarm() handler in order to call setAlarm()");
    expect(await inObject(runtime, stub, (ctx) => ctx.storage.getAlarm())).toBeNull();
  });

  it("a class without alarm(): setAlarm() inside the constructor is allowed (spec 171)", async () => {
    const { runtime, env } = start();
    const stub = env.NO_HANDLER.getByName("a");
    NoHandler.setInConstructor = START + 1_000;
    expect(await stub.ping()).toBe("pong");
    expect(NoHandler.constructorResult).toBe("ok");
    expect(await inObject(runtime, stub, (ctx) => ctx.storage.getAlarm())).toBe(START + 1_000);
  });
});

describe("running the alarm (spec 172–181)", () => {
  it("fires at its time with { scheduledTime, retryCount: 0, isRetry: false }, own enumerable in that order (spec 172)", async () => {
    const { runtime, env } = start();
    const stub = env.ALARMED.getByName("a");
    await inObject(runtime, stub, (ctx) => ctx.storage.setAlarm(START + 1_000));
    await advance(999);
    expect(Alarmed.runs, "1 ms before its time").toHaveLength(0);
    await advance(1);
    expect(Alarmed.runs).toHaveLength(1);
    const [run] = Alarmed.runs;
    expect(run!.at).toBe(START + 1_000);
    expect(run!.info).toEqual({ scheduledTime: START + 1_000, retryCount: 0, isRetry: false });
    expect(typeof run!.info.scheduledTime).toBe("number");
    expect(run!.keys).toEqual(["scheduledTime", "retryCount", "isRetry"]);
  });

  it("inside alarm(), getAlarm() → null (spec 173)", async () => {
    const { runtime, env } = start();
    await inObject(runtime, env.ALARMED.getByName("a"), (ctx) => ctx.storage.setAlarm(START + 1_000));
    await advanceTo(START + 1_000);
    expect(Alarmed.runs.map((run) => run.alarmInside)).toEqual([null]);
  });

  it("inside alarm(), getAlarm() → the alarm the handler itself set (spec 173)", async () => {
    const { runtime, env } = start();
    const seen: unknown[] = [];
    Alarmed.behaviour = async (_object, info, ctx) => {
      if (info.scheduledTime !== START + 1_000) return;
      await ctx.storage.setAlarm(START + 9_000);
      seen.push(await ctx.storage.getAlarm());
    };
    await inObject(runtime, env.ALARMED.getByName("a"), (ctx) => ctx.storage.setAlarm(START + 1_000));
    await advanceTo(START + 1_000);
    expect(seen).toEqual([START + 9_000]);
  });

  it("a handler that succeeds clears the alarm (spec 174)", async () => {
    const { runtime, env } = start();
    const stub = env.ALARMED.getByName("a");
    await inObject(runtime, stub, (ctx) => ctx.storage.setAlarm(START + 1_000));
    await advanceTo(START + 1_000);
    expect(Alarmed.runs).toHaveLength(1);
    expect(await inObject(runtime, stub, (ctx) => ctx.storage.getAlarm())).toBeNull();
    await advanceTo(START + 3_600_000);
    expect(Alarmed.runs).toHaveLength(1);
  });

  it("a handler that succeeds after setting a new alarm keeps the new one (spec 174)", async () => {
    const { runtime, env } = start();
    const stub = env.ALARMED.getByName("a");
    Alarmed.behaviour = (_object, info, ctx) =>
      info.scheduledTime === START + 1_000 ? ctx.storage.setAlarm(START + 5_000) : undefined;
    await inObject(runtime, stub, (ctx) => ctx.storage.setAlarm(START + 1_000));
    await advanceTo(START + 1_000);
    expect(Alarmed.runs).toHaveLength(1);
    expect(await inObject(runtime, stub, (ctx) => ctx.storage.getAlarm())).toBe(START + 5_000);
  });

  it("a failing handler is retried 6 times, 2 s × 2ⁿ apart plus up to 25 % jitter, then abandoned (spec 175)", async () => {
    const { warn } = quietConsole();
    const { runtime, env } = start();
    const stub = env.ALARMED.getByName("a");
    Alarmed.behaviour = () => {
      throw new Error("alarm boom");
    };
    const scheduled = START + 1_000;
    await inObject(runtime, stub, (ctx) => ctx.storage.setAlarm(scheduled));
    await advanceTo(scheduled - 1);
    expect(Alarmed.runs).toHaveLength(0);
    await advanceTo(scheduled);
    expect(Alarmed.runs.map((run) => run.at)).toEqual([scheduled]);

    const gaps: number[] = [];
    for (let retry = 1; retry <= 6; retry++) {
      const previous = Alarmed.runs[retry - 1]!.at;
      const backoff = 2_000 * 2 ** (retry - 1);
      await advanceTo(previous + backoff - 1);
      expect(Alarmed.runs, `retry ${retry} must wait at least ${backoff} ms`).toHaveLength(retry);
      await advanceTo(previous + backoff * 1.25);
      expect(Alarmed.runs, `retry ${retry} must come within ${backoff * 1.25} ms`).toHaveLength(retry + 1);
      const gap = Alarmed.runs[retry]!.at - previous;
      gaps.push(gap);
      expect(gap, `retry ${retry}`).toBeGreaterThanOrEqual(backoff);
      expect(gap, `retry ${retry}`).toBeLessThanOrEqual(backoff * 1.25);
    }
    expect(gaps).toHaveLength(6);
    expect(infos(Alarmed.runs)).toEqual(
      [0, 1, 2, 3, 4, 5, 6].map((retryCount) => ({ scheduledTime: scheduled, retryCount, isRetry: retryCount > 0 })),
    );

    await advance(24 * 3_600_000);
    expect(Alarmed.runs, "no 8th attempt").toHaveLength(7);
    expect(await inObject(runtime, stub, (ctx) => ctx.storage.getAlarm())).toBeNull();
    // Giving up is logged (the issue: "then give up with a logged warning").
    expect(warn).toHaveBeenCalled();
  });

  it("attempts that take time run once each: still 7 attempts, each retry timed from the failure (spec 175)", async () => {
    quietConsole();
    const { runtime, env } = start();
    const stub = env.ALARMED.getByName("a");
    const failures: number[] = [];
    Alarmed.behaviour = async () => {
      await new Promise<void>((resolve) => clock.setTimeout(resolve, 100));
      failures.push(clock.now());
      throw new Error("slow alarm boom");
    };
    const scheduled = START + 1_000;
    await inObject(runtime, stub, (ctx) => ctx.storage.setAlarm(scheduled));
    await advanceTo(scheduled);
    expect(Alarmed.runs).toHaveLength(1);
    for (let retry = 1; retry <= 6; retry++) {
      await advanceTo(Alarmed.runs[retry - 1]!.at + 100);
      expect(Alarmed.runs, `attempt ${retry} runs once while it takes its 100 ms`).toHaveLength(retry);
      expect(failures).toHaveLength(retry);
      const failedAt = failures[retry - 1]!;
      const backoff = 2_000 * 2 ** (retry - 1);
      await advanceTo(failedAt + backoff - 1);
      expect(Alarmed.runs, `retry ${retry} must wait at least ${backoff} ms after the failure`).toHaveLength(retry);
      await advanceTo(failedAt + backoff * 1.25);
      expect(Alarmed.runs, `retry ${retry} must come within ${backoff * 1.25} ms of the failure`).toHaveLength(
        retry + 1,
      );
      expect(Alarmed.runs[retry]!.at - failedAt, `retry ${retry}`).toBeGreaterThanOrEqual(backoff);
    }
    await advanceTo(Alarmed.runs[6]!.at + 100);
    await advance(24 * 3_600_000);
    expect(infos(Alarmed.runs).map((info) => info.retryCount)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(failures).toHaveLength(7);
    expect(await inObject(runtime, stub, (ctx) => ctx.storage.getAlarm())).toBeNull();
  });

  it("deleteAlarm() inside the handler does not cancel the run in progress (spec 176)", async () => {
    const { runtime, env } = start();
    const stub = env.ALARMED.getByName("a");
    Alarmed.behaviour = async (_object, _info, ctx) => {
      await ctx.storage.deleteAlarm();
      Alarmed.events.push("after deleteAlarm");
    };
    await inObject(runtime, stub, (ctx) => ctx.storage.setAlarm(START + 1_000));
    await advanceTo(START + 999);
    expect(Alarmed.runs).toHaveLength(0);
    await advanceTo(START + 1_000);
    expect(Alarmed.runs).toHaveLength(1);
    expect(Alarmed.events).toEqual(["after deleteAlarm"]);
    await advanceTo(START + 3_600_000);
    expect(Alarmed.runs, "the run succeeded: no retry").toHaveLength(1);
    expect(await inObject(runtime, stub, (ctx) => ctx.storage.getAlarm())).toBeNull();
  });

  it("setAlarm() then deleteAlarm() inside the handler removes the new alarm: one invocation (spec 176)", async () => {
    const { runtime, env } = start();
    const stub = env.ALARMED.getByName("a");
    Alarmed.behaviour = async (_object, _info, ctx) => {
      await ctx.storage.setAlarm(START + 2_000);
      await ctx.storage.deleteAlarm();
    };
    await inObject(runtime, stub, (ctx) => ctx.storage.setAlarm(START + 1_000));
    await advanceTo(START + 1_000);
    expect(Alarmed.runs).toHaveLength(1);
    await advanceTo(START + 3_600_000);
    expect(infos(Alarmed.runs)).toEqual([{ scheduledTime: START + 1_000, retryCount: 0, isRetry: false }]);
    expect(await inObject(runtime, stub, (ctx) => ctx.storage.getAlarm())).toBeNull();
  });

  it("a handler that runs past alarmTimeoutMs counts as a failed attempt and is retried (spec 177)", async () => {
    quietConsole();
    const { runtime, env } = start({ alarmTimeoutMs: 50 });
    const stub = env.ALARMED.getByName("a");
    Alarmed.behaviour = (_object, info) => (info.retryCount === 0 ? new Promise(() => {}) : undefined);
    await inObject(runtime, stub, (ctx) => ctx.storage.setAlarm(START + 1_000));
    await advanceTo(START + 1_000);
    expect(Alarmed.runs).toHaveLength(1);
    // It fails at START + 1050; its retry comes 2000–2500 ms later.
    await advanceTo(START + 1_050 + 1_999);
    expect(Alarmed.runs).toHaveLength(1);
    await advanceTo(START + 1_050 + 2_500);
    expect(infos(Alarmed.runs)).toEqual([
      { scheduledTime: START + 1_000, retryCount: 0, isRetry: false },
      { scheduledTime: START + 1_000, retryCount: 1, isRetry: true },
    ]);
    expect(Alarmed.runs[1]!.at - (START + 1_050)).toBeGreaterThanOrEqual(2_000);
    expect(await inObject(runtime, stub, (ctx) => ctx.storage.getAlarm())).toBeNull();
  });

  it("the timed-out run fails with Error: Alarm exceeded its allowed execution time (spec 177)", async () => {
    quietConsole();
    const { runtime, env } = start({ alarmTimeoutMs: 50 });
    const stub = env.ALARMED.getByName("a");
    Alarmed.behaviour = () => new Promise(() => {});
    await inObject(runtime, stub, (ctx) => ctx.storage.setAlarm(START + 3_600_000));
    let settled = false;
    const outcome = rejection(runtime.runAlarm(stub)).finally(() => (settled = true));
    await advance(0);
    expect(Alarmed.runs.map((run) => run.at)).toEqual([START]);
    await advance(49);
    expect(Alarmed.runs).toHaveLength(1);
    expect(settled, "still within the limit").toBe(false);
    await advance(1);
    const err = await outcome;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toBe("Alarm exceeded its allowed execution time");
  });

  it("an alarm firing in a class without alarm() logs the warning and is not retried (spec 178)", async () => {
    const { warn } = quietConsole();
    const { runtime, env } = start();
    const stub = env.NO_HANDLER.getByName("a");
    NoHandler.setInConstructor = START + 1_000;
    await stub.ping();
    expect(NoHandler.constructorResult).toBe("ok");
    const warnings = () => warn.mock.calls.filter((args: unknown[]) => args[0] === NO_HANDLER_WARNING).length;
    await advanceTo(START + 999);
    expect(warnings()).toBe(0);
    await advanceTo(START + 1_000);
    expect(warn).toHaveBeenCalledWith(NO_HANDLER_WARNING);
    expect(warnings()).toBe(1);
    await advanceTo(START + 3_600_000);
    expect(warnings(), "not retried").toBe(1);
    expect(await inObject(runtime, stub, (ctx) => ctx.storage.getAlarm())).toBeNull();
  });

  it("an alarm that comes due while the handler runs waits for it to finish, then runs (spec 179)", async () => {
    const { runtime, env } = start();
    const stub = env.ALARMED.getByName("a");
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    Alarmed.behaviour = async (_object, info, ctx) => {
      if (info.scheduledTime !== START + 1_000) return;
      await ctx.storage.setAlarm(START + 1_100);
      await finished;
      Alarmed.events.push("first run ends");
    };
    await inObject(runtime, stub, (ctx) => ctx.storage.setAlarm(START + 1_000));
    await advanceTo(START + 1_000);
    expect(Alarmed.runs).toHaveLength(1);
    await advanceTo(START + 1_200);
    expect(Alarmed.runs, "the new alarm is due, but the first run has not finished").toHaveLength(1);
    finish();
    await advance(0);
    expect(Alarmed.events).toEqual(["first run ends"]);
    expect(infos(Alarmed.runs)).toEqual([
      { scheduledTime: START + 1_000, retryCount: 0, isRetry: false },
      { scheduledTime: START + 1_100, retryCount: 0, isRetry: false },
    ]);
  });

  it("a failed run is not retried when the handler set a newer alarm; the newer one runs at its time (spec 179)", async () => {
    quietConsole();
    const { runtime, env } = start();
    const stub = env.ALARMED.getByName("a");
    Alarmed.behaviour = async (_object, info, ctx) => {
      if (info.scheduledTime !== START + 1_000) return;
      await ctx.storage.setAlarm(START + 10_000);
      throw new Error("alarm boom");
    };
    await inObject(runtime, stub, (ctx) => ctx.storage.setAlarm(START + 1_000));
    await advanceTo(START + 1_000);
    expect(Alarmed.runs).toHaveLength(1);
    await advanceTo(START + 9_999);
    expect(Alarmed.runs, "no retry of the failed run").toHaveLength(1);
    await advanceTo(START + 10_000);
    expect(infos(Alarmed.runs)).toEqual([
      { scheduledTime: START + 1_000, retryCount: 0, isRetry: false },
      { scheduledTime: START + 10_000, retryCount: 0, isRetry: false },
    ]);
    expect(Alarmed.runs[1]!.at).toBe(START + 10_000);
    await advanceTo(START + 3_600_000);
    expect(Alarmed.runs).toHaveLength(2);
  });

  it("setAlarm() inside a transactionSync() that throws → no alarm (spec 180)", async () => {
    const { runtime, env } = start();
    const stub = env.ALARMED.getByName("a");
    const message = await inObject(runtime, stub, (ctx) => {
      try {
        ctx.storage.transactionSync(() => {
          void ctx.storage.setAlarm(START + 1_000);
          throw new Error("roll back");
        });
      } catch (err) {
        return (err as Error).message;
      }
      return "no throw";
    });
    expect(message).toBe("roll back");
    expect(await inObject(runtime, stub, (ctx) => ctx.storage.getAlarm())).toBeNull();
    await advanceTo(START + 3_600_000);
    expect(Alarmed.runs).toHaveLength(0);
  });

  it("ctx.id.name inside alarm() is the name, also after the object was evicted (spec 181)", async () => {
    const { runtime, env } = start();
    const stub = env.ALARMED.getByName("named");
    await inObject(runtime, stub, (ctx) => ctx.storage.setAlarm(START + 1_000));
    await runtime.evict(stub);
    await advanceTo(START + 999);
    expect(Alarmed.runs).toHaveLength(0);
    await advanceTo(START + 1_000);
    expect(Alarmed.runs.map((run) => run.name)).toEqual(["named"]);
  });

  it("ctx.id.name inside alarm() is the name in a new runtime on the same folder, the object not reached (spec 181)", async () => {
    const dir = folder();
    const first = start({ persist: dir });
    await inObject(first.runtime, first.env.ALARMED.getByName("persisted"), (ctx) => ctx.storage.setAlarm(START + 1_000));
    await first.runtime.dispose();

    clock = new ManualClock(START);
    start({ persist: dir });
    await advanceTo(START + 999);
    expect(Alarmed.runs).toHaveLength(0);
    await advanceTo(START + 1_000);
    expect(Alarmed.runs.map((run) => run.name)).toEqual(["persisted"]);
  });
});

describe("abort() during alarm() (spec 27)", () => {
  it("ctx.abort('x', { retryAlarm: false }) → the alarm is not retried", async () => {
    quietConsole();
    const { runtime, env } = start();
    const stub = env.ALARMED.getByName("a");
    Alarmed.behaviour = (_object, _info, ctx) => ctx.abort("x", { retryAlarm: false });
    await inObject(runtime, stub, (ctx) => ctx.storage.setAlarm(START + 1_000));
    await advanceTo(START + 1_000);
    expect(Alarmed.runs).toHaveLength(1);
    await advanceTo(START + 3_600_000);
    expect(Alarmed.runs).toHaveLength(1);
    expect(await inObject(runtime, env.ALARMED.getByName("a"), (ctx) => ctx.storage.getAlarm())).toBeNull();
  });

  it("ctx.abort('x') → the alarm is retried after the reset", async () => {
    quietConsole();
    const { runtime, env } = start();
    Alarmed.behaviour = (_object, info, ctx) => (info.retryCount === 0 ? ctx.abort("x") : undefined);
    await inObject(runtime, env.ALARMED.getByName("a"), (ctx) => ctx.storage.setAlarm(START + 1_000));
    await advanceTo(START + 1_000);
    expect(Alarmed.runs).toHaveLength(1);
    await advanceTo(START + 1_000 + 1_999);
    expect(Alarmed.runs).toHaveLength(1);
    await advanceTo(START + 1_000 + 2_500);
    expect(infos(Alarmed.runs)).toEqual([
      { scheduledTime: START + 1_000, retryCount: 0, isRetry: false },
      { scheduledTime: START + 1_000, retryCount: 1, isRetry: true },
    ]);
    expect(await inObject(runtime, env.ALARMED.getByName("a"), (ctx) => ctx.storage.getAlarm())).toBeNull();
  });
});

describe("deleteAll() and the alarm (spec 51)", () => {
  it.each([
    { label: "compatibilityDate 2026-08-01: deleted", config: { compatibilityDate: "2026-08-01" }, kept: false },
    {
      label: "delete_all_preserves_alarm: kept",
      config: { compatibilityDate: "2026-08-01", compatibilityFlags: ["delete_all_preserves_alarm"] },
      kept: true,
    },
    { label: "compatibilityDate 2025-01-01: kept", config: { compatibilityDate: "2025-01-01" }, kept: true },
  ])("$label", async ({ config, kept }) => {
    const { runtime, env } = start(config);
    const stub = env.ALARMED.getByName("a");
    const after = await inObject(runtime, stub, async (ctx) => {
      await ctx.storage.put("k", 1);
      await ctx.storage.setAlarm(START + 1_000);
      await ctx.storage.deleteAll();
      return { alarm: await ctx.storage.getAlarm(), k: await ctx.storage.get("k") };
    });
    expect(after).toEqual({ alarm: kept ? START + 1_000 : null, k: undefined });
    await advanceTo(START + 999);
    expect(Alarmed.runs).toHaveLength(0);
    await advanceTo(START + 1_000);
    expect(Alarmed.runs).toHaveLength(kept ? 1 : 0);
  });
});

describe("runtime.runAlarm(stub)", () => {
  it("no alarm set → false, nothing runs", async () => {
    const { runtime, env } = start();
    expect(await runtime.runAlarm(env.ALARMED.getByName("a"))).toBe(false);
    expect(Alarmed.runs).toHaveLength(0);
  });

  it("an alarm set → runs it now though not due, clears it, and resolves true", async () => {
    const { runtime, env } = start();
    const stub = env.ALARMED.getByName("a");
    await inObject(runtime, stub, (ctx) => ctx.storage.setAlarm(START + 3_600_000));
    expect(await runtime.runAlarm(stub)).toBe(true);
    expect(infos(Alarmed.runs)).toEqual([{ scheduledTime: START + 3_600_000, retryCount: 0, isRetry: false }]);
    expect(Alarmed.runs[0]!.at).toBe(START);
    expect(await inObject(runtime, stub, (ctx) => ctx.storage.getAlarm())).toBeNull();
    await advanceTo(START + 3_600_001);
    expect(Alarmed.runs, "the alarm it ran does not fire again").toHaveLength(1);
  });
});

describe("alarm delivery and the input gate (spec 172, §5 95–96)", () => {
  // The alarm event is queued when the clock reaches its time, and the call right behind it, so
  // only the input gate can keep the call out while alarm() awaits its first storage read.
  it("a call queued behind the alarm waits until the code awaiting alarm()'s storage read has run", async () => {
    const { runtime, env } = start();
    const stub = env.ALARMED.getByName("a");
    Alarmed.behaviour = () => {
      Alarmed.events.push("alarm: after its getAlarm()");
    };
    await inObject(runtime, stub, (ctx) => ctx.storage.setAlarm(START + 1_000));
    const firing = advanceTo(START + 1_000);
    const call = stub.mark("call");
    await firing;
    expect(await call).toBe("call");
    expect(Alarmed.runs).toHaveLength(1);
    expect(Alarmed.events).toEqual(["alarm: after its getAlarm()", "call"]);
  });
});

describe("at least once, and one run at a time (review fixes)", () => {
  it("the alarm stays stored while its handler runs, so a crash during it loses nothing", async () => {
    const dir = folder();
    const { runtime, env } = start({ persist: dir });
    const stub = env.ALARMED.getByName("a");
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let storedDuringRun: number | null = null;
    Alarmed.behaviour = async () => {
      const db = new NativeDb(join(dir, "Alarmed", `${stub.id}.sqlite`), false);
      storedDuringRun = db.getAlarm();
      db.close();
      await held;
    };
    await inObject(runtime, stub, (ctx) => ctx.storage.setAlarm(START + 1_000));
    const firing = advanceTo(START + 1_000);
    await vi.waitFor(() => expect(Alarmed.runs).toHaveLength(1));
    expect(storedDuringRun).toBe(START + 1_000);
    expect(Alarmed.runs[0]!.alarmInside, "the handler itself sees none (spec 173)").toBeNull();
    release();
    await firing;
    expect(await inObject(runtime, stub, (ctx) => ctx.storage.getAlarm())).toBeNull();
  });

  it("deleteAlarm() while a failed alarm waits for its retry cancels the retry", async () => {
    quietConsole();
    const { runtime, env } = start();
    const stub = env.ALARMED.getByName("a");
    Alarmed.behaviour = () => {
      throw new Error("alarm boom");
    };
    await inObject(runtime, stub, (ctx) => ctx.storage.setAlarm(START + 1_000));
    await advanceTo(START + 1_000);
    expect(Alarmed.runs).toHaveLength(1);
    expect(await inObject(runtime, stub, (ctx) => ctx.storage.getAlarm()), "still set while retried").toBe(START + 1_000);
    await inObject(runtime, stub, (ctx) => ctx.storage.deleteAlarm());
    await advanceTo(START + 600_000);
    expect(Alarmed.runs).toHaveLength(1);
  });

  it("a handler past its time limit is stopped: its instance can no longer write, and the retry runs on a new one", async () => {
    quietConsole();
    const { runtime, env } = start({ alarmTimeoutMs: 50 });
    const stub = env.ALARMED.getByName("a");
    let stuckCtx: AlarmCtx | undefined;
    Alarmed.behaviour = (_object, info, ctx) => {
      if (info.retryCount > 0) return undefined;
      stuckCtx = ctx;
      return new Promise<void>(() => {});
    };
    await inObject(runtime, stub, (ctx) => ctx.storage.setAlarm(START + 1_000));
    await advanceTo(START + 1_060);
    await expect(stuckCtx!.storage.put("late", 1)).rejects.toThrow(/^This Durable Object instance is no longer running/);
    await advanceTo(START + 10_000);
    expect(infos(Alarmed.runs).map((run) => run.retryCount)).toEqual([0, 1]);
    expect(await inObject(runtime, stub, (ctx) => ctx.storage.get("late"))).toBeUndefined();
  });
});

describe("time limits and instances (second review)", () => {
  it("the time limit of a run whose instance is gone does not reset the next instance", async () => {
    quietConsole();
    const { runtime, env } = start({ alarmTimeoutMs: 200 });
    const stub = env.ALARMED.getByName("a");
    Alarmed.behaviour = () => new Promise<void>(() => {});
    await inObject(runtime, stub, (ctx) => ctx.storage.setAlarm(START + 3_600_000));
    const run = rejection(runtime.runAlarm(stub));
    await advance(0);
    await runtime.evict(stub);
    await run;
    const fresh = env.ALARMED.getByName("a");
    expect(await fresh.mark("before")).toBe("before");
    await advance(500);
    expect(await fresh.mark("after the old limit"), "the new instance was not reset").toBe("after the old limit");
  });

  it("a handler that finishes after its instance was reset does not clear the alarm or its retry", async () => {
    quietConsole();
    const { runtime, env } = start({ alarmTimeoutMs: 50 });
    const stub = env.ALARMED.getByName("a");
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    Alarmed.behaviour = (_object, info) => (info.retryCount === 0 ? held : undefined);
    await inObject(runtime, stub, (ctx) => ctx.storage.setAlarm(START + 1_000));
    await advanceTo(START + 1_060);
    release();
    await advance(0);
    expect(await inObject(runtime, stub, (ctx) => ctx.storage.getAlarm()), "kept for its retry").toBe(START + 1_000);
    await advanceTo(START + 4_000);
    expect(infos(Alarmed.runs).map((run) => run.retryCount)).toEqual([0, 1]);
  });
});
