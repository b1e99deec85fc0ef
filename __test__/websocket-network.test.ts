// WebSockets over a real loopback connection (spec §9 through the network): a Node HTTP server
// hands upgrades to the runtime (`runtime.handleUpgrade`), the `ws` package is the client.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import WebSocketClient from "ws";
import { createRuntime, type Runtime } from "../lib/index.js";
import { Room } from "./fixtures/socket-objects.js";

let runtime: Runtime;
let server: http.Server;
let base: string;
const clients: WebSocketClient[] = [];

beforeEach(async () => {
  Room.constructed = 0;
  Room.seen = [];
  runtime = createRuntime({ durableObjects: { ROOM: Room } });
  const env = runtime.env as Record<string, any>;
  server = http.createServer((_req, res) => res.writeHead(426).end());
  server.on("upgrade", (req, socket, head) => {
    const url = new URL(req.url ?? "/", "http://do");
    env.ROOM.getByName(url.searchParams.get("room") ?? "net")
      .fetch(url.href, { headers: { Upgrade: "websocket" } })
      .then((resp: Response) => runtime.handleUpgrade(req, socket, head, resp))
      .catch(() => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.terminate();
  await runtime.dispose();
  await new Promise((resolve) => server.close(resolve));
});

interface Client {
  ws: WebSocketClient;
  received: unknown[];
  closed: Promise<[number, string]>;
}

async function connect(query = ""): Promise<Client> {
  const ws = new WebSocketClient(`${base}/${query}`);
  clients.push(ws);
  const received: unknown[] = [];
  ws.on("message", (data, isBinary) => received.push(isBinary ? [...(data as Buffer)] : data.toString()));
  const closed = new Promise<[number, string]>((resolve) => ws.on("close", (code, reason) => resolve([code, reason.toString()])));
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  return { ws, received, closed };
}

const until = async (check: () => boolean, what = "condition") => {
  for (let i = 0; i < 1000; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
};

describe("network WebSockets", () => {
  it("echo, text and binary (spec 221)", async () => {
    const { ws, received } = await connect();
    ws.send("a");
    ws.send(Buffer.from([1, 2, 3]));
    await until(() => received.length === 2);
    expect(received).toEqual(["echo:a", [1, 2, 3]]);
    expect(Room.seen.map((s) => s[1] instanceof ArrayBuffer)).toEqual([false, true]);
  });

  it("client close(4001, 'bye now') → webSocketClose(ws, 4001, 'bye now', true), readyState 2 (222)", async () => {
    const { ws, closed } = await connect();
    ws.close(4001, "bye now");
    expect(await closed).toEqual([4001, "bye now"]);
    await until(() => Room.seen.length === 1);
    expect(Room.seen).toEqual([["close", 4001, "bye now", true, 2, 1]]);
  });

  it("disconnect without a Close frame → 1006, not clean (224)", async () => {
    const { ws } = await connect();
    ws.terminate();
    await until(() => Room.seen.length === 1);
    expect(Room.seen).toEqual([["close", 1006, "WebSocket disconnected without sending Close frame.", false, 2, 1]]);
  });

  it("server close in webSocketMessage: the client gets (4000, 'server close'), then webSocketClose with readyState 3 (225)", async () => {
    const { ws, closed } = await connect();
    ws.send("close-me");
    expect(await closed).toEqual([4000, "server close"]);
    await until(() => Room.seen.length === 2);
    expect(Room.seen[1]).toEqual(["close", 4000, "server close", true, 3, 1]);
  });

  it("100 clients: the object hibernates, one message wakes it, the broadcast reaches all with attachments", async () => {
    const all = await Promise.all(Array.from({ length: 100 }, (_, i) => connect(`?name=c${i}`)));
    const env = runtime.env as Record<string, any>;
    expect(await env.ROOM.getByName("net").count()).toBe(100);
    await runtime.hibernate(env.ROOM.getByName("net"));
    expect(Room.constructed).toBe(1);
    all[7]!.ws.send("broadcast:hi");
    await until(() => all.every((c) => c.received.length === 1), "the broadcast");
    expect(Room.constructed).toBe(2);
    expect(all.map((c) => c.received[0])).toEqual(all.map((_, i) => `c${i}:hi`));
  });
});
