// `durable-node dev` as a user runs it: the command in a child process on a free port, talked to
// over HTTP (fetch) and WebSocket (the `ws` package), stopped and started again on the same state.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import WebSocket from "ws";
import { ROOT, until, useChildProcesses } from "./helpers.js";

const CLI = path.join(ROOT, "bin", "durable-node.js");
const FIXTURES = path.join(ROOT, "__test__", "fixtures", "dev");
const processes = useChildProcesses("durable-node-dev-");

interface Dev {
  child: ChildProcess;
  url: string;
  stdout(): string;
  stderr(): string;
  get(pathname: string): Promise<Response>;
  json(pathname: string): Promise<any>;
  /** Ctrl-C, and the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `durable-node dev <args>` and waits for it to be ready (or to fail: then `url` is ""). */
async function dev(args: string[]): Promise<Dev> {
  const child = spawn(process.execPath, [CLI, "dev", "--port", "0", ...args], { cwd: ROOT });
  processes.children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk) => (stdout += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk) => (stderr += chunk));
  const exited = once(child, "exit");
  await Promise.race([until(() => /Ready on http/.test(stdout), "dev to be ready").catch(() => {}), exited]);
  const url = /Ready on (http:\/\/\S+)/.exec(stdout)?.[1] ?? "";
  const get = (pathname: string) => fetch(url + pathname);
  return {
    child,
    url,
    stdout: () => stdout,
    stderr: () => stderr,
    get,
    json: async (pathname) => (await get(pathname)).json(),
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGINT");
      const [code] = await exited;
      processes.children.delete(child);
      return code as number | null;
    },
  };
}

/** The app fixture (or a copy, `dir`) with the Worker whose class it binds by script_name. */
function appWith(dir = path.join(FIXTURES, "app")): string[] {
  return ["-c", dir, "-c", path.join(FIXTURES, "provider")];
}

/** A copy of a fixture project the test may change. */
function project(name: string): string {
  const dir = path.join(processes.folder, `${name}-${Math.random().toString(36).slice(2)}`);
  cpSync(path.join(FIXTURES, name), dir, { recursive: true });
  return dir;
}

/** Polls `check` until it resolves true; fails after about 5 s. */
async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 250; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The next message on `ws`, as text. */
function message(ws: WebSocket): Promise<string> {
  return once(ws, "message").then(([data]) => String(data));
}

