// One object's database in the core, by handle (see `storage_*` in src/lib.rs).

import type { KvListOptions, KvRows } from "../native/binding.js";
import { native } from "./native.js";
import { serialize } from "./values.js";

type Bound = null | number | string | Uint8Array;
type SqlValue = null | number | string | ArrayBuffer;

/** The hot calls as plain N-API functions (src/storage_napi.rs), with the status array they report into. */
const fast = native.storageFastCalls();
/** What the last `run()` reported: row values, column count (-1: unchanged), rows read, rows written. */
const status = fast.status();

/**
 * One statement's result as it crossed: `count` row values, row after row, then `width` column
 * names when they are new (-1: the same as the statement's previous run, which the caller keeps and
 * puts in `columns`).
 */
export interface SqlRows {
  values: SqlValue[];
  count: number;
  width: number;
  columns: string[];
  rowsRead: number;
  rowsWritten: number;
}

const NO_VALUES: SqlValue[] = [];
const NO_COLUMNS: string[] = [];

/** `fast.run` with the bindings as arguments: written out for the usual few, as a spread costs more. */
function runWith(handle: number, statement: number, b: Bound[]): unknown {
  switch (b.length) {
    case 0:
      return fast.run(handle, statement);
    case 1:
      return fast.run(handle, statement, b[0]);
    case 2:
      return fast.run(handle, statement, b[0], b[1]);
    case 3:
      return fast.run(handle, statement, b[0], b[1], b[2]);
    case 4:
      return fast.run(handle, statement, b[0], b[1], b[2], b[3]);
    default:
      return fast.run(handle, statement, ...b);
  }
}

/** A handle no database ever has (the core's table would need 2³² − 1 entries). */
const CLOSED = 0xffff_ffff;

/**
 * A thin face over the core's free functions, which cross the napi boundary about ten times
 * faster than methods of a napi class: every storage operation is one of these calls.
 */
export class NativeDb {
  #handle: number;

  /** Opens (creating) the database at `path`, or an in-memory one. */
  constructor(path: string | null, fullSync: boolean) {
    this.#handle = native.storageOpen(path, fullSync);
  }

  /** Runs every statement of `sql` (see `into_flat` in src/storage/sql.rs for what crosses). */
  exec(sql: string, binds: Bound[]): SqlRows {
    const flat = native.storageExec(this.#handle, sql, binds);
    const n = flat.length;
    const width = flat[n - 3] as number;
    const count = n - 3 - Math.max(width, 0);
    const rowsRead = flat[n - 2] as number;
    return { values: flat, count, width, columns: NO_COLUMNS, rowsRead, rowsWritten: flat[n - 1] as number };
  }
  /** A handle for `run`, or -1 when `sql` is not exactly one statement. */
  prepare(sql: string): number {
    return native.storagePrepare(this.#handle, sql);
  }
  /** Runs a statement from `prepare()`, its bindings passed as the call's arguments. */
  run(statement: number, binds: Bound[]): SqlRows {
    const returned = runWith(this.#handle, statement, binds);
    const count = status[0];
    const width = status[1];
    // The core returns nothing for no values, a single value as itself, else an array.
    const values =
      width >= 0 || count > 1 ? (returned as SqlValue[]) : count === 0 ? NO_VALUES : [returned as SqlValue];
    return { values, count, width, columns: NO_COLUMNS, rowsRead: status[2], rowsWritten: status[3] };
  }
  finalize(statement: number): void {
    native.storageFinalize(this.#handle, statement);
  }
  /** The stored value: a string or number already read, else its serialized bytes; null when missing. */
  kvGet(key: string): string | number | ArrayBuffer | null {
    return fast.kvGet(this.#handle, key);
  }
  kvGetMany(keys: string[]): KvRows {
    return native.storageKvGetMany(this.#handle, keys);
  }
  kvPut(keys: string[], values: Buffer[]): void {
    native.storageKvPut(this.#handle, keys, values);
  }
  /** Stores one pair: a number or a Latin-1 string is serialized by the core, anything else here. */
  kvPutValue(key: string, value: unknown): void {
    if ((typeof value === "number" || typeof value === "string") && fast.kvPut(this.#handle, key, value)) return;
    fast.kvPut(this.#handle, key, serialize(value));
  }
  /** Stores one pair whose value is serialized already. */
  kvPutBytes(key: string, bytes: Uint8Array): void {
    fast.kvPut(this.#handle, key, bytes);
  }
  kvDelete(keys: string[]): number {
    return native.storageKvDelete(this.#handle, keys);
  }
  kvList(options: KvListOptions): KvRows {
    return native.storageKvList(this.#handle, options);
  }
  getAlarm(): number | null {
    return native.storageGetAlarm(this.#handle);
  }
  setAlarm(time: number | null): void {
    native.storageSetAlarm(this.#handle, time);
  }
  getName(): string | null {
    return native.storageGetName(this.#handle);
  }
  setName(name: string): void {
    native.storageSetName(this.#handle, name);
  }
  commit(): void {
    native.storageCommit(this.#handle);
  }
  rollback(): void {
    native.storageRollback(this.#handle);
  }
  savepoint(): number {
    return native.storageSavepoint(this.#handle);
  }
  endSavepoint(depth: number, keep: boolean): void {
    native.storageEndSavepoint(this.#handle, depth, keep);
  }
  rollbackSavepoint(depth: number): void {
    native.storageRollbackSavepoint(this.#handle, depth);
  }
  setMaxPageCount(pages: number): number {
    return native.storageSetMaxPageCount(this.#handle, pages);
  }
  databaseSize(): number {
    return native.storageDatabaseSize(this.#handle);
  }
  currentBookmark(): string {
    return native.storageCurrentBookmark(this.#handle);
  }
  bookmarkForTime(time: number): string {
    return native.storageBookmarkForTime(this.#handle, time);
  }
  /** Restores `bookmark` at the object's next start; returns the bookmark that undoes it. */
  scheduleRestore(bookmark: string): string {
    return native.storageScheduleRestore(this.#handle, bookmark);
  }
  /** True when a scheduled restore happened. */
  applyPendingRestore(): boolean {
    return native.storageApplyPendingRestore(this.#handle);
  }
  deleteAll(): void {
    native.storageDeleteAll(this.#handle);
  }
  /** The committed database as bytes (isolated storage in tests). */
  snapshot(): Buffer {
    return native.storageSnapshot(this.#handle);
  }
  /** Replaces the whole database with a `snapshot()`; compiled statements are gone after it. */
  restore(bytes: Buffer): void {
    native.storageRestore(this.#handle, bytes);
  }
  /**
   * Closes the file; uncommitted writes are discarded. The core reuses freed handles, so this
   * object forgets its own: later calls fail as closed instead of reaching another database.
   */
  close(): void {
    native.storageClose(this.#handle);
    this.#handle = CLOSED;
  }
}
