// WebSockets in process (spec §9, 206–245): pairs, the hibernation API on ctx, events and their
// close codes, auto-responses, attachments, close validation, and hibernation itself.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createRuntime, type Runtime } from "../lib/index.js";
// The globals DO code uses (installed by lib/globals.ts), imported for their types.
import type { WorkersResponse } from "../lib/response.js";
import type { DurableObjectState } from "../lib/state.js";
import { CloseEvent, WebSocket, WebSocketPair, WebSocketRequestResponsePair } from "../lib/websocket.js";
import { Room, Silent } from "./fixtures/socket-objects.js";
import { rejection, thrown, until } from "./helpers.js";

/** The global Response, which the runtime makes the Workers one (status 101 with a WebSocket). */
const Response = globalThis.Response as unknown as WorkersResponse;

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
    const resp = new Response(null, { status: 101, webSocket: pair[0] });
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

/** Runs `fn` inside the room with its ctx. */
function inRoom<T>(fn: (ctx: DurableObjectState) => T, name = "room"): Promise<T> {
  return runtime!.runInDurableObject(env.ROOM.getByName(name), (_instance, ctx) => fn(ctx as never));
}

describe("acceptWebSocket rules (spec 207–213)", () => {
  it("readyState 1 right after acceptWebSocket (207)", async () => {
    expect(await inRoom((ctx) => {
      const [, server] = Object.values(new WebSocketPair());
      ctx.acceptWebSocket(server);
      return server.readyState;
    })).toBe(1);
  });

  it("after accept() → Error (208); accept() after acceptWebSocket → TypeError (210)", async () => {
    const [a, b] = await inRoom((ctx) => {
      const [, one] = Object.values(new WebSocketPair());
      one.accept();
      const [, two] = Object.values(new WebSocketPair());
      ctx.acceptWebSocket(two);
      return [thrown(() => ctx.acceptWebSocket(one)), thrown(() => two.accept())];
    });
    expect(a).toEqual(new Error("Cannot call `acceptWebSocket()` if the WebSocket was already accepted via `accept()`"));
    expect(b).toEqual(new TypeError("Can't accept() WebSocket after enabling hibernation."));
  });

  it("its peer already accepted or used in a Response → Error (209)", async () => {
    const errors = await inRoom((ctx) => {
      const [client, server] = Object.values(new WebSocketPair());
      client.accept();
      const [client2, server2] = Object.values(new WebSocketPair());
      new Response(null, { status: 101, webSocket: client2 });
      return [thrown(() => ctx.acceptWebSocket(server)), thrown(() => ctx.acceptWebSocket(server2))].map(String);
    });
    const message =
      "Error: Cannot call `acceptWebSocket()` on this WebSocket because its pair has already been accepted or used in a Response.";
    expect(errors).toEqual([message, message]);
  });

  it("returning the accepted end itself in a Response → TypeError (211)", async () => {
    const errors = await inRoom((ctx) => {
      const [, hibernatable] = Object.values(new WebSocketPair());
      ctx.acceptWebSocket(hibernatable);
      const [, standard] = Object.values(new WebSocketPair());
      standard.accept();
      const respond = (webSocket: WebSocket) => () => new Response(null, { status: 101, webSocket });
      return [thrown(respond(hibernatable)), thrown(respond(standard))].map(String);
    });
    expect(errors).toEqual([
      "TypeError: Can't return WebSocket in a Response after calling acceptWebSocket().",
      "TypeError: Can't return WebSocket in a Response after calling accept().",
    ]);
  });

  it("send before accepting, and after close() → TypeError (212)", async () => {
    const errors = await inRoom(() => {
      const [, fresh] = Object.values(new WebSocketPair());
      const [, closed] = Object.values(new WebSocketPair());
      closed.accept();
      closed.close(1000, "done");
      return [thrown(() => fresh.send("x")), thrown(() => closed.send("x"))].map(String);
    });
    expect(errors).toEqual([
      "TypeError: You must call one of accept() or state.acceptWebSocket() on this WebSocket before sending messages.",
      "TypeError: Can't call WebSocket send() after close().",
    ]);
  });

  it("the 32,769th hibernatable socket of one object → Error (213)", async () => {
    const error = await inRoom((ctx) => {
      for (let i = 0; i < 32_768; i++) ctx.acceptWebSocket(Object.values(new WebSocketPair())[1]!);
      return String(thrown(() => ctx.acceptWebSocket(Object.values(new WebSocketPair())[1]!)));
    });
    expect(error).toBe("Error: only 32768 websockets can be accepted on a single Durable Object instance");
    expect(await env.ROOM.getByName("room").count()).toBe(32_768);
  });
});

