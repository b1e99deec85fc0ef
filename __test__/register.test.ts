// `node --import durable-node/register`: TypeScript entry points, TS-style imports and `cloudflare:workers`, run in real child processes.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const REGISTER = fileURLToPath(new URL("../dist/register.js", import.meta.url));
const FIXTURES = fileURLToPath(new URL("./fixtures/register/", import.meta.url));

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function node(args: string[]): Run {
  const { status, stdout, stderr } = spawnSync(process.execPath, args, { cwd: FIXTURES, encoding: "utf8" });
  return { status, stdout, stderr };
}

function runWithRegister(entry: string, flags: string[] = []): Run {
  return node([...flags, "--import", REGISTER, entry]);
}

// Asserting on stdout alone would hide the child's error; this shows it when the run fails.
function expectOutput(run: Run, stdout: string): void {
  expect({ status: run.status, stdout: run.stdout, stderr: run.stderr }).toEqual({ status: 0, stdout, stderr: "" });
}

beforeAll(() => {
  if (!existsSync(REGISTER)) {
    throw new Error(`${REGISTER} is missing: build the TypeScript layer first (npm run build:ts)`);
  }
});

describe("TypeScript files", () => {
  it("runs a .ts entry with annotations, an interface and an enum", () => {
    expectOutput(runWithRegister("typed.ts"), '{"greeting":"hello ts","level":2,"name":"High"}\n');
  });

  it("runs a .mts entry as an ES module", () => {
    expectOutput(runWithRegister("module.mts"), "module.mts MTS!\n");
  });

  it("imports a .cts file as CommonJS, with its named exports", () => {
    expectOutput(runWithRegister("commonjs.ts"), "commonjs 4\n");
  });

  it("runs a .cts entry as CommonJS that requires another .cts file", () => {
    expectOutput(runWithRegister("main.cts"), "commonjs 4\n");
  });
});

describe("TypeScript-style relative imports", () => {
  it("resolves ./helper.js to helper.ts when only the .ts exists", () => {
    expectOutput(runWithRegister("js-specifier.ts"), "HELPER!\n");
  });

  it("resolves extensionless imports to a .ts file and to a directory's index.ts", () => {
    expectOutput(runWithRegister("extensionless.ts"), "lobby 8\n");
  });

  it("still fails with Node's error for a relative import that matches nothing", () => {
    const run = node(["--import", REGISTER, "--input-type=module", "--eval", 'import "./missing.js";']);
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain("ERR_MODULE_NOT_FOUND");
  });
});

describe("cloudflare:workers", () => {
  it("resolves to durable-node's module", () => {
    expectOutput(runWithRegister("durable-object.ts"), "function\n");
  });

  it("leaves other cloudflare: specifiers to Node's own error", () => {
    const run = node(["--import", REGISTER, "--input-type=module", "--eval", 'import "cloudflare:sockets";']);
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain("ERR_UNSUPPORTED_ESM_URL_SCHEME");
  });
});

describe("errors", () => {
  // Written at run time so the project's `tsc --noEmit`, which covers __test__/, never sees it.
  let broken: string;
  beforeAll(() => {
    broken = mkdtempSync(join(tmpdir(), "durable-node-register-"));
    writeFileSync(join(broken, "broken.ts"), "interface Point { x: number }\nconst p: Point = { x: 1 ;\nconsole.log(p);\n");
  });
  afterAll(() => rmSync(broken, { recursive: true, force: true }));

  it("a syntax error names the file, the line and column, and esbuild's message, and exits non-zero", () => {
    const file = join(broken, "broken.ts");
    const run = runWithRegister(file);
    expect(run.status).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toContain(`Error: durable-node: cannot compile ${file}`);
    expect(run.stderr).toContain('Expected "}" but found ";"');
    // esbuild counts columns from 0: the `;` is the 25th character.
    expect(run.stderr).toContain(`${file}:2:24:`);
    expect(run.stderr).toContain("2 │ const p: Point = { x: 1 ;");
  });

  it("a stack trace points at the line of the .ts file that threw", () => {
    const run = runWithRegister("throws.ts", ["--enable-source-maps"]);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain("Error: boom");
    expect(run.stderr).toContain(`at fail (${join(FIXTURES, "throws.ts")}:9:9)`);
  });
});

describe("registerHooks", () => {
  it("registers once however often the module is loaded or called", () => {
    const run = node(["register-twice.mjs", REGISTER]);
    expectOutput(run, "1 ONCE!\n");
  });
});
