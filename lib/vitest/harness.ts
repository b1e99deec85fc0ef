// One test file's Worker: its runtime (in memory), its bindings, SELF, and the storage stack of
// isolated tests. `cloudflare:test` reads the current file's harness from here.
//
// The Worker's module is imported only when the file's hooks start, after the test file itself
// has been collected: its `vi.mock()` calls are registered by then, so they apply to the Worker's
// imports too. Until then each Durable Object binding holds a stand-in class.

import type { ExecutionContext } from "../dev/worker.js";
import { ConfigError } from "../errors.js";
import type { DurableObjectNamespace } from "../namespace.js";
import { useVitestPoolMessages } from "../rpc.js";
import {
  createRuntime,
  internals,
  type DurableObjectClassOptions,
  type Runtime,
  type RuntimeInternals,
  type StorageSnapshot,
} from "../runtime.js";
import { serviceBinding } from "../service-binding.js";
import { setAmbient } from "../workers.js";
import { FetchMock, interceptFetch } from "./fetch-mock.js";
import type { ResolvedWorker } from "./options.js";

type KvModule = typeof import("../bindings/kv-namespace.js");
type D1Module = typeof import("../bindings/d1.js");

/** The binding implementations a Worker's config asks for, loaded only then. */
export interface BindingModules {
  kv?: KvModule;
  d1?: D1Module;
}

// Namespaces behind the KV and D1 bindings: kept out of `env` and `exports`, as Cloudflare's are.
const KV = { binding: "__DURABLE_NODE_KV", className: "__durable_node_kv" };
const D1 = { binding: "__DURABLE_NODE_D1", className: "__durable_node_d1" };

export class TestFile {
  readonly runtime: Runtime;
  readonly internals: RuntimeInternals;
  readonly env: Record<string, unknown>;
  readonly self: object;
  /** cloudflare:test's fetchMock: a new agent for every file, inactive until activate(). */
  readonly fetchMock = new FetchMock();
  readonly #stack: StorageSnapshot[] = [];
  readonly #contexts = new Set<ExecutionContext>();
  #module: Record<string, unknown> | undefined;
  #loading: Promise<void> | undefined;

  constructor(
    readonly importMain: () => Promise<Record<string, unknown>>,
    readonly worker: ResolvedWorker,
    bindings: BindingModules,
  ) {
    const classes = standInClasses(worker);
    if (bindings.kv) classes[KV.binding] = { class: bindings.kv.KvNamespaceObject, className: KV.className };
    if (bindings.d1) classes[D1.binding] = { class: bindings.d1.D1DatabaseObject, className: D1.className };
    this.runtime = createRuntime({
      durableObjects: classes,
      bindings: worker.vars,
      compatibilityDate: worker.compatibilityDate,
      compatibilityFlags: worker.compatibilityFlags,
    });
    this.internals = internals(this.runtime);
    const env = this.runtime.env as Record<string, unknown>;
    this.env = env;
    const hidden = (spec: { binding: string; className: string }) => {
      const namespace = env[spec.binding] as DurableObjectNamespace;
      delete env[spec.binding];
      delete this.internals.exports[spec.className];
      return namespace;
    };
    if (bindings.kv) {
      const namespace = hidden(KV);
      for (const [binding, id] of Object.entries(worker.kvNamespaces)) env[binding] = bindings.kv.kvNamespace(namespace.getByName(id));
    }
    if (bindings.d1) {
      const namespace = hidden(D1);
      for (const [binding, id] of Object.entries(worker.d1Databases)) env[binding] = bindings.d1.d1Database(namespace.getByName(id));
    }
    const file = this;
    const host = {
      get module() {
        return file.module;
      },
      env,
      onContext: (ctx: ExecutionContext) => this.#track(ctx),
    };
    for (const [binding, entrypoint] of Object.entries(worker.services)) env[binding] = serviceBinding(host, entrypoint);
    this.self = serviceBinding(host);
  }

