// What `durable-node dev` prints, in wrangler's manner: the bindings table, a line per request,
// errors with their (source-mapped) stacks.

import { STATUS_CODES } from "node:http";
import { inspect } from "node:util";
import type { WorkerConfig } from "../config.js";

export const LOG_LEVELS = ["none", "error", "warn", "info", "log", "debug"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const RESET = "\x1b[0m";
const COLORS = { red: "\x1b[31m", yellow: "\x1b[33m", green: "\x1b[32m", dim: "\x1b[2m", bold: "\x1b[1m" } as const;

export class DevConsole {
  readonly #rank: number;
  readonly #color: boolean;

  constructor(
    level: LogLevel = "log",
    readonly out: NodeJS.WriteStream = process.stdout,
    readonly err: NodeJS.WriteStream = process.stderr,
  ) {
    this.#rank = LOG_LEVELS.indexOf(level);
    this.#color = out.isTTY === true && process.env.NO_COLOR === undefined;
  }

  #paint(color: keyof typeof COLORS, text: string): string {
    return this.#color ? `${COLORS[color]}${text}${RESET}` : text;
  }

  #at(level: LogLevel): boolean {
    return this.#rank >= LOG_LEVELS.indexOf(level);
  }

  log(message: string): void {
    if (this.#at("log")) this.out.write(`${message}\n`);
  }

  error(message: string, error?: unknown): void {
    if (!this.#at("error")) return;
    const detail = error === undefined ? "" : ` ${error instanceof Error ? (error.stack ?? String(error)) : inspect(error)}`;
    this.err.write(`${this.#paint("red", "✘ [ERROR]")} ${message}${detail}\n`);
  }

  /** The table wrangler prints at start: what `env` holds. */
  bindings(config: WorkerConfig, persistDir: string | undefined): void {
    const rows: [string, string, string][] = [];
    for (const binding of config.durableObjects) {
      const where = binding.scriptName && binding.scriptName !== config.name ? ` defined in ${binding.scriptName}` : "";
      rows.push([`env.${binding.name} (${binding.className}${where})`, "Durable Object", "local"]);
    }
    for (const [name, value] of Object.entries(config.vars)) {
      const shown = config.secretNames.has(name) ? "(hidden)" : JSON.stringify(value);
      rows.push([`env.${name} (${truncate(shown)})`, "Environment Variable", "local"]);
    }
    if (rows.length === 0) {
      this.log("No bindings found.");
    } else {
      const header: [string, string, string] = ["Binding", "Resource", "Mode"];
      const widths = [0, 1].map((c) => Math.max(...[header, ...rows].map((row) => row[c]!.length)) + 4);
      const line = (row: [string, string, string]) => row[0].padEnd(widths[0]!) + row[1].padEnd(widths[1]!) + row[2];
      this.log("Your Worker has access to the following bindings:");
      this.log(this.#paint("bold", line(header)));
      for (const row of rows) this.log(line(row));
    }
    this.log(persistDir ? `State is kept in ${persistDir}` : "State is kept in memory only (--no-persist).");
    this.log("");
  }

  request(method: string, path: string, status: number, ms: number): void {
    if (!this.#at("info")) return;
    const color = status >= 500 ? "red" : status >= 400 ? "yellow" : "green";
    const text = `${status} ${STATUS_CODES[status] ?? ""}`.trimEnd();
    this.out.write(`${method} ${path} ${this.#paint(color, text)} ${this.#paint("dim", `(${Math.round(ms)}ms)`)}\n`);
  }
}

function truncate(text: string): string {
  return text.length > 50 ? `${text.slice(0, 47)}...` : text;
}