describe("durable-node dev serves a wrangler project", () => {
  it("runs the Worker's fetch, its Durable Objects, vars, .dev.vars, module rules and request.cf", async () => {
    const app = await dev([...appWith(), "--no-persist"]);
    expect(app.url, app.stderr()).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await app.json("/hit")).toEqual({ value: 1 });
    expect(await app.json("/hit")).toEqual({ value: 2 });
    expect(await app.json("/env")).toEqual({ greeting: "hello", token: "from-dev-vars", ip: "127.0.0.1", cf: "DFW" });
    expect(await app.json("/modules")).toEqual({ note: "a text module\n", blob: [0, 1, 2, 255] });
    expect((await app.get("/nowhere")).status).toBe(404);
    expect(await app.stop()).toBe(0);
  });

  it("prints the bindings table, then a line per request with method, path, status and time", async () => {
    const app = await dev([path.join(FIXTURES, "app"), "-c", path.join(FIXTURES, "provider", "wrangler.jsonc")]);
    // A folder and -c together are refused; -c alone is the form for several Workers.
    expect(app.url).toBe("");
    expect(app.stderr()).toContain("give a project folder or --config files, not both");

    const both = await dev(["-c", path.join(FIXTURES, "app"), "-c", path.join(FIXTURES, "provider"), "--no-persist"]);
    await both.get("/hit?name=log");
    const out = both.stdout();
    expect(out).toMatch(/Binding\s+Resource\s+Mode/);
    expect(out).toMatch(/env\.COUNTER \(Counter\)\s+Durable Object\s+local/);
    expect(out).toMatch(/env\.SHARED \(Shared defined in provider\)\s+Durable Object\s+local/);
    expect(out).toMatch(/env\.GREETING \("hello"\)\s+Environment Variable\s+local/);
    // Values from .dev.vars are secrets.
    expect(out).toMatch(/env\.TOKEN \(\(hidden\)\)\s+Environment Variable/);
    expect(out).not.toContain("from-dev-vars");
    await until(() => /GET \/hit\?name=log 200 OK \(\d+ms\)/.test(both.stdout()), "the request line");
    // script_name: the class comes from the other Worker given with -c.
    expect(await both.json("/shared")).toEqual({ from: "provider's Shared" });
    expect(await both.stop()).toBe(0);
  });

  it("streams request and response bodies", async () => {
    const app = await dev([...appWith(), "--no-persist"]);
    const body = Buffer.alloc(3 << 20);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7) % 251;
    const echoed = await fetch(`${app.url}/echo`, { method: "POST", body });
    expect(Buffer.from(await echoed.arrayBuffer()).equals(body)).toBe(true);

    const streamed = await app.get("/stream");
    expect(streamed.headers.get("transfer-encoding")).toBe("chunked");
    const reader = streamed.body!.getReader();
    const first = await reader.read();
    // The first part arrives while the Worker is still writing the others.
    expect(new TextDecoder().decode(first.value)).toBe("part 0\n");
    let rest = "";
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value);
    expect(rest).toBe("part 1\npart 2\n");
    await app.stop();
  });

  it("carries WebSockets into the object's hibernatable sockets", async () => {
    const app = await dev([...appWith(), "--no-persist"]);
    const wsUrl = app.url.replace("http", "ws");
    const ann = new WebSocket(`${wsUrl}/room?name=ann`);
    const bob = new WebSocket(`${wsUrl}/room?name=bob`);
    await Promise.all([once(ann, "open"), once(bob, "open")]);
    const heard = [message(ann), message(bob)];
    ann.send("hi all");
    expect(await Promise.all(heard)).toEqual(["ann: hi all", "ann: hi all"]);
    bob.send("close");
    const [code, reason] = await once(bob, "close");
    expect([code, String(reason)]).toEqual([4000, "asked to"]);
    await until(() => /GET \/room\?name=ann 101 Switching Protocols/.test(app.stdout()), "the upgrade's line");
    ann.close();
    await app.stop();
  });

  it("ctx.waitUntil work finishes after the response", async () => {
    const app = await dev([...appWith(), "--no-persist"]);
    expect(await (await app.get("/later?name=w")).text()).toBe("later");
    // The response did not wait for it.
    expect(await app.json("/read?name=w")).toEqual({});
    await eventually(async () => (await app.json("/read?name=w")).value === 100, "the waitUntil write");
    await app.stop();
  });

  it("an error thrown by the Worker is a 500 and a source-mapped stack on stderr; the server goes on", async () => {
    const app = await dev([...appWith(), "--no-persist"]);
    const response = await app.get("/throw");
    expect(response.status).toBe(500);
    expect(await response.text()).toContain("Error: thrown by the Worker");
    await until(() => app.stderr().includes("thrown by the Worker"), "the error on stderr");
    // The stack points into the TypeScript source, not the bundle.
    expect(app.stderr()).toMatch(/\[ERROR\] GET \/throw: Error: thrown by the Worker\n\s+at .*src[/\\]index\.ts:\d+:\d+/);
    expect(await app.json("/hit")).toEqual({ value: 1 });
    await app.stop();
  });

  it("/__scheduled runs the scheduled handler with --test-scheduled, as wrangler does", async () => {
    const app = await dev([...appWith(), "--no-persist", "--test-scheduled"]);
    const ran = await app.get(`/__scheduled?cron=${encodeURIComponent("* * * * *")}`);
    expect([ran.status, await ran.text()]).toEqual([200, "Ran scheduled event"]);
    expect(await app.json("/read?name=cron")).toEqual({ value: 7 });
    await app.stop();
    // Without the flag the path is the Worker's own.
    const plain = await dev([...appWith(), "--no-persist"]);
    expect((await plain.get("/__scheduled")).status).toBe(404);
    await plain.stop();
  });
});

