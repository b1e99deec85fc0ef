// JS side of the core's HTTP front door (`src/http`): turns the core's request events into fetch
// Requests, hands them to a handler, and sends its Responses back — whole when the body is a
// string the Response was built with, streamed otherwise, WebSocket upgrades to the socket hub.

import { native } from "../native.js";
import { wholeBody } from "../response.js";
import type { SocketHub } from "../socket-hub.js";
import { upgradeHeaders } from "../socket-hub.js";
import { WebSocket } from "../websocket.js";

export type RequestHandler = (request: Request) => Promise<Response>;

const enum Kind {
  Request = 0,
  RequestWithBody = 1,
  Chunk = 2,
  End = 3,
  Failed = 4,
  Drain = 5,
}

/** Headers the core's HTTP layer sets itself from the body it is given. */
const FRAMING = new Set(["connection", "keep-alive", "transfer-encoding", "content-length"]);

/** A request between its head and the end of its response. */
interface Exchange {
  readonly abort: AbortController;
  body?: ReadableStreamDefaultController<Uint8Array>;
  /** Resolves when a streamed response may be written again (drain) or must stop (client gone). */
  drained?: () => void;
  gone: boolean;
}

export interface FrontDoorOptions {
  ip: string;
  port: number;
  handler: RequestHandler;
  sockets: SocketHub;
  /** `request.cf`, as wrangler dev gives it. */
  cf: Record<string, unknown>;
}

export class FrontDoor {
  readonly #number: number;
  readonly port: number;
  readonly #exchanges = new Map<number, Exchange>();
  #closed = false;

