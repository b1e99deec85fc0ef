// `durable-node/vitest` (also `@cloudflare/vitest-pool-workers/config` when installed under that
// name): the config helpers and the Vite plugin that run a Workers test suite in Node.
//
// Tests run in vitest's own Node workers, in the same module graph as the Worker's code: a setup
// module (virtual, so it goes through Vite like the test files) imports the Worker's `main` and
// builds a durable-node runtime from it for each test file.

import path from "node:path";
import { fileURLToPath } from "node:url";
import { resolveWorker, type ResolvedWorker, type WorkersPoolOptions } from "./options.js";

export type { MiniflareOptions, WorkersPoolOptions } from "./options.js";

/** The migrations of a D1 migrations folder (`.sql` files, by name), for applyD1Migrations() in tests. */
export async function readD1Migrations(migrationsPath: string): Promise<{ name: string; queries: string[] }[]> {
  const { readD1Migrations: read } = await import("../bindings/d1-migrations.js");
  return read(migrationsPath);
}

type Awaitable<T> = T | Promise<T>;
export type WorkersOptionsInput =
  | WorkersPoolOptions
  | Promise<WorkersPoolOptions>
  | ((context: { inject(key: string): unknown }) => Awaitable<WorkersPoolOptions>);

/** The parts of a Vite plugin this one uses (no type dependency on a particular Vite). */
export interface WorkersPlugin {
  name: string;
  enforce: "pre";
  config(config: { test?: Record<string, any> }): void;
  configResolved(config: { root: string; test?: { sequence?: { hooks?: string } } }): Promise<void>;
  resolveId(id: string): string | undefined;
  load(id: string): string | undefined;
}

// vitest resolves setup files against the root; an absolute id comes through unchanged to resolveId,
// which keeps it: vitest re-runs a setup file for each test file by invalidating the module of
// that very id (under `isolate: false` the module would otherwise run once per worker).
const SETUP_ID = "/@durable-node/vitest-setup";
const DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const HARNESS = path.join(DIST, "vitest", "harness.js");
const TEST_MODULE = path.join(DIST, "vitest", "test.js");
const WORKERS_MODULE = path.join(DIST, "workers.js");

/** The vitest-4 style: `plugins: [cloudflareTest({ wrangler: { configPath } })]`; storage is per file. */
export function cloudflareTest(options: WorkersOptionsInput = {}): WorkersPlugin {
  return workersPlugin(options, false);
}

/** The classic style: options under `test.poolOptions.workers`; storage is isolated per test. */
export function defineWorkersConfig<T>(config: T): T {
  return withWorkers(config);
}

/** defineWorkersConfig for one project of a workspace. */
export function defineWorkersProject<T>(config: T): T {
  return withWorkers(config);
}

function withWorkers<T>(config: T): T {
  if (typeof config === "function") {
    return (async (env: unknown) => addPlugin(await (config as (env: unknown) => unknown)(env))) as T;
  }
  if (config instanceof Promise) return config.then(addPlugin) as T;
  return addPlugin(config) as T;
}

function addPlugin(config: any): any {
  const test = { ...config?.test };
  const { workers, ...otherPools } = test.poolOptions ?? {};
  if (Object.keys(otherPools).length > 0) test.poolOptions = otherPools;
  else delete test.poolOptions;
  // Cloudflare's pool is named here; tests run in vitest's default pool instead.
  if (test.pool === "@cloudflare/vitest-pool-workers") delete test.pool;
  return { ...config, test, plugins: [...(config?.plugins ?? []), workersPlugin(workers ?? {}, true)] };
}

function workersPlugin(input: WorkersOptionsInput, isolatedDefault: boolean): WorkersPlugin {
  let worker: ResolvedWorker | undefined;
  let hookOrder = "stack";
  return {
    name: "durable-node:vitest",
    enforce: "pre",
    config(config) {
      const test = (config.test ??= {});
      test.setupFiles = [SETUP_ID, ...toArray(test.setupFiles)];
      // Our modules load as Node loads them, once per process: they hold the native addon, and
      // `cloudflare:workers` must be one module for the Worker's classes and the runtime.
      test.server ??= {};
      test.server.deps ??= {};
      test.server.deps.external = [...toArray(test.server.deps.external), new RegExp(`^${escapeRegExp(DIST)}`)];
    },
    async configResolved(config) {
      hookOrder = config.test?.sequence?.hooks ?? "stack";
      const options = typeof input === "function" ? await input({ inject: () => undefined }) : await input;
      worker = await resolveWorker(options ?? {}, config.root, isolatedDefault);
    },
    resolveId(id) {
      if (id === "cloudflare:test") return TEST_MODULE;
      if (id === "cloudflare:workers") return WORKERS_MODULE;
      if (id.endsWith(SETUP_ID)) return id;
      return undefined;
    },
    load(id) {
      if (!id.endsWith(SETUP_ID)) return undefined;
      if (worker === undefined) throw new Error("durable-node/vitest: the Worker was not resolved (configResolved did not run).");
      return setupSource(worker, hookOrder);
    },
  };
}

/**
 * Runs before each test file: builds its runtime; once the file is collected (its vi.mock() calls
 * registered), imports the Worker and, with isolated storage, wraps the file's suites and tests
 * in save/restore hooks (see TestFile.isolate).
 */
function setupSource(worker: ResolvedWorker, hookOrder: string): string {
  const main = worker.main === undefined ? `async () => ({})` : `() => import(${JSON.stringify(worker.main)})`;
  const lines = [
    `import * as vitest from "vitest";`,
    `import { startTestFile } from ${JSON.stringify(HARNESS)};`,
    `const file = await startTestFile(${main}, ${JSON.stringify(worker)});`,
    `vitest.afterAll(() => file.dispose());`,
  ];
  if (worker.isolatedStorage) {
    lines.push(
      // vitest 4.1 has the hook lists on TestRunner and warns on "vitest/suite"; earlier ones only there.
      `const getHooks = vitest.TestRunner?.getSuiteHooks ?? (await import("vitest/suite")).getHooks;`,
      // The file suite is the hook's 1st argument up to vitest 4.0 and its 2nd from 4.1, where a
      // named 1st parameter is parsed as fixtures: hence no parameters.
      `vitest.beforeAll(async function () {`,
      `  const suite = [...arguments].find((arg) => arg && arg.type === "suite");`,
      `  file.activate();`,
      `  await file.load();`,
      `  file.isolate(suite, getHooks, ${JSON.stringify(hookOrder)});`,
      `});`,
    );
  } else {
    lines.push(`vitest.beforeAll(() => (file.activate(), file.load()));`);
  }
  return lines.join("\n");
}

function toArray<T>(value: T | T[] | undefined): T[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
