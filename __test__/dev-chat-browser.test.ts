// The chat example as a person uses it: `durable-node dev examples/chat`, two pages in headless
// Chromium (Debian's), each joining the room and seeing what the other says.
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { chromium, type Browser } from "playwright-core";
import { afterAll, expect, it } from "vitest";
import { ROOT, until, useChildProcesses } from "./helpers.js";

const processes = useChildProcesses("durable-node-chat-");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
// This machine's network is closed: without these, Chromium's own background connections fail noisily.
const ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

let browser: Browser | undefined;
afterAll(async () => browser?.close());

it("two pages in Chromium chat through a room of hibernatable WebSockets; the screenshot is in test-results/chat.png", async () => {
  const child = spawn(process.execPath, [path.join(ROOT, "bin", "durable-node.js"), "dev", "examples/chat", "--port", "0", "--no-persist"], { cwd: ROOT });
  processes.children.add(child);
  let output = "";
  for (const stream of [child.stdout, child.stderr]) stream.setEncoding("utf8").on("data", (chunk) => (output += chunk));
  await until(() => /Ready on http/.test(output) || child.exitCode !== null, "dev to be ready");
  const url = /Ready on (http:\/\/\S+)/.exec(output)?.[1];
  if (url === undefined) throw new Error(`durable-node dev did not start:\n${output}`);

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  const [ann, bob] = await Promise.all([browser.newPage(), browser.newPage()]);
  for (const [page, name] of [[ann, "ann"], [bob, "bob"]] as const) {
    await page.goto(`${url}/?room=test`);
    await page.fill("#name", name);
    await page.click("#connect");
    await page.locator("#message:enabled").waitFor();
  }

  await ann.fill("#message", "hello from ann");
  await ann.click("#send");
  await bob.locator("#messages li", { hasText: "ann: hello from ann" }).waitFor();
  await bob.fill("#message", "hi ann");
  await bob.press("#message", "Enter");
  await ann.locator("#messages li", { hasText: "bob: hi ann" }).waitFor();
  // Each page shows the conversation in order, arrivals included.
  expect(await ann.locator("#messages li").allTextContents()).toEqual(["ann joined", "bob joined", "ann: hello from ann", "bob: hi ann"]);

  mkdirSync(path.join(ROOT, "test-results"), { recursive: true });
  await ann.screenshot({ path: path.join(ROOT, "test-results", "chat.png") });

  // A third page joining later gets the history from the room's SQLite database.
  const carol = await browser.newPage();
  await carol.goto(`${url}/?room=test`);
  await carol.fill("#name", "carol");
  await carol.click("#connect");
  await carol.locator("#messages li", { hasText: "bob: hi ann" }).waitFor();
  expect((await carol.locator("#messages li").allTextContents()).slice(0, 2)).toEqual(["ann: hello from ann", "bob: hi ann"]);
}, 60_000);
