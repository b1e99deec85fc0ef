// The `durable-node` command: `durable-node dev [dir]` runs a wrangler project on Node.

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { DevConsole, LOG_LEVELS, type LogLevel } from "./dev/console.js";

const USAGE = `Usage: durable-node dev [dir] [options]

Serves a Workers project (wrangler.jsonc, wrangler.json or wrangler.toml in dir, default the
current directory) on Node: HTTP and WebSockets, Durable Objects with their state kept on disk.

Options:
  -c, --config <file>     a wrangler config file; give several to run Workers together
                          (the first is served, the others provide Durable Object classes)
  -e, --env <name>        use the env.<name> section of the config
      --ip <address>      address to listen on (default 127.0.0.1)
      --port <number>     port to listen on (default 8787; 0 picks a free one)
      --persist-to <dir>  where to keep state (default: .durable beside the config)
      --no-persist        keep state in memory only
      --test-scheduled    run the scheduled handler on /__scheduled?cron=<cron>
      --no-watch          do not reload the Worker when its files change
      --log-level <level> ${LOG_LEVELS.join(" | ")} (default log)
  -h, --help              show this help
  -v, --version           show durable-node's version
`;

const OPTIONS = {
  config: { type: "string", short: "c", multiple: true },
  env: { type: "string", short: "e" },
  ip: { type: "string", default: "127.0.0.1" },
  port: { type: "string", default: "8787" },
  "persist-to": { type: "string" },
  "no-persist": { type: "boolean", default: false },
  "test-scheduled": { type: "boolean", default: false },
  "no-watch": { type: "boolean", default: false },
  "log-level": { type: "string", default: "log" },
  help: { type: "boolean", short: "h", default: false },
  version: { type: "boolean", short: "v", default: false },
} as const;

class UsageError extends Error {}

/** Runs the command; resolves with an exit code, or never while a server runs. */
export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    return usageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.version) {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  const [command, ...rest] = positionals;
  if (values.help || command === undefined) {
    process.stdout.write(USAGE);
    return command === undefined && !values.help ? 1 : 0;
  }
  if (command !== "dev") return usageError(`unknown command "${command}"`);

  let options;
  try {
    options = devOptions(values, rest);
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message);
    throw err;
  }
  const { startDev } = await import("./dev/server.js");
  process.setSourceMapsEnabled(true);
  const log = options.console;
  try {
    const server = await startDev(options);
    // Errors of the Worker's own background work are reported, not fatal, as in wrangler dev.
    process.on("unhandledRejection", (reason) => log.error("Uncaught (in promise)", reason));
    process.on("uncaughtException", (err) => log.error("Uncaught", err));
    let closing = false;
    const stop = () => {
      if (closing) process.exit(130); // a second Ctrl-C does not wait
      closing = true;
      void server.close().then(() => process.exit(0));
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    return await new Promise<number>(() => {});
  } catch (err) {
    const shown = err instanceof Error && ["ConfigError", "BuildError"].includes(err.name) ? err.message : err;
    log.error(typeof shown === "string" ? shown : "durable-node dev could not start:", typeof shown === "string" ? undefined : shown);
    return 1;
  }
}

function devOptions(values: Record<string, unknown>, rest: string[]) {
  if (rest.length > 1) throw new UsageError(`expected one project folder, got ${rest.join(" ")}`);
  const configs = (values.config as string[] | undefined) ?? [rest[0] ?? "."];
  if (values.config && rest.length > 0) throw new UsageError("give a project folder or --config files, not both");
  const port = Number(values.port);
  if (!/^\d+$/.test(values.port as string) || port > 65535) {
    throw new UsageError(`--port: expected a port number (0 to 65535), got "${values.port}"`);
  }
  const level = values["log-level"] as LogLevel;
  if (!LOG_LEVELS.includes(level)) throw new UsageError(`--log-level: expected one of ${LOG_LEVELS.join(", ")}, got "${level}"`);
  if (values["no-persist"] && values["persist-to"] !== undefined) {
    throw new UsageError("give --persist-to or --no-persist, not both");
  }
  return {
    configs,
    env: values.env as string | undefined,
    ip: values.ip as string,
    port,
    persistTo: values["no-persist"] ? (false as const) : (values["persist-to"] as string | undefined),
    testScheduled: values["test-scheduled"] as boolean,
    watch: !values["no-watch"],
    console: new DevConsole(level),
  };
}

function usageError(message: string): number {
  process.stderr.write(`durable-node: ${message}\n\n${USAGE}`);
  return 1;
}
