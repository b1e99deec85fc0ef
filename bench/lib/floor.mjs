// Builds the raw SQLite floor (floor/sqlite.rs, the crate's `sqlite-floor` example) with cargo and finds its binary.
import { execFileSync, spawn } from "node:child_process";

/**
 * `cargo build --release --example sqlite-floor --target <host>` in `rootDir`: the same target folder the napi build
 * uses, so the compiled rusqlite is reused (the first build still takes about a minute on this machine). Resolves to
 * `{ path }` of the binary, from cargo's own report of what it built, or `{ error }`; never rejects.
 */
export function buildFloor(rootDir, timeoutMs) {
  let host;
  try {
    host = /^host: (.+)$/m.exec(execFileSync("rustc", ["-vV"], { encoding: "utf8" }))[1];
  } catch (error) {
    return Promise.resolve({ error: `rustc -vV failed: ${error.message.split("\n")[0]}` });
  }
  const args = ["build", "--release", "--example", "sqlite-floor", "--target", host, "--message-format=json-render-diagnostics"];
  return new Promise((resolve) => {
    const cargo = spawn("cargo", args, { cwd: rootDir, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const deadline = setTimeout(() => cargo.kill("SIGKILL"), timeoutMs);
    cargo.stdout.on("data", (chunk) => (stdout += chunk));
    cargo.stderr.on("data", (chunk) => (stderr += chunk));
    cargo.on("error", (error) => {
      clearTimeout(deadline);
      resolve({ error: `cannot run cargo: ${error.message}` });
    });
    cargo.on("close", (code, signal) => {
      clearTimeout(deadline);
      const artifact = stdout
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line))
        .find((m) => m.reason === "compiler-artifact" && m.target?.name === "sqlite-floor" && m.executable);
      if (code === 0 && artifact) return resolve({ path: artifact.executable });
      const why = signal ? `killed after ${timeoutMs / 1000} s` : `exited with code ${code}`;
      const errorLine = stderr.split("\n").find((line) => line.startsWith("error")) ?? stderr.trim().split("\n").pop();
      resolve({ error: `cargo build of the floor ${why}${errorLine ? `: ${errorLine}` : ""}` });
    });
  });
}
