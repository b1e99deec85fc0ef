// Workers KV: each namespace is one hidden Durable Object (KvNamespaceObject) keeping its entries in
// SQLite, and kvNamespace(stub) is the binding Worker code sees, with KV's API and error messages.

import type { KVNamespace } from "@cloudflare/workers-types/index.js";
import type { SqlStorage } from "../sql.js";
import type { DurableObjectState } from "../state.js";
import type { DurableObjectStub, TypedStub } from "../stub.js";
import { DurableObject } from "../workers.js";

// KV's limits (developers.cloudflare.com/kv/platform/limits), with the numbers its errors quote.
const MAX_KEY_BYTES = 512;
const MAX_VALUE_BYTES = 25 * 1024 * 1024;
const MAX_METADATA_BYTES = 1024;
const MIN_EXPIRATION_TTL = 60;
const MIN_CACHE_TTL = 30;
const MAX_LIST_KEYS = 1000;
const MAX_BULK_KEYS = 100;
/** A row holds at most this much of a value (SQLite-backed objects refuse multi-MiB BLOBs). */
const CHUNK_BYTES = 1024 * 1024;

export interface KvEntry {
  value: ArrayBuffer;
  /** Seconds since the epoch, as KV reports it. */
  expiration: number | null;
  /** JSON text. */
  metadata: string | null;
}

export interface KvListedKey {
  name: string;
  expiration?: number;
  metadata?: string;
}

