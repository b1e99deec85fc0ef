// Tests run against the TypeScript sources; `cloudflare:workers` resolves to our module as it does
// under `durable-node/register`.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: {
    alias: {
      "cloudflare:workers": fileURLToPath(new URL("./lib/workers.ts", import.meta.url)),
    },
  },
  test: {
    include: ["__test__/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 60_000,
  },
});
