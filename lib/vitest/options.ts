// The Worker a test project describes (wrangler config + the pool's options), resolved once in
// vitest's main process into plain data that every test file's harness builds a runtime from.

import path from "node:path";
import { ConfigError } from "../errors.js";

/** `@cloudflare/vitest-pool-workers`'s options (poolOptions.workers, or cloudflareTest()'s argument). */
export interface WorkersPoolOptions {
  /** The Worker's entry module (default: the wrangler config's `main`). */
  main?: string;
  wrangler?: { configPath?: string; environment?: string };
  /** Undo each test's (and each describe's) storage writes after it. Classic default: true. */
  isolatedStorage?: boolean;
  /** Accepted for compatibility: every test file already runs in one Node process here. */
  singleWorker?: boolean;
  miniflare?: MiniflareOptions;
}

export interface MiniflareOptions {
  compatibilityDate?: string;
  compatibilityFlags?: string[];
  bindings?: Record<string, unknown>;
  kvNamespaces?: string[] | Record<string, string>;
  d1Databases?: string[] | Record<string, string>;
  durableObjects?: Record<string, string | { className: string; scriptName?: string; useSQLite?: boolean }>;
  serviceBindings?: Record<string, string | { name: string; entrypoint?: string }>;
  [option: string]: unknown;
}

export interface DurableObjectSpec {
  className: string;
  sqlite: boolean;
  /** Where it was declared, for errors: `wrangler.jsonc: durable_objects.bindings[0]`. */
  key: string;
}

/** Everything a test file's harness needs; plain data, sent to the test workers. */
export interface ResolvedWorker {
  name?: string;
  main?: string;
  /** Where `main` came from, for errors. */
  mainKey: string;
  isolatedStorage: boolean;
  compatibilityDate?: string;
  compatibilityFlags: string[];
  vars: Record<string, unknown>;
  durableObjects: Record<string, DurableObjectSpec>;
  kvNamespaces: Record<string, string>;
  d1Databases: Record<string, string>;
  /** Service bindings to this Worker's own exports: binding → export name. */
  services: Record<string, string>;
}

// Miniflare binding options durable-node has no implementation of: refused by name.
const UNSUPPORTED_MINIFLARE = [
  "r2Buckets",
  "queueProducers",
  "queueConsumers",
  "hyperdrives",
  "ai",
  "vectorize",
  "workflows",
  "analyticsEngineDatasets",
  "browserRendering",
  "images",
  "email",
  "dispatchNamespaces",
  "pipelines",
  "secretsStoreSecrets",
  "wrappedBindings",
];

/** Resolves `options` against the project `root` (vitest's root), reading the wrangler config. */
export async function resolveWorker(options: WorkersPoolOptions, root: string, isolatedDefault: boolean): Promise<ResolvedWorker> {
  if (options === null || typeof options !== "object") {
    throw new ConfigError(`vitest config: the Workers options must be an object, got ${options === null ? "null" : typeof options}`);
  }
  const worker: ResolvedWorker = {
    mainKey: "vitest config: main",
    isolatedStorage: options.isolatedStorage ?? isolatedDefault,
    compatibilityFlags: [],
    vars: {},
    durableObjects: {},
    kvNamespaces: {},
    d1Databases: {},
    services: {},
  };
  const configPath = options.wrangler?.configPath;
  if (configPath !== undefined) await readWrangler(worker, path.resolve(root, configPath), options.wrangler?.environment);
  if (options.main !== undefined) {
    worker.main = path.resolve(root, options.main);
    worker.mainKey = "vitest config: main";
  }
  applyMiniflare(worker, options.miniflare ?? {});
  const bound = Object.keys(worker.durableObjects).length + Object.keys(worker.services).length;
  if (worker.main === undefined && bound > 0) {
    throw new ConfigError(
      `${configPath ?? "vitest config"}: main: required to find the Worker's Durable Object classes and entrypoints`,
    );
  }
  return worker;
}

