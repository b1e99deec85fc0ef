// WebSockets over a real loopback connection (spec §9 through the network): a Node HTTP server
// hands upgrades to the runtime (`runtime.handleUpgrade`), the `ws` package is the client.
import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import WebSocketClient from "ws";
import { createRuntime, type Runtime } from "../lib/index.js";
import { Room } from "./fixtures/socket-objects.js";
import { until } from "./helpers.js";

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

/** A raw TCP client that does the opening handshake by hand, for frames `ws` would not send. */
async function rawConnect(): Promise<net.Socket> {
  const { port } = server.address() as AddressInfo;
  const socket = net.connect(port, "127.0.0.1");
  const key = randomBytes(16).toString("base64");
  socket.write(
    `GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  const head = await new Promise<string>((resolve) => socket.once("data", (d) => resolve(d.toString("latin1"))));
  const accept = createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
  expect(head).toContain("HTTP/1.1 101 Switching Protocols");
  expect(head).toContain(`Sec-WebSocket-Accept: ${accept}`);
  return socket;
}

describe("protocol details and bad input (spec 229, 246)", () => {
  it("protocol pings are answered by the core and never reach the object (229)", async () => {
    const { ws } = await connect();
    await runtime.hibernate((runtime.env as Record<string, any>).ROOM.getByName("net"));
    const pong = new Promise<string>((resolve) => ws.once("pong", (data) => resolve(data.toString())));
    ws.ping("are you there");
    expect(await pong).toBe("are you there");
    await new Promise((r) => setTimeout(r, 20));
    expect(Room.seen).toEqual([]);
    expect(Room.constructed).toBe(1); // still hibernated
  });

  it("a message over 32 MiB: the client gets 1009, the object webSocketError (246)", async () => {
    const { ws, closed } = await connect();
    ws.send("x".repeat(32 * 1024 * 1024 + 1));
    expect((await closed)[0]).toBe(1009);
    await until(() => Room.seen.length === 1);
    expect(Room.seen[0]![0]).toBe("error");
    expect(Room.seen[0]![1]).toMatch(/^Error: WebSocket message too large: .*the limit is 32 MiB\.$/);
    // Exactly 32 MiB is fine.
    const next = await connect();
    next.ws.send(Buffer.alloc(32 * 1024 * 1024));
    await until(() => next.received.length === 1, "the 32 MiB echo");
    expect((next.received[0] as number[]).length).toBe(32 * 1024 * 1024);
  });

  it("an unmasked client frame is a protocol error: close 1002, webSocketError, the process unharmed", async () => {
    const socket = await rawConnect();
    const closeFrame = new Promise<Buffer>((resolve) => socket.once("data", resolve));
    socket.write(Buffer.from([0x81, 0x02, 0x68, 0x69])); // text "hi" without a mask
    const frame = await closeFrame;
    expect(frame[0]).toBe(0x88);
    expect(frame.readUInt16BE(2)).toBe(1002);
    await until(() => Room.seen.length === 1);
    expect(Room.seen[0]![1]).toMatch(/^Error: WebSocket protocol error: /);
    socket.destroy();
    const { ws, received } = await connect();
    ws.send("still here");
    await until(() => received.length === 1);
  });

  it("a client that never reads is cut off once 64 MiB wait for it; the object hears webSocketError", async () => {
    const socket = await rawConnect();
    socket.pause();
    const mask = Buffer.from([1, 2, 3, 4]);
    const text = Buffer.from("flood:100");
    const masked = Buffer.from(text.map((b, i) => b ^ mask[i % 4]!));
    socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | text.length]), mask, masked]));
    await until(() => Room.seen.some((s) => s[0] === "error"), "the cut");
    expect(Room.seen.find((s) => s[0] === "error")![1]).toBe(
      "Error: The WebSocket peer stopped reading: more than 64 MiB waited to be sent, so the connection was closed.",
    );
    expect(await (runtime.env as Record<string, any>).ROOM.getByName("net").count()).toBe(0);
    socket.destroy();
  });
});

describe("lifecycle of network sockets", () => {
  it("an object with only hibernatable sockets hibernates after hibernationTimeoutMs and wakes on a message", async () => {
    await runtime.dispose();
    Room.constructed = 0;
    runtime = createRuntime({ durableObjects: { ROOM: Room }, hibernationTimeoutMs: 40 });
    const env = runtime.env as Record<string, any>;
    server.removeAllListeners("upgrade");
    server.on("upgrade", (req, socket, head) => {
      env.ROOM.getByName("net")
        .fetch("http://do/?name=kept", { headers: { Upgrade: "websocket" } })
        .then((resp: Response) => runtime.handleUpgrade(req, socket, head, resp));
    });
    const { ws, received } = await connect();
    await new Promise((r) => setTimeout(r, 250));
    expect(Room.constructed).toBe(1);
    ws.send("attachment");
    await until(() => received.length === 1);
    expect(received).toEqual(['{"name":"kept"}']);
    expect(Room.constructed).toBe(2); // it had hibernated: a new instance answered
  });

  it("dispose() closes network connections with 1001", async () => {
    const { closed } = await connect();
    await runtime.dispose();
    expect((await closed)[0]).toBe(1001);
  });
});

describe("standard (accept()ed) sockets over the network", () => {
  it("echo, then the client closes: the close reaches the object's listener, the client gets the reply", async () => {
    const { ws, received, closed } = await connect("standard");
    ws.send("a");
    await until(() => received.length === 1);
    expect(received).toEqual(["echo:a"]);
    ws.close(4001, "bye");
    expect(await closed).toEqual([4001, "bye"]);
  });

  it("abrupt disconnect is survived, and a send to the gone peer is dropped without an error", async () => {
    const { ws } = await connect("standard");
    ws.terminate();
    await new Promise((r) => setTimeout(r, 50));
    const next = await connect("standard");
    next.ws.send("b");
    await until(() => next.received.length === 1);
  });
});
