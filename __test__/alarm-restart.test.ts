// Alarms across a killed process (issue "alarms"): a child sets alarms in 1,000 objects and is killed
// with SIGKILL; a new child on the same folder fires every alarm that came due meanwhile, within one
// second of its start, and keeps the ones not yet due.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { FAR, NEAR, NEAR_DELAY_MS, type Fired } from "./fixtures/alarm-writer.js";
import { REGISTER, ROOT, useChildProcesses } from "./helpers.js";

const WRITER = fileURLToPath(new URL("./fixtures/alarm-writer.ts", import.meta.url));
const CHILD_LIMIT_MS = 15_000;

const processes = useChildProcesses("durable-alarm-restart-");

interface Ready {
  ready: true;
  nearTime: number;
  farTime: number;
  near: string[];
  far: string[];
  msToNear: number;
}

interface Done {
  done: true;
  processStart: number;
  fired: Fired[];
  far: Record<string, number | null>;
}

type Line = Partial<Ready> & Partial<Done> & { fired?: string | Fired[] };

interface Run {
  lines: Line[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs the writer in `mode`; `onLine` sees each JSON line as it comes and may kill the child. */
function runWriter(mode: "set" | "fire", onLine: (line: Line, child: ChildProcess) => void = () => {}): Promise<Run> {
  const child = spawn(process.execPath, ["--import", REGISTER, WRITER, processes.folder, mode], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  processes.children.add(child);
  const lines: Line[] = [];
  let pending = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    pending += chunk;
    for (let end; (end = pending.indexOf("\n")) >= 0; ) {
      const line = JSON.parse(pending.slice(0, end)) as Line;
      pending = pending.slice(end + 1);
      lines.push(line);
      onLine(line, child);
    }
  });
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const guard = setTimeout(() => child.kill("SIGKILL"), CHILD_LIMIT_MS);
  return new Promise((resolve) => {
    child.on("close", (code, signal) => {
      clearTimeout(guard);
      processes.children.delete(child);
      resolve({ lines, code, signal, stderr });
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("alarms across a killed process", () => {
  it(`SIGKILL after alarms were set in ${NEAR + FAR} objects: a new process fires every past-due one within 1 s of its start, none lost, and keeps the rest`, async () => {
    const set = await runWriter("set", (line, child) => {
      if (line.ready) child.kill("SIGKILL");
    });
    const ready = set.lines.find((line) => line.ready) as Ready | undefined;
    expect(
      { signal: set.signal, ready: ready !== undefined },
      `the setting process must print "ready" and be killed (exit code ${set.code}); its stderr:\n${set.stderr}`,
    ).toEqual({ signal: "SIGKILL", ready: true });
    expect(ready!.near).toHaveLength(NEAR);
    expect(ready!.far).toHaveLength(FAR);
    expect(
      ready!.msToNear,
      `the ${NEAR + FAR} setAlarm() calls took longer than NEAR_DELAY_MS (${NEAR_DELAY_MS} ms): the near alarms were due before the kill`,
    ).toBeGreaterThan(0);
    expect(
      set.lines.filter((line) => typeof line.fired === "string").length,
      "no alarm may fire in the killed process",
    ).toBe(0);

    // The near alarms come due while no process runs.
    await sleep(Math.max(0, ready!.nearTime + 50 - Date.now()));

    const fire = await runWriter("fire");
    expect(fire.code, `the firing process failed; its stderr:\n${fire.stderr}`).toBe(0);
    const done = fire.lines.find((line) => line.done) as Done | undefined;
    expect(done, `the firing process printed no summary; its stderr:\n${fire.stderr}`).toBeDefined();

    const firedIds = new Set(done!.fired.map((run) => run.id));
    const lost = ready!.near.filter((id) => !firedIds.has(id));
    expect(lost.length, `near alarms that did not fire after the restart, e.g. ${lost.slice(0, 3).join(", ")}`).toBe(0);
    const late = done!.fired
      .map((run) => Math.round(run.at - done!.processStart))
      .filter((ms) => ms > 1_000)
      .sort((a, b) => a - b);
    expect(late, "near alarms that fired more than 1 s after the process started (ms after start)").toEqual([]);
    expect(
      done!.fired.filter((run) => run.scheduledTime !== ready!.nearTime).length,
      "alarm(info).scheduledTime is the time that was set",
    ).toBe(0);

    const farFired = ready!.far.filter((id) => firedIds.has(id));
    expect(farFired.length, "far alarms (due in a minute) that fired already").toBe(0);
    const farKept = Object.entries(done!.far).filter(([, time]) => time === ready!.farTime).length;
    expect(Object.keys(done!.far).sort()).toEqual([...ready!.far].sort());
    expect(farKept, `far objects whose getAlarm() is still ${ready!.farTime}`).toBe(FAR);
  }, 30_000);
});
