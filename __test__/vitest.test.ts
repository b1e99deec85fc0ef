// durable-node/vitest: a Workers project's own vitest run (a child process, as a user runs it) on
// fixtures written as for @cloudflare/vitest-pool-workers, with the config import switched.

import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertFreshBuild } from "./helpers.js";

const FIXTURES = fileURLToPath(new URL("./fixtures/vitest/", import.meta.url));
const VITEST = fileURLToPath(new URL("../node_modules/vitest/vitest.mjs", import.meta.url));
const out = mkdtempSync(path.join(os.tmpdir(), "durable-node-vitest-"));

interface Run {
  code: number | null;
  output: string;
  report?: { numPassedTests: number; numFailedTests: number; testResults: { assertionResults: { fullName: string; status: string; failureMessages: string[] }[] }[] };
}

function vitestRun(fixture: string, env: Record<string, string> = {}, args: string[] = []): Promise<Run> {
  const report = path.join(out, `${fixture}-${Date.now()}.json`);
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [VITEST, "run", "--reporter=json", `--outputFile=${report}`, "--reporter=default", ...args],
      { cwd: path.join(FIXTURES, fixture), env: { ...process.env, ...env, CI: "1", FORCE_COLOR: "0" }, timeout: 120_000 },
      (error, stdout, stderr) => {
        let parsed: Run["report"];
        try {
          parsed = JSON.parse(readFileSync(report, "utf8"));
        } catch {
          parsed = undefined;
        }
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, output: stdout + stderr, report: parsed });
      },
    );
  });
}

function failures(run: Run): string[] {
  return (run.report?.testResults ?? []).flatMap((file) =>
    file.assertionResults.filter((t) => t.status !== "passed").map((t) => `${t.fullName}: ${t.failureMessages[0]?.split("\n")[0]}`),
  );
}

beforeAll(() => assertFreshBuild());
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe("a Workers test suite under durable-node/vitest", () => {
  let run: Run;
  const coverage = path.join(out, "coverage");
  beforeAll(async () => {
    const args = ["--coverage", "--coverage.provider=v8", "--coverage.include=src/**", "--coverage.reporter=json-summary"];
    run = await vitestRun("basic", {}, [...args, `--coverage.reportsDirectory=${coverage}`]);
  }, 120_000);

  it("passes every test of the fixture: isolation (per test and per describe), direct access, SELF, vi.mock, bindings, timers, WebSockets", () => {
    expect(failures(run)).toEqual([]);
    expect(run.report?.numPassedTests).toBe(31);
    expect(run.code).toBe(0);
  });

  it("reports no unhandled rejection for errors the tests awaited", () => {
    expect(run.output).not.toMatch(/Unhandled (Rejection|Error)/i);
  });

  it("measures V8 coverage of the Worker's own files", () => {
    const summary = JSON.parse(readFileSync(path.join(coverage, "coverage-summary.json"), "utf8"));
    const lines = (file: string) => summary[path.join(FIXTURES, "basic", "src", file)]?.lines;
    expect(lines("index.ts")).toMatchObject({ total: expect.any(Number) });
    expect(lines("index.ts").total).toBeGreaterThan(25);
    expect(lines("index.ts").pct).toBeGreaterThan(90);
    expect(lines("greeting.ts").pct).toBe(100);
  });
});

describe("with --no-isolate (one module graph per worker)", () => {
  // The files that do not vi.mock(): under --no-isolate a mock applies to whatever file loads the
  // Worker first, in any vitest project, which would make the outcome depend on file order.
  // With one worker, vitest 4.1 collects every file before it runs the first.
  it("still builds a runtime, with its isolated storage, for every test file", async () => {
    const files = ["test/isolation.spec.ts", "test/timers.spec.ts", "test/d1.spec.ts"];
    const run = await vitestRun("basic", {}, ["--no-isolate", "--maxWorkers=1", ...files]);
    expect(failures(run)).toEqual([]);
    expect(run.report?.numPassedTests).toBe(19);
  });
});

describe("fetchMock (an undici MockAgent for the Worker's outbound fetch)", () => {
  it("mocks fetch() of the Worker and its objects once active, and passes through otherwise", async () => {
    const run = await vitestRun("fetch-mock");
    expect(failures(run)).toEqual([]);
    expect(run.report?.numPassedTests).toBe(9);
  });

  // Both files in one process, in either order: the second must not see the first's agent.
  it("gives each test file a fresh, inactive agent", async () => {
    const run = await vitestRun("fetch-mock", {}, ["--no-isolate", "--maxWorkers=1"]);
    expect(failures(run)).toEqual([]);
    expect(run.report?.numPassedTests).toBe(9);
  });
});

describe("the vitest-4 plugin style (cloudflareTest)", () => {
  it("serves cloudflare:workers env and exports, with storage kept across a file's tests", async () => {
    const run = await vitestRun("plugin");
    expect(failures(run)).toEqual([]);
    expect(run.report?.numPassedTests).toBe(2);
  });
});

describe("bad input is refused with the file and key", () => {
  it("a wrangler config that does not exist", async () => {
    const run = await vitestRun("bad");
    expect(run.code).not.toBe(0);
    expect(run.output).toContain("wrangler.missing.jsonc: no such file or directory");
  });

  it("a binding type durable-node does not provide", async () => {
    const run = await vitestRun("bad", { WRANGLER_CONFIG: "./wrangler.r2.jsonc" });
    expect(run.code).not.toBe(0);
    expect(run.output).toContain("wrangler.r2.jsonc: r2_buckets: durable-node does not provide this binding type");
  });

  it("a class named in the config that the Worker does not export", async () => {
    const run = await vitestRun("bad", { WRANGLER_CONFIG: "./wrangler.unexported.jsonc" });
    expect(run.code).not.toBe(0);
    expect(run.output).toContain(
      'wrangler.unexported.jsonc: durable_objects.bindings[1].class_name: "Missing" is not exported by',
    );
  });
});