/** One namespace's entries. Its callers (the binding below) validate; it only stores. */
export class KvNamespaceObject extends DurableObject {
  readonly #sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    // TEXT keys compare with SQLite's BINARY collation: UTF-8 byte order, which is KV's list order.
    // A value's first chunk sits in its entry; `chunks` counts the rest, kept in `overflow`.
    this.#sql.exec(`
      CREATE TABLE IF NOT EXISTS entries (
        key TEXT PRIMARY KEY, value BLOB NOT NULL, chunks INTEGER NOT NULL, expiration INTEGER, metadata TEXT
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS overflow (key TEXT, n INTEGER, bytes BLOB NOT NULL, PRIMARY KEY (key, n)) WITHOUT ROWID`);
  }

  /** The live entry of each key (null where absent or expired), in the order asked. */
  get(keys: string[]): (KvEntry | null)[] {
    const now = Date.now();
    return keys.map((key) => {
      const row = this.#sql
        .exec<{ value: ArrayBuffer; chunks: number; expiration: number | null; metadata: string | null }>(
          "SELECT value, chunks, expiration, metadata FROM entries WHERE key = ?",
          key,
        )
        .toArray()[0];
      if (row === undefined) return null;
      if (row.expiration !== null && row.expiration * 1000 <= now) {
        this.delete(key);
        return null;
      }
      let value = row.value;
      if (row.chunks > 0) {
        const rest = this.#sql.exec<{ bytes: ArrayBuffer }>("SELECT bytes FROM overflow WHERE key = ? ORDER BY n", key).toArray();
        value = new Uint8Array(Buffer.concat([new Uint8Array(value), ...rest.map(({ bytes }) => new Uint8Array(bytes))])).buffer;
      }
      return { value, expiration: row.expiration, metadata: row.metadata };
    });
  }

  put(key: string, value: Uint8Array, expiration: number | null, metadata: string | null): void {
    const chunks = Math.max(1, Math.ceil(value.byteLength / CHUNK_BYTES));
    const chunk = (n: number) => value.subarray(n * CHUNK_BYTES, (n + 1) * CHUNK_BYTES);
    this.#sql.exec("DELETE FROM overflow WHERE key = ?", key);
    this.#sql.exec("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?)", key, chunk(0), chunks - 1, expiration, metadata);
    for (let n = 1; n < chunks; n++) this.#sql.exec("INSERT INTO overflow VALUES (?, ?, ?)", key, n, chunk(n));
  }

  delete(key: string): void {
    this.#sql.exec("DELETE FROM entries WHERE key = ?", key);
    this.#sql.exec("DELETE FROM overflow WHERE key = ?", key);
  }

  /** Up to `limit` live keys starting with `prefix`, after the key `after`; `more` when others follow. */
  list(prefix: string, limit: number, after: string | null): { keys: KvListedKey[]; more: boolean } {
    const from = after !== null && after >= prefix ? after : prefix;
    const end = prefixEnd(prefix);
    const rows = this.#sql
      .exec<{ key: string; expiration: number | null; metadata: string | null }>(
        `SELECT key, expiration, metadata FROM entries
          WHERE (key > ?1 OR (key = ?1 AND ?2)) AND (?3 IS NULL OR key < ?3) AND (expiration IS NULL OR expiration * 1000 > ?4)
          ORDER BY key LIMIT ?5`,
        from,
        from === after ? 0 : 1,
        end,
        Date.now(),
        limit + 1,
      )
      .toArray();
    const keys = rows.slice(0, limit).map(({ key, expiration, metadata }) => {
      const listed: KvListedKey = { name: key };
      if (expiration !== null) listed.expiration = expiration;
      if (metadata !== null) listed.metadata = metadata;
      return listed;
    });
    return { keys, more: rows.length > limit };
  }
}

/**
 * The least string above every string that starts with `prefix` (null: none), so that a prefix is
 * a key range the primary key index serves. UTF-8 byte order is code point order.
 */
function prefixEnd(prefix: string): string | null {
  const points = Array.from(prefix, (c) => c.codePointAt(0)!);
  while (points.length > 0) {
    const last = points.pop()! + 1;
    if (last > 0x10ffff) continue;
    points.push(last === 0xd800 ? 0xe000 : last);
    return String.fromCodePoint(...points);
  }
  return null;
}

type GetType = "text" | "json" | "arrayBuffer" | "stream";
type KvStub = TypedStub<KvNamespaceObject>;

/** The KV binding over the namespace's object `stub`. */
export function kvNamespace(stub: DurableObjectStub): KVNamespace {
  return new KvNamespace(stub as KvStub) as unknown as KVNamespace;
}

class KvNamespace {
  readonly #stub: KvStub;

  constructor(stub: KvStub) {
    this.#stub = stub;
  }

  get(key: unknown, options?: unknown): Promise<unknown> {
    if (Array.isArray(key)) return this.#getBulk(key, options, false);
    return this.#getOne(key, options).then((result) => result.value);
  }

  getWithMetadata(key: unknown, options?: unknown): Promise<unknown> {
    if (Array.isArray(key)) return this.#getBulk(key, options, true);
    return this.#getOne(key, options);
  }

  async put(key: unknown, value: unknown, options?: unknown): Promise<void> {
    const name = keyName("PUT", key);
    const body = putBody(value);
    const { expirationTtl, expiration, metadata } = (options ?? {}) as Record<string, unknown>;
    const expiresAt = expirationAt(expirationTtl, expiration, Math.floor(Date.now() / 1000));
    let metadataJson: string | null = null;
    if (metadata !== undefined && metadata !== null) {
      metadataJson = JSON.stringify(metadata) ?? null;
      const length = metadataJson === null ? 0 : Buffer.byteLength(metadataJson);
      if (length > MAX_METADATA_BYTES) {
        throw kvError("PUT", 413, `Metadata length of ${length} exceeds limit of ${MAX_METADATA_BYTES}.`);
      }
    }
    const { bytes, length } = await readBody(body);
    if (length > MAX_VALUE_BYTES) throw kvError("PUT", 413, `Value length of ${length} exceeds limit of ${MAX_VALUE_BYTES}.`);
    await this.#stub.put(name, bytes, expiresAt, metadataJson);
  }

  async delete(key: unknown): Promise<void> {
    await this.#stub.delete(keyName("DELETE", key));
  }

  async list(options?: unknown): Promise<unknown> {
    const { limit, prefix, cursor } = (options ?? {}) as Record<string, unknown>;
    // workerd sends the limit only when it is positive; the service then applies its bounds.
    const asked = limit === undefined ? 0 : toInt(limit);
    const count = asked > 0 ? asked : MAX_LIST_KEYS;
    if (count > MAX_LIST_KEYS) {
      throw kvError("GET", 400, `Invalid key_count_limit of ${count}. Please specify an integer less than ${MAX_LIST_KEYS}.`);
    }
    const start = prefix === undefined || prefix === null ? "" : String(prefix);
    checkKeyLength("GET", start);
    const after = cursor === undefined || cursor === null || cursor === "" ? null : Buffer.from(String(cursor), "base64url").toString();
    const page = await this.#stub.list(start, count, after);
    const keys = page.keys.map((key) => (key.metadata === undefined ? key : { ...key, metadata: JSON.parse(key.metadata) }));
    if (!page.more) return { keys, list_complete: true, cacheStatus: null };
    const next = Buffer.from(keys[keys.length - 1].name).toString("base64url");
    return { keys, list_complete: false, cursor: next, cacheStatus: null };
  }

  async #getOne(key: unknown, options: unknown): Promise<{ value: unknown; metadata: unknown; cacheStatus: null }> {
    const name = keyName("GET", key);
    const { type, cacheTtl } = getOptions(options);
    checkCacheTtl("GET", cacheTtl);
    const [entry] = await this.#stub.get([name]);
    if (entry === null) return { value: null, metadata: null, cacheStatus: null };
    // As workerd: the type is only looked at once there is a value to convert.
    return { value: decode(entry.value, type ?? "text"), metadata: parseMetadata(entry), cacheStatus: null };
  }

  async #getBulk(keys: unknown[], options: unknown, withMetadata: boolean): Promise<Map<string, unknown>> {
    const names = keys.map(String);
    const { type, cacheTtl } = getOptions(options);
    if (type !== undefined && type !== "" && type !== "text" && type !== "json") {
      throw kvError("GET_BULK", 400, `"${type}" is not a valid type. Use "json" or "text"`);
    }
    if (names.length > MAX_BULK_KEYS) throw kvError("GET_BULK", 400, `You can request a maximum of ${MAX_BULK_KEYS} keys`);
    if (names.length < 1) throw kvError("GET_BULK", 400, "You must request a minimum of 1 key");
    for (const name of names) {
      // Bulk keys are checked by the KV service, in its own words, not by the binding.
      if (name === "") throw kvError("GET_BULK", 400, "Key names must not be empty");
      if (name === "." || name === "..") throw kvError("GET_BULK", 400, `Illegal key name "${name}". Please use a different name.`);
      checkKeyLength("GET_BULK", name);
      checkCacheTtl("GET_BULK", cacheTtl);
    }
    const entries = await this.#stub.get(names);
    const result = new Map<string, unknown>();
    let size = 0;
    names.forEach((name, i) => {
      const entry = entries[i];
      if (entry === null) return void result.set(name, null);
      const text = new TextDecoder().decode(entry.value);
      size += text.length;
      let value: unknown = text;
      if (type === "json") {
        try {
          value = JSON.parse(text);
        } catch {
          throw kvError("GET_BULK", 400, "At least one of the requested keys corresponds to a non-json value");
        }
      }
      result.set(name, withMetadata ? { value, metadata: parseMetadata(entry) } : value);
    });
    if (size > MAX_VALUE_BYTES) {
      throw kvError("GET_BULK", 413, `Total size of request exceeds the limit of ${MAX_VALUE_BYTES / 1024 / 1024}MB`);
    }
    return result;
  }
}

/** A failure as workerd reports the KV service's HTTP answer. */
function kvError(method: string, status: number, message: string): Error {
  return new Error(`KV ${method} failed: ${status} ${message}`);
}

/** The binding's own key checks (workerd's validateKeyName). */
function keyName(method: string, key: unknown): string {
  const name = String(key);
  if (name === "") throw new TypeError("Key name cannot be empty.");
  if (name === "." || name === "..") throw new TypeError(`"${name}" is not allowed as a key name.`);
  checkKeyLength(method, name);
  return name;
}

function checkKeyLength(method: string, key: string): void {
  const length = Buffer.byteLength(key);
  if (length > MAX_KEY_BYTES) {
    throw kvError(method, 414, `UTF-8 encoded length of ${length} exceeds key length limit of ${MAX_KEY_BYTES}.`);
  }
}

/** A JS value as workerd's `int` options take it: NaN and non-numbers become 0. */
function toInt(value: unknown): number {
  const n = Math.trunc(Number(value));
  return Number.isFinite(n) ? n : 0;
}

function getOptions(options: unknown): { type?: string; cacheTtl?: unknown } {
  if (options === undefined || options === null) return {};
  if (typeof options !== "object") return { type: String(options) };
  const { type, cacheTtl } = options as { type?: unknown; cacheTtl?: unknown };
  return { type: type === undefined ? undefined : String(type), cacheTtl };
}

function checkCacheTtl(method: string, cacheTtl: unknown): void {
  if (cacheTtl === undefined) return;
  const ttl = toInt(cacheTtl);
  if (ttl < MIN_CACHE_TTL) throw kvError(method, 400, `Invalid cache_ttl of ${ttl}. Cache TTL must be at least ${MIN_CACHE_TTL}.`);
}

/** The expiration (epoch seconds) `put` options ask for; expirationTtl wins over expiration. */
function expirationAt(expirationTtl: unknown, expiration: unknown, now: number): number | null {
  if (expirationTtl !== undefined) {
    const ttl = toInt(expirationTtl);
    if (ttl <= 0) throw kvError("PUT", 400, `Invalid expiration_ttl of ${ttl}. Please specify integer greater than 0.`);
    if (ttl < MIN_EXPIRATION_TTL) {
      throw kvError("PUT", 400, `Invalid expiration_ttl of ${ttl}. Expiration TTL must be at least ${MIN_EXPIRATION_TTL}.`);
    }
    return now + ttl;
  }
  if (expiration === undefined) return null;
  const at = toInt(expiration);
  if (at <= now) {
    throw kvError(
      "PUT",
      400,
      `Invalid expiration of ${at}. Please specify integer greater than the current number of seconds since the UNIX epoch.`,
    );
  }
  if (at < now + MIN_EXPIRATION_TTL) {
    throw kvError("PUT", 400, `Invalid expiration of ${at}. Expiration times must be at least ${MIN_EXPIRATION_TTL} seconds in the future.`);
  }
  return at;
}

const PUT_TYPES = "KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as values.";

function putBody(value: unknown): Uint8Array | ReadableStream<Uint8Array> {
  if (typeof value === "string") return new TextEncoder().encode(value);
  if (value instanceof ArrayBuffer) return new Uint8Array(value.slice(0));
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength));
  if (value instanceof ReadableStream) return value;
  if (value === undefined || value === null || typeof value === "object" || typeof value === "function") throw new TypeError(PUT_TYPES);
  return new TextEncoder().encode(String(value));
}

/** The value's bytes and its full length; a stream past the size limit is counted, not kept. */
async function readBody(body: Uint8Array | ReadableStream<Uint8Array>): Promise<{ bytes: Uint8Array; length: number }> {
  if (body instanceof Uint8Array) return { bytes: body, length: body.byteLength };
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of body as AsyncIterable<unknown>) {
    let bytes: Uint8Array;
    if (chunk instanceof ArrayBuffer) bytes = new Uint8Array(chunk);
    else if (ArrayBuffer.isView(chunk)) bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    else throw new TypeError("This ReadableStream did not return bytes.");
    length += bytes.byteLength;
    if (length <= MAX_VALUE_BYTES) chunks.push(bytes);
  }
  // One exact buffer: a view into a larger one would carry all of it across the RPC boundary.
  const bytes = new Uint8Array(Math.min(length, MAX_VALUE_BYTES + 1));
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return { bytes, length };
}

function decode(value: ArrayBuffer, type: string): unknown {
  switch (type as GetType) {
    case "text":
      return new TextDecoder().decode(value);
    case "json":
      return JSON.parse(new TextDecoder().decode(value));
    case "arrayBuffer":
      return value;
    case "stream":
      return new Blob([value]).stream();
  }
  throw new TypeError('Unknown response type. Possible types are "text", "arrayBuffer", "json", and "stream".');
}

function parseMetadata(entry: KvEntry): unknown {
  return entry.metadata === null ? null : JSON.parse(entry.metadata);
}
