// Tests for lib/config.ts: reading wrangler.jsonc / wrangler.json / wrangler.toml into a WorkerConfig.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ConfigError, findWranglerConfig, readWranglerConfig, type ModuleRule, type WorkerConfig } from "../lib/config.js";

const fixtures = fileURLToPath(new URL("./fixtures/config/", import.meta.url));
const fixture = (...parts: string[]) => path.join(fixtures, ...parts);

const tempDirs: string[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "durable-node-config-"));
  tempDirs.push(dir);
  return dir;
}

/** Writes one config file into a fresh directory: for cases too small to deserve a fixture. */
function writeConfig(file: string, content: unknown): string {
  const dir = tempDir();
  writeFileSync(path.join(dir, file), typeof content === "string" ? content : JSON.stringify(content));
  return dir;
}

const DEFAULT_RULES: ModuleRule[] = [
  { type: "Text", globs: ["**/*.txt", "**/*.html"], key: "the default rules" },
  { type: "Data", globs: ["**/*.bin"], key: "the default rules" },
  { type: "CompiledWasm", globs: ["**/*.wasm", "**/*.wasm?module"], key: "the default rules" },
];

function readError(pathOrDir: string, options?: { env?: string }): ConfigError {
  try {
    readWranglerConfig(pathOrDir, options);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`reading ${pathOrDir} did not fail`);
}

/** The chat Worker that the jsonc, json and toml fixtures all describe. */
function chatWorker(dir: string, file: string): WorkerConfig {
  return {
    path: path.join(dir, file),
    dir,
    name: "chat",
    main: path.join(dir, "src/index.ts"),
    compatibilityDate: "2025-04-01",
    compatibilityFlags: ["nodejs_compat"],
    durableObjects: [
      { name: "ROOM", className: "ChatRoom" },
      { name: "USERS", className: "Users", scriptName: "accounts" },
    ],
    kvNamespaces: [],
    d1Databases: [],
    services: [],
    unsupportedBindings: [],
    vars: { GREETING: "hello", LIMITS: { max: 10 } },
    secretNames: new Set(),
    rules: DEFAULT_RULES,
    sqliteClasses: new Set(["ChatRoom"]),
    kvClasses: new Set(),
    migrations: [
      {
        tag: "v1",
        newClasses: [],
        newSqliteClasses: ["ChatRoom"],
        renamedClasses: [],
        deletedClasses: [],
        transferredClasses: [],
      },
    ],
  };
}

describe("finding the config file", () => {
  it("prefers wrangler.jsonc, then wrangler.json, then wrangler.toml", () => {
    expect(findWranglerConfig(fixture("precedence"))).toBe(fixture("precedence", "wrangler.jsonc"));
    expect(findWranglerConfig(fixture("json-over-toml"))).toBe(fixture("json-over-toml", "wrangler.json"));
    expect(findWranglerConfig(fixture("toml"))).toBe(fixture("toml", "wrangler.toml"));
    expect(findWranglerConfig(tempDir())).toBeUndefined();
  });

  it("reads the file it finds when given a directory", () => {
    expect(readWranglerConfig(fixture("precedence")).name).toBe("from-jsonc");
    expect(readWranglerConfig(fixture("json-over-toml")).name).toBe("from-json");
  });

  it("a directory without a config is an error", () => {
    const dir = tempDir();
    expect(readError(dir).message).toBe(`no wrangler.jsonc, wrangler.json or wrangler.toml in ${dir}`);
  });

  it("a missing file is an error naming it", () => {
    const missing = fixture("jsonc", "wrangler.toml");
    expect(readError(missing).message).toBe(`${missing}: no such file or directory`);
  });
});

describe("formats", () => {
  it("reads wrangler.jsonc with comments and trailing commas", () => {
    const dir = fixture("jsonc");
    expect(readWranglerConfig(dir)).toEqual(chatWorker(dir, "wrangler.jsonc"));
  });

  it("reads wrangler.toml", () => {
    const dir = fixture("toml");
    expect(readWranglerConfig(dir)).toEqual(chatWorker(dir, "wrangler.toml"));
  });

  it("reads wrangler.json", () => {
    const dir = fixture("json");
    expect(readWranglerConfig(path.join(dir, "wrangler.json"))).toEqual(chatWorker(dir, "wrangler.json"));
  });

  it("a JSONC syntax error names the file, line and column", () => {
    expect(readError(fixture("jsonc-syntax")).message).toBe("wrangler.jsonc:4:3: syntax error: CommaExpected");
  });

  it("a TOML syntax error names the file, line and column", () => {
    expect(readError(fixture("toml-syntax")).message).toBe("wrangler.toml:2:8: Invalid TOML document: invalid value");
  });

  it("a top level that is not an object is an error", () => {
    expect(readError(writeConfig("wrangler.json", "[]")).message).toBe(
      "wrangler.json: expected an object at the top level, got array",
    );
  });
});

