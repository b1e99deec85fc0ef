// DurableObjectStorage (`ctx.storage`): the async KV API, `kv`, `sql`, transactions and the
// implicit per-turn transaction, over one object's database in the core.

import type { KvRows } from "../native/binding.js";
import { argumentTypeError } from "./errors.js";
import { fromNative } from "./native.js";
import { NativeDb, type SqlRows } from "./native-db.js";
import { SqlStorage } from "./sql.js";
import type { OpenFiles } from "./open-files.js";
import { afterTurn } from "./turn.js";
import { lazy, moveConstructorLast } from "./state.js";
import { deserializeAt, readStored, serialize } from "./values.js";

/** What storage needs from the object's host: its input gate, how to reset it, its alarm. */
export interface StorageHost {
  hold(): number;
  release(epoch: number): void;
  releaseLater(epoch: number): void;

  /** A failed commit: the object resets and its pending calls fail with `reason`. */
  fail(reason: Error): void;
  /** setAlarm() is allowed: the class has an alarm() handler, or its constructor is running. */
  mayScheduleAlarm(): boolean;
  /** The name the object was reached by, to keep beside its alarm. */
  readonly name: string | undefined;
  /** Before a commit: the object may need waking at `time`. */
  fileAlarm(time: number): void;
  /** After a commit that touched the alarm: what is now stored. */
  alarmCommitted(time: number | null): void;
  /** What getAlarm() shows of the stored alarm (the running one is hidden). */
  visibleAlarm(stored: number | null): number | null;
  /** The object's code set or deleted its alarm. */
  alarmChangedByObject(): void;
  clockNow(): number;
  readonly deleteAllDeletesAlarm: boolean;
  readonly experimental: boolean;
}

export interface StorageOptions {
  /** The database file, or undefined for memory. */
  readonly path: string | undefined;
  /** SQLite-backed (the recommended kind) or the legacy KV-backed kind. */
  readonly sqlite: boolean;
  /** synchronous=FULL rather than NORMAL. */
  readonly fullSync: boolean;
  /** Names the object in errors: `Room 0123…`. */
  readonly label: string;
  /** The runtime's cap on open database files. */
  readonly files: OpenFiles | undefined;
}

const KV_LIMITS = { key: 2048, value: 131_072, cushion: 34, keysPerGet: 128 };

const NOT_SQLITE_SQL =
  "This Durable Object is not backed by SQLite storage, so the SQL API is not available. SQL can be enabled on a new Durable Object class by using the `new_sqlite_classes` instead of `new_classes` under `[[migrations]]` in your wrangler.toml, but an already-deployed class cannot be converted to SQLite (except by deleting the existing data).";
const NOT_SQLITE_KV =
  "The storage.kv (synchronous KV) API is only available for SQLite-backed Durable Objects, but this object's namespace is not declared to use SQLite. You can use the older, asyncronous interface via methods of `storage` itself (e.g. `storage.get()`). To use SQLite-backed storage, declare the class with `new_sqlite_classes` in your wrangler migrations, or `sqlite: true` in durable-node's createRuntime().";

/**
 * The part of an object's storage that outlives its JS instances: the open database, the commit
 * at the end of each turn, and the depth of explicit transactions.
 */
export class StorageCore {
  #db: NativeDb | undefined;
  #flushScheduled = false;
  #alarmTouched = false;
  #turnHold: number | undefined;
  readonly #statements = new Map<string, Statement>();
  #statementBytes = 0;
  #lastQuery: string | undefined;
  /** Open `transaction()` closures; the implicit commit waits for them. */
  transactions = 0;
  #noTransaction: (() => void)[] = [];
  /**
   * Bumped whenever uncommitted state is thrown away (a reset, an eviction, closing): a
   * transaction opened before belongs to an instance that is gone and must not end what follows.
   */
  era = 0;
  #closed = false;
  /** The last snapshot taken or restored, and the write count it matches. */
  #image: { bytes: Buffer; writes: number } | undefined;
  /**
   * An SQLite critical error of this instance (spec 101): the turn's writes are rolled back, every
   * later operation throws it, and the object resets once the turn ends.
   */
  critical: Error | undefined;
  /** Writes issued and writes confirmed (committed or discarded): the output gate compares them. */
  #writes = 0;
  #confirmed = 0;
  host: StorageHost | undefined;

  constructor(readonly options: StorageOptions) {}

