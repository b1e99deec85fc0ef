// The README's example, run as a user runs it: `node --import durable-node/register examples/counter/app.ts`.
import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

it("the counter example serves Durable Objects over HTTP and exits cleanly on SIGTERM", async () => {
  if (!fs.existsSync(path.join(root, "dist/register.js"))) throw new Error("dist/ is missing: run `npm run build:ts` first");
  const child = spawn(process.execPath, ["--import", "durable-node/register", "examples/counter/app.ts"], {
    cwd: root,
    env: { ...process.env, PORT: "0" },
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk) => (stderr += chunk));
  try {
    const [line] = (await once(child.stdout.setEncoding("utf8"), "data")) as [string];
    const base = /http:\/\/127\.0\.0\.1:\d+/.exec(line)?.[0];
    expect(base, `unexpected output: ${line}${stderr}`).toBeDefined();
    const get = async (p: string) => (await fetch(`${base}${p}`)).json();
    expect(await get("/counter/a")).toEqual({ name: "a", value: 1 });
    expect(await get("/counter/a")).toEqual({ name: "a", value: 2 });
    expect(await get("/counter/b")).toEqual({ name: "b", value: 1 });
    expect(await get("/counter/a/ann")).toEqual({ message: "ann made it 3" });
  } finally {
    child.kill("SIGTERM");
  }
  const [code] = await once(child, "exit");
  expect(stderr).toBe("");
  expect(code).toBe(0);
});
