// What several test files share: awaiting a rejection, and the built package child processes run.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The error `promise` rejects with; fails when it resolves. */
export async function rejection(promise: PromiseLike<unknown>): Promise<any> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
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
  const stale = readdirSync(join(ROOT, "lib")).filter(
    (name) => name.endsWith(".ts") && statSync(join(ROOT, "lib", name)).mtimeMs > built,
  );
  if (stale.length > 0) throw new Error(`dist/ is older than lib/${stale[0]}: run \`npm run build\` first.`);
}
