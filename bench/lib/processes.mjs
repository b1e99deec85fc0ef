// What the benches' child processes share: their environment, pinning to one CPU, and killing a whole process group.
import { execFileSync } from "node:child_process";
import os from "node:os";

// NODE_EXTRA_CA_CERTS, set on this machine, adds ≈ 60 ms to every node start while reading certificates neither
// side uses here; children run without it so start-up rows measure the runtimes, not the certificate store.
export const childEnv = { ...process.env };
delete childEnv.NODE_EXTRA_CA_CERTS;

/**
 * Whether processes can be pinned to CPUs: `taskset` is installed and there are two CPUs or more. On this kind of VM
 * a wake-up on another CPU costs ~75 µs and one on the same CPU a few, so where the scheduler happens to put a client
 * and a server moves latencies more than either side's code does; the benches pin both so both sides run alike.
 */
export const canPin =
  os.cpus().length >= 2 &&
  (() => {
    try {
      execFileSync("taskset", ["--version"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  })();

/** `[command, argv]` that runs `command ...argv` on CPU `cpu` (every thread and child of it), or as is without pinning. */
export function onCpu(cpu, command, argv) {
  return canPin ? ["taskset", ["-c", String(cpu), command, ...argv]] : [command, argv];
}

/** Kills a child's whole process group (Miniflare's workerd included); the group may already be gone. */
export function killGroup(pid) {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch (error) {
    if (error.code !== "ESRCH") throw error;
  }
}
