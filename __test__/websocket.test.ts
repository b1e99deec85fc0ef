// WebSockets in process (spec §9, 206–245): pairs, the hibernation API on ctx, events and their
// close codes, auto-responses, attachments, close validation, and hibernation itself.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createRuntime, type Runtime } from "../lib/index.js";
import { Room, Silent } from "./fixtures/socket-objects.js";

let runtime: Runtime | undefined;
let env: Record<string, any>;

beforeEach(() => {
  Room.constructed = 0;
  Room.seen = [];
  runtime = createRuntime({ durableObjects: { ROOM: Room, SILENT: Silent } });
  env = runtime.env as Record<string, any>;
});
afterEach(async () => {
  await runtime?.dispose();
  runtime = undefined;
});

/** Connects to the room in process: the client end, accepted, with what it receives. */
async function connect(path = "/", name = "room") {
  const resp = await env.ROOM.getByName(name).fetch(`http://do${path}`, { headers: { Upgrade: "websocket" } });
  expect(resp.status).toBe(101);
  const ws = resp.webSocket as WebSocket;
  const received: unknown[] = [];
  const closes: CloseEvent[] = [];
  ws.addEventListener("message", (e: MessageEvent) => received.push(e.data));
  ws.addEventListener("close", (e: CloseEvent) => closes.push(e));
  ws.accept();
  return { ws, received, closes };
}

const until = async (check: () => boolean, what = "condition") => {
  for (let i = 0; i < 500; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error(`timed out waiting for ${what}`);
};

describe("pairs and responses (spec 206–207)", () => {
  it("new WebSocketPair(): 0 and 1, Object.values → [client, server]", () => {
    const pair = new WebSocketPair();
    expect(Object.keys(pair)).toEqual(["0", "1"]);
    const [client, server] = Object.values(pair);
    expect(client).toBe(pair[0]);
    expect(server).toBe(pair[1]);
    expect(client).toBeInstanceOf(WebSocket);
  });

  it("a Response takes status 101 with a webSocket", () => {
    const pair = new WebSocketPair();
    const resp = new Response(null, { status: 101, webSocket: pair[0] } as ResponseInit);
    expect(resp.status).toBe(101);
    expect((resp as any).webSocket).toBe(pair[0]);
    expect(new Response("x")).toBeInstanceOf(Response);
    expect((new Response("x") as any).webSocket).toBeNull();
  });

  it("echo through a hibernatable socket, with a send queued before the Response (spec 207)", async () => {
    const { ws, received } = await connect("/?hello");
    ws.send("a");
    await until(() => received.length === 2);
    expect(received).toEqual(["hello before the response", "echo:a"]);
    expect(Room.seen).toEqual([["message", "a", 1]]);
  });

  it("binary messages arrive as ArrayBuffer in webSocketMessage (spec 221)", async () => {
    const { ws, received } = await connect();
    ws.binaryType = "arraybuffer";
    ws.send(new Uint8Array([1, 2, 3]));
    await until(() => received.length === 1);
    expect(Room.seen[0]![1]).toBeInstanceOf(ArrayBuffer);
    expect([...new Uint8Array(received[0] as ArrayBuffer)]).toEqual([1, 2, 3]);
  });
});

describe("close (spec 222–226)", () => {
  it("client close(4001, 'bye now') → webSocketClose(ws, 4001, 'bye now', true), readyState 2 inside (222)", async () => {
    const { ws, closes } = await connect();
    ws.close(4001, "bye now");
    await until(() => closes.length === 1, "the close reply");
    expect(Room.seen).toEqual([["close", 4001, "bye now", true, 2, 1]]);
    expect(closes[0]!.code).toBe(4001);
    expect(closes[0]!.wasClean).toBe(true);
    expect(ws.readyState).toBe(3);
    expect(await env.ROOM.getByName("room").count()).toBe(0);
  });

  it("client close() without a code → 1005, '' (223)", async () => {
    const { ws, closes } = await connect();
    ws.close();
    await until(() => closes.length === 1);
    expect(Room.seen).toEqual([["close", 1005, "", true, 2, 1]]);
  });

  it("server close in webSocketMessage → client sees it, then webSocketClose with readyState 3 (225)", async () => {
    const { ws, closes } = await connect();
    ws.send("close-me");
    await until(() => Room.seen.length === 2, "webSocketClose");
    expect(closes.map((c) => [c.code, c.reason, c.wasClean])).toEqual([[4000, "server close", true]]);
    expect(Room.seen[1]).toEqual(["close", 4000, "server close", true, 3, 1]);
  });

  it("a throwing webSocketMessage leaves the socket open (226)", async () => {
    const { ws, received } = await connect();
    ws.send("throw");
    ws.send("after");
    await until(() => received.length === 1);
    expect(received).toEqual(["echo:after"]);
  });

  it("missing handlers: events are dropped (227)", async () => {
    const resp = await env.SILENT.getByName("s").fetch("http://do/");
    const ws = resp.webSocket as WebSocket;
    ws.accept();
    ws.send("nobody listens");
    ws.close(1000, "bye");
    await new Promise((r) => setTimeout(r, 20));
    expect(ws.readyState).toBe(3);
  });
});

describe("hibernation", () => {
  it("a hibernated object wakes on the next message, with tags and attachment intact", async () => {
    const { ws, received } = await connect("/?tag=a&tag=b&name=ann");
    await runtime!.hibernate(env.ROOM.getByName("room"));
    expect(Room.constructed).toBe(1);
    ws.send("attachment");
    ws.send("tags");
    await until(() => received.length === 2);
    expect(Room.constructed).toBe(2);
    expect(received).toEqual(['{"name":"ann"}', '["a","b"]']);
  });
});
