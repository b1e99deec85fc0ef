// Crash safety (spec 95, 98): a writer process killed with SIGKILL at random moments loses no
// acknowledged turn and never leaves a turn half applied.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createRuntime } from "../lib/index.js";
import { CrashWriter } from "./fixtures/crash-writer.js";
import { REGISTER, ROOT, useChildProcesses } from "./helpers.js";

const WRITER = fileURLToPath(new URL("./fixtures/crash-writer.ts", import.meta.url));
const TRIALS = 8;
const NO_ACK_LIMIT_MS = 10_000;

const processes = useChildProcesses("durable-crash-");

interface Run {
  acks: number[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Starts the writer and kills it `delayMs` after its first acknowledged turn. */
async function runWriter(delayMs: number): Promise<Run> {
  const child = spawn(process.execPath, ["--import", REGISTER, WRITER, processes.folder], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  processes.children.add(child);
  let stdout = "";
  let stderr = "";
  let killTimer: NodeJS.Timeout | undefined;
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
    if (killTimer === undefined && stdout.includes("\n")) {
      killTimer = setTimeout(() => child.kill("SIGKILL"), delayMs);
    }
  });
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const guard = setTimeout(() => child.kill("SIGKILL"), NO_ACK_LIMIT_MS);
  const [code, signal] = (await once(child, "close")) as [number | null, NodeJS.Signals | null];
  clearTimeout(guard);
  clearTimeout(killTimer);
  processes.children.delete(child);
  // Only whole lines count: a line is printed after its turn's call returned.
  const acks = stdout.split("\n").slice(0, -1).map(Number);
  return { acks, code, signal, stderr };
}

async function inventory(): Promise<ReturnType<CrashWriter["inventory"]>> {
  const runtime = createRuntime({ durableObjects: { WRITER: CrashWriter }, persist: processes.folder });
  try {
    return await (runtime.env as Record<string, any>).WRITER.getByName("crash").inventory();
  } finally {
    await runtime.dispose();
  }
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}

/** A list of turns short enough for a failure message. */
function turns(list: number[]): string {
  if (list.length === 0) return "none";
  if (list.length <= 8) return list.join(", ");
  return `${list.slice(0, 4).join(", ")} … ${list.slice(-2).join(", ")} (${list.length} turns)`;
}

describe("crash safety (spec 95, 98)", () => {
  it(`SIGKILL at random moments, ${TRIALS} times: every acknowledged turn is there and none is half applied`, async () => {
    let committed = 0;
    for (let trial = 1; trial <= TRIALS; trial++) {
      const delay = Math.round(100 + Math.random() * 300);
      const run = await runWriter(delay);
      const context = `trial ${trial}, killed ${delay} ms after the first acknowledgement`;
      expect(
        { signal: run.signal, acknowledged: run.acks.length > 0 },
        `${context}: the writer must run until killed (exit code ${run.code}); its stderr:\n${run.stderr}`,
      ).toEqual({ signal: "SIGKILL", acknowledged: true });
      // The writer resumes after the last turn that was committed, acknowledged or not.
      expect(run.acks, `${context}: acknowledgements`).toEqual(range(committed + 1, committed + run.acks.length));
      const lastAck = run.acks[run.acks.length - 1]!;

      const found = await inventory();
      const sqlTurns = Object.keys(found.sqlTurns).map(Number);
      const present = Math.max(0, ...sqlTurns, ...found.kvTurns);
      const expected = range(1, present);
      const kv = new Set(found.kvTurns);
      expect(
        {
          halfAppliedInSql: turns(sqlTurns.filter((turn) => found.sqlTurns[turn] !== 2)),
          missingFromSql: turns(expected.filter((turn) => !(turn in found.sqlTurns))),
          missingFromKv: turns(expected.filter((turn) => !kv.has(turn))),
          lastInKv: found.last ?? null,
          acknowledgedButLost: turns(range(present + 1, lastAck)),
          beyondTheTurnInFlight: turns(range(lastAck + 2, present)),
        },
        `${context}: ${present} turns found, last acknowledged ${lastAck}`,
      ).toEqual({
        halfAppliedInSql: "none",
        missingFromSql: "none",
        missingFromKv: "none",
        lastInKv: present,
        acknowledgedButLost: "none",
        beyondTheTurnInFlight: "none",
      });
      committed = present;
    }
  }, 60_000);
});
