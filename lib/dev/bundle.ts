// Bundles a Worker's `main` with esbuild as wrangler does: TypeScript, npm packages resolved with
// the Workers conditions, `cloudflare:workers` resolved to durable-node, Node built-ins left to
// Node, and wrangler's module rules (Text, Data, CompiledWasm imports).

import { readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as esbuild from "esbuild";
import picomatch from "picomatch";
import type { ModuleRule, WorkerConfig } from "../config.js";

// The module this process runs (`.js` compiled, `.ts` under the test runner): one module instance
// is what makes `instanceof DurableObject` and the ambient `env` work in the bundle.
const WORKERS_MODULE = fileURLToPath(new URL(`../workers${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url));
const BUILTINS = new Set(builtinModules);

export interface BuildOutcome {
  /** The bundle, with a query that makes each build a fresh module for `import()`. */
  url: string;
  errors: esbuild.Message[];
  warnings: esbuild.Message[];
}

export interface Bundler {
  /** Resolves with the first build. */
  first: Promise<BuildOutcome>;
  dispose(): Promise<void>;
}

/**
 * Builds `config.main` into `outdir`; with `onRebuild`, watches its inputs and builds again on
 * every change, reporting each later build.
 */
export async function bundleWorker(
  config: WorkerConfig & { main: string },
  outdir: string,
  onRebuild?: (outcome: BuildOutcome) => void,
): Promise<Bundler> {
  const outfile = path.join(outdir, `${path.basename(config.main).replace(/\.[^.]*$/, "")}.mjs`);
  let builds = 0;
  let resolveFirst!: (outcome: BuildOutcome) => void;
  const first = new Promise<BuildOutcome>((resolve) => (resolveFirst = resolve));
  const context = await esbuild.context({
    entryPoints: [config.main],
    outfile,
    absWorkingDir: config.dir,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    sourcemap: "linked",
    // Packages' Workers builds first, as wrangler picks them.
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["browser", "module", "main"],
    logLevel: "silent",
    write: true,
    plugins: [workersModules(), moduleRules(config.rules, config.dir), {
      name: "durable-node-report",
      setup(build) {
        build.onEnd((result) => {
          builds += 1;
          const outcome = { url: `${pathToFileURL(outfile).href}?build=${builds}`, errors: result.errors, warnings: result.warnings };
          if (builds === 1) resolveFirst(outcome);
          else onRebuild?.(outcome);
        });
      },
    }],
  });
  if (onRebuild) await context.watch();
  else await context.rebuild().catch(() => {}); // the errors reach onEnd
  return { first, dispose: () => context.dispose() };
}

/** `cloudflare:workers` is durable-node's; Node built-ins (bare or `node:`) stay imports. */
function workersModules(): esbuild.Plugin {
  return {
    name: "durable-node-workers",
    setup(build) {
      build.onResolve({ filter: /^cloudflare:/ }, (args) => {
        if (args.path === "cloudflare:workers") return { path: WORKERS_MODULE, external: true };
        return { errors: [{ text: `"${args.path}" is not provided by durable-node (only cloudflare:workers is)` }] };
      });
      build.onResolve({ filter: /^[a-z_:/]+$/ }, (args) => {
        const bare = args.path.replace(/^node:/, "");
        if (args.path.startsWith("node:") || BUILTINS.has(bare)) return { path: `node:${bare}`, external: true };
        return undefined;
      });
    },
  };
}

/** wrangler's `rules`: matching imports load as a string, an ArrayBuffer or a WebAssembly.Module. */
function moduleRules(rules: ModuleRule[], root: string): esbuild.Plugin {
  const matchers = rules.map((rule) => ({ type: rule.type, match: picomatch(rule.globs, { dot: true }) }));
  const typeOf = (file: string, suffix = "") => {
    const relative = path.relative(root, file).split(path.sep).join("/") + suffix;
    return matchers.find((m) => m.match(relative))?.type;
  };
  return {
    name: "durable-node-module-rules",
    setup(build) {
      // `import wasm from "./x.wasm?module"`: the query names the rule, not a file.
      build.onResolve({ filter: /\?module$/ }, async (args) => {
        const resolved = await build.resolve(args.path.slice(0, -"?module".length), {
          kind: args.kind,
          resolveDir: args.resolveDir,
        });
        if (resolved.errors.length > 0) return { errors: resolved.errors };
        return { path: resolved.path, namespace: "file", suffix: "?module" };
      });
      build.onLoad({ filter: /.*/ }, (args) => {
        const type = typeOf(args.path, args.suffix ?? "");
        if (type === undefined) return undefined;
        const bytes = readFileSync(args.path);
        if (type === "Text") return { contents: bytes.toString("utf8"), loader: "text" };
        const base64 = JSON.stringify(bytes.toString("base64"));
        const contents =
          type === "Data"
            ? `const b = Buffer.from(${base64}, "base64");\nexport default b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);\n`
            : `export default new WebAssembly.Module(Buffer.from(${base64}, "base64"));\n`;
        return { contents, loader: "js" };
      });
    },
  };
}
