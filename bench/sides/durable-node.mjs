// durable-node side: the Counter (or the Store) runs in this process, on the runtime built into ../dist (in memory,
// no persistence).
import { readFileSync } from "node:fs";
import { createRuntime } from "../../dist/index.js";

const counterUrl = new URL("../workers/counter.mjs", import.meta.url);
const storeUrl = new URL("../workers/store.mjs", import.meta.url);
const workersUrl = new URL("../../dist/workers.js", import.meta.url);

let runtime;
let stores;

/**
 * The module at `url` in workers/, the very file Miniflare runs. Under `--import durable-node/register`
 * its "cloudflare:workers" import resolves through the package's module hooks. Without them, the same source is
 * loaded with that one import pointed at dist/workers.js: what a bundled app pays, and it keeps the cost of Node's
 * loader-hook thread (tens of ms on Node 20) out of the runtime's own start time; run.mjs times both ways.
 */
export async function loadWorker(url) {
  if (import.meta.resolve("cloudflare:workers").startsWith("file:")) return import(url);
  const source = readFileSync(url, "utf8").replace('"cloudflare:workers"', JSON.stringify(workersUrl.href));
  return import(`data:text/javascript,${encodeURIComponent(source)}`);
}

/** Creates an in-memory runtime with the Counter class and returns a stub to the object named `objectName`. */
export async function start(objectName = "a") {
  const { Counter } = await loadWorker(counterUrl);
  runtime = createRuntime({ durableObjects: { COUNTER: Counter } });
  return runtime.env.COUNTER.getByName(objectName);
}

/** Creates an in-memory runtime with the Store class, for the storage scenarios (SQLite-backed, the default). */
export async function startStore() {
  const { Store } = await loadWorker(storeUrl);
  runtime = createRuntime({ durableObjects: { STORE: Store } });
  stores = runtime.env.STORE;
}

/** A stub to the Store object named `name`. */
export function store(name) {
  return stores.getByName(name);
}

export async function stop() {
  stores = undefined;
  await runtime?.dispose();
  runtime = undefined;
}
