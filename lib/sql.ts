// SqlStorage (`ctx.storage.sql`) and SqlStorageCursor: Cloudflare's shapes over the core's exec().

import type { SqlRows } from "./native-db.js";
import type { InstanceGuard, StorageCore } from "./storage.js";
import { moveConstructorLast } from "./state.js";

export type SqlStorageValue = ArrayBuffer | string | number | null;
type Row = Record<string, SqlStorageValue>;
type Bound = null | number | string | Uint8Array;

export class SqlStorage {
  readonly #core: StorageCore;
  readonly #guard: InstanceGuard;

  /** @internal */
  constructor(core: StorageCore, guard: InstanceGuard) {
    this.#core = core;
    this.#guard = guard;
    if (core.host?.experimental) {
      Object.defineProperty(this, "setMaxPageCountForTest", {
        value: (pages: number) => {
          guard();
          return core.setMaxPageCount(pages);
        },
      });
    }
  }

  exec<T extends Row = Row>(query: string, ...bindings: unknown[]): SqlStorageCursor<T> {
    this.#guard();
    // The rest array is ours: coerce in place rather than allocating another per call.
    for (let i = 0; i < bindings.length; i++) bindings[i] = bindValue(bindings[i]);
    return new SqlStorageCursor<T>(CREATE, this.#core.exec(`${query}`, bindings as Bound[]));
  }

  /**
   * workerd's experimental `setMaxPageCountForTest` (only with the `experimental` flag, spec 6):
   * caps the database's pages so that a test can reach SQLITE_FULL.
   */
  declare readonly setMaxPageCountForTest?: (pages: number) => number;

  get databaseSize(): number {
    this.#guard();
    return this.#core.databaseSize();
  }

  static get Cursor(): typeof SqlStorageCursor {
    return SqlStorageCursor;
  }

  static get Statement(): typeof SqlStorageStatement {
    return SqlStorageStatement;
  }

  get Cursor(): typeof SqlStorageCursor {
    return SqlStorageCursor;
  }

  get Statement(): typeof SqlStorageStatement {
    return SqlStorageStatement;
  }
}

/** Only a type on Cloudflare without the experimental flag (`sql.prepare` is absent). */
export class SqlStorageStatement {
  constructor() {
    throw new TypeError("Illegal constructor");
  }
}

/** Cloudflare's coercions of bound values (spec 110–117). */
function bindValue(value: unknown): Bound {
  switch (typeof value) {
    case "number":
    case "string":
      return value;
    case "undefined":
      return null;
    case "boolean":
      return value ? "true" : "false";
    case "bigint":
      throw new TypeError("Cannot convert a BigInt value to a number");
    case "symbol":
      throw new TypeError("Cannot convert a Symbol value to a string");
  }
  if (value === null) return null;
  if (value instanceof ArrayBuffer) return new Uint8Array(value.slice(0));
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return String(value);
}

const CREATE = Symbol("durable-node.cursor");

export class SqlStorageCursor<T extends Row = Row> {
  readonly #columns: string[];
  readonly #values: SqlStorageValue[];
  readonly #width: number;
  readonly #rows: number;
  readonly #rowsRead: number;
  readonly #rowsWritten: number;
  #next = 0;

  /** @internal */
  constructor(token: typeof CREATE, result: SqlRows) {
    if (token !== CREATE) throw new TypeError("Illegal constructor");
    this.#columns = result.columns;
    this.#values = result.values;
    this.#width = result.columns.length;
    this.#rows = this.#width === 0 ? 0 : result.count / this.#width;
    this.#rowsRead = result.rowsRead;
    this.#rowsWritten = result.rowsWritten;
  }

  next(): { done?: false; value: T } | { done: true; value?: never } {
    if (this.#next < this.#rows) return { done: false, value: this.#object(this.#next++) };
    return { done: true, value: undefined } as { done: true; value?: never };
  }

  toArray(): T[] {
    const rows: T[] = [];
    while (this.#next < this.#rows) rows.push(this.#object(this.#next++));
    return rows;
  }

  one(): T {
    const left = this.#rows - this.#next;
    this.#next = this.#rows;
    if (left === 0) throw new Error("Expected exactly one result from SQL query, but got no results.");
    if (left > 1) throw new Error("Expected exactly one result from SQL query, but got multiple results.");
    return this.#object(this.#rows - 1);
  }

  /** Rows as arrays, from the same position as the object iterator (spec 136). */
  raw<U extends SqlStorageValue[]>(): IterableIterator<U> & { toArray(): U[] } {
    const next = (): IteratorResult<U> =>
      this.#next < this.#rows
        ? { done: false, value: this.#array(this.#next++) as U }
        : { done: true, value: undefined };
    const iterator = {
      next,
      toArray: (): U[] => {
        const rows: U[] = [];
        for (let r = next(); !r.done; r = next()) rows.push(r.value);
        return rows;
      },
      [Symbol.iterator]() {
        return iterator;
      },
    };
    return iterator as IterableIterator<U> & { toArray(): U[] };
  }

  get columnNames(): string[] {
    return [...this.#columns];
  }

  /** As on Cloudflare, where the cursor reads one row ahead of what it has handed out (spec 138). */
  get rowsRead(): number {
    return this.#next >= this.#rows ? this.#rowsRead : Math.min(this.#rowsRead, this.#next + 1);
  }

  get rowsWritten(): number {
    return this.#rowsWritten;
  }

  [Symbol.iterator](): IterableIterator<T> {
    return this as unknown as IterableIterator<T>;
  }

  #object(row: number): T {
    const out: Row = {};
    const base = row * this.#width;
    // Duplicate column names keep the last value (spec 109).
    for (let c = 0; c < this.#width; c++) out[this.#columns[c]] = this.#values[base + c];
    return out as T;
  }

  #array(row: number): SqlStorageValue[] {
    const base = row * this.#width;
    return this.#values.slice(base, base + this.#width);
  }
}
moveConstructorLast(SqlStorageCursor.prototype);