describe("tags (spec 214–220)", () => {
  it("deduplicated in first-occurrence order; none → [] (214)", async () => {
    expect(await inRoom((ctx) => {
      const [, a] = Object.values(new WebSocketPair());
      const [, b] = Object.values(new WebSocketPair());
      ctx.acceptWebSocket(a, ["b", "a", "b"]);
      ctx.acceptWebSocket(b);
      return [ctx.getTags(a), ctx.getTags(b)];
    })).toEqual([["b", "a"], []]);
  });

  it("more than 10 tags, counting duplicates → Error (215); 256 UTF-8 bytes max (216); not an array (217)", async () => {
    const errors = await inRoom((ctx) => {
      const ws = () => Object.values(new WebSocketPair())[1]!;
      const ten = Array.from({ length: 10 }, (_, i) => `t${i}`);
      ctx.acceptWebSocket(ws(), ten);
      ctx.acceptWebSocket(ws(), ["é".repeat(128)]);
      return [
        thrown(() => ctx.acceptWebSocket(ws(), [...ten, "t10"])),
        thrown(() => ctx.acceptWebSocket(ws(), [...ten, "t0"])),
        thrown(() => ctx.acceptWebSocket(ws(), ["é".repeat(128) + "x"])),
        thrown(() => ctx.acceptWebSocket(ws(), "a" as never)),
      ].map(String);
    });
    expect(errors).toEqual([
      "Error: a Hibernatable WebSocket cannot have more than 10 tags",
      "Error: a Hibernatable WebSocket cannot have more than 10 tags",
      `Error: "${"é".repeat(128)}x" is longer than the max tag length (256 characters).`,
      "TypeError: Failed to execute 'acceptWebSocket' on 'DurableObjectState': parameter 2 is not of type 'Array'.",
    ]);
    expect(await env.ROOM.getByName("room").count()).toBe(2);
  });

  it("getTags of a socket not accepted, or accept()ed → Error (218)", async () => {
    const errors = await inRoom((ctx) => {
      const [, fresh] = Object.values(new WebSocketPair());
      const [, standard] = Object.values(new WebSocketPair());
      standard.accept();
      return [thrown(() => ctx.getTags(fresh)), thrown(() => ctx.getTags(standard))].map(String);
    });
    expect(errors).toEqual([
      "Error: you must call 'acceptWebSocket()' before attempting to access the tags of a WebSocket.",
      "Error: only hibernatable websockets can have tags.",
    ]);
  });

  it("getWebSockets(): newest first; by tag: oldest first; unknown tag → [] (219)", async () => {
    const order = await inRoom((ctx) => {
      const names = new Map<WebSocket, string>();
      for (const [name, tags] of [["one", ["x"]], ["two", ["y"]], ["three", ["x"]]] as const) {
        const [, ws] = Object.values(new WebSocketPair());
        ctx.acceptWebSocket(ws, [...tags]);
        names.set(ws, name);
      }
      const named = (list: WebSocket[]) => list.map((ws) => names.get(ws));
      return [named(ctx.getWebSockets()), named(ctx.getWebSockets("x")), ctx.getWebSockets("nope")];
    });
    expect(order).toEqual([["three", "two", "one"], ["one", "three"], []]);
  });
});

