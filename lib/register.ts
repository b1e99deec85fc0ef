// The `--import durable-node/register` entry: installs the module hooks in ./hooks.ts, once per process.
import { register } from "node:module";

// A process-wide flag, so two copies of the package (or two import URLs) still register once.
const REGISTERED = Symbol.for("durable-node.register");

export function registerHooks(): void {
  const state = globalThis as { [REGISTERED]?: true };
  if (state[REGISTERED]) return;
  state[REGISTERED] = true;
  register("./hooks.js", import.meta.url);
}

registerHooks();
