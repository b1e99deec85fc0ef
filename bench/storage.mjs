// Child process: runs the storage workloads of workers/store.mjs on one side; prints the timings the object took
// of itself, one sample per workload per round, on new objects each time.
// Usage: node storage.mjs <side> '<plan as JSON>' (run.mjs passes the plan).
import { report } from "./lib/protocol.mjs";

const [sideName, planJson] = process.argv.slice(2);
const plan = JSON.parse(planJson);

/** One sample of every workload, on objects of its own named after `tag`. */
async function sample(side, tag) {
  const { putUs, getUs } = await side.store(`kv-${tag}`).kvPutGet(plan.kvOps);
  const sql = side.store(`sql-${tag}`);
  const { insertUs } = await sql.sqlInsert(plan.insertRows);
  const { selectUs } = await sql.sqlSelect(plan.selectCalls, plan.insertRows);
  const list = side.store(`list-${tag}`);
  await list.fill(plan.listKeys);
  const { listMs } = await list.listAll(plan.listRepeats, plan.listKeys);
  // Fields are read one by one: Miniflare hands back a proxy of the object, not the object.
  return { putUs, getUs, insertUs, selectUs, listMs };
}

let side;
try {
  side = await import(`./sides/${sideName}.mjs`);
  await side.startStore();
  // The first sample warms the JIT and SQLite's allocator up and is not kept.
  await sample(side, "warm-up");
  const samples = [];
  for (let i = 0; i < plan.samples; i++) samples.push(await sample(side, `${plan.round}-${i}`));
  report({ samples });
} catch (error) {
  report(error);
} finally {
  // Also after a failed start, so a half-started workerd does not outlive the process.
  await side?.stop();
}