describe("compatibility date", () => {
  it("defaults to today's date in UTC", () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date("2025-03-04T23:30:00-05:00"));
    expect(readWranglerConfig(fixture("no-date")).compatibilityDate).toBe("2025-03-05");
  });

  it("must be written YYYY-MM-DD", () => {
    expect(readError(writeConfig("wrangler.json", { compatibility_date: "2025-3-4" })).message).toBe(
      'wrangler.json: compatibility_date: expected a date as YYYY-MM-DD, got "2025-3-4"',
    );
  });

  it("an unquoted TOML date is reported as a date, not a string", () => {
    expect(readError(writeConfig("wrangler.toml", "compatibility_date = 2025-03-04\n")).message).toBe(
      "wrangler.toml: compatibility_date: expected a string, got date",
    );
  });
});

describe("vars and .dev.vars", () => {
  it(".dev.vars (dotenv syntax) overrides vars", () => {
    const config = readWranglerConfig(fixture("envs"));
    expect(config.vars).toEqual({
      MODE: "top",
      SHARED: "from dev vars",
      SECRET: "top secret",
      QUOTED: "single # not a comment",
    });
    // Values from .dev.vars are secrets: dev's bindings table hides them.
    expect(config.secretNames).toEqual(new Set(["SHARED", "SECRET", "QUOTED"]));
  });

  it(".dev.vars.<env> replaces .dev.vars when that env is chosen", () => {
    expect(readWranglerConfig(fixture("envs"), { env: "staging" }).vars).toEqual({
      MODE: "staging",
      SECRET: "staging secret",
    });
  });

  it(".dev.vars applies to an env without its own .dev.vars.<env>", () => {
    expect(readWranglerConfig(fixture("envs"), { env: "bare" }).vars).toEqual({
      SHARED: "from dev vars",
      SECRET: "top secret",
      QUOTED: "single # not a comment",
    });
  });
});

describe("module rules", () => {
  it("puts the file's rules first; one without fallthrough replaces the default of its type", () => {
    const dir = writeConfig("wrangler.json", {
      rules: [
        { type: "Text", globs: ["**/*.md"] },
        { type: "Data", globs: ["**/*.dat"], fallthrough: true },
        { type: "ESModule", globs: ["**/*.mjs"] },
      ],
    });
    expect(readWranglerConfig(dir).rules).toEqual([
      { type: "Text", globs: ["**/*.md"], key: "rules[0]" },
      { type: "Data", globs: ["**/*.dat"], key: "rules[1]" },
      DEFAULT_RULES[1],
      DEFAULT_RULES[2],
    ]);
  });
});

describe("environments", () => {
  const dir = fixture("envs");

  it("the chosen env's keys override the top level", () => {
    const config = readWranglerConfig(dir, { env: "staging" });
    expect(config).toMatchObject({
      name: "shop-preview",
      main: path.join(dir, "src/staging.ts"),
      compatibilityDate: "2025-02-02",
      compatibilityFlags: ["nodejs_compat_v2"],
      durableObjects: [{ name: "STAGING_CART", className: "Cart" }],
    });
    expect(config.sqliteClasses).toEqual(new Set(["Cart"]));
  });

  it("an env inherits main, compatibility date and flags, and the name suffixed with the env", () => {
    expect(readWranglerConfig(dir, { env: "bare" })).toMatchObject({
      name: "shop-bare",
      main: path.join(dir, "src/index.ts"),
      compatibilityDate: "2025-01-01",
      compatibilityFlags: ["nodejs_compat"],
    });
  });

  it("an env does not inherit vars or durable_objects", () => {
    const config = readWranglerConfig(dir, { env: "bare" });
    expect(config.vars).not.toHaveProperty("MODE");
    expect(config.durableObjects).toEqual([]);
  });

  it("an env may replace the migrations", () => {
    const config = readWranglerConfig(dir, { env: "legacy" });
    expect(config.migrations.map((m) => m.newClasses)).toEqual([["Cart"]]);
    expect(config.kvClasses).toEqual(new Set(["Cart"]));
    expect(config.sqliteClasses).toEqual(new Set());
  });

  it("an unknown env is an error naming it", () => {
    expect(readError(dir, { env: "prod" }).message).toBe(
      "wrangler.toml: env.prod: no such environment (defined: staging, bare, legacy)",
    );
    expect(readError(fixture("jsonc"), { env: "prod" }).message).toBe(
      "wrangler.jsonc: env.prod: no such environment (defined: none)",
    );
  });
});

describe("durable object bindings", () => {
  it("a binding without name is an error", () => {
    expect(readError(fixture("binding-without-name")).message).toBe(
      'wrangler.jsonc: durable_objects.bindings[1]: missing "name"',
    );
  });

  it("a binding without class_name is an error", () => {
    expect(readError(fixture("binding-without-class")).message).toBe(
      'wrangler.toml: durable_objects.bindings[0]: missing "class_name"',
    );
  });

  it("a duplicate binding name is an error", () => {
    expect(readError(fixture("duplicate-binding")).message).toBe(
      'wrangler.jsonc: durable_objects.bindings[1].name: duplicate binding name "ROOM"',
    );
  });

  it("a bound class of this Worker that no migration declares is SQLite-backed, not an error", () => {
    const config = readWranglerConfig(fixture("unmigrated"));
    expect(config.sqliteClasses).toEqual(new Set(["ChatRoom", "Loose", "Named"]));
    expect(config.kvClasses).toEqual(new Set(["Legacy"]));
  });
});

