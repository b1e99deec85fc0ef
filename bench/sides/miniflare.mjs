// Miniflare 4 side: the Counter (or the Store) runs in workerd, and each call crosses Miniflare's Node ↔ workerd
// RPC bridge.
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";

const counterPath = fileURLToPath(new URL("../workers/counter.mjs", import.meta.url));
const storePath = fileURLToPath(new URL("../workers/store.mjs", import.meta.url));

let mf;
let stores;

/** Starts workerd with the Counter class and returns a stub to the object named `objectName`. */
export async function start(objectName = "a") {
  // No persist option: Miniflare's default storage, SQLite files in a temporary directory removed by dispose().
  mf = new Miniflare({
    modules: true,
    scriptPath: counterPath,
    durableObjects: { COUNTER: "Counter" },
    compatibilityDate: "2025-01-01",
  });
  const ns = await mf.getDurableObjectNamespace("COUNTER");
  return ns.get(ns.idFromName(objectName));
}

/**
 * Starts workerd with the Store class, for the storage scenarios: SQLite-backed (`useSQLite`, which `ctx.storage.sql`
 * needs) in Miniflare's default storage. workerd's in-memory storage (`unsafeEphemeralDurableObjects`) has no SQL.
 */
export async function startStore() {
  mf = new Miniflare({
    modules: true,
    scriptPath: storePath,
    durableObjects: { STORE: { className: "Store", useSQLite: true } },
    compatibilityDate: "2025-01-01",
  });
  stores = await mf.getDurableObjectNamespace("STORE");
}

/** A stub to the Store object named `name`. */
export function store(name) {
  return stores.get(stores.idFromName(name));
}

export async function stop() {
  stores = undefined;
  await mf?.dispose();
  mf = undefined;
}
