// getPlatformProxy(): wrangler's API for frameworks — the bindings of a wrangler project, in Node.

import path from "node:path";
import { pathToFileURL } from "node:url";
import type { WorkerConfig } from "./config.js";
import { ExecutionContext, durableObjectClasses as classesOf } from "./dev/worker.js";
import { ConfigError } from "./errors.js";
import { createRuntime, type DurableObjectClassOptions, type Runtime } from "./runtime.js";

export { ExecutionContext };

export interface GetPlatformProxyOptions {
  /** The wrangler config file; default: wrangler.jsonc/.json/.toml in the current directory. */
  configPath?: string;
  /** An `env.<name>` section of the config. */
  environment?: string;
  /** Keep state (default true: `.durable/` beside the config), `{ path }` for another folder. */
  persist?: boolean | { path: string };
}

export interface PlatformProxy<Env = Record<string, unknown>> {
  env: Env;
  cf: Record<string, unknown>;
  ctx: ExecutionContext;
  caches: { default: NoopCache; open(name: string): Promise<NoopCache> };
  dispose(): Promise<void>;
}

/** As in `wrangler dev`, the cache stores nothing. */
class NoopCache {
  async match(_request: unknown): Promise<undefined> {
    return undefined;
  }
  async put(_request: unknown, _response: unknown): Promise<void> {}
  async delete(_request: unknown): Promise<boolean> {
    return false;
  }
}

export async function getPlatformProxy<Env = Record<string, unknown>>(
  options: GetPlatformProxyOptions = {},
): Promise<PlatformProxy<Env>> {
  // The config parsers load here, not at import: createRuntime() users never need them.
  const { findWranglerConfig, readWranglerConfig } = await import("./config.js");
  const configPath = options.configPath ?? findWranglerConfig(process.cwd());
  const config = configPath === undefined ? undefined : readWranglerConfig(configPath, { env: options.environment });
  const runtime: Runtime = createRuntime({
    durableObjects: config ? await durableObjectClasses(config) : {},
    bindings: config?.vars ?? {},
    persist: persistDir(options.persist, config?.dir ?? process.cwd()),
    compatibilityDate: config?.compatibilityDate,
    compatibilityFlags: config?.compatibilityFlags,
  });

  const cache = new NoopCache();
  return {
    env: runtime.env as Env,
    cf: { colo: "DFW", country: "US", httpProtocol: "HTTP/1.1", tlsVersion: "TLSv1.3" },
    ctx: new ExecutionContext(),
    caches: { default: cache, open: async () => cache },
    dispose: () => runtime.dispose(),
  };
}

async function durableObjectClasses(config: WorkerConfig): Promise<Record<string, DurableObjectClassOptions>> {
  if (config.durableObjects.length === 0) return {};
  if (config.main === undefined) {
    throw new ConfigError(`${path.basename(config.path)}: main: required to find the Durable Object classes`);
  }
  return classesOf({ config, module: await importMain(config.main) });
}

async function importMain(main: string): Promise<Record<string, unknown>> {
  // Compiled, we install our TypeScript hooks; run from TypeScript sources, the host already has some.
  if (/\.[cm]?tsx?$/.test(main) && import.meta.url.endsWith(".js")) {
    const { registerHooks } = await import("./register.js");
    registerHooks();
  }
  return import(pathToFileURL(main).href);
}

function persistDir(persist: GetPlatformProxyOptions["persist"], dir: string): string | false {
  if (persist === false) return false;
  if (persist === undefined || persist === true) return path.join(dir, ".durable");
  return path.resolve(persist.path);
}
