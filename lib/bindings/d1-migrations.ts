// D1 migrations for tests: read a migrations folder, apply what a database has not seen yet
// (what @cloudflare/vitest-pool-workers offers as readD1Migrations / applyD1Migrations).

import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import type { D1Database } from "@cloudflare/workers-types/index.js";

export interface D1Migration {
  name: string;
  queries: string[];
}

/** The `.sql` files of `migrationsPath` by migration number (then name), each split into statements. */
export async function readD1Migrations(migrationsPath: string): Promise<D1Migration[]> {
  if (typeof migrationsPath !== "string") {
    throw new TypeError("Failed to execute 'readD1Migrations': parameter 1 is not of type 'string'.");
  }
  const names = (await readdir(migrationsPath)).filter((name) => name.endsWith(".sql"));
  // wrangler numbers migrations `0001_name.sql`; a number sorts 2 before 10 where names would not.
  const number = (name: string) => Number.parseInt(name.split("_")[0], 10);
  names.sort((a, b) => number(a) - number(b) || (a < b ? -1 : a > b ? 1 : 0));
  return Promise.all(
    names.map(async (name) => ({ name, queries: splitSqlStatements(await readFile(path.join(migrationsPath, name), "utf8")) })),
  );
}

/**
 * Applies, in order, each migration not yet recorded in `migrationsTableName`: its statements and
 * the row recording it run as one batch, so a failing migration leaves nothing behind.
 */
export async function applyD1Migrations(db: D1Database, migrations: D1Migration[], migrationsTableName = "d1_migrations"): Promise<void> {
  if (!isD1Database(db)) {
    throw new TypeError("Failed to execute 'applyD1Migrations': parameter 1 is not of type 'D1Database'.");
  }
  if (!Array.isArray(migrations) || !migrations.every(isD1Migration)) {
    throw new TypeError("Failed to execute 'applyD1Migrations': parameter 2 is not of type 'D1Migration[]'.");
  }
  if (typeof migrationsTableName !== "string") {
    throw new TypeError("Failed to execute 'applyD1Migrations': parameter 3 is not of type 'string'.");
  }
  const table = `"${migrationsTableName.replace(/"/g, '""')}"`;
  await db
    .prepare(
      `CREATE TABLE IF NOT EXISTS ${table} (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL)`,
    )
    .run();
  const applied = new Set((await db.prepare(`SELECT name FROM ${table}`).all<{ name: string }>()).results.map((row) => row.name));
  const record = db.prepare(`INSERT INTO ${table} (name) VALUES (?)`);
  for (const migration of migrations) {
    if (applied.has(migration.name)) continue;
    await db.batch([...migration.queries.map((query) => db.prepare(query)), record.bind(migration.name)]);
  }
}

function isD1Database(value: unknown): value is D1Database {
  const db = value as Partial<Record<"prepare" | "batch" | "exec", unknown>> | null;
  return typeof db === "object" && db !== null && typeof db.prepare === "function" && typeof db.batch === "function" && typeof db.exec === "function";
}

function isD1Migration(value: unknown): value is D1Migration {
  const migration = value as Partial<D1Migration> | null;
  return (
    typeof migration === "object" &&
    migration !== null &&
    typeof migration.name === "string" &&
    Array.isArray(migration.queries) &&
    migration.queries.every((query) => typeof query === "string")
  );
}

const WORD = /[A-Za-z0-9_$]+/y;

/**
 * The statements of a SQL file, trimmed, without comments or the `;` between them. A `;` inside a
 * quoted string or identifier, or inside a trigger's BEGIN … END body, does not end a statement.
 * A `BEGIN TRANSACTION` / `COMMIT` pair wrapping the file (as `sqlite3 .dump` writes) is dropped:
 * D1 runs each migration in a transaction of its own and refuses SQL transaction statements.
 */
export function splitSqlStatements(sql: string): string[] {
  const statements: string[] = [];
  let current = "";
  let depth = 0;
  let i = 0;
  const closing: Record<string, string> = { "'": "'", '"': '"', "`": "`", "[": "]" };
  while (i < sql.length) {
    const c = sql[i];
    if (c === "-" && sql[i + 1] === "-") {
      const end = sql.indexOf("\n", i);
      i = end === -1 ? sql.length : end;
    } else if (c === "/" && sql[i + 1] === "*") {
      const end = sql.indexOf("*/", i + 2);
      i = end === -1 ? sql.length : end + 2;
      current += " ";
    } else if (c in closing) {
      // A doubled closing quote is an escaped one: the scan simply goes on to the next closing.
      const end = sql.indexOf(closing[c], i + 1);
      const stop = end === -1 ? sql.length : end + 1;
      current += sql.slice(i, stop);
      i = stop;
    } else if (/[A-Za-z_]/.test(c)) {
      WORD.lastIndex = i;
      const word = WORD.exec(sql)![0];
      const upper = word.toUpperCase();
      if (upper === "CASE" || (upper === "BEGIN" && /^\s*CREATE\b/i.test(current))) depth++;
      else if (upper === "END" && depth > 0) depth--;
      current += word;
      i += word.length;
    } else if (c === ";" && depth === 0) {
      statements.push(current);
      current = "";
      i++;
    } else {
      current += c;
      i++;
    }
  }
  statements.push(current);
  return statements
    .map((statement) => statement.trim())
    .filter((statement) => statement !== "" && !/^(BEGIN\s+TRANSACTION|COMMIT)$/i.test(statement));
}
