// The `cloudflare:test` module of durable-node/vitest, for the type checker. It comes with the
// package's main types, so a tsconfig that lists "@cloudflare/vitest-pool-workers" in `types`
// finds it when durable-node is installed under that name.
//
// Written without @cloudflare/workers-types, which a plain Node project does not have: where a
// value meets a Workers type (a stub, an execution context), the type here is either structural
// or `any`, so the Workers types of a project that has them still check.

declare module "cloudflare:test" {
  /**
   * The test Worker's `env`. Declare its bindings by augmenting this interface:
   * `declare module "cloudflare:test" { interface ProvidedEnv extends Env {} }`.
   */
  interface ProvidedEnv {}

  /** The bindings of the Worker under test, as its handlers and Durable Objects receive them. */
  export const env: ProvidedEnv;

  export interface ScheduledOptions {
    scheduledTime?: Date | number;
    cron?: string;
  }

  export interface ScheduledResult {
    outcome: string;
    noRetry: boolean;
  }

  /**
   * A service binding to the Worker's default export: `fetch()` and `scheduled()` call its
   * handlers, any other member is an RPC call to it as a `WorkerEntrypoint`.
   */
  export const SELF: {
    fetch(input: Request | string | URL, init?: RequestInit): Promise<Response>;
    scheduled(options?: ScheduledOptions): Promise<ScheduledResult>;
    connect(address: any, options?: any): any;
    queue(queueName: string, messages: any[], metadata?: any): Promise<any>;
    [member: string]: any;
  };

  /** An undici MockAgent for the Worker's outbound `fetch()`: inactive until `activate()`. */
  export const fetchMock: import("undici").MockAgent;

  /** An object's id, as `listDurableObjectIds()` returns them. */
  export interface TestDurableObjectId {
    toString(): string;
    equals(other: any): boolean;
    readonly name?: string;
  }

  export type TestSqlValue = ArrayBuffer | string | number | null;

  /** A SQL cursor, as `ctx.storage.sql.exec()` returns it. */
  export interface TestSqlCursor<T extends Record<string, TestSqlValue>> {
    next(): IteratorResult<T, undefined>;
    toArray(): T[];
    one(): T;
    raw<U extends TestSqlValue[]>(): IterableIterator<U>;
    readonly columnNames: string[];
    readonly rowsRead: number;
    readonly rowsWritten: number;
    [Symbol.iterator](): IterableIterator<T>;
  }

  /** The object's storage, as its `ctx.storage`: the members tests use on it. */
  export interface TestDurableObjectStorage {
    get<T = unknown>(key: string, options?: any): Promise<T | undefined>;
    get<T = unknown>(keys: string[], options?: any): Promise<Map<string, T>>;
    list<T = unknown>(options?: any): Promise<Map<string, T>>;
    put<T>(key: string, value: T, options?: any): Promise<void>;
    put<T>(entries: Record<string, T>, options?: any): Promise<void>;
    delete(key: string, options?: any): Promise<boolean>;
    delete(keys: string[], options?: any): Promise<number>;
    deleteAll(options?: any): Promise<void>;
    transaction<T>(closure: (txn: any) => Promise<T>): Promise<T>;
    transactionSync<T>(closure: () => T): T;
    getAlarm(options?: any): Promise<number | null>;
    setAlarm(scheduledTime: number | Date, options?: any): Promise<void>;
    deleteAlarm(options?: any): Promise<void>;
    sync(): Promise<void>;
    readonly sql: {
      exec<T extends Record<string, TestSqlValue>>(query: string, ...bindings: any[]): TestSqlCursor<T>;
      readonly databaseSize: number;
    };
    readonly kv: {
      get<T = unknown>(key: string): T | undefined;
      list<T = unknown>(options?: any): Iterable<[string, T]>;
      put<T>(key: string, value: T): void;
      delete(key: string): boolean;
    };
  }

  /** The object's `ctx`: the members tests use on it. */
  export interface TestDurableObjectState {
    readonly id: TestDurableObjectId;
    readonly storage: TestDurableObjectStorage;
    waitUntil(promise: Promise<any>): void;
    blockConcurrencyWhile<T>(callback: () => Promise<T>): Promise<T>;
    acceptWebSocket(ws: any, tags?: string[]): void;
    getWebSockets(tag?: string): any[];
    getTags(ws: any): string[];
    abort(reason?: string): void;
  }

  // A method's parameters are compared both ways, so a callback that declares its `state` as
  // workers-types' DurableObjectState (which has more members) is accepted too.
  type InDurableObject<O, R> = {
    callback(instance: O, state: TestDurableObjectState): R | Promise<R>;
  }["callback"];

  /**
   * Runs `callback` inside the object `stub` points to, in its input gate, with its instance
   * (the very class the test file imports) and its `ctx`; resolves with the callback's result.
   */
  export function runInDurableObject<O = any, R = unknown>(stub: object, callback: InDurableObject<O, R>): Promise<R>;

  /** Runs the object's alarm now if one is set (and removes it); resolves whether one ran. */
  export function runDurableObjectAlarm(stub: object): Promise<boolean>;

  /** The ids of the objects of `namespace` that have storage (in this test, with isolated storage). */
  export function listDurableObjectIds(namespace: object): Promise<TestDurableObjectId[]>;

  export interface EvictOptions {
    /** "hibernate" (default): hibernatable WebSockets stay open and wake a new instance; "close": they close (1001). */
    webSockets?: "hibernate" | "close";
  }

  /** Drops the object's instance, as an idle eviction does; its storage stays. */
  export function evictDurableObject(stub: object, options?: EvictOptions): Promise<void>;

  /** evictDurableObject() for every object with a live instance. */
  export function evictAllDurableObjects(options?: EvictOptions): Promise<void>;

  /** Resets every live instance (workerd's abortAllDurableObjects); storage stays. */
  export function abortAllDurableObjects(): Promise<void>;

  /** Empties every object's storage, KV and D1, and resets their instances. */
  export function reset(): Promise<void>;

  /** An `ExecutionContext` for calling a module handler directly (typed `any`: see the top of this file). */
  export function createExecutionContext(): any;

  /** Resolves once every promise given to the context's `waitUntil()` has settled. */
  export function waitOnExecutionContext(ctx: object): Promise<void>;

  /** A `ScheduledController` for calling a `scheduled()` handler directly. */
  export function createScheduledController(options?: ScheduledOptions): {
    readonly scheduledTime: number;
    readonly cron: string;
    noRetry(): void;
  };

  export interface D1Migration {
    name: string;
    queries: string[];
  }

  /** Applies the migrations not yet recorded in `migrationsTableName` (default "d1_migrations"), each once, in order. */
  export function applyD1Migrations(db: object, migrations: D1Migration[], migrationsTableName?: string): Promise<void>;

  /** Not provided by durable-node yet: each throws when called. */
  export function createMessageBatch(...args: any[]): never;
  export function getQueueResult(...args: any[]): never;
  export function introspectWorkflowInstance(...args: any[]): never;
  export function introspectWorkflow(...args: any[]): never;
  export function createPagesEventContext(...args: any[]): never;
}