  /** The Worker's module; imported by load(). */
  get module(): Record<string, unknown> {
    if (this.#module === undefined) throw new Error(NOT_LOADED);
    return this.#module;
  }

  /**
   * Makes this the file `cloudflare:test` and `cloudflare:workers`' env serve. vitest may collect
   * several files before it runs the first (--no-isolate with one worker), so each file's setup
   * makes itself current for its collection, and again when its tests start.
   */
  activate(): void {
    current = this;
    setAmbient(this.env, this.internals.exports);
  }

  /** Imports the Worker's module (once) and gives each binding its class. */
  load(): Promise<void> {
    this.#loading ??= this.importMain().then((module) => {
      this.internals.replaceClasses(durableObjectClasses(module, this.worker));
      this.#module = module;
    });
    return this.#loading;
  }

  #track(ctx: ExecutionContext): void {
    this.#contexts.add(ctx);
  }

  /** Waits for every waitUntil() of the Worker's invocations so far (they may still write). */
  async settled(): Promise<void> {
    while (this.#contexts.size > 0) {
      const contexts = [...this.#contexts];
      this.#contexts.clear();
      await Promise.all(contexts.map((ctx) => ctx.settled()));
    }
  }

  readonly push = async (): Promise<void> => {
    await this.settled();
    this.#stack.push(this.internals.snapshotStorage());
  };

  readonly pop = async (): Promise<void> => {
    await this.settled();
    const snapshot = this.#stack.pop();
    if (snapshot !== undefined) this.internals.restoreStorage(snapshot);
  };

  /**
   * Isolated storage over a collected test file (called from its first beforeAll): the state is
   * saved before each describe block and each test, ahead of their own before-hooks, and put back
   * after their after-hooks. The file's own state needs no saving: its runtime goes with it.
   * `order` is vitest's `sequence.hooks`.
   */
  isolate(file: SuiteTask, getHooks: (suite: SuiteTask) => SuiteHooks, order: string): void {
    const last = (hooks: Hook[], hook: Hook) => (order === "stack" ? hooks.unshift(hook) : hooks.push(hook));
    const own = getHooks(file);
    own.beforeEach.unshift(this.push);
    last(own.afterEach, this.pop);
    const walk = (suite: SuiteTask) => {
      for (const task of suite.tasks ?? []) {
        if (task.type !== "suite") continue;
        const hooks = getHooks(task);
        hooks.beforeAll.unshift(this.push);
        last(hooks.afterAll, this.pop);
        walk(task);
      }
    };
    walk(file);
  }

  readonly dispose = async (): Promise<void> => {
    if (current === this) current = undefined;
    await this.settled();
    await this.fetchMock.close();
    await this.runtime.dispose();
  };
}

type Hook = (...args: any[]) => unknown;

/** What the harness needs of vitest's suites and their hook lists (vitest 2–4 alike). */
export interface SuiteTask {
  type: string;
  tasks?: SuiteTask[];
}
export interface SuiteHooks {
  beforeAll: Hook[];
  afterAll: Hook[];
  beforeEach: Hook[];
  afterEach: Hook[];
}

let current: TestFile | undefined;

/** The harness of the test file running now. */
export function currentTestFile(): TestFile {
  if (current === undefined) {
    throw new Error("cloudflare:test is only available in test files of a project configured with durable-node/vitest.");
  }
  return current;
}

/** Called by the generated setup module before each test file. */
export async function startTestFile(
  importMain: () => Promise<Record<string, unknown>>,
  worker: ResolvedWorker,
): Promise<TestFile> {
  useVitestPoolMessages();
  interceptFetch(() => current?.fetchMock);
  const bindings: BindingModules = {
    kv: Object.keys(worker.kvNamespaces).length > 0 ? await import("../bindings/kv-namespace.js") : undefined,
    d1: Object.keys(worker.d1Databases).length > 0 ? await import("../bindings/d1.js") : undefined,
  };
  const file = new TestFile(importMain, worker, bindings);
  file.activate();
  return file;
}

const NOT_LOADED =
  "durable-node/vitest: the Worker's module is imported when the test file's hooks start (after its vi.mock() calls are registered); call the Worker and its Durable Objects from hooks and tests, not from the top level of a test file.";

/** A class per bound name that stands in until the Worker's module is loaded. */
function standInClasses(worker: ResolvedWorker): Record<string, DurableObjectClassOptions> {
  const byName = new Map<string, DurableObjectClassOptions["class"]>();
  const classes: Record<string, DurableObjectClassOptions> = {};
  for (const [binding, spec] of Object.entries(worker.durableObjects)) {
    let Class = byName.get(spec.className);
    if (Class === undefined) {
      Class = class {
        constructor() {
          throw new Error(NOT_LOADED);
        }
      } as unknown as DurableObjectClassOptions["class"];
      byName.set(spec.className, Class);
    }
    classes[binding] = { class: Class, className: spec.className, sqlite: spec.sqlite };
  }
  return classes;
}

function durableObjectClasses(module: Record<string, unknown>, worker: ResolvedWorker): Record<string, DurableObjectClassOptions> {
  const classes: Record<string, DurableObjectClassOptions> = {};
  for (const [binding, spec] of Object.entries(worker.durableObjects)) {
    const Class = module[spec.className];
    if (typeof Class !== "function") {
      throw new ConfigError(`${spec.key}.class_name: "${spec.className}" is not exported by ${worker.main} (${worker.mainKey})`);
    }
    classes[binding] = { class: Class as DurableObjectClassOptions["class"], className: spec.className, sqlite: spec.sqlite };
  }
  return classes;
}