describe("auto-response and event timeout (spec 230–236)", () => {
  it("an exact 'ping' is answered without waking the object; the timestamp is recorded (230–231)", async () => {
    await inRoom((ctx) => ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong")));
    const { ws, received } = await connect();
    const socketTime = () =>
      inRoom((ctx) => ctx.getWebSocketAutoResponseTimestamp(ctx.getWebSockets()[0]!));
    expect(await socketTime()).toBeNull();
    await runtime!.hibernate(env.ROOM.getByName("room"));
    const constructed = Room.constructed;
    const before = Date.now();
    ws.send("ping");
    ws.send(new TextEncoder().encode("ping"));
    await until(() => received.length === 2);
    expect(received[0]).toBe("pong");
    expect(Room.constructed).toBe(constructed + 1); // woken by the binary message, not by "ping"
    expect(Room.seen.map((s) => s[0])).toEqual(["message"]);
    const at = await socketTime();
    expect(at).toBeInstanceOf(Date);
    expect(at!.getTime()).toBeGreaterThanOrEqual(before - 1);
  });

  it("request and response limits in UTF-8 bytes (232); a fresh pair per get, cleared by no argument (233)", async () => {
    expect(String(thrown(() => new WebSocketRequestResponsePair("é".repeat(1024) + "x", "ok")))).toBe(
      "RangeError: Request cannot be larger than 2048 bytes. A request of size 2049 was provided.",
    );
    expect(String(thrown(() => new WebSocketRequestResponsePair("ok", "é".repeat(1025))))).toBe(
      "RangeError: Response cannot be larger than 2048 bytes. A response of size 2050 was provided.",
    );
    const result = await inRoom((ctx) => {
      ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("a", "b"));
      const one = ctx.getWebSocketAutoResponse()!;
      const two = ctx.getWebSocketAutoResponse()!;
      const shape = [one !== two, one.request, one.response, Object.keys(one)];
      ctx.setWebSocketAutoResponse();
      return [...shape, ctx.getWebSocketAutoResponse()];
    });
    expect(result).toEqual([true, "a", "b", [], null]);
  });

  it("event timeout: null until set, 0 or nothing clears, 7 days max (234–235)", async () => {
    const result = await inRoom((ctx) => {
      const seen = [ctx.getHibernatableWebSocketEventTimeout()];
      ctx.setHibernatableWebSocketEventTimeout(1000);
      seen.push(ctx.getHibernatableWebSocketEventTimeout());
      ctx.setHibernatableWebSocketEventTimeout(0);
      seen.push(ctx.getHibernatableWebSocketEventTimeout());
      return [...seen, String(thrown(() => ctx.setHibernatableWebSocketEventTimeout(604_800_001)))];
    });
    expect(result).toEqual([null, 1000, null, "Error: Event timeout should not exceed 604800000 ms."]);
  });
});

describe("attachments (spec 237–242)", () => {
  it("null before any, a fresh clone each call, undefined kept as undefined (237–239)", async () => {
    const result = await inRoom((ctx) => {
      const [, ws] = Object.values(new WebSocketPair());
      ctx.acceptWebSocket(ws);
      const before = ws.deserializeAttachment();
      ws.serializeAttachment({ a: 1 });
      const one = ws.deserializeAttachment();
      const two = ws.deserializeAttachment();
      (one as { a: number }).a = 2;
      const fresh = [two, one !== two];
      ws.serializeAttachment(undefined);
      return [before, ...fresh, ws.deserializeAttachment()];
    });
    expect(result).toEqual([null, { a: 1 }, true, undefined]);
  });

  it("over 16,384 serialized bytes → the verbatim Error; a function → DataCloneError (240–241)", async () => {
    const errors = await inRoom((ctx) => {
      const [, ws] = Object.values(new WebSocketPair());
      ctx.acceptWebSocket(ws);
      ws.serializeAttachment(new Uint8Array(16_370)); // fits
      return [thrown(() => ws.serializeAttachment(new Uint8Array(16_384))), thrown(() => ws.serializeAttachment(() => 1))];
    });
    expect(String(errors[0])).toBe(
      "Error: A WebSocket 'attachment' cannot be larger than 16384 bytes.'attachment' was 16397 bytes.",
    );
    expect(errors[1].name).toBe("DataCloneError");
    expect(errors[1].message).toBe("() => 1 could not be cloned.");
  });
});

describe("close validation (spec 243–245)", () => {
  it("reserved codes, a reason without a code, a reason over 123 bytes", () => {
    const [, ws] = Object.values(new WebSocketPair());
    ws.accept();
    for (const code of [999, 1004, 1005, 1006, 1015, 5000]) {
      const err = thrown(() => ws.close(code));
      expect([err.name, err.message]).toEqual(["InvalidAccessError", `Invalid WebSocket close code: ${code}.`]);
    }
    const noCode = thrown(() => ws.close(undefined, "r"));
    expect([noCode.name, noCode.message]).toEqual([
      "InvalidAccessError",
      "If you specify a WebSocket close reason, you must also specify a code.",
    ]);
    const long = thrown(() => ws.close(1000, "é".repeat(62)));
    expect([long.name, long.message]).toEqual([
      "SyntaxError",
      "WebSocket close reason must not be longer than 123 bytes when UTF-8 encoded.",
    ]);
    ws.close(1000, "x".repeat(123));
    expect(ws.readyState).toBe(2);
  });
});

