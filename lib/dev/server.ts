// `durable-node dev`: a wrangler project served on Node — config read, migrations applied, the
// Worker bundled and reloaded on change, requests taken by the core's front door.

import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import * as esbuild from "esbuild";
import { readWranglerConfig, type WorkerConfig } from "../config.js";
import { ConfigError } from "../errors.js";
import { createRuntime, internals, type Runtime } from "../runtime.js";
import { bundleWorker, type BuildOutcome, type Bundler } from "./bundle.js";
import type { DevConsole } from "./console.js";
import { FrontDoor } from "./front-door.js";
import { applyMigrations } from "./migrations.js";
import { durableObjectClasses, WorkerHandlers, type LoadedWorker } from "./worker.js";

export interface DevOptions {
  /** Config files or project folders; the first Worker is served, the others provide classes. */
  configs: string[];
  env?: string;
  ip: string;
  port: number;
  /** A folder for state; undefined: `.durable/` beside the first config; false: memory only. */
  persistTo?: string | false;
  /** Serve `/__scheduled?cron=…` by running the scheduled handler, as `wrangler dev --test-scheduled`. */
  testScheduled?: boolean;
  /** Rebuild and reload when the Worker's files change. */
  watch?: boolean;
  console: DevConsole;
}

export interface DevServer {
  readonly url: string;
  readonly runtime: Runtime;
  close(): Promise<void>;
}

/** As wrangler dev gives `request.cf` locally. */
const CF = Object.freeze({
  colo: "DFW",
  country: "US",
  city: "Austin",
  continent: "NA",
  timezone: "America/Chicago",
  httpProtocol: "HTTP/1.1",
  tlsVersion: "TLSv1.3",
  asn: 395747,
  asOrganization: "Cloudflare",
});

/** A build with errors: the message is esbuild's, formatted. */
export class BuildError extends Error {
  override name = "BuildError";
}

export async function startDev(options: DevOptions): Promise<DevServer> {
  const log = options.console;
  const configs = options.configs.map((config) => readWranglerConfig(config, { env: options.env }));
  const workers = configs.map(checkMain);
  const persistDir =
    options.persistTo === false ? undefined : path.resolve(options.persistTo ?? path.join(configs[0]!.dir, ".durable"));
  if (persistDir) {
    for (const config of configs) {
      for (const tag of applyMigrations(config, persistDir)) log.log(`Applied migration "${tag}" of ${path.basename(config.path)}`);
    }
  }

  const outdir = mkdtempSync(path.join(tmpdir(), "durable-node-dev-"));
  const bundlers: Bundler[] = [];
  const loaded: LoadedWorker[] = [];
  let runtime: Runtime | undefined;
  let door: FrontDoor | undefined;
  const close = async () => {
    door?.close();
    await runtime?.dispose();
    await Promise.all(bundlers.map((bundler) => bundler.dispose()));
    rmSync(outdir, { recursive: true, force: true });
  };

  // Set once the runtime exists; a change noticed before then is picked up by the first build.
  let reload = async (_i: number, _outcome: BuildOutcome): Promise<void> => {};
  try {
    for (const [i, config] of workers.entries()) {
      const rebuilt = options.watch ? (outcome: BuildOutcome) => void reload(i, outcome) : undefined;
      const bundler = await bundleWorker(config, path.join(outdir, String(i)), rebuilt);
      bundlers.push(bundler);
      const outcome = await bundler.first;
      if (outcome.errors.length > 0) throw new BuildError(await formatErrors(outcome.errors));
      loaded.push({ config, module: await import(outcome.url) });
    }
    const [served, ...others] = loaded as [LoadedWorker, ...LoadedWorker[]];
    runtime = createRuntime({
      durableObjects: durableObjectClasses(served, others),
      bindings: served.config.vars,
      persist: persistDir ?? false,
      compatibilityDate: served.config.compatibilityDate,
      compatibilityFlags: served.config.compatibilityFlags,
    });
    const env = runtime.env as Record<string, unknown>;
    let handlers = new WorkerHandlers(served.module, env);

    const serve = async (request: Request): Promise<Response> => {
      const started = performance.now();
      const url = new URL(request.url);
      let response: Response;
      try {
        if (options.testScheduled && url.pathname === "/__scheduled") {
          response = await scheduled(handlers, url);
        } else {
          const result = await handlers.call("fetch", [request]).result;
          if (!(result instanceof Response)) {
            throw new TypeError(`The Worker's fetch handler returned ${describe(result)}, not a Response.`);
          }
          response = result;
        }
      } catch (err) {
        log.error(`${request.method} ${url.pathname}${url.search}:`, err);
        response = new Response(err instanceof Error ? (err.stack ?? String(err)) : String(err), {
          status: 500,
          headers: { "content-type": "text/plain;charset=UTF-8" },
        });
      }
      log.request(request.method, url.pathname + url.search, response.status, performance.now() - started);
      return response;
    };

    reload = async (i, outcome) => {
      if (outcome.errors.length > 0) {
        log.error(`The Worker did not build; still serving the last good build.\n${await formatErrors(outcome.errors)}`);
        return;
      }
      try {
        const module = (await import(outcome.url)) as Record<string, unknown>;
        const next = loaded.map((worker, j) => (j === i ? { ...worker, module } : worker));
        const classes = durableObjectClasses(next[0]!, next.slice(1));
        loaded[i] = next[i]!;
        internals(runtime!).replaceClasses(classes);
        if (i === 0) handlers = new WorkerHandlers(module, env);
        log.log(`⎔ Reloaded ${path.relative(process.cwd(), workers[i]!.main) || workers[i]!.main}`);
      } catch (err) {
        log.error("The changed Worker could not be loaded; still serving the last good build.", err);
      }
    };

    log.bindings(served.config, persistDir);
    door = new FrontDoor({ ip: options.ip, port: options.port, handler: serve, sockets: internals(runtime).sockets, cf: CF });
    const host = options.ip.includes(":") ? `[${options.ip}]` : options.ip;
    const url = `http://${host}:${door.port}`;
    log.log(`Ready on ${url}`);
    return { url, runtime, close };
  } catch (err) {
    await close();
    throw err;
  }
}

function checkMain(config: WorkerConfig): WorkerConfig & { main: string } {
  const file = path.basename(config.path);
  if (config.main === undefined) throw new ConfigError(`${file}: main: missing; expected the path of the Worker's entry module`);
  if (!existsSync(config.main)) throw new ConfigError(`${file}: main: ${config.main} does not exist`);
  return config as WorkerConfig & { main: string };
}

/** `/__scheduled?cron=…&time=…`: runs the scheduled handler as a cron trigger would. */
async function scheduled(handlers: WorkerHandlers, url: URL): Promise<Response> {
  const controller = {
    cron: url.searchParams.get("cron") ?? "",
    scheduledTime: Number(url.searchParams.get("time") ?? Date.now()),
    type: "scheduled",
    noRetry() {},
  };
  const { result, ctx } = handlers.call("scheduled", [controller]);
  await result;
  await ctx.settled();
  return new Response("Ran scheduled event");
}

async function formatErrors(errors: esbuild.Message[]): Promise<string> {
  return (await esbuild.formatMessages(errors, { kind: "error", color: false })).join("");
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value === "object") return `an object (${value.constructor?.name ?? "Object"})`;
  return `a ${typeof value}`;
}
