// What several test files share: awaiting a rejection, and the built package child processes run.
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll } from "vitest";

/** The error `promise` rejects with; fails when it resolves. */
export async function rejection(promise: PromiseLike<unknown>): Promise<any> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

/** The error `fn` throws synchronously; fails when it returns. */
export function thrown(fn: () => unknown): any {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected a throw");
}

/** Polls `check` every few milliseconds until it holds; fails after about 5 s. */
export async function until(check: () => boolean, what = "condition"): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const REGISTER = join(ROOT, "dist", "register.js");

/**
 * Child processes run the build in dist/ while the tests check with lib/: they must be the same
 * code, so a missing or stale build fails the test with what to do.
 */
export function assertFreshBuild(): void {
  if (!existsSync(REGISTER)) throw new Error(`${REGISTER} is missing: run \`npm run build\` first.`);
  const built = statSync(join(ROOT, "dist", "index.js")).mtimeMs;
  const stale = readdirSync(join(ROOT, "lib"), { recursive: true, encoding: "utf8" }).filter(
    (name) => name.endsWith(".ts") && statSync(join(ROOT, "lib", name)).mtimeMs > built,
  );
  if (stale.length > 0) throw new Error(`dist/ is older than lib/${stale[0]}: run \`npm run build\` first.`);
}

/**
 * For a test file whose tests run real child processes: checks the build first, gives the file one
 * state folder (removed at the end), and kills with SIGKILL every child still in `children` after
 * each test, so that a failed test leaves no process behind.
 */
export function useChildProcesses(folderPrefix: string): {
  readonly folder: string;
  readonly children: Set<ChildProcess>;
} {
  const state = { folder: "", children: new Set<ChildProcess>() };
  beforeAll(() => {
    assertFreshBuild();
    state.folder = mkdtempSync(join(tmpdir(), folderPrefix));
  });
  afterEach(() => {
    for (const child of state.children) child.kill("SIGKILL");
    state.children.clear();
  });
  afterAll(() => {
    if (state.folder) rmSync(state.folder, { recursive: true, force: true });
  });
  return state;
}