describe("closing handshake and timeouts (spec 228, 236, 242)", () => {
  it("ws.close() inside webSocketClose is allowed; the client gets that close (228)", async () => {
    const { ws, closes } = await connect();
    ws.close(4001, "close back");
    await until(() => closes.length === 1);
    expect([closes[0]!.code, closes[0]!.reason]).toEqual([4002, "closed back"]);
    expect(Room.seen).toEqual([["close", 4001, "close back", true, 2, 1]]);
  });

  it("the attachment survives hibernation into webSocketClose (242)", async () => {
    const { ws } = await connect("/?name=zoe");
    await runtime!.hibernate(env.ROOM.getByName("room"));
    ws.close(4001, "attachment?");
    await until(() => Room.seen.length === 2);
    expect(Room.seen[1]).toEqual(["attachment", { name: "zoe" }]);
    expect(Room.constructed).toBe(2);
  });

  it("an event running past the event timeout resets the object (236)", async () => {
    const stub = env.ROOM.getByName("room");
    const { ws } = await connect();
    await stub.count(); // binds the stub to this instance
    await inRoom((ctx) => ctx.setHibernatableWebSocketEventTimeout(50));
    ws.send("slow");
    await new Promise((r) => setTimeout(r, 150));
    const err = await rejection(stub.count());
    expect(err.message).toBe("Actor exceeded event execution time and was disconnected.");
    expect(err.durableObjectReset).toBe(true);
  });
});

// Behaviours checked against workerd (Miniflare 4.20260426, compat 2026-05-03) for this suite.
describe("the WebSocket object and Response, as workerd shows them", () => {
  it("pair ends start OPEN, url null, protocol and extensions empty, both sets of constants", () => {
    const [client, server] = Object.values(new WebSocketPair());
    expect([client!.readyState, server!.readyState]).toEqual([1, 1]);
    expect([client!.url, client!.protocol, client!.extensions]).toEqual([null, "", ""]);
    expect([WebSocket.CONNECTING, WebSocket.OPEN, WebSocket.CLOSING, WebSocket.CLOSED]).toEqual([0, 1, 2, 3]);
    expect(WebSocket.READY_STATE_CLOSED).toBe(3);
    expect(String(thrown(() => (WebSocketPair as unknown as () => unknown)()))).toBe(
      "TypeError: Failed to construct 'WebSocketPair': Please use the 'new' operator, this DOM object constructor cannot be called as a function.",
    );
  });

  it("standard sockets: async delivery, binaryType 'blob' by default, messages before accept() wait", async () => {
    const [a, b] = Object.values(new WebSocketPair());
    a!.accept();
    const got: unknown[] = [];
    b!.addEventListener("message", (e) => got.push(e.data));
    a!.send("early");
    b!.accept();
    a!.send(new Uint8Array([1, 2]));
    a!.send(123 as never);
    expect(got).toEqual([]); // nothing synchronously
    b!.binaryType = "bogus" as never;
    expect(b!.binaryType).toBe("blob");
    await until(() => got.length === 3);
    expect(got[0]).toBe("early");
    expect(got[1]).toBeInstanceOf(Blob);
    expect([...new Uint8Array(await (got[1] as Blob).arrayBuffer())]).toEqual([1, 2]);
    expect(got[2]).toBe("123");
    expect(String(thrown(() => (a!.send as () => void)()))).toBe(
      "TypeError: Failed to execute 'send' on 'WebSocket': parameter 1 is not of type 'ArrayBuffer or ArrayBufferView or string'.",
    );
  });

  it("close between standard ends: the peer sees CLOSED in its close event, the closer CLOSING until the reply", async () => {
    const [a, b] = Object.values(new WebSocketPair());
    a!.accept();
    b!.accept();
    const order: unknown[] = [];
    b!.addEventListener("close", (e) => order.push(["b", e.code, e.reason, e.wasClean, a!.readyState, b!.readyState]));
    a!.addEventListener("close", (e) => order.push(["a", e.code, e.reason, e.wasClean, a!.readyState, b!.readyState]));
    a!.close(4001, "bye");
    expect(a!.readyState).toBe(2);
    a!.close(); // a second close is no error
    await until(() => order.length === 2);
    expect(order).toEqual([
      ["b", 4001, "bye", true, 2, 3],
      ["a", 4001, "bye", true, 3, 3],
    ]);
    expect(String(thrown(() => a!.send("x")))).toBe("TypeError: Can't call WebSocket send() after close().");
    expect(String(thrown(() => Object.values(new WebSocketPair())[0]!.close(1000)))).toBe(
      "TypeError: You must call one of accept() or state.acceptWebSocket() on this WebSocket before sending messages.",
    );
  });

  it("Response: 101 needs a WebSocket and no body, a WebSocket needs 101, the handshake cannot be cloned", () => {
    const [client] = Object.values(new WebSocketPair());
    expect(String(thrown(() => new Response(null, { status: 101 })))).toBe(
      "RangeError: Responses may only be constructed with status codes in the range 200 to 599, inclusive.",
    );
    expect(String(thrown(() => new Response(null, { status: 200, webSocket: client })))).toBe(
      "RangeError: Responses with a WebSocket must have status code 101.",
    );
    expect(String(thrown(() => new Response("x", { status: 101, webSocket: client })))).toBe(
      "TypeError: Response with null body status (101, 204, 205, or 304) cannot have a body.",
    );
    expect(String(thrown(() => new Response(null, { status: 101, webSocket: {} as never })))).toBe(
      "TypeError: Incorrect type for the 'webSocket' field on 'InitializerDict': the provided value is not of type 'WebSocket'.",
    );
    const resp = new Response(null, { status: 101, webSocket: client });
    expect([resp.status, resp.ok, resp.statusText]).toEqual([101, false, "Switching Protocols"]);
    expect(String(thrown(() => resp.clone()))).toBe("TypeError: Cannot clone a response to a WebSocket handshake.");
    expect(new Response("plain").clone().status).toBe(200);
  });

  it("acceptWebSocket: not a WebSocket, twice; tags coerced to strings; an attachment set before acceptance is kept", async () => {
    const result = await inRoom((ctx) => {
      const [, ws] = Object.values(new WebSocketPair());
      ws!.serializeAttachment({ early: true });
      ctx.acceptWebSocket(ws!, ["a", 5 as never]);
      return [
        String(thrown(() => ctx.acceptWebSocket("nope" as never))),
        String(thrown(() => ctx.acceptWebSocket(ws!))),
        String(thrown(() => ctx.getTags("x" as never))),
        ctx.getTags(ws!),
        ws!.deserializeAttachment(),
        String(thrown(() => new (WebSocketRequestResponsePair as any)("a"))),
      ];
    });
    expect(result).toEqual([
      "TypeError: Failed to execute 'acceptWebSocket' on 'DurableObjectState': parameter 1 is not of type 'WebSocket'.",
      "Error: Cannot call `acceptWebSocket()` if the WebSocket was already accepted via `accept()`",
      "TypeError: Failed to execute 'getTags' on 'DurableObjectState': parameter 1 is not of type 'WebSocket'.",
      ["a", "5"],
      { early: true },
      "TypeError: Failed to construct 'WebSocketRequestResponsePair': constructor parameter 2 is not of type 'string'.",
    ]);
  });
});