describe("state across restarts", () => {
  it("keeps data and alarms in .durable/: an alarm due while dev was stopped fires at the next start", async () => {
    const dir = project("app");
    const first = await dev(appWith(dir));
    expect(await first.json("/hit")).toEqual({ value: 1 });
    expect(await (await first.get("/alarm?in=300")).text()).toBe("armed");
    expect(await first.stop()).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 400));

    const second = await dev(appWith(dir));
    expect(second.stdout()).toContain(path.join(dir, ".durable"));
    expect(await second.json("/hit")).toEqual({ value: 2 });
    await eventually(async () => typeof (await second.json("/read?key=alarmed")).value === "number", "the alarm");
    await second.stop();
  }, 30_000);

  it("a renamed_classes migration keeps the objects' data under the new name, applied once", async () => {
    const dir = project("app");
    const first = await dev(appWith(dir));
    expect(first.stdout()).toContain('Applied migration "v1"');
    await first.json("/hit?name=kept");
    await first.json("/hit?name=kept");
    await first.stop();

    const config = path.join(dir, "wrangler.jsonc");
    writeFileSync(
      config,
      readFileSync(config, "utf8")
        .replace('"class_name": "Counter"', '"class_name": "Tally"')
        .replace(
          '"migrations": [{ "tag": "v1", "new_sqlite_classes": ["Counter"] }]',
          '"migrations": [{ "tag": "v1", "new_sqlite_classes": ["Counter"] }, { "tag": "v2", "renamed_classes": [{ "from": "Counter", "to": "Tally" }] }]',
        ),
    );
    const source = path.join(dir, "src", "index.ts");
    writeFileSync(source, readFileSync(source, "utf8").replace("export class Counter", "export class Tally"));
    const second = await dev(appWith(dir));
    expect(second.stdout()).toContain('Applied migration "v2"');
    expect(second.stdout()).not.toContain('Applied migration "v1"');
    expect(await second.json("/hit?name=kept")).toEqual({ value: 3 });
    await second.stop();

    const third = await dev(appWith(dir));
    expect(third.stdout()).not.toContain("Applied migration");
    expect(await third.json("/hit?name=kept")).toEqual({ value: 4 });
    await third.stop();
  }, 30_000);

  it("reloads the Worker when its source changes, keeping state", async () => {
    const dir = project("app");
    const app = await dev(appWith(dir));
    expect(await app.json("/hit?name=r")).toEqual({ value: 1 });
    const source = path.join(dir, "src", "index.ts");
    writeFileSync(source, readFileSync(source, "utf8").replace('return new Response("armed")', 'return new Response("armed, v2")'));
    await until(() => app.stdout().includes("Reloaded"), "the reload");
    expect(await (await app.get("/alarm?in=60000")).text()).toBe("armed, v2");
    expect(await app.json("/hit?name=r")).toEqual({ value: 2 });
    await app.stop();
  }, 30_000);
});