  constructor(readonly options: FrontDoorOptions) {
    this.#number = native.httpListen(options.ip, options.port, this.#wake);
    this.port = native.httpPort(this.#number);
  }

  /** Stops listening; WebSockets already handed to the runtime stay open. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    native.httpClose(this.#number);
    for (const exchange of this.#exchanges.values()) this.#fail(exchange, "durable-node dev is shutting down.");
    this.#exchanges.clear();
  }

  readonly #wake = (): void => {
    // Called through a threadsafe function: must not throw.
    try {
      if (!this.#closed) this.#drain();
    } catch (err) {
      console.error("durable-node: failed to handle HTTP events", err);
    }
  };

  #drain(): void {
    const events = native.httpTakeEvents(this.#number);
    for (let i = 0; i < events.length; i += 3) {
      const id = events[i] as number;
      const kind = events[i + 1] as Kind;
      const a = events[i + 2];
      if (kind === Kind.Request || kind === Kind.RequestWithBody) {
        this.#start(id, a as string[], kind === Kind.RequestWithBody);
        continue;
      }
      const exchange = this.#exchanges.get(id);
      if (exchange === undefined) continue;
      switch (kind) {
        case Kind.Chunk:
          exchange.body?.enqueue(new Uint8Array(a as ArrayBuffer));
          break;
        case Kind.End:
          exchange.body?.close();
          exchange.body = undefined;
          break;
        case Kind.Failed:
          this.#exchanges.delete(id);
          this.#fail(exchange, a as string);
          break;
        case Kind.Drain:
          exchange.drained?.();
          break;
      }
    }
  }

  #start(id: number, head: string[], hasBody: boolean): void {
    const [method, target, client] = head as [string, string, string];
    const headers = new Headers();
    for (let i = 3; i < head.length; i += 2) headers.append(head[i]!, head[i + 1]!);
    // As on Cloudflare, the client's address.
    if (!headers.has("cf-connecting-ip")) headers.set("cf-connecting-ip", client);
    const exchange: Exchange = { abort: new AbortController(), gone: false };
    this.#exchanges.set(id, exchange);

    let request: Request;
    try {
      const url = target.startsWith("/")
        ? `http://${headers.get("host") ?? `${this.options.ip}:${this.port}`}${target}`
        : target;
      const withBody = hasBody && method !== "GET" && method !== "HEAD";
      request = new Request(url, {
        method,
        headers,
        body: withBody ? this.#bodyStream(id, exchange) : null,
        signal: exchange.abort.signal,
        duplex: "half",
      } as RequestInit);
      Object.defineProperty(request, "cf", { value: this.options.cf, enumerable: false });
    } catch (err) {
      // A head Node's fetch classes refuse (a bad URL or method): the client gets a 400.
      this.#respond(id, exchange, new Response(`Bad request: ${(err as Error).message}\n`, { status: 400 }), undefined);
      return;
    }
    void this.options.handler(request).then((response) => this.#respond(id, exchange, response, request));
  }

  #bodyStream(id: number, exchange: Exchange): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          exchange.body = controller;
        },
        // The core reads a few chunks ahead, then one more per pull: a fast client waits in TCP.
        pull: () => {
          if (!this.#closed) native.httpPull(this.#number, id);
        },
        cancel: () => {
          exchange.body = undefined;
        },
      },
      { highWaterMark: 0 },
    );
  }

  #respond(id: number, exchange: Exchange, response: Response, request: Request | undefined): void {
    if (this.#closed || exchange.gone) return;
    try {
      const ws = (response as { webSocket?: unknown }).webSocket;
      if (response.status === 101 && ws instanceof WebSocket) {
        this.#upgrade(id, response, ws, request);
        return;
      }
      const headers: string[] = [];
      for (const [name, value] of response.headers) if (!FRAMING.has(name)) headers.push(name, value);
      const text = wholeBody(response);
      if (text !== undefined || response.body === null || request?.method === "HEAD") {
        this.#exchanges.delete(id);
        native.httpRespond(this.#number, id, response.status, headers, text === undefined ? null : Buffer.from(text), false);
        return;
      }
      const length = response.headers.get("content-length");
      if (length !== null) headers.push("content-length", length);
      native.httpRespond(this.#number, id, response.status, headers, null, true);
      void this.#stream(id, exchange, response.body);
    } catch (err) {
      this.#exchanges.delete(id);
      console.error("durable-node: could not send the response", err);
      try {
        native.httpRespond(this.#number, id, 500, [], Buffer.from(`${(err as Error).message}\n`), false);
      } catch {
        // Already answered: nothing more to send.
      }
    }
  }

  #upgrade(id: number, response: Response, ws: WebSocket, request: Request | undefined): void {
    const key = request?.headers.get("sec-websocket-key");
    this.#exchanges.delete(id);
    if (!key) {
      native.httpRespond(this.#number, id, 400, [], Buffer.from("Expected a WebSocket upgrade request\n"), false);
      return;
    }
    this.options.sockets.connectNetwork(ws, (socket, hub) =>
      native.httpUpgrade(this.#number, id, upgradeHeaders(key, response), hub, socket),
    );
  }

  async #stream(id: number, exchange: Exchange, body: ReadableStream<Uint8Array>): Promise<void> {
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (exchange.gone) {
          void reader.cancel().catch(() => {});
          return;
        }
        if (done) break;
        if (!native.httpWrite(this.#number, id, value)) {
          await new Promise<void>((resolve) => (exchange.drained = resolve));
          exchange.drained = undefined;
          if (exchange.gone) {
            void reader.cancel().catch(() => {});
            return;
          }
        }
      }
      this.#exchanges.delete(id);
      native.httpEnd(this.#number, id, null);
    } catch (err) {
      this.#exchanges.delete(id);
      console.error("durable-node: the response body failed", err);
      native.httpEnd(this.#number, id, (err as Error)?.message ?? String(err));
    }
  }

  /** The client went away (or the server is closing): the request's signal aborts. */
  #fail(exchange: Exchange, message: string): void {
    exchange.gone = true;
    exchange.body?.error(new Error(message));
    exchange.body = undefined;
    exchange.drained?.();
    exchange.abort.abort(new Error(message));
  }
}