  get db(): NativeDb {
    if (this.#closed) throw new Error(`The storage of Durable Object ${this.options.label} is closed: its runtime was disposed.`);
    if (this.#db !== undefined) {
      this.options.files?.used(this);
    } else {
      const { path, label } = this.options;
      try {
        this.#db = new NativeDb(path ?? null, this.options.fullSync);
        if (path !== undefined) this.options.files?.opened(this);
      } catch (err) {
        const cause = (fromNative(err) as Error).message;
        throw new Error(`Cannot open the database of Durable Object ${label}${path ? ` (${path})` : ""}: ${cause}`);
      }
    }
    return this.#db;
  }

  get sqlite(): boolean {
    return this.options.sqlite;
  }

  /** Commits at the end of the turn: once the microtasks queued by now have run. */
  scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    afterTurn(() => {
      this.#flushScheduled = false;
      this.flush();
    });
  }

  /**
   * Commits what was written, unless a transaction() is still open. Returns the failure when the
   * commit failed: the object has then been reset and the writes since the last commit are gone.
   */
  flush(): Error | undefined {
    if (this.#db === undefined || this.transactions > 0) return undefined;
    try {
      this.#db.commit();
    } catch (err) {
      this.#alarmTouched = false;
      const reason = fromNative(err) as Error;
      this.host?.fail(reason);
      return reason;
    }
    this.#confirmed = this.#writes;
    if (this.#alarmTouched) {
      this.#alarmTouched = false;
      try {
        this.host?.alarmCommitted(this.#db.getAlarm());
      } catch (err) {
        // The commit stands; only the runtime's alarm index could not follow (runtime.sqlite).
        console.error(`durable-node: could not file the alarm of Durable Object ${this.options.label}:`, fromNative(err));
      }
    }
    return undefined;
  }

  /** Resolves once no transaction() is open (an output gate waits for that before committing). */
  whenNoTransaction(): Promise<void> {
    if (this.transactions === 0) return Promise.resolve();
    return new Promise((resolve) => this.#noTransaction.push(resolve));
  }

  /** A transaction() of the current era ended. */
  transactionEnded(): void {
    this.transactions = Math.max(0, this.transactions - 1);
    if (this.transactions === 0) this.#wakeWaiters();
    this.scheduleFlush();
  }

  #wakeWaiters(): void {
    const waiting = this.#noTransaction;
    this.#noTransaction = [];
    for (const resolve of waiting) resolve();
  }

  /** Forgets open transactions: their instance is gone. */
  #newEra(): void {
    this.era++;
    this.transactions = 0;
    this.#wakeWaiters();
  }

  getAlarm(): number | null {
    return this.native(() => this.db.getAlarm());
  }

  /** Stores the alarm (in the turn's transaction) and files the object for it. */
  setAlarm(time: number | null): void {
    const db = this.db;
    this.native(() => db.setAlarm(time));
    const name = this.host?.name;
    if (time !== null && name !== undefined) this.native(() => db.setName(name));
    if (time !== null) this.host?.fileAlarm(time);
    this.#alarmTouched = true;
    this.wrote();
  }

  /**
   * Writes issued and not yet committed: results leaving the object wait for them (the output
   * gate). Object-wide, as workerd's gate: it does not matter which event wrote.
   */
  get unconfirmed(): boolean {
    return this.#writes !== this.#confirmed;
  }

  /** A write was issued (conservatively: every sql.exec counts). */
  wrote(): void {
    this.#writes++;
    this.scheduleFlush();
  }

  /** Discards uncommitted writes (abort, reset). */
  rollback(): void {
    this.#newEra();
    this.#db?.rollback();
    this.#confirmed = this.#writes;
    this.critical = undefined;
  }

  /**
   * Runs a call into the database. SQLite's critical errors (the disk full or failing, memory out,
   * an interrupt) leave no safe state to go on from: the turn's writes are undone and storage stays
   * broken until the object resets.
   */
  native<T>(fn: () => T): T {
    if (this.critical) throw this.critical;
    try {
      return fn();
    } catch (err) {
      throw this.#failed(err);
    }
  }

  /** The error a failed core call becomes; a critical one also breaks storage (see `native`). */
  #failed(err: unknown): Error {
    const error = fromNative(err) as Error;
    if (CRITICAL.test(error.message)) {
      this.#newEra();
      this.#db?.rollback();
      this.#confirmed = this.#writes;
      this.critical = error;
      const host = this.host;
      afterTurn(() => {
        if (this.critical === error && !this.#closed) host?.fail(error);
      });
    }
    return error;
  }

  /** A bookmark of the state committed now (what was written before is committed first). */
  currentBookmark(): string {
    this.#refuseBookmarks();
    const failure = this.flush();
    if (failure) throw failure;
    return this.native(() => this.db.currentBookmark());
  }

  bookmarkForTime(time: number): string {
    this.#refuseBookmarks();
    return this.native(() => this.db.bookmarkForTime(time));
  }

  scheduleRestore(bookmark: string): string {
    this.#refuseBookmarks();
    const failure = this.flush();
    if (failure) throw failure;
    return this.native(() => this.db.scheduleRestore(bookmark));
  }

  /** The object is starting: a restore scheduled by the previous instance takes effect now. */
  applyPendingRestore(): void {
    if (this.options.path === undefined || !this.sqlite) return;
    // The restored state has its own alarm (or none): the runtime's index follows it.
    if (this.native(() => this.db.applyPendingRestore())) this.host?.alarmCommitted(this.getAlarm());
  }

  /** Point-in-time recovery needs a SQLite-backed object in a file (workerd's answer otherwise, spec 249). */
  #refuseBookmarks(): void {
    if (!this.sqlite || this.options.path === undefined) throw bookmarksNotAvailable();
  }

