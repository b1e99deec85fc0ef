// Child process of the WebSocket bench: serves workers/chat.mjs on a loopback port, either with durable-node (a Node
// HTTP server handing upgrades to runtime.handleUpgrade) or with Miniflare 4 (workerd's own HTTP server, as
// `wrangler dev` runs it). Prints {"port"} when ready; then answers lines on stdin: "memory" prints the memory of the
// serving processes (this one and, for Miniflare, its workerd children), "hibernate" forces hibernation where the
// side has a way to.
// A third side, node-ws, is the floor: a plain `ws` server answering the same messages in JS, no runtime at all.
// Usage: node --expose-gc --import <dist/register.js> ws-server.mjs durable-node | node ws-server.mjs miniflare|node-ws
import { readdirSync, readFileSync } from "node:fs";
import http from "node:http";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const side = process.argv[2];
const chatPath = fileURLToPath(new URL("./workers/chat.mjs", import.meta.url));
let hibernate = async () => false;
let port;

if (side === "durable-node") {
  const { createRuntime } = await import("../dist/index.js");
  const { Chat, default: worker } = await import(chatPath);
  const runtime = createRuntime({ durableObjects: { CHAT: Chat } });
  const env = runtime.env;
  const server = http.createServer((_req, res) => res.writeHead(426).end());
  server.on("upgrade", (req, socket, head) => {
    const request = new Request(new URL(req.url, "http://localhost"), { headers: { Upgrade: "websocket" } });
    Promise.resolve(worker.fetch(request, env))
      .then((response) => runtime.handleUpgrade(req, socket, head, response))
      .catch(() => socket.destroy());
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = server.address().port;
  hibernate = async () => {
    await runtime.hibernate(env.CHAT.get(env.CHAT.idFromName("room")));
    return true;
  };
} else if (side === "node-ws") {
  // The floor: a plain `ws` server doing in JS what chat.mjs does, with no runtime and no Durable Object.
  const { WebSocketServer } = await import("ws");
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
  await new Promise((resolve) => wss.once("listening", resolve));
  wss.on("connection", (ws) =>
    ws.on("message", (data, isBinary) => {
      const message = isBinary ? data : String(data);
      if (message === "ping") ws.send("pong");
      else if (typeof message === "string" && message.startsWith("broadcast:")) {
        for (const client of wss.clients) client.send(message);
      } else ws.send(message);
    }),
  );
  port = wss.address().port;
} else {
  const { Miniflare } = await import("miniflare");
  const mf = new Miniflare({
    modules: true,
    scriptPath: chatPath,
    durableObjects: { CHAT: { className: "Chat", useSQLite: true } },
    compatibilityDate: "2026-04-26",
    host: "127.0.0.1",
    port: 0,
  });
  port = Number((await mf.ready).port);
}

/** RSS of this process and its descendants (workerd), and this process's JS heap, after a full GC. */
function memory() {
  globalThis.gc?.();
  const pids = [process.pid, ...descendants(process.pid)];
  const rss = pids.reduce((sum, pid) => sum + rssOf(pid), 0);
  return { rss, heapUsed: process.memoryUsage().heapUsed, processes: pids.length };
}

function descendants(parent) {
  const children = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === parent) children.push(Number(name), ...descendants(Number(name)));
    } catch {}
  }
  return children;
}

function rssOf(pid) {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Number(match[1]) * 1024 : 0;
}

console.log(JSON.stringify({ port }));
for await (const line of createInterface({ input: process.stdin })) {
  if (line === "memory") console.log(JSON.stringify(memory()));
  else if (line === "hibernate") console.log(JSON.stringify({ hibernated: await hibernate() }));
}
process.exit(0);
