// Node module hooks behind `durable-node/register`: `cloudflare:workers`, TypeScript files, and TS-style relative imports.
import { existsSync, readFileSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createRequire, type LoadHook, type ModuleFormat, type ResolveHook } from "node:module";
import type { Loader, Message, TransformOptions } from "esbuild";

const WORKERS_SPECIFIER = "cloudflare:workers";

// Compiled, the module sits beside this file as workers.js; run from source, as workers.ts.
const workersUrl = ["./workers.js", "./workers.ts"]
  .map((name) => new URL(name, import.meta.url))
  .find((url) => existsSync(url)) ?? new URL("./workers.js", import.meta.url);

const TS_EXTENSIONS: Record<string, { loader: Loader; format: ModuleFormat }> = {
  ".ts": { loader: "ts", format: "module" },
  ".mts": { loader: "ts", format: "module" },
  ".tsx": { loader: "tsx", format: "module" },
  ".cts": { loader: "ts", format: "commonjs" },
};

// TypeScript lets sources import the .js name of a .ts file (the name it will have once compiled).
const JS_TO_TS: Record<string, string[]> = {
  ".js": [".ts", ".tsx"],
  ".jsx": [".tsx"],
  ".mjs": [".mts"],
  ".cjs": [".cts"],
};

const EXTENSIONLESS_CANDIDATES = [".ts", ".tsx", ".mts", ".js", "/index.ts"];

// The default resolver's errors for a missing file and for a bare directory.
const RECOVERABLE_CODES = new Set(["ERR_MODULE_NOT_FOUND", "ERR_UNSUPPORTED_DIR_IMPORT"]);

export const resolve: ResolveHook = async (specifier, context, nextResolve) => {
  if (specifier === WORKERS_SPECIFIER) {
    return { url: workersUrl.href, shortCircuit: true };
  }
  try {
    return await nextResolve(specifier, context);
  } catch (error) {
    const fallback = isRecoverable(error) ? typeScriptCandidate(specifier, context.parentURL) : undefined;
    if (fallback === undefined) throw error;
    return nextResolve(fallback, context);
  }
};

export const load: LoadHook = async (url, context, nextLoad) => {
  const kind = url.startsWith("file:") ? TS_EXTENSIONS[extensionOf(new URL(url).pathname)] : undefined;
  if (kind === undefined) return nextLoad(url, context);
  const path = fileURLToPath(url);
  const source = await compile(path, await readFile(path, "utf8"), kind.loader, kind.format);
  return { format: kind.format, source, shortCircuit: true };
};

function isRecoverable(error: unknown): boolean {
  return RECOVERABLE_CODES.has((error as { code?: string } | null)?.code ?? "");
}

// The existing TypeScript file a failed relative import most likely meant, as a URL string.
function typeScriptCandidate(specifier: string, parentURL: string | undefined): string | undefined {
  if (!/^\.\.?\//.test(specifier) || /[?#]/.test(specifier) || !parentURL?.startsWith("file:")) return undefined;
  const target = new URL(specifier, parentURL);
  const extension = extensionOf(target.pathname);
  const stem = target.href.slice(0, target.href.length - extension.length);
  const candidates = extension === "" ? EXTENSIONLESS_CANDIDATES : (JS_TO_TS[extension] ?? []);
  return candidates.map((suffix) => stem + suffix).find(isFile);
}

function extensionOf(pathname: string): string {
  const match = /\.[^./]+$/.exec(pathname);
  return match ? match[0] : "";
}

function isFile(url: string): boolean {
  return statSync(new URL(url), { throwIfNoEntry: false })?.isFile() ?? false;
}

// Required, not imported: both are CommonJS, and require() skips the ESM wrapper that would double
// their load time. Loaded on the first TypeScript file, so a JavaScript app never pays for them.
const require = createRequire(import.meta.url);
const esbuild = (): typeof import("esbuild") => require("esbuild");
const jsonc = (): typeof import("jsonc-parser") => require("jsonc-parser");

async function compile(path: string, code: string, loader: Loader, format: ModuleFormat): Promise<string> {
  const options: TransformOptions = {
    loader,
    format: format === "commonjs" ? "cjs" : "esm",
    // Makes esbuild annotate CommonJS exports so `import { name } from "./x.cts"` finds them.
    platform: "node",
    // Lower only what the running Node lacks (e.g. `using` on Node 20).
    target: `node${process.versions.node}`,
    sourcemap: "inline",
    sourcefile: path,
    tsconfigRaw: tsconfigFor(dirname(path)),
  };
  try {
    return (await esbuild().transform(code, options)).code;
  } catch (error) {
    throw await compileError(path, error);
  }
}

// The message carries esbuild's diagnostics with a code frame; its own error would repeat them as a
// raw object dump, so it is not attached as the cause.
async function compileError(path: string, error: unknown): Promise<Error> {
  const messages = (error as { errors?: Message[] } | null)?.errors;
  if (!messages?.length) return new Error(`durable-node: cannot compile ${path}: ${String(error)}`, { cause: error });
  const details = await esbuild().formatMessages(messages, { kind: "error", color: false });
  return new Error(`durable-node: cannot compile ${path}\n${details.join("").trimEnd()}`);
}

// esbuild's transform reads no tsconfig by itself; the options it honours (decorators, class fields,
// JSX, import elision) come from the nearest tsconfig.json and the files it extends by relative path.
const tsconfigCache = new Map<string, string | undefined>();

function tsconfigFor(directory: string): string | undefined {
  if (tsconfigCache.has(directory)) return tsconfigCache.get(directory);
  const file = join(directory, "tsconfig.json");
  const parent = dirname(directory);
  const found = existsSync(file)
    ? JSON.stringify({ compilerOptions: compilerOptions(file) })
    : parent === directory
      ? undefined
      : tsconfigFor(parent);
  tsconfigCache.set(directory, found);
  return found;
}

interface Tsconfig {
  extends?: string | string[];
  compilerOptions?: object;
}

function compilerOptions(file: string): Record<string, unknown> {
  const config = readTsconfig(file);
  const bases = [config?.extends ?? []].flat().filter((base) => base.startsWith("."));
  const inherited = bases.map((base) => compilerOptions(baseFile(file, base)));
  return Object.assign({}, ...inherited, config?.compilerOptions);
}

// TypeScript lets `extends` leave off the .json extension.
function baseFile(file: string, base: string): string {
  const path = fileURLToPath(new URL(base, pathToFileURL(file)));
  return existsSync(path) || path.endsWith(".json") ? path : `${path}.json`;
}

function readTsconfig(file: string): Tsconfig | undefined {
  const { parse, printParseErrorCode } = jsonc();
  const errors: import("jsonc-parser").ParseError[] = [];
  const config = parse(readFileSync(file, "utf8"), errors, { allowTrailingComma: true }) as Tsconfig | undefined;
  if (errors.length > 0) {
    const { error, offset } = errors[0];
    throw new Error(`durable-node: cannot parse ${file}: ${printParseErrorCode(error)} at offset ${offset}`);
  }
  return config;
}