  setMaxPageCount(pages: number): number {
    return this.native(() => this.db.setMaxPageCount(pages));
  }

  /** The instance was evicted: a transaction it left open is undone; files are closed. */
  evicted(): void {
    if (this.transactions > 0) this.rollback();
    this.#close();
  }

  /** The runtime is going away: what was committable is committed, and nothing opens again. */
  dispose(): void {
    if (this.transactions > 0) this.rollback();
    this.#close(true);
    this.#closed = true;
  }

  /** Closes the file to free descriptors, unless a transaction is open; it reopens when used. */
  closeIfIdle(): boolean {
    if (this.#db === undefined || this.transactions > 0 || this.options.path === undefined) return false;
    this.#close();
    return true;
  }

  /** Closes the file; an in-memory database stays for the runtime's life unless `final`. */
  #close(final = false): void {
    if (this.#db === undefined || (this.options.path === undefined && !final)) return;
    this.flush();
    this.#db?.close();
    this.#db = undefined;
    this.options.files?.closed(this);
    this.#forgetStatements();
  }

  #forgetStatements(): void {
    this.#statements.clear();
    this.#statementBytes = 0;
    this.#lastQuery = undefined;
  }

  /** Whether the object has a database (it has used its storage, or was restored with one). */
  get exists(): boolean {
    return this.#db !== undefined;
  }

