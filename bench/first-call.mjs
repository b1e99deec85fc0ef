// Child process, fresh for every sample: imports one side, starts its runtime and makes the first call to a new
// object; prints the times, in ms since the process started (performance.timeOrigin).
// Usage: node first-call.mjs <side>
import { report } from "./lib/protocol.mjs";

// Where user code begins: node's own boot (and this file's one small import) is before it.
const userCode = performance.now();
const sideName = process.argv[2];

let side;
try {
  side = await import(`./sides/${sideName}.mjs`);
  const imported = performance.now();
  const counter = await side.start("first");
  const started = performance.now();
  const answer = await counter.ping();
  const firstCall = performance.now();
  if (answer !== 1) throw new Error(`ping() answered ${answer}`);
  report({ userCode, imported, started, firstCall });
} catch (error) {
  report(error);
} finally {
  // Also after a failed start, so a half-started workerd does not outlive the process.
  await side?.stop();
}
