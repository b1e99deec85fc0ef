// Child process: times trivial RPC calls (sequential, then 100 at a time) against one side; prints the samples.
// Usage: node measure.mjs <side> '<plan as JSON>' (run.mjs passes the plan).
import { report } from "./lib/protocol.mjs";

const [sideName, planJson] = process.argv.slice(2);
const plan = JSON.parse(planJson);

/** `n` awaited ping()s, one after another. */
async function callSequential(counter, n) {
  for (let i = 0; i < n; i++) await counter.ping();
}

/** `n` ping()s in flight at once. */
async function callConcurrent(counter, n) {
  const calls = new Array(n);
  for (let i = 0; i < n; i++) calls[i] = counter.ping();
  await Promise.all(calls);
}

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
async function sequential(counter, { batches, calls, budgetMs }) {
  const run = (n) => callSequential(counter, n);
  const probe = await usPerCall(run, 10);
  const size = Math.max(10, Math.min(calls, Math.floor((budgetMs * 1000) / batches / probe)));
  const samples = [];
  for (let i = 0; i < batches; i++) samples.push(await usPerCall(run, size));
  return { calls: size, samples };
}

/** Rounds of `width` calls in flight at once (Promise.all), each round one sample of µs per call; stops at the budget. */
async function concurrent(counter, { rounds, width, budgetMs }) {
  const samples = [];
  const deadline = performance.now() + budgetMs;
  while (samples.length < rounds && (samples.length < 3 || performance.now() < deadline)) {
    samples.push(await usPerCall(() => callConcurrent(counter, width), width));
  }
  return { width, samples };
}

/** The same object on both sides must answer the same before its speed means anything. */
async function check(counter) {
  const one = await counter.ping();
  const a = await counter.increment();
  const b = await counter.increment();
  if (one !== 1 || a !== 1 || b !== 2) throw new Error(`unexpected answers: ping() ${one}, increment() ${a} then ${b}`);
}

let side;
try {
  side = await import(`./sides/${sideName}.mjs`);
  const counter = await side.start();
  await check(counter);
  await callSequential(counter, plan.warmup);
  for (let i = 0; i < 3; i++) await callConcurrent(counter, plan.concurrent.width);
  const result = {
    sequential: await sequential(counter, plan.sequential),
    concurrent: await concurrent(counter, plan.concurrent),
  };
  report(result);
} catch (error) {
  report(error);
} finally {
  // Also after a failed start, so a half-started workerd does not outlive the process.
  await side?.stop();
}
