// getPlatformProxy(): a wrangler project's bindings in Node, in-process and from compiled code.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { getPlatformProxy } from "../lib/index.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const fixture = path.join(here, "fixtures/platform");

function copyFixture(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dn-platform-"));
  fs.cpSync(fixture, dir, { recursive: true });
  return dir;
}

describe("getPlatformProxy", () => {
  it("serves the config's Durable Objects and vars with wrangler's shape", async () => {
    const proxy = await getPlatformProxy<Record<string, any>>({ configPath: path.join(fixture, "wrangler.jsonc"), persist: false });
    try {
      expect(Object.keys(proxy).sort()).toEqual(["caches", "cf", "ctx", "dispose", "env"]);
      expect(proxy.env.GREETING).toBe("hello");
      expect(proxy.env.LIMIT).toBe(3);
      const stub = proxy.env.COUNTER.getByName("x");
      expect(await stub.increment()).toBe(1);
      expect(await stub.increment()).toBe(2);
      expect(await stub.greeting()).toBe("hello from x");
      expect(typeof proxy.ctx.waitUntil).toBe("function");
      expect(await proxy.caches.default.match(new Request("http://x/"))).toBeUndefined();
    } finally {
      await proxy.dispose();
    }
  });

  it("persists under .durable/ beside the config by default", async () => {
    const dir = copyFixture();
    const proxy = await getPlatformProxy({ configPath: path.join(dir, "wrangler.jsonc") });
    await proxy.dispose();
    expect(fs.existsSync(path.join(dir, ".durable", "runtime.sqlite"))).toBe(true);
  });

  it("a class named in the config but not exported → an error naming the file and key", async () => {
    await expect(
      getPlatformProxy({ configPath: path.join(here, "fixtures/platform-bad/wrangler.toml"), persist: false }),
    ).rejects.toThrow(/^wrangler\.toml: durable_objects\.bindings\[0\]\.class_name: "Room" is not exported by .*src\/index\.ts$/);
  });

  it("works from compiled code in plain Node, loading the TypeScript entry through our hooks", () => {
    const dist = path.resolve(here, "../dist/index.js");
    if (!fs.existsSync(dist)) throw new Error("dist/index.js is missing: run `npm run build:ts` first");
    const script = `
      import { getPlatformProxy } from ${JSON.stringify(dist)};
      const proxy = await getPlatformProxy({ configPath: ${JSON.stringify(path.join(fixture, "wrangler.jsonc"))}, persist: false });
      console.log(await proxy.env.COUNTER.getByName("n").greeting());
      await proxy.dispose();
    `;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
    expect(out.trim()).toBe("hello from n");
  });
});
