// One object's database in the core, by handle (see `storage_*` in src/lib.rs).

import type { KvListOptions, KvRows } from "../native/binding.js";
import { native } from "./native.js";

type Bound = null | number | string | Uint8Array;
type SqlValue = null | number | string | ArrayBuffer;

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

  exec(sql: string, binds: Bound[]): SqlValue[] {
    return native.storageExec(this.#handle, sql, binds);
  }
  /** A handle for `run`, or -1 when `sql` is not exactly one statement. */
  prepare(sql: string): number {
    return native.storagePrepare(this.#handle, sql);
  }
  run(statement: number, binds: Bound[]): SqlValue[] {
    return native.storageRun(this.#handle, statement, binds);
  }
  finalize(statement: number): void {
    native.storageFinalize(this.#handle, statement);
  }
  /** The stored value: a string or number already read, else its serialized bytes; null when missing. */
  kvGet(key: string): string | number | ArrayBuffer | null {
    return native.storageKvGet(this.#handle, key);
  }
  kvGetMany(keys: string[]): KvRows {
    return native.storageKvGetMany(this.#handle, keys);
  }
  kvPut(keys: string[], values: Buffer[]): void {
    native.storageKvPut(this.#handle, keys, values);
  }
  kvPutOne(key: string, value: Uint8Array): void {
    native.storageKvPutOne(this.#handle, key, value);
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
