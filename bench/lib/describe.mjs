// What a bench's header says about the code it measured: package versions and durable-node's commit and build.
import { execFileSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const rootDir = path.dirname(path.dirname(path.dirname(fileURLToPath(import.meta.url))));

/** The `version` of a package.json, or "not installed". */
export function readVersion(packageJson) {
  try {
    return JSON.parse(readFileSync(packageJson, "utf8")).version;
  } catch {
    return "not installed";
  }
}

/** `durable-node <version> (git <commit>, dist/ built <time>)`. */
export function describeDurableNode() {
  const version = readVersion(path.join(rootDir, "package.json"));
  let commit = "no commit";
  try {
    commit = execFileSync("git", ["-C", rootDir, "rev-parse", "--short", "HEAD"], { stdio: ["ignore", "pipe", "ignore"] })
      .toString()
      .trim();
  } catch {}
  let built = "dist/ not built";
  try {
    built = `dist/ built ${statSync(path.join(rootDir, "dist", "index.js")).mtime.toISOString()}`;
  } catch {}
  return `durable-node ${version} (git ${commit}, ${built})`;
}