async function readWrangler(worker: ResolvedWorker, file: string, environment: string | undefined): Promise<void> {
  const { readWranglerConfig } = await import("../config.js");
  const config = readWranglerConfig(file, { env: environment });
  const shown = path.basename(config.path);
  const [unsupported] = config.unsupportedBindings;
  if (unsupported !== undefined) {
    throw new ConfigError(`${shown}: ${unsupported}: durable-node does not provide this binding type (yet); remove it from the config used for tests`);
  }
  worker.name = config.name;
  if (config.main !== undefined) {
    worker.main = config.main;
    worker.mainKey = `${shown}: main`;
  }
  worker.compatibilityDate = config.compatibilityDate;
  worker.compatibilityFlags = config.compatibilityFlags;
  worker.vars = { ...config.vars };
  config.durableObjects.forEach((binding, i) => {
    const key = `${shown}: durable_objects.bindings[${i}]`;
    if (binding.scriptName !== undefined && binding.scriptName !== config.name) {
      throw new ConfigError(`${key}.script_name: "${binding.scriptName}" is another Worker; durable-node's vitest integration runs this Worker only`);
    }
    worker.durableObjects[binding.name] = { className: binding.className, sqlite: !config.kvClasses.has(binding.className), key };
  });
  for (const { binding, id } of config.kvNamespaces) worker.kvNamespaces[binding] = id;
  for (const { binding, databaseId } of config.d1Databases) worker.d1Databases[binding] = databaseId;
  config.services.forEach((service, i) => {
    if (service.service !== config.name) {
      throw new ConfigError(
        `${shown}: services[${i}].service: "${service.service}" is another Worker; durable-node's vitest integration serves this Worker's own entrypoints only`,
      );
    }
    worker.services[service.binding] = service.entrypoint ?? "default";
  });
}

function applyMiniflare(worker: ResolvedWorker, options: MiniflareOptions): void {
  const key = (name: string) => `vitest config: miniflare.${name}`;
  for (const name of UNSUPPORTED_MINIFLARE) {
    if (options[name] !== undefined) throw new ConfigError(`${key(name)}: durable-node does not provide this binding type (yet)`);
  }
  if (options.compatibilityDate !== undefined) worker.compatibilityDate = options.compatibilityDate;
  if (options.compatibilityFlags !== undefined) {
    worker.compatibilityFlags = [...new Set([...worker.compatibilityFlags, ...options.compatibilityFlags])];
  }
  Object.assign(worker.vars, options.bindings ?? {});
  Object.assign(worker.kvNamespaces, namesToIds(options.kvNamespaces));
  Object.assign(worker.d1Databases, namesToIds(options.d1Databases));
  for (const [binding, entry] of Object.entries(options.durableObjects ?? {})) {
    const spec = typeof entry === "string" ? { className: entry } : entry;
    if (typeof spec?.className !== "string") {
      throw new ConfigError(`${key(`durableObjects.${binding}`)}: expected a class name or { className }`);
    }
    if ("scriptName" in spec && spec.scriptName !== undefined && spec.scriptName !== worker.name) {
      throw new ConfigError(`${key(`durableObjects.${binding}`)}.scriptName: another Worker's classes are not served here`);
    }
    const sqlite = "useSQLite" in spec && spec.useSQLite !== undefined ? spec.useSQLite : true;
    worker.durableObjects[binding] = { className: spec.className, sqlite, key: key(`durableObjects.${binding}`) };
  }
  for (const [binding, entry] of Object.entries(options.serviceBindings ?? {})) {
    const target = typeof entry === "string" ? { name: entry } : entry;
    if (target.name !== worker.name) {
      throw new ConfigError(`${key(`serviceBindings.${binding}`)}: "${target.name}" is another Worker; only this Worker's own entrypoints are served`);
    }
    worker.services[binding] = target.entrypoint ?? "default";
  }
}

function namesToIds(value: string[] | Record<string, string> | undefined): Record<string, string> {
  if (value === undefined) return {};
  return Array.isArray(value) ? Object.fromEntries(value.map((name) => [name, name])) : value;
}
