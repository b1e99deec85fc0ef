// Reads a wrangler configuration (wrangler.jsonc, wrangler.json or wrangler.toml) into a WorkerConfig.
import { existsSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { parseEnv } from "node:util";
import { parse as parseJsonc, printParseErrorCode, type ParseError } from "jsonc-parser";
import { parse as parseToml, TomlError } from "smol-toml";
import { ConfigError } from "./errors.js";

export interface DurableObjectBindingConfig {
  name: string;
  className: string;
  scriptName?: string;
}

/** `kv_namespaces[i]`: a Workers KV namespace. */
export interface KvNamespaceConfig {
  binding: string;
  id: string;
}

/** `d1_databases[i]`: a D1 database. */
export interface D1DatabaseConfig {
  binding: string;
  databaseId: string;
  /** Absolute path of its migrations folder (wrangler's default: `migrations/`). */
  migrationsDir: string;
}

/** `services[i]`: a service binding (to this Worker's own entrypoints, or another Worker's). */
export interface ServiceBindingConfig {
  binding: string;
  service: string;
  entrypoint?: string;
}

export interface Migration {
  tag: string;
  newClasses: string[];
  newSqliteClasses: string[];
  renamedClasses: { from: string; to: string }[];
  deletedClasses: string[];
  transferredClasses: { from: string; fromScript: string; to: string }[];
}

export type ModuleType = "Text" | "Data" | "CompiledWasm";

/** How imports of matching files load: wrangler's `rules`, followed by its defaults. */
export interface ModuleRule {
  type: ModuleType;
  globs: string[];
  /** Where the rule came from: `rules[i]` or "the default rules". */
  key: string;
}

export interface WorkerConfig {
  /** Absolute path of the config file read. */
  path: string;
  /** Its directory; relative paths in the file resolve against it. */
  dir: string;
  name?: string;
  /** Absolute path of the entry module. */
  main?: string;
  /** YYYY-MM-DD; today's UTC date when the file has none. */
  compatibilityDate: string;
  compatibilityFlags: string[];
  durableObjects: DurableObjectBindingConfig[];
  kvNamespaces: KvNamespaceConfig[];
  d1Databases: D1DatabaseConfig[];
  services: ServiceBindingConfig[];
  /** Binding sections present that durable-node does not provide (`r2_buckets`, `queues`, …), by key. */
  unsupportedBindings: string[];
  /** `vars` from the file, overridden by `.dev.vars` (or `.dev.vars.<env>`) beside it. */
  vars: Record<string, unknown>;
  /** The names among `vars` whose values come from `.dev.vars` (secrets: not printed). */
  secretNames: Set<string>;
  rules: ModuleRule[];
  /**
   * Classes whose storage is SQLite-backed. Besides `new_sqlite_classes`, this holds every class bound
   * in this Worker that no migration gives a backend: such a binding is not an error (wrangler only
   * warns about it), and it gets SQLite, the backend we recommend.
   */
  sqliteClasses: Set<string>;
  /** Classes declared with `new_classes`: the legacy KV-backed storage. */
  kvClasses: Set<string>;
  /** In file order. */
  migrations: Migration[];
}

export { ConfigError };

const CONFIG_FILES = ["wrangler.jsonc", "wrangler.json", "wrangler.toml"];

/** The config file wrangler would pick in `dir`, or undefined when there is none. */
export function findWranglerConfig(dir: string): string | undefined {
  return CONFIG_FILES.map((file) => path.resolve(dir, file)).find((file) => existsSync(file));
}

/**
 * Reads the config at `pathOrDir` (a file, or a directory searched with findWranglerConfig).
 * With `env`, the keys wrangler lets environments inherit (`main`, `compatibility_date`,
 * `compatibility_flags`, `migrations`, and `name` as `<name>-<env>`) come from `env.<env>` when set
 * there and from the top level otherwise; `vars` and `durable_objects` are not inherited and come from
 * `env.<env>` alone.
 */
export function readWranglerConfig(pathOrDir: string, options: { env?: string } = {}): WorkerConfig {
  const file = locateConfig(pathOrDir);
  const dir = path.dirname(file);
  const reader = new Reader(path.basename(file));
  const sections = selectSections(reader, parseConfigFile(file, reader.file), options.env);

  const name = readName(reader, sections, options.env);
  const main = reader.optString(sections.inherited("main"));
  const durableObjects = readBindings(reader, sections.own("durable_objects"));
  const migrations = reader.optItems(sections.inherited("migrations")).map((m) => readMigration(reader, m));
  const devVars = readDevVars(dir, options.env);
  return {
    path: file,
    dir,
    name,
    main: main === undefined ? undefined : path.resolve(dir, main),
    compatibilityDate: readDate(reader, sections.inherited("compatibility_date")),
    compatibilityFlags: reader.optStrings(sections.inherited("compatibility_flags")),
    durableObjects,
    kvNamespaces: readList(reader, sections.own("kv_namespaces"), (table, key) => ({
      binding: reader.string(reader.required(table, key, "binding")),
      id: reader.optString(child(table, key, "id")) ?? reader.string(reader.required(table, key, "binding")),
    })),
    d1Databases: readList(reader, sections.own("d1_databases"), (table, key) => ({
      binding: reader.string(reader.required(table, key, "binding")),
      databaseId:
        reader.optString(child(table, key, "database_id")) ??
        reader.optString(child(table, key, "database_name")) ??
        reader.string(reader.required(table, key, "binding")),
      migrationsDir: path.resolve(dir, reader.optString(child(table, key, "migrations_dir")) ?? "migrations"),
    })),
    services: readList(reader, sections.own("services"), (table, key) => {
      const service: ServiceBindingConfig = {
        binding: reader.string(reader.required(table, key, "binding")),
        service: reader.string(reader.required(table, key, "service")),
      };
      const entrypoint = reader.optString(child(table, key, "entrypoint"));
      if (entrypoint !== undefined) service.entrypoint = entrypoint;
      return service;
    }),
    unsupportedBindings: UNSUPPORTED_BINDINGS.map((key) => sections.own(key)).filter((f) => f.value !== undefined).map((f) => f.key),
    vars: { ...reader.optTable(sections.own("vars")), ...devVars },
    secretNames: new Set(Object.keys(devVars)),
    rules: readRules(reader, sections.inherited("rules")),
    ...storageBackends(migrations, durableObjects, name),
    migrations,
  };
}

type Table = Record<string, unknown>;

/** A value together with its key path in the file, so every error can name the key. */
interface Field {
  key: string;
  value: unknown;
}

function child(table: Table, parentKey: string, key: string): Field {
  return { key: parentKey ? `${parentKey}.${key}` : key, value: table[key] };
}

/** Type checks that throw a ConfigError naming the file and the key. */
class Reader {
  constructor(readonly file: string) {}

  fail(key: string, problem: string): never {
    throw new ConfigError(`${this.file}: ${key}: ${problem}`);
  }

  expect(field: Field, what: string): never {
    this.fail(field.key, `expected ${what}, got ${typeName(field.value)}`);
  }

  string(field: Field): string {
    return typeof field.value === "string" ? field.value : this.expect(field, "a string");
  }

  table(field: Field): Table {
    return isTable(field.value) ? field.value : this.expect(field, "an object");
  }

  items(field: Field): Field[] {
    if (!Array.isArray(field.value)) this.expect(field, "an array");
    return field.value.map((value, i) => ({ key: `${field.key}[${i}]`, value }));
  }

  required(table: Table, parentKey: string, key: string): Field {
    const field = child(table, parentKey, key);
    return field.value === undefined ? this.fail(parentKey, `missing "${key}"`) : field;
  }

  optString(field: Field): string | undefined {
    return field.value === undefined ? undefined : this.string(field);
  }

  optTable(field: Field): Table {
    return field.value === undefined ? {} : this.table(field);
  }

  optItems(field: Field): Field[] {
    return field.value === undefined ? [] : this.items(field);
  }

  optStrings(field: Field): string[] {
    return this.optItems(field).map((item) => this.string(item));
  }
}

function isTable(value: unknown): value is Table {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  // An unquoted TOML date parses to a Date; "object" would hide what the user wrote.
  if (value instanceof Date) return "date";
  return typeof value;
}

function locateConfig(pathOrDir: string): string {
  const target = path.resolve(pathOrDir);
  const stat = statSync(target, { throwIfNoEntry: false });
  if (!stat) throw new ConfigError(`${target}: no such file or directory`);
  if (!stat.isDirectory()) return target;
  const found = findWranglerConfig(target);
  if (!found) throw new ConfigError(`no wrangler.jsonc, wrangler.json or wrangler.toml in ${target}`);
  return found;
}

function parseConfigFile(file: string, shown: string): Table {
  const text = readFileSync(file, "utf8");
  const root = file.endsWith(".toml") ? parseTomlText(text, shown) : parseJsoncText(text, shown);
  if (!isTable(root)) throw new ConfigError(`${shown}: expected an object at the top level, got ${typeName(root)}`);
  return root;
}

// wrangler reads wrangler.json with the same lenient parser as wrangler.jsonc.
function parseJsoncText(text: string, shown: string): unknown {
  const errors: ParseError[] = [];
  const value = parseJsonc(text, errors, { allowTrailingComma: true });
  const [first] = errors;
  if (first) {
    const { line, column } = lineColumn(text, first.offset);
    throw new ConfigError(`${shown}:${line}:${column}: syntax error: ${printParseErrorCode(first.error)}`);
  }
  return value;
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  const lines = text.slice(0, offset).split("\n");
  return { line: lines.length, column: lines[lines.length - 1].length + 1 };
}

function parseTomlText(text: string, shown: string): unknown {
  try {
    return parseToml(text);
  } catch (error) {
    if (!(error instanceof TomlError)) throw error;
    // The rest of smol-toml's message is a code excerpt; line:column already points there.
    const [summary] = error.message.split("\n");
    throw new ConfigError(`${shown}:${error.line}:${error.column}: ${summary}`);
  }
}

/** Where each key is read from once an environment is chosen. */
interface Sections {
  env?: Table;
  /** A key environments inherit: the env's value when it sets one, else the top level's. */
  inherited(key: string): Field;
  /** A key environments do not inherit: read from the env alone when one is chosen. */
  own(key: string): Field;
}

function selectSections(reader: Reader, top: Table, envName: string | undefined): Sections {
  const topField = (key: string) => child(top, "", key);
  if (!envName) return { inherited: topField, own: topField };

  const envs = reader.optTable(child(top, "", "env"));
  const envKey = `env.${envName}`;
  if (envs[envName] === undefined) {
    const defined = Object.keys(envs).join(", ") || "none";
    reader.fail(envKey, `no such environment (defined: ${defined})`);
  }
  const env = reader.table({ key: envKey, value: envs[envName] });
  const envField = (key: string) => child(env, envKey, key);
  return {
    env,
    inherited: (key) => (env[key] === undefined ? topField(key) : envField(key)),
    own: envField,
  };
}

// wrangler deploys an environment as its own Worker named `<name>-<env>` unless the env names it.
function readName(reader: Reader, sections: Sections, envName: string | undefined): string | undefined {
  const name = reader.optString(sections.inherited("name"));
  const inheritedFromTop = sections.env !== undefined && sections.env.name === undefined;
  return inheritedFromTop && name !== undefined ? `${name}-${envName}` : name;
}

function readDate(reader: Reader, field: Field): string {
  const date = reader.optString(field);
  if (date === undefined) return new Date().toISOString().slice(0, 10);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) reader.fail(field.key, `expected a date as YYYY-MM-DD, got "${date}"`);
  return date;
}

