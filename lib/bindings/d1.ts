// D1: each database is one hidden Durable Object (D1DatabaseObject) running the SQL in its own
// SQLite, and d1Database(stub) is the binding Worker code sees, shaped as workerd's d1-api.ts.

import type { D1Database as WorkersD1Database } from "@cloudflare/workers-types/index.js";
import type { SqlStorage, SqlStorageValue } from "../sql.js";
import type { DurableObjectState } from "../state.js";
import type { DurableObjectStub, TypedStub } from "../stub.js";
import { DurableObject } from "../workers.js";

/** A statement as the binding sends it: BLOBs travel as arrays of bytes, as in D1's wire format. */
export interface D1Query {
  sql: string;
  params: D1Value[];
}

export type D1Value = string | number | null | number[];

export interface D1Meta {
  served_by: string;
  served_by_region: string;
  served_by_primary: boolean;
  timings: { sql_duration_ms: number };
  duration: number;
  changes: number;
  last_row_id: number;
  changed_db: boolean;
  size_after: number;
  rows_read: number;
  rows_written: number;
}

export interface D1QueryResult {
  columns: string[];
  rows: D1Value[][];
  meta: D1Meta;
}

/** One database. Every call runs its statements in one transaction: all of them or none. */
export class D1DatabaseObject extends DurableObject {
  readonly #sql: SqlStorage;
  #sequence = 0;

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
  }

  /** Runs `queries` atomically; with `bookmark`, also says which state the results come from. */
  async query(queries: D1Query[], bookmark: boolean): Promise<{ results: D1QueryResult[]; bookmark?: string }> {
    // D1 drops statements that are only comments, then refuses a request with none left.
    const statements = queries.filter((query) => query.sql.replace(/--[^\n]*|\/\*[\s\S]*?\*\//g, "").trim() !== "");
    if (statements.length === 0) throw new Error("No SQL statements detected.");
    const results = this.ctx.storage.transactionSync(() => statements.map((query) => this.#run(query)));
    return bookmark ? { results, bookmark: await this.#bookmark() } : { results };
  }

  #run({ sql, params }: D1Query): D1QueryResult {
    const start = performance.now();
    const sizeBefore = this.#sql.databaseSize;
    const before = this.#counters();
    const cursor = this.#sql.exec(sql, ...params.map((param) => (Array.isArray(param) ? Uint8Array.from(param) : param)));
    const rows = cursor.raw<SqlStorageValue[]>().toArray().map((row) => row.map(wireValue));
    const duration = performance.now() - start;
    const after = this.#counters();
    const size = this.#sql.databaseSize;
    const changes = after.changes - before.changes;
    return {
      columns: cursor.columnNames,
      rows,
      meta: {
        served_by: "durable-node.db",
        served_by_region: "local",
        served_by_primary: true,
        timings: { sql_duration_ms: duration },
        duration,
        changes,
        last_row_id: after.lastRowId,
        changed_db: changes !== 0 || after.lastRowId !== before.lastRowId || size !== sizeBefore,
        size_after: size,
        rows_read: cursor.rowsRead,
        rows_written: cursor.rowsWritten,
      },
    };
  }

  #counters(): { changes: number; lastRowId: number } {
    return this.#sql.exec<{ changes: number; lastRowId: number }>("SELECT total_changes() AS changes, last_insert_rowid() AS lastRowId").one();
  }

  /**
   * Point-in-time bookmarks exist only for databases kept in files; in memory, a sequence number
   * stands in (sessions only compare bookmarks and hand them back).
   */
  async #bookmark(): Promise<string> {
    try {
      return await this.ctx.storage.getCurrentBookmark();
    } catch {
      return (++this.#sequence).toString(16).padStart(16, "0");
    }
  }
}

/** BLOBs reach D1 callers as arrays of byte values, not ArrayBuffers. */
function wireValue(value: SqlStorageValue): D1Value {
  return value instanceof ArrayBuffer ? Array.from(new Uint8Array(value)) : value;
}

type D1Stub = TypedStub<D1DatabaseObject>;

/** The D1 binding over the database's object `stub`. */
export function d1Database(stub: DurableObjectStub): WorkersD1Database {
  return new D1Database(stub as D1Stub) as unknown as WorkersD1Database;
}

const SEND = Symbol("durable-node.d1.send");
const FIRST_PRIMARY = "first-primary";
const FIRST_UNCONSTRAINED = "first-unconstrained";

interface D1Result {
  success: true;
  meta: D1Meta;
  results: Record<string, D1Value>[];
}

class D1DatabaseSession {
  readonly #stub: D1Stub;
  #bookmarkOrConstraint: string | null;

  /** A null `bookmarkOrConstraint`: the database's own session, which tracks no bookmark. */
  constructor(stub: D1Stub, bookmarkOrConstraint: string | null) {
    this.#stub = stub;
    this.#bookmarkOrConstraint = bookmarkOrConstraint;
  }

  prepare(query: string): D1PreparedStatement {
    return new D1PreparedStatement(this, `${query}`);
  }

  async batch(statements: D1PreparedStatement[]): Promise<D1Result[]> {
    const results = await this[SEND](statements.map(queryOf));
    return results.map(toResult);
  }

  /** The latest bookmark this session has seen; null before its first query. */
  getBookmark(): string | null {
    const current = this.#bookmarkOrConstraint;
    return current === FIRST_PRIMARY || current === FIRST_UNCONSTRAINED ? null : current;
  }

  /** @internal Runs `queries` in one transaction; failures take D1's `D1_ERROR` prefix. */
  async [SEND](queries: D1Query[]): Promise<D1QueryResult[]> {
    const tracked = this.#bookmarkOrConstraint !== null;
    let reply: Awaited<ReturnType<D1DatabaseObject["query"]>>;
    try {
      reply = await this.#stub.query(queries, tracked);
    } catch (err) {
      const message = messageOf(err);
      throw new Error(`D1_ERROR: ${message}`, { cause: new Error(message) });
    }
    const latest = this.getBookmark();
    // Concurrent queries may answer out of order: keep the most recent bookmark (they sort).
    if (reply.bookmark !== undefined && (latest === null || latest.localeCompare(reply.bookmark) < 0)) {
      this.#bookmarkOrConstraint = reply.bookmark;
    }
    return reply.results;
  }
}

class D1Database {
  readonly #stub: D1Stub;
  readonly #primary: D1DatabaseSession;

  constructor(stub: D1Stub) {
    this.#stub = stub;
    this.#primary = new D1DatabaseSession(stub, null);
  }

  prepare(query: string): D1PreparedStatement {
    return this.#primary.prepare(query);
  }

  batch(statements: D1PreparedStatement[]): Promise<D1Result[]> {
    return this.#primary.batch(statements);
  }

  /** Runs each line of `query` as a statement, all in one transaction. */
  async exec(query: string): Promise<{ count: number; duration: number }> {
    const lines = `${query}`.trim().split("\n");
    let results: D1QueryResult[];
    try {
      results = await this.#primary[SEND](lines.map((sql) => ({ sql, params: [] })));
    } catch (err) {
      // D1 names line 1 whichever statement failed: its database answers with the first error only.
      const message = `Error in line 1: ${lines[0]}: ${messageOf((err as Error).cause)}`;
      throw new Error(`D1_EXEC_ERROR: ${message}`, { cause: new Error(message) });
    }
    return { count: results.length, duration: results.reduce((sum, result) => sum + result.meta.duration, 0) };
  }

  withSession(constraintOrBookmark?: string): D1DatabaseSession {
    const start = constraintOrBookmark === undefined || constraintOrBookmark === null ? "" : `${constraintOrBookmark}`.trim();
    return new D1DatabaseSession(this.#stub, start === "" ? FIRST_UNCONSTRAINED : start);
  }

  async dump(): Promise<ArrayBuffer> {
    throw new Error("D1_DUMP_ERROR: dump() is not supported: it only applied to the deprecated alpha D1 databases.");
  }
}

class D1PreparedStatement {
  readonly #session: D1DatabaseSession;
  readonly statement: string;
  readonly params: D1Value[];

  constructor(session: D1DatabaseSession, statement: string, params: D1Value[] = []) {
    this.#session = session;
    this.statement = statement;
    this.params = params;
  }

  bind(...values: unknown[]): D1PreparedStatement {
    return new D1PreparedStatement(this.#session, this.statement, values.map(bindValue));
  }

  async first(column?: string): Promise<unknown> {
    const [row] = toResult(await this.#one()).results;
    if (row === undefined) return null;
    if (column === undefined) return row;
    if (row[column] === undefined) {
      throw new Error(`D1_COLUMN_NOTFOUND: Column not found (${column})`, { cause: new Error("Column not found") });
    }
    return row[column];
  }

  /** D1 documents run() as an alias of all(). */
  async run(): Promise<D1Result> {
    return toResult(await this.#one());
  }

  async all(): Promise<D1Result> {
    return toResult(await this.#one());
  }

  async raw(options?: { columnNames?: boolean }): Promise<unknown[]> {
    const { columns, rows } = await this.#one();
    return options?.columnNames ? [columns, ...rows] : rows;
  }

  async #one(): Promise<D1QueryResult> {
    const [result] = await this.#session[SEND]([queryOf(this)]);
    return result;
  }
}

function queryOf(statement: D1PreparedStatement): D1Query {
  if (!(statement instanceof D1PreparedStatement)) {
    throw new TypeError("D1 batch() accepts only statements from prepare() of a D1 database or session.");
  }
  return { sql: statement.statement, params: statement.params };
}

/** D1's bind() coercions: booleans as 1/0, bytes as arrays of byte values, nothing else. */
function bindValue(value: unknown): D1Value {
  switch (typeof value) {
    case "number":
    case "string":
      return value;
    case "boolean":
      return value ? 1 : 0;
    case "object":
      if (value === null) return null;
      if (Array.isArray(value) && value.every((b) => typeof b === "number" && b >= 0 && b < 256)) return value as number[];
      if (value instanceof ArrayBuffer) return Array.from(new Uint8Array(value));
      if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<number>);
  }
  const message = `Type '${typeof value}' not supported for value '${String(value)}'`;
  throw new Error(`D1_TYPE_ERROR: ${message}`, { cause: new Error(message) });
}

function toResult({ columns, rows, meta }: D1QueryResult): D1Result {
  return { success: true, meta, results: rows.map((row) => Object.fromEntries(row.map((cell, i) => [columns[i], cell]))) };
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