  /** Isolated storage (in-memory runtimes): the committed database as bytes, if there is one. */
  snapshot(): Buffer | undefined {
    if (this.#db === undefined) return undefined;
    if (this.transactions > 0) this.rollback();
    this.flush();
    // Unchanged since the last snapshot or restore: the same bytes serve (most objects of a
    // suite are untouched by most tests).
    if (this.#image?.writes === this.#writes) return this.#image.bytes;
    const db = this.#db;
    const bytes = this.native(() => db.snapshot());
    this.#image = { bytes, writes: this.#writes };
    return bytes;
  }

  /** Puts back what `snapshot()` returned: undefined means no database at all. */
  replace(bytes: Buffer | undefined): void {
    this.rollback();
    if (bytes === undefined) {
      this.#db?.close();
      this.#db = undefined;
      this.#image = undefined;
    } else if (this.#image?.bytes !== bytes || this.#image.writes !== this.#writes || this.#db === undefined) {
      const db = this.db;
      this.native(() => db.restore(bytes));
      this.#image = { bytes, writes: this.#writes };
    } else {
      return; // the database already holds exactly these bytes; its compiled statements stay valid
    }
    this.#forgetStatements();
  }

  /**
   * Runs user SQL. Single statements are compiled once and then run by handle, so a repeated call
   * sends a number rather than the SQL text, and column names only when they change.
   */
  exec(query: string, bindings: Bound[]): SqlRows {
    const db = this.db;
    let statement = this.#statements.get(query);
    if (statement === undefined) {
      const handle = this.native(() => db.prepare(query));
      statement = { handle, columns: [], bytes: 0 };
      this.#remember(query, statement);
    } else if (this.#lastQuery !== query) {
      // Least recently used goes first: a hit moves to the end (cheaply skipped for repeats).
      this.#statements.delete(query);
      this.#statements.set(query, statement);
    }
    this.#lastQuery = query;
    // What `native()` does, written out: this is the hottest storage path, and a closure per
    // call shows in its profile.
    if (this.critical) throw this.critical;
    let rows: SqlRows;
    try {
      rows = statement.handle >= 0 ? db.run(statement.handle, bindings) : db.exec(query, bindings);
    } catch (err) {
      throw this.#failed(err);
    }
    this.wrote();
    if (rows.width >= 0) statement.columns = rows.values.slice(rows.count, rows.count + rows.width) as string[];
    rows.columns = statement.columns;
    return rows;
  }

  /** Keeps compiled statements for up to 1 MiB of SQL text, as workerd's cache (spec 140). */
  #remember(query: string, statement: Statement): void {
    statement.bytes = Buffer.byteLength(query);
    this.#statements.set(query, statement);
    this.#statementBytes += statement.bytes;
    for (const [oldQuery, old] of this.#statements) {
      if (this.#statementBytes <= STATEMENT_CACHE_BYTES) break;
      this.#statements.delete(oldQuery);
      this.#statementBytes -= old.bytes;
      if (old.handle >= 0) this.#db?.finalize(old.handle);
    }
  }

  databaseSize(): number {
    return this.native(() => this.db.databaseSize());
  }

  /**
   * Runs a storage operation with the input gate closed until the code awaiting its result has
   * run. The operations of one turn share one hold, released once the turn's microtasks are done.
   */
  gated<T>(allowConcurrency: boolean | undefined, op: () => T): T {
    this.holdGate(allowConcurrency);
    return op();
  }

  /** What `gated` does before the operation, for the hot paths that call the core themselves. */
  holdGate(allowConcurrency: boolean | undefined): void {
    if (!allowConcurrency && this.#turnHold === undefined && this.host) {
      const host = this.host;
      const epoch = host.hold();
      this.#turnHold = epoch;
      afterTurn(() => {
        this.#turnHold = undefined;
        host.release(epoch);
      });
    }
  }

  get(key: string): unknown {
    const db = this.db;
    if (this.critical) throw this.critical;
    try {
      return readStored(db.kvGet(key));
    } catch (err) {
      throw this.#failed(err);
    }
  }

  getMany(keys: string[]): Map<string, unknown> {
    return toMap(this.native(() => this.db.kvGetMany(keys)));
  }

  put(entries: [string, unknown][]): void {
    if (entries.length === 1) return this.putOne(entries[0][0], entries[0][1]);
    const keys = entries.map(([k]) => k);
    const values = entries.map(([, v]) => serialize(v));
    if (!this.sqlite) checkLegacyPut(keys, values);
    const db = this.db;
    this.native(() => db.kvPut(keys, values));
    this.wrote();
  }

  /** The hottest KV path, written out without closures (see `exec`). */
  putOne(key: string, value: unknown): void {
    const db = this.db;
    if (this.critical) throw this.critical;
    // KV-backed objects check the serialized size first; SQLite-backed ones let the core serialize.
    const bytes = this.sqlite ? undefined : serialize(value);
    if (bytes) checkLegacyPut([key], [bytes]);
    try {
      if (bytes) db.kvPutBytes(key, bytes);
      else db.kvPutValue(key, value);
    } catch (err) {
      throw this.#failed(err);
    }
    this.wrote();
  }

  delete(keys: string[]): number {
    const deleted = this.native(() => this.db.kvDelete(keys));
    this.wrote();
    return deleted;
  }

  list(options: ListRange): Map<string, unknown> {
    return toMap(this.native(() => this.db.kvList(options)));
  }

  listEntries(options: ListRange): [string, unknown][] {
    const entries: [string, unknown][] = [];
    eachPair(this.native(() => this.db.kvList(options)), (key, value) => entries.push([key, value]));
    return entries;
  }

  /** Wipes everything; the alarm too unless compatibility keeps it (spec 51). */
  deleteAll(): void {
    // The core commits what came before (foreign keys can only be switched off outside a
    // transaction): through flush(), so that a failed commit resets the object as any other.
    const before = this.flush();
    if (before) throw before;
    const kept = this.host?.deleteAllDeletesAlarm === false ? this.getAlarm() : null;
    this.native(() => this.db.deleteAll());
    this.#writes++;
    this.#alarmTouched = true;
    if (kept !== null) this.setAlarm(kept);
    const failure = this.flush();
    if (failure) throw failure;
  }
}

type Bound = null | number | string | Uint8Array;

const STATEMENT_CACHE_BYTES = 1 << 20;

interface Statement {
  /** From the core's prepare(); -1: not a single statement, run through exec() each time. */
  readonly handle: number;
  /** The column names of the last run, which the core sends only when they change. */
  columns: string[];
  /** Its SQL's length in UTF-8, as counted against the cache's size. */
  bytes: number;
}

/**
 * SQLite's critical result codes at the end of the core's wording (`…: SQLITE_FULL`,
 * `…: SQLITE_IOERR (extended: SQLITE_IOERR_…)`): anchored, so user text in a message (a
 * constraint's name) cannot look like one.
 */
const CRITICAL = /: SQLITE_(FULL|IOERR|NOMEM|INTERRUPT)(?: \(extended: SQLITE_[A-Z_]+\))?$/;

function toMap(rows: KvRows): Map<string, unknown> {
  const map = new Map<string, unknown>();
  eachPair(rows, (key, value) => map.set(key, value));
  return map;
}

/** The kinds of value in `KvRows.ends` (`KV_TEXT`, … in src/lib.rs). */
const KV_TEXT = 0;
const KV_NUMBER = 1;

/** Unpacks the pairs the core sent (see `KvRows` in src/lib.rs). */
function eachPair(rows: KvRows, fn: (key: string, value: unknown) => void): void {
  const { keys, texts } = rows;
  const values = Buffer.from(rows.values);
  const ends = new Float64Array(rows.ends);
  let keyStart = 0;
  let textStart = 0;
  let valueStart = 0;
  for (let i = 0; i < ends.length; i += 3) {
    const keyEnd = ends[i];
    const kind = ends[i + 1];
    const end = ends[i + 2];
    let value: unknown;
    if (kind === KV_TEXT) {
      value = texts.slice(textStart, end);
      textStart = end;
    } else if (kind === KV_NUMBER) {
      value = end;
    } else {
      value = deserializeAt(values, valueStart, end);
      valueStart = end;
    }
    fn(keys.slice(keyStart, keyEnd), value);
    keyStart = keyEnd;
  }
}

function checkLegacyPut(keys: string[], values: Uint8Array[]): void {
  keys.forEach((key) => checkLegacyKey(key));
  for (const value of values) {
    if (value.length > KV_LIMITS.value + KV_LIMITS.cushion) {
      throw new RangeError(
        `Values cannot be larger than ${KV_LIMITS.value} bytes. A value of size ${value.length} was provided.`,
      );
    }
  }
}

function checkLegacyKey(key: string): void {
  const size = Buffer.byteLength(key);
  if (size > KV_LIMITS.key) {
    throw new RangeError(`Keys cannot be larger than ${KV_LIMITS.key} bytes. A key of size ${size} was provided.`);
  }
}

interface ListRange {
  start?: string;
  startAfter?: string;
  end?: string;
  prefix?: string;
  reverse: boolean;
  limit?: number;
}

interface ListOptions {
  start?: unknown;
  startAfter?: unknown;
  end?: unknown;
  prefix?: unknown;
  reverse?: unknown;
  limit?: unknown;
  allowConcurrency?: boolean;
}

/** Validates and coerces list options as Cloudflare does (spec 56–67). */
function listRange(options: unknown, className: string): ListRange {
  if (options === undefined || options === null) return { reverse: false };
  if (typeof options !== "object") throw argumentTypeError("list", className, 1, "ListOptions");
  const o = options as ListOptions;
  if (o.start !== undefined && o.startAfter !== undefined) {
    throw new TypeError("list() cannot be called with both start and startAfter values.");
  }
  const text = (v: unknown) => (v === undefined ? undefined : `${v}`);
  return {
    start: text(o.start),
    startAfter: text(o.startAfter),
    end: text(o.end),
    prefix: text(o.prefix),
    reverse: Boolean(o.reverse),
    limit: o.limit === undefined ? undefined : listLimit(o.limit),
  };
}

function listLimit(limit: unknown): number {
  const n = Number(limit);
  if (n >= 2 ** 31 || n < -(2 ** 31)) {
    throw new TypeError("Value out of range. Must be between -2147483648 and 2147483647 (inclusive).");
  }
  const whole = Math.trunc(n);
  if (!(whole > 0)) throw new TypeError("List limit must be positive.");
  return whole;
}

/** setAlarm()'s argument as integer milliseconds (spec 165–167). */
function alarmTime(value: unknown, className: string): number {
  let ms: number;
  if (value instanceof Date) ms = value.getTime();
  else if (typeof value === "number") ms = value;
  else throw argumentTypeError("setAlarm", className, 1, "date");
  if (Number.isNaN(ms)) throw new TypeError("The value cannot be converted because it is not a valid Date.");
  if (ms <= 0) throw new TypeError("setAlarm() cannot be called with an alarm time <= 0");
  return Math.trunc(ms);
}

function keyText(key: unknown): string {
  return `${key}`;
}

const STORAGE = "DurableObjectStorage";

/** Throws when the instance a facade belongs to is no longer the live one. */
export type InstanceGuard = () => void;

/** What the async KV methods share between `ctx.storage` and a transaction's `txn`. */
abstract class KvMethods {
  protected abstract readonly core: StorageCore;
  protected abstract readonly className: string;
  protected abstract readonly guard: InstanceGuard;

  /** Refuses operations from an instance that is gone (and, for `txn`, a finished transaction). */
  protected check(_op: string): void {
    this.guard();
  }

  async get(keys: unknown, options?: { allowConcurrency?: boolean }): Promise<unknown> {
    this.check("get");
    if (keys === undefined) throw argumentTypeError("get", this.className, 1, "string or Array");
    const core = this.core;
    core.holdGate(options?.allowConcurrency);
    if (!Array.isArray(keys)) return core.get(keyText(keys));
    const list = keys.map(keyText);
    if (!core.sqlite && list.length > KV_LIMITS.keysPerGet) {
      throw new RangeError(
        `Maximum number of key value pairs is ${KV_LIMITS.keysPerGet}. ${list.length} pairs were provided.`,
      );
    }
    if (!core.sqlite) list.forEach(checkLegacyKey);
    return core.getMany(list);
  }

  async list(options?: unknown): Promise<Map<string, unknown>> {
    this.check("list");
    const range = listRange(options, this.className);
    return this.core.gated((options as ListOptions | undefined)?.allowConcurrency, () => this.core.list(range));
  }

  async put(keyOrEntries: unknown, value?: unknown, options?: unknown): Promise<void> {
    this.check("put");
    let entries: [string, unknown][];
    let opts = options;
    if (typeof keyOrEntries === "object" && keyOrEntries !== null) {
      if (value !== undefined && (typeof value !== "object" || value === null)) {
        throw new TypeError(
          "put() may only be called with a single key-value pair and optional options as put(key, value, options) or with multiple key-value pairs and optional options as put(entries, options)",
        );
      }
      opts = value;
      // Entries whose value is undefined are skipped, neither stored nor deleted (spec 38).
      entries = Object.entries(keyOrEntries).filter(([, v]) => v !== undefined);
    } else {
      if (value === undefined) throw new TypeError("put() called with undefined value.");
      const core = this.core;
      core.holdGate((options as { allowConcurrency?: boolean } | undefined)?.allowConcurrency);
      core.putOne(keyText(keyOrEntries), value);
      return;
    }
    const core = this.core;
    core.gated((opts as { allowConcurrency?: boolean } | undefined)?.allowConcurrency, () => core.put(entries));
  }

  async getAlarm(options?: { allowConcurrency?: boolean }): Promise<number | null> {
    this.check("getAlarm");
    const core = this.core;
    return core.gated(options?.allowConcurrency, () => {
      const stored = core.getAlarm();
      return core.host ? core.host.visibleAlarm(stored) : stored;
    });
  }

  async setAlarm(scheduledTime: unknown, options?: { allowConcurrency?: boolean }): Promise<void> {
    this.check("setAlarm");
    const core = this.core;
    let time = alarmTime(scheduledTime, this.className);
    if (core.host && !core.host.mayScheduleAlarm()) {
      throw new TypeError("Your Durable Object class must have an alarm() handler in order to call setAlarm()");
    }
    // A time in the past means now: the alarm fires at once, and getAlarm() shows now (spec 168).
    if (core.host) time = Math.max(time, core.host.clockNow());
    core.gated(options?.allowConcurrency, () => {
      core.host?.alarmChangedByObject();
      if (core.getAlarm() !== time) core.setAlarm(time);
    });
  }

  async deleteAlarm(options?: { allowConcurrency?: boolean }): Promise<void> {
    this.check("deleteAlarm");
    const core = this.core;
    core.gated(options?.allowConcurrency, () => {
      core.host?.alarmChangedByObject();
      if (core.getAlarm() !== null) core.setAlarm(null);
    });
  }

  async delete(keys: unknown, options?: { allowConcurrency?: boolean }): Promise<boolean | number> {
    this.check("delete");
    if (keys === undefined) throw argumentTypeError("delete", this.className, 1, "string or Array");
    const core = this.core;
    return core.gated(options?.allowConcurrency, () =>
      Array.isArray(keys) ? core.delete([...new Set(keys.map(keyText))]) : core.delete([keyText(keys)]) > 0,
    );
  }
}

export class DurableObjectStorage extends KvMethods {
  protected declare readonly core: StorageCore;
  protected declare readonly className: string;
  protected declare readonly guard: InstanceGuard;
  declare readonly sql: SqlStorage;
  declare readonly kv: SyncKvStorage;

  /** @internal built by the runtime for each instance. */
  constructor(core: StorageCore, guard: InstanceGuard) {
    super();
    if (!(core instanceof StorageCore)) throw new TypeError("Illegal constructor");
    // Not own enumerable: `Object.keys(ctx.storage)` is only the lazy `sql` and `kv` (spec 4).
    Object.defineProperty(this, "core", { value: core });
    Object.defineProperty(this, "className", { value: STORAGE });
    Object.defineProperty(this, "guard", { value: guard });
    lazy(this, "sql", () => {
      if (!core.sqlite) throw new Error(NOT_SQLITE_SQL);
      return new SqlStorage(core, guard);
    });
    lazy(this, "kv", () => {
      if (!core.sqlite) throw new Error(NOT_SQLITE_KV);
      return new SyncKvStorage(core, guard);
    });
  }

  // The KV methods are redefined here so that they are own properties of this prototype, in
  // Cloudflare's order (spec 4); the work is in KvMethods.

  override get(keys: unknown, options?: { allowConcurrency?: boolean }): Promise<unknown> {
    return super.get(keys, options);
  }

  override list(options?: unknown): Promise<Map<string, unknown>> {
    return super.list(options);
  }

  override put(keyOrEntries: unknown, value?: unknown, options?: unknown): Promise<void> {
    return super.put(keyOrEntries, value, options);
  }

  override delete(keys: unknown, options?: { allowConcurrency?: boolean }): Promise<boolean | number> {
    return super.delete(keys, options);
  }

  async deleteAll(_options?: unknown): Promise<void> {
    this.guard();
    if (this.core.transactions > 0) throw new Error(DELETE_ALL_IN_TRANSACTION);
    const core = this.core;
    core.gated(false, () => core.deleteAll());
  }

  /** Runs `closure` in a transaction (a savepoint), with the input gate closed until it ends. */
  async transaction<T>(closure: (txn: DurableObjectTransaction) => T | Promise<T>): Promise<T> {
    this.guard();
    const core = this.core;
    const host = core.host;
    const epoch = host?.hold();
    const depth = core.native(() => core.db.savepoint());
    const era = core.era;
    core.transactions++;
    const txn = new DurableObjectTransaction(TXN, core, depth, this.guard);
    let committed = false;
    try {
      const result = await closure(txn);
      committed = true;
      return result;
    } finally {
      txn[END]();
      // A reset or eviction while the closure ran has already undone it; what follows is not ours.
      if (core.era === era) {
        try {
          core.native(() => core.db.endSavepoint(depth, committed));
        } finally {
          core.transactionEnded();
        }
      }
      if (epoch !== undefined) host!.releaseLater(epoch);
    }
  }

  override getAlarm(options?: { allowConcurrency?: boolean }): Promise<number | null> {
    return super.getAlarm(options);
  }

  override setAlarm(scheduledTime: unknown, options?: { allowConcurrency?: boolean }): Promise<void> {
    return super.setAlarm(scheduledTime, options);
  }

  override deleteAlarm(options?: { allowConcurrency?: boolean }): Promise<void> {
    return super.deleteAlarm(options);
  }

  /** Resolves once everything written so far is durable (after any open transaction()). */
  async sync(): Promise<void> {
    this.guard();
    await this.core.whenNoTransaction();
    const failure = this.core.flush();
    if (failure) throw failure;
  }

  /** Runs `closure` synchronously in a transaction: a throw rolls back SQL and KV writes. */
  transactionSync<T>(closure: () => T): T {
    this.guard();
    const core = this.core;
    if (!core.sqlite) throw new Error("Durable Object is not backed by SQL.");
    if (typeof closure !== "function") throw argumentTypeError("transactionSync", STORAGE, 1, "function");
    const depth = core.native(() => core.db.savepoint());
    const era = core.era;
    let result: T;
    try {
      result = closure();
    } catch (err) {
      if (core.era === era) core.native(() => core.db.endSavepoint(depth, false));
      throw err;
    }
    // A critical error inside already undid the transaction; returning normally cannot commit it.
    if (core.era !== era && core.critical) {
      throw new Error("Cannot commit transaction due to an earlier SQL critical error");
    }
    core.native(() => core.db.endSavepoint(depth, true));
    core.wrote();
    return result;
  }

  /** A bookmark of the state now (point-in-time recovery, for objects persisted in files). */
  async getCurrentBookmark(): Promise<string> {
    this.guard();
    const core = this.core;
    return core.gated(false, () => core.currentBookmark());
  }

  /** The bookmark of the latest state at or before `timestamp`, within the history kept. */
  async getBookmarkForTime(timestamp: number | Date): Promise<string> {
    this.guard();
    const time = timestamp instanceof Date ? timestamp.getTime() : timestamp;
    if (typeof time !== "number" || Number.isNaN(time)) {
      throw argumentTypeError("getBookmarkForTime", STORAGE, 1, "date");
    }
    const core = this.core;
    return core.gated(false, () => core.bookmarkForTime(Math.trunc(time)));
  }

  /**
   * Restores `bookmark` when the object next starts (call ctx.abort() to start it again now);
   * resolves with the bookmark that undoes the restore (spec 250).
   */
  async onNextSessionRestoreBookmark(bookmark: string): Promise<string> {
    this.guard();
    const core = this.core;
    return core.gated(false, () => core.scheduleRestore(`${bookmark}`));
  }
}
moveConstructorLast(DurableObjectStorage.prototype);

/** What workerd answers where there is no point-in-time recovery (spec 249). */
function bookmarksNotAvailable(): Error {
  return new Error("This Durable Object's storage back-end does not implement point-in-time recovery.");
}

const TXN = Symbol("durable-node.txn");
const DELETE_ALL_IN_TRANSACTION = "Cannot call deleteAll() within a transaction";
const END = Symbol("durable-node.txn.end");

export class DurableObjectTransaction extends KvMethods {
  protected declare readonly core: StorageCore;
  protected declare readonly className: string;
  protected declare readonly guard: InstanceGuard;
  #state: "open" | "rolledBack" | "committed" = "open";
  readonly #depth: number;

  /** @internal */
  constructor(token: typeof TXN, core: StorageCore, depth: number, guard: InstanceGuard) {
    super();
    if (token !== TXN) throw new TypeError("Illegal constructor");
    this.#depth = depth;
    Object.defineProperty(this, "core", { value: core });
    Object.defineProperty(this, "className", { value: "DurableObjectTransaction" });
    Object.defineProperty(this, "guard", { value: guard });
  }

  protected override check(op: string): void {
    this.guard();
    if (this.#state === "rolledBack") throw new Error(`Cannot ${op}() on rolled back transaction`);
    if (this.#state === "committed") {
      throw new Error(
        `Cannot call ${op}() on transaction that has already committed: did you move \`txn\` outside of the closure?`,
      );
    }
  }

  rollback(): void {
    if (this.#state === "rolledBack") return;
    this.check("rollback");
    this.#state = "rolledBack";
    this.core.native(() => this.core.db.rollbackSavepoint(this.#depth));
  }

  async deleteAll(): Promise<void> {
    throw new Error(DELETE_ALL_IN_TRANSACTION);
  }

  /** @internal the closure has returned or thrown. */
  [END](): void {
    if (this.#state === "open") this.#state = "committed";
  }
}

const KV_ITERATOR_INVALIDATED =
  "kv.list() iterator was invalidated because a new call to kv.list() was started. Only one kv.list() iterator can exist at a time.";

/** `ctx.storage.kv`: the same `_cf_KV` table, synchronously (SQLite-backed objects only). */
export class SyncKvStorage {
  readonly #core: StorageCore;
  readonly #guard: InstanceGuard;
  #listGeneration = 0;

  /** @internal */
  constructor(core: StorageCore, guard: InstanceGuard) {
    this.#core = core;
    this.#guard = guard;
  }

  get<T = unknown>(key: string): T | undefined {
    this.#guard();
    return this.#core.get(keyText(key)) as T | undefined;
  }

  list<T = unknown>(options?: unknown): IterableIterator<[string, T]> {
    this.#guard();
    const range = listRange(options, "SyncKvStorage");
    const entries = this.#core.listEntries(range) as [string, T][];
    const generation = ++this.#listGeneration;
    let index = 0;
    const iterator = {
      next: (): IteratorResult<[string, T]> => {
        if (generation !== this.#listGeneration) throw new Error(KV_ITERATOR_INVALIDATED);
        return index < entries.length ? { done: false, value: entries[index++] } : { done: true, value: undefined };
      },
      [Symbol.iterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  put<T>(key: string, value: T): void {
    this.#guard();
    this.#core.put([[keyText(key), value]]);
  }

  delete(key: string): boolean {
    this.#guard();
    return this.#core.delete([keyText(key)]) > 0;
  }
}