function readBindings(reader: Reader, field: Field): DurableObjectBindingConfig[] {
  const list = child(reader.optTable(field), field.key, "bindings");
  const seen = new Set<string>();
  return reader.optItems(list).map((item) => {
    const binding = readBinding(reader, item);
    if (seen.has(binding.name)) reader.fail(`${item.key}.name`, `duplicate binding name "${binding.name}"`);
    seen.add(binding.name);
    return binding;
  });
}

/** wrangler's binding sections that durable-node has no implementation of yet. */
const UNSUPPORTED_BINDINGS = [
  "r2_buckets",
  "queues",
  "ai",
  "vectorize",
  "hyperdrive",
  "analytics_engine_datasets",
  "browser",
  "images",
  "send_email",
  "workflows",
  "dispatch_namespaces",
  "mtls_certificates",
  "pipelines",
  "secrets_store_secrets",
  "unsafe",
];

/** An array of tables (`kv_namespaces`, …), each read by `read` with its key path. */
function readList<T>(reader: Reader, field: Field, read: (table: Table, key: string) => T): T[] {
  return reader.optItems(field).map((item) => read(reader.table(item), item.key));
}

function readBinding(reader: Reader, field: Field): DurableObjectBindingConfig {
  const table = reader.table(field);
  const binding: DurableObjectBindingConfig = {
    name: reader.string(reader.required(table, field.key, "name")),
    className: reader.string(reader.required(table, field.key, "class_name")),
  };
  const scriptName = reader.optString(child(table, field.key, "script_name"));
  if (scriptName !== undefined) binding.scriptName = scriptName;
  return binding;
}