describe("migrations", () => {
  it("are normalized in file order", () => {
    expect(readWranglerConfig(fixture("migrations")).migrations).toEqual([
      {
        tag: "v1",
        newClasses: ["Cat", "Dog"],
        newSqliteClasses: ["Owl"],
        renamedClasses: [],
        deletedClasses: [],
        transferredClasses: [],
      },
      {
        tag: "v2",
        newClasses: [],
        newSqliteClasses: [],
        renamedClasses: [
          { from: "Cat", to: "Lion" },
          { from: "Owl", to: "Eagle" },
        ],
        deletedClasses: ["Dog"],
        transferredClasses: [],
      },
      {
        tag: "v3",
        newClasses: [],
        newSqliteClasses: [],
        renamedClasses: [],
        deletedClasses: [],
        transferredClasses: [{ from: "Fox", fromScript: "forest", to: "Fox" }],
      },
    ]);
  });

  it("applied in order give each class its backend: new, renamed, deleted", () => {
    const config = readWranglerConfig(fixture("migrations"));
    expect(config.kvClasses).toEqual(new Set(["Lion"]));
    expect(config.sqliteClasses).toEqual(new Set(["Eagle"]));
  });

  it("a migration without tag is an error", () => {
    expect(readError(fixture("migration-without-tag")).message).toBe('wrangler.toml: migrations[1]: missing "tag"');
  });
});

describe("types of every key read", () => {
  it.each([
    [{ name: 1 }, "name: expected a string, got number"],
    [{ main: true }, "main: expected a string, got boolean"],
    [{ compatibility_date: 20250304 }, "compatibility_date: expected a string, got number"],
    [{ compatibility_flags: "nodejs_compat" }, "compatibility_flags: expected an array, got string"],
    [{ compatibility_flags: ["nodejs_compat", 2] }, "compatibility_flags[1]: expected a string, got number"],
    [{ vars: ["A"] }, "vars: expected an object, got array"],
    [{ durable_objects: [] }, "durable_objects: expected an object, got array"],
    [{ rules: [{ type: "Markdown", globs: ["**/*.md"] }] }, 'rules[0].type: expected one of Text, Data, CompiledWasm, ESModule, CommonJS, got "Markdown"'],
    [{ rules: [{ globs: ["**/*.md"] }] }, 'rules[0]: missing "type"'],
    [{ rules: [{ type: "Text", globs: "**/*.md" }] }, "rules[0].globs: expected an array, got string"],
    [{ durable_objects: { bindings: {} } }, "durable_objects.bindings: expected an array, got object"],
    [{ durable_objects: { bindings: ["ROOM"] } }, "durable_objects.bindings[0]: expected an object, got string"],
    [
      { durable_objects: { bindings: [{ name: "ROOM", class_name: 1 }] } },
      "durable_objects.bindings[0].class_name: expected a string, got number",
    ],
    [
      { durable_objects: { bindings: [{ name: "ROOM", class_name: "Room", script_name: null }] } },
      "durable_objects.bindings[0].script_name: expected a string, got null",
    ],
    [{ migrations: {} }, "migrations: expected an array, got object"],
    [{ migrations: [{ tag: 1 }] }, "migrations[0].tag: expected a string, got number"],
    [{ migrations: [{ tag: "v1", new_classes: "A" }] }, "migrations[0].new_classes: expected an array, got string"],
    [
      { migrations: [{ tag: "v1", new_sqlite_classes: [null] }] },
      "migrations[0].new_sqlite_classes[0]: expected a string, got null",
    ],
    [
      { migrations: [{ tag: "v1", renamed_classes: [{ from: "A" }] }] },
      'migrations[0].renamed_classes[0]: missing "to"',
    ],
    [
      { migrations: [{ tag: "v1", deleted_classes: [1] }] },
      "migrations[0].deleted_classes[0]: expected a string, got number",
    ],
    [
      { migrations: [{ tag: "v1", transferred_classes: [{ from: "A", to: "B" }] }] },
      'migrations[0].transferred_classes[0]: missing "from_script"',
    ],
  ])("%j → %s", (config, message) => {
    expect(readError(writeConfig("wrangler.json", config)).message).toBe(`wrangler.json: ${message}`);
  });

  it.each([
    [{ env: [] }, "env: expected an object, got array"],
    [{ env: { staging: "x" } }, "env.staging: expected an object, got string"],
    [{ env: { staging: { main: 1 } } }, "env.staging.main: expected a string, got number"],
    [{ env: { staging: { vars: "A=1" } } }, "env.staging.vars: expected an object, got string"],
    [
      { env: { staging: { durable_objects: { bindings: [{ name: "ROOM" }] } } } },
      'env.staging.durable_objects.bindings[0]: missing "class_name"',
    ],
  ])("with env staging, %j → %s", (config, message) => {
    expect(readError(writeConfig("wrangler.json", config), { env: "staging" }).message).toBe(
      `wrangler.json: ${message}`,
    );
  });
});
