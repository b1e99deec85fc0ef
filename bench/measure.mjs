// Child process: times trivial RPC calls (sequential, then 100 at a time) against one side; prints the samples.
// Usage: node measure.mjs <side> '<plan as JSON>' (run.mjs passes the plan).
import { report } from "./lib/protocol.mjs";

const [sideName, planJson] = process.argv.slice(2);
const plan = JSON.parse(planJson);

/** µs per call of `run(calls)`, timed once. */
async function usPerCall(run, calls) {
  const t = performance.now();
  await run(calls);
  return ((performance.now() - t) * 1000) / calls;
}

/**
 * Sequential calls, as `batches` samples of the mean µs per call over `calls` calls each. A batch mean rather than
 * a per-call time: one call is a few µs on durable-node, and its mean over a batch includes what a caller really
 * pays in a loop (GC, microtask turns) instead of the best-case path. run.mjs takes the median of the batch means,
 * which drops the batches that the other tenant of this 2-core machine disturbed.
 * The batch is shrunk when the planned one would overrun the scenario's time budget.
 */
async function sequential(side, { batches, calls, budgetMs }) {
  const probe = await usPerCall(side.callSequential, 10);
  const size = Math.max(10, Math.min(calls, Math.floor((budgetMs * 1000) / batches / probe)));
  const samples = [];
  for (let i = 0; i < batches; i++) samples.push(await usPerCall(side.callSequential, size));
  return { calls: size, samples };
}

/** Rounds of `width` calls in flight at once (Promise.all), each round one sample of µs per call; stops at the budget. */
async function concurrent(side, { rounds, width, budgetMs }) {
  const samples = [];
  const deadline = performance.now() + budgetMs;
  while (samples.length < rounds && (samples.length < 3 || performance.now() < deadline)) {
    samples.push(await usPerCall(() => side.callConcurrent(width), width));
  }
  return { width, samples };
}

/** The same object on both sides must answer the same before its speed means anything. */
async function check(side) {
  const one = await side.ping();
  const a = await side.increment();
  const b = await side.increment();
  if (one !== 1 || a !== 1 || b !== 2) throw new Error(`unexpected answers: ping() ${one}, increment() ${a} then ${b}`);
}

let side;
try {
  side = await import(`./sides/${sideName}.mjs`);
  await side.start();
  await check(side);
  await side.callSequential(plan.warmup);
  for (let i = 0; i < 3; i++) await side.callConcurrent(plan.concurrent.width);
  const result = {
    sequential: await sequential(side, plan.sequential),
    concurrent: await concurrent(side, plan.concurrent),
  };
  report(result);
} catch (error) {
  report(error);
} finally {
  // Also after a failed start, so a half-started workerd does not outlive the process.
  await side?.stop();
}