function readMigration(reader: Reader, field: Field): Migration {
  const table = reader.table(field);
  const list = (key: string) => reader.optItems(child(table, field.key, key));
  const strings = (key: string) => reader.optStrings(child(table, field.key, key));
  const entry = (item: Field, key: string) => reader.string(reader.required(reader.table(item), item.key, key));
  return {
    tag: reader.string(reader.required(table, field.key, "tag")),
    newClasses: strings("new_classes"),
    newSqliteClasses: strings("new_sqlite_classes"),
    renamedClasses: list("renamed_classes").map((item) => ({ from: entry(item, "from"), to: entry(item, "to") })),
    deletedClasses: strings("deleted_classes"),
    transferredClasses: list("transferred_classes").map((item) => ({
      from: entry(item, "from"),
      fromScript: entry(item, "from_script"),
      to: entry(item, "to"),
    })),
  };
}

/**
 * Replays the migrations to learn each class's storage backend. A transferred class keeps the backend
 * it had in the script it came from, which this file cannot tell, so it gets the default below.
 */
function storageBackends(
  migrations: Migration[],
  bindings: DurableObjectBindingConfig[],
  workerName: string | undefined,
): { sqliteClasses: Set<string>; kvClasses: Set<string> } {
  const sqliteClasses = new Set<string>();
  const kvClasses = new Set<string>();
  for (const migration of migrations) {
    for (const name of migration.newClasses) kvClasses.add(name);
    for (const name of migration.newSqliteClasses) sqliteClasses.add(name);
    for (const { from, to } of migration.renamedClasses) {
      for (const classes of [sqliteClasses, kvClasses]) if (classes.delete(from)) classes.add(to);
    }
    for (const name of migration.deletedClasses) {
      sqliteClasses.delete(name);
      kvClasses.delete(name);
    }
  }
  for (const { className, scriptName } of bindings) {
    const local = scriptName === undefined || scriptName === workerName;
    if (local && !kvClasses.has(className)) sqliteClasses.add(className);
  }
  return { sqliteClasses, kvClasses };
}