describe("the output gate (spec 98)", () => {
  it("a message sent inside an open transaction leaves only when it commits", async () => {
    const { ws, received } = await connect();
    const start = performance.now();
    ws.send("in-transaction");
    await until(() => received.length === 1);
    expect(received[0]).toBe("sent in a transaction");
    expect(performance.now() - start).toBeGreaterThanOrEqual(95);
  });
});

describe("standard sockets keep their object in memory", () => {
  it("an object with an open accept()ed socket is not evicted when idle; once it closes, it is", async () => {
    await runtime!.dispose();
    Room.constructed = 0;
    runtime = createRuntime({ durableObjects: { ROOM: Room }, idleTimeoutMs: 20 });
    env = runtime.env as Record<string, any>;
    const { ws, received, closes } = await connect("/standard");
    await new Promise((r) => setTimeout(r, 150));
    ws.send("still you?");
    await until(() => received.length === 1);
    expect(received).toEqual(["echo:still you?"]);
    expect(await env.ROOM.getByName("room").count()).toBe(0);
    expect(Room.constructed).toBe(1);
    ws.close(1000, "done");
    await until(() => closes.length === 1);
    await new Promise((r) => setTimeout(r, 150));
    await env.ROOM.getByName("room").count();
    expect(Room.constructed).toBe(2);
  });
});

describe("dispose", () => {
  it("in-process clients of hibernatable sockets get a 1001 close", async () => {
    const { ws, closes } = await connect();
    await runtime!.dispose();
    await until(() => closes.length === 1);
    expect([closes[0]!.code, closes[0]!.reason]).toEqual([1001, "The Durable Object runtime is shutting down."]);
    expect(ws.readyState).toBe(3);
  });
});