describe("the examples", () => {
  it("todos: a SQL-backed list per name over RPC", async () => {
    const app = await dev([path.join(ROOT, "examples", "todos"), "--no-persist"]);
    const send = (method: string, pathname: string, body?: unknown) =>
      fetch(app.url + pathname, { method, body: body === undefined ? undefined : JSON.stringify(body) });
    expect(await (await send("POST", "/lists/home/todos", { title: "water the plants" })).json()).toEqual({ id: 1, title: "water the plants", done: false });
    expect((await send("POST", "/lists/home/todos", {})).status).toBe(400);
    expect(await (await send("PATCH", "/lists/home/todos/1", { done: true })).json()).toEqual({ id: 1, title: "water the plants", done: true });
    expect(await app.json("/lists/home/todos")).toEqual([{ id: 1, title: "water the plants", done: true }]);
    expect(await app.json("/lists/work/todos")).toEqual([]);
    expect((await send("DELETE", "/lists/home/todos/1")).status).toBe(204);
    expect((await send("DELETE", "/lists/home/todos/1")).status).toBe(404);
    await app.stop();
  });

  it("rate-limiter: a bucket of 5 per client, then 429 with retry-after", async () => {
    const app = await dev([path.join(ROOT, "examples", "rate-limiter"), "--no-persist"]);
    const remaining = [];
    for (let i = 0; i < 5; i++) remaining.push((await app.json("/")).remaining);
    expect(remaining).toEqual([4, 3, 2, 1, 0]);
    const refused = await app.get("/");
    expect([refused.status, refused.headers.get("retry-after")]).toEqual([429, "1"]);
    expect(await app.json("/?key=another")).toMatchObject({ allowed: true, remaining: 4 });
    await app.stop();
  });
});

describe("bad input", () => {
  it("a bad config is refused with a message naming the file and key", async () => {
    const dir = project("app");
    const config = path.join(dir, "wrangler.jsonc");
    writeFileSync(config, readFileSync(config, "utf8").replace('"class_name": "Counter"', '"class": "Counter"'));
    const app = await dev(appWith(dir));
    expect(await app.stop()).toBe(1);
    expect(app.stderr()).toContain('wrangler.jsonc: durable_objects.bindings[0]: missing "class_name"');
  });

  it("a class named in the config but not exported is refused naming the key", async () => {
    const dir = project("app");
    const config = path.join(dir, "wrangler.jsonc");
    writeFileSync(config, readFileSync(config, "utf8").replace('"class_name": "Counter"', '"class_name": "Missing"'));
    const app = await dev(["-c", config, "-c", path.join(FIXTURES, "provider")]);
    expect(await app.stop()).toBe(1);
    expect(app.stderr()).toMatch(/wrangler\.jsonc: durable_objects\.bindings\[0\]\.class_name: "Missing" is not exported by .*index\.ts/);
  });

  it("a binding to a Worker that is not loaded, a missing main, a port in use: each a clear error", async () => {
    const alone = await dev([path.join(FIXTURES, "app")]);
    expect(await alone.stop()).toBe(1);
    expect(alone.stderr()).toContain('wrangler.jsonc: durable_objects.bindings[1].script_name: "provider" is another Worker, and it is not loaded here');

    const dir = project("provider");
    writeFileSync(path.join(dir, "wrangler.jsonc"), '{ "name": "x", "main": "src/gone.ts" }');
    const noMain = await dev([dir]);
    expect(await noMain.stop()).toBe(1);
    expect(noMain.stderr()).toMatch(/wrangler\.jsonc: main: .*src[/\\]gone\.ts does not exist/);

    const holder = await dev([path.join(FIXTURES, "provider"), "--no-persist"]);
    // Its default export is a WorkerEntrypoint class.
    expect(await (await holder.get("/x")).text()).toBe("provider served /x");
    const port = new URL(holder.url).port;
    const clash = await dev([path.join(FIXTURES, "provider"), "--no-persist", "--port", port]);
    expect(await clash.stop()).toBe(1);
    expect(clash.stderr()).toContain(`cannot listen on 127.0.0.1:${port}`);
    await holder.stop();
  });

  it("a build error is reported with esbuild's message and location", async () => {
    const dir = project("provider");
    writeFileSync(path.join(dir, "src", "index.ts"), "export default { fetch() { return new Response( } };\n");
    const app = await dev([dir]);
    expect(await app.stop()).toBe(1);
    expect(app.stderr()).toMatch(/src\/index\.ts:1:\d+/);
  });

  it("bad arguments get usage help", async () => {
    const app = await dev(["--port", "http"]);
    expect(await app.stop()).toBe(1);
    expect(app.stderr()).toContain('--port: expected a port number (0 to 65535), got "http"');
  });
});