const MODULE_TYPES = new Set(["Text", "Data", "CompiledWasm"]);
// Unsupported by `durable-node dev` as by wrangler's bundler for these: JS modules are bundled.
const BUNDLED_TYPES = new Set(["ESModule", "CommonJS", "PythonModule", "PythonRequirement"]);

/** wrangler's defaults, which apply after the file's own rules. */
const DEFAULT_RULES: ModuleRule[] = [
  { type: "Text", globs: ["**/*.txt", "**/*.html"], key: "the default rules" },
  { type: "Data", globs: ["**/*.bin"], key: "the default rules" },
  { type: "CompiledWasm", globs: ["**/*.wasm", "**/*.wasm?module"], key: "the default rules" },
];

/**
 * The file's rules, then the defaults. As in wrangler, a rule without `fallthrough: true` replaces
 * the default rule of its type.
 */
function readRules(reader: Reader, field: Field): ModuleRule[] {
  const rules: ModuleRule[] = [];
  const replaced = new Set<string>();
  for (const item of reader.optItems(field)) {
    const table = reader.table(item);
    const type = reader.string(reader.required(table, item.key, "type"));
    if (BUNDLED_TYPES.has(type)) continue;
    if (!MODULE_TYPES.has(type)) {
      reader.fail(`${item.key}.type`, `expected one of Text, Data, CompiledWasm, ESModule, CommonJS, got "${type}"`);
    }
    const globs = reader.optStrings(child(table, item.key, "globs"));
    const fallthrough = child(table, item.key, "fallthrough");
    if (fallthrough.value !== undefined && typeof fallthrough.value !== "boolean") reader.expect(fallthrough, "a boolean");
    if (fallthrough.value !== true) replaced.add(type);
    rules.push({ type: type as ModuleType, globs, key: item.key });
  }
  return [...rules, ...DEFAULT_RULES.filter((rule) => !replaced.has(rule.type))];
}

// As in wrangler, `.dev.vars.<env>` replaces `.dev.vars` rather than merging with it.
function readDevVars(dir: string, envName: string | undefined): Record<string, unknown> {
  const candidates = envName ? [`.dev.vars.${envName}`, ".dev.vars"] : [".dev.vars"];
  const file = candidates.map((name) => path.join(dir, name)).find((candidate) => existsSync(candidate));
  return file === undefined ? {} : parseEnv(readFileSync(file, "utf8"));
}
