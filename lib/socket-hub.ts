// One runtime's WebSockets as the core keeps them (src/websocket): hibernatable sockets and their
// events, network connections handed over by `runtime.handleUpgrade`, and the batches of frames
// the core's network thread queues for JS.

import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { ActorHost } from "./actor.js";
import { resetError } from "./errors.js";
import { call, native } from "./native.js";
import { WebSocket, type Delivery, type SocketBinding, type SocketHubPort } from "./websocket.js";

const EVENT_TIMEOUT = "Actor exceeded event execution time and was disconnected.";
const GOING_AWAY = "The Durable Object runtime is shutting down.";
/** Sockets of no object: the network ends of standard (accept()ed) sockets. */
const NO_OWNER = 0xffff_ffff;
const KIND = ["text", "binary", "close", "close", "error"] as const;
const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const MAX_TAGS = 10;
const MAX_TAG_BYTES = 256;

export class SocketHub implements SocketHubPort {
  readonly #number: number;
  /** The in-process peer (the end the caller of `stub.fetch` holds) of each hibernatable socket. */
  readonly #localPeers = new Map<number, WebSocket>();
  /** Network ends whose in-process peer is a standard socket: frames go through them. */
  readonly #networkEnds = new Map<number, WebSocket>();
  /** The object of each socket accepted in this process (network events name it themselves). */
  readonly #owners = new Map<number, ActorHost>();
  #freed = false;

  constructor(readonly hostOf: (handle: number) => ActorHost | undefined) {
    this.#number = native.wsHubCreate(this.#wake);
  }

  // —— ctx's hibernation API ——

  /** `ctx.acceptWebSocket(ws, tags)` on behalf of `host`. */
  accept(host: ActorHost, ws: WebSocket, tags: unknown): void {
    const unique = checkTags(tags);
    WebSocket.hibernate(ws, () => ({
      id: call(() => native.wsAdd(this.#number, host.handle, true, unique)),
      hub: this,
      gate: host,
    }));
    const { id } = WebSocket.bindingOf(ws)!;
    host.rememberSocket(id, ws);
    this.#owners.set(id, host);
    const peer = WebSocket.peerOf(ws);
    if (peer !== undefined) this.#localPeers.set(id, peer);
  }

  list(host: ActorHost, tag: string | undefined): WebSocket[] {
    return native.wsList(this.#number, host.handle, tag ?? null).map((id) => this.#face(host, id));
  }

  count(handle: number): number {
    return native.wsCount(this.#number, handle);
  }

  tags(id: number): string[] {
    return call(() => native.wsTags(this.#number, id));
  }

  setAutoResponse(host: ActorHost, pair: { request: string; response: string } | undefined): void {
    native.wsSetAutoResponse(this.#number, host.handle, pair?.request ?? null, pair?.response ?? null);
  }

  autoResponse(host: ActorHost): [string, string] | null {
    return native.wsAutoResponse(this.#number, host.handle) as [string, string] | null;
  }

  autoResponseTimestamp(id: number): number | null {
    return call(() => native.wsAutoResponseAt(this.#number, id));
  }

  setEventTimeout(host: ActorHost, ms: number | null): void {
    native.wsSetEventTimeout(this.#number, host.handle, ms);
  }

  eventTimeout(host: ActorHost): number | null {
    return native.wsEventTimeout(this.#number, host.handle);
  }

  // —— SocketHubPort: what a hibernatable end asks of the hub ——

  receive(id: number, message: Delivery, from: WebSocket | undefined): void {
    if (this.#freed) return;
    if (message.kind === "message" && typeof message.data === "string") {
      const reply = native.wsAutoReply(this.#number, id, message.data);
      if (reply !== null) {
        WebSocket.reply(from, { kind: "message", data: reply }, undefined);
        return;
      }
    }
    const owner = this.#owners.get(id);
    if (owner !== undefined) this.#dispatch(owner, id, message);
  }

  send(id: number, data: string | Uint8Array): void {
    if (this.#freed) return;
    if (typeof data === "string") call(() => native.wsSendText(this.#number, id, data));
    else call(() => native.wsSendBinary(this.#number, id, data));
  }

  close(id: number, code: number | undefined, reason: string): boolean {
    return call(() => native.wsClose(this.#number, id, code ?? null, reason));
  }

  closeSent(id: number): boolean {
    return call(() => native.wsCloseSent(this.#number, id));
  }

  setAttachment(id: number, bytes: Uint8Array): void {
    call(() => native.wsSetAttachment(this.#number, id, bytes));
  }

  attachment(id: number): ArrayBuffer | null {
    return call(() => native.wsAttachment(this.#number, id));
  }

  // —— network ——

  /**
   * Takes over an upgrade request's connection: answers it with `response` (a 101 whose
   * `webSocket` is the client end of a pair) and serves it from the core. A response that is not
   * a WebSocket upgrade is written as a plain HTTP response.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, response: Response): void {
    const ws = (response as { webSocket?: unknown }).webSocket;
    if (response.status !== 101 || !(ws instanceof WebSocket)) {
      writePlainResponse(socket, response);
      return;
    }
    const key = req.headers["sec-websocket-key"];
    if (typeof key !== "string" || key === "") {
      socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    const fd = (socket as { _handle?: { fd?: unknown } })._handle?.fd;
    if (typeof fd !== "number" || fd < 0) {
      throw new TypeError(
        "runtime.handleUpgrade(req, socket, head, response): the socket has no file descriptor (a TLS or in-memory socket); durable-node can take over plain TCP connections only.",
      );
    }
    // Bytes the HTTP parser read past the request and any still buffered in the stream.
    const chunks = [head];
    for (let chunk; (chunk = socket.read()) !== null; ) chunks.push(chunk as Buffer);
    const rawHead = Buffer.from(`HTTP/1.1 101 Switching Protocols\r\n${joinHeaders(upgradeHeaders(key, response))}\r\n`, "latin1");
    this.connectNetwork(ws, (id, hub) => native.wsAttach(hub, id, fd, Buffer.concat(chunks), rawHead));
    socket.destroy();
  }

  /**
   * Gives `ws`, the client end of an upgrade response, to a network connection: `attach(id, hub)`
   * binds the connection to socket `id` of hub number `hub` (a descriptor taken over from Node, or
   * the front door's own upgrade). Its server end stays the object's, hibernatable or standard.
   */
  connectNetwork(ws: WebSocket, attach: (id: number, hub: number) => void): void {
    const server = WebSocket.peerOf(ws)!;
    const hibernatable = WebSocket.bindingOf(server);
    const id = hibernatable?.id ?? call(() => native.wsAdd(this.#number, NO_OWNER, false, []));
    if (hibernatable) {
      this.#localPeers.delete(id);
      this.#owners.delete(id);
    } else this.#networkEnds.set(id, ws);
    call(() => attach(id, this.#number));
    WebSocket.connect(ws, { id, hub: this });
  }

  readonly #wake = (): void => {
    // Called by the core's thread through a threadsafe function: it must never throw.
    try {
      this.#drain();
    } catch (err) {
      console.error("durable-node: failed to deliver WebSocket events", err);
    }
  };

  #drain(): void {
    if (this.#freed) return;
    const batch = native.wsTakeEvents(this.#number);
    for (let i = 0; i < batch.length; i += 5) {
      const id = batch[i] as number;
      const owner = batch[i + 1] as number;
      const kind = KIND[batch[i + 2] as number]!;
      const a = batch[i + 3];
      const message: Delivery =
        kind === "close"
          ? { kind, code: a as number, reason: batch[i + 4] as string, clean: batch[i + 2] === 2 }
          : kind === "error"
            ? { kind, error: new Error(a as string) }
            : { kind: "message", data: a as string | ArrayBuffer };
      const end = this.#networkEnds.get(id);
      if (end !== undefined) {
        if (message.kind !== "message") {
          this.#networkEnds.delete(id);
          native.wsRemove(this.#number, id);
        }
        WebSocket.fromNetwork(end, message);
        continue;
      }
      const host = this.hostOf(owner);
      if (host !== undefined) this.#dispatch(host, id, message);
    }
  }

  /** Runs the object's handler for an event of hibernatable socket `id`, waking the object. */
  #dispatch(host: ActorHost, id: number, message: Delivery): void {
    const done = host.deliverSocketEvent((instance) => {
      const ws = this.#face(host, id);
      const handler = (instance as Record<string, unknown>)[HANDLER[message.kind]];
      if (message.kind === "close") WebSocket.setReadyState(ws, this.closeSent(id) ? 3 : 2);
      if (typeof handler !== "function") return undefined;
      const args =
        message.kind === "message"
          ? [ws, message.data]
          : message.kind === "close"
            ? [ws, message.code, message.reason, message.clean]
            : [ws, message.error];
      return this.#withTimeout(host, () => handler.apply(instance, args));
    });
    if (message.kind === "message") {
      // A throwing webSocketMessage leaves the socket open (spec 226); the error is logged.
      done.catch((err) => console.error("Uncaught (in webSocketMessage)", err));
      return;
    }
    // The socket is listed until its close or error handler has run (spec 220); then the
    // runtime completes the closing handshake and forgets it.
    void done
      .catch(() => {})
      .then(() => this.#finish(host, id, message));
  }

  #finish(host: ActorHost, id: number, message: Delivery): void {
    if (this.#freed) return;
    if (message.kind === "close" && message.clean && !this.closeSent(id)) {
      this.close(id, message.code === 1005 ? undefined : message.code, message.reason);
      const peer = this.#localPeers.get(id);
      WebSocket.reply(peer, message, host.socketIfAlive(id));
    }
    const ws = host.socketIfAlive(id);
    if (ws !== undefined) WebSocket.setReadyState(ws, 3);
    host.forgetSocket(id);
    this.#localPeers.delete(id);
    this.#owners.delete(id);
    native.wsRemove(this.#number, id);
  }

  /** setHibernatableWebSocketEventTimeout: a handler running longer resets the object. */
  #withTimeout(host: ActorHost, run: () => unknown): unknown {
    const limit = this.eventTimeout(host);
    const result = run();
    if (limit === null || !isThenable(result)) return result;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise((_, reject) => {
      timer = setTimeout(() => {
        const error = resetError(new Error(EVENT_TIMEOUT));
        host.reset(error);
        reject(error);
      }, limit);
    });
    return Promise.race([result, expired]).finally(() => clearTimeout(timer));
  }

  /** The current instance's JS face of socket `id`. */
  #face(host: ActorHost, id: number): WebSocket {
    return host.socketFor(id, () => WebSocket.revive({ id, hub: this, gate: host } satisfies SocketBinding, this.#localPeers.get(id)));
  }

  /** Closes every connection, network and in-process, with 1001, and forgets every socket. */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    native.wsHubFree(this.#number);
    const goingAway: Delivery = { kind: "close", code: 1001, reason: GOING_AWAY, clean: true };
    for (const peer of this.#localPeers.values()) WebSocket.reply(peer, goingAway, undefined);
    this.#localPeers.clear();
    this.#owners.clear();
  }
}

const HANDLER = { message: "webSocketMessage", close: "webSocketClose", error: "webSocketError" } as const;

/** The tags as stored: checked per element before duplicates are dropped (spec 214–217). */
function checkTags(tags: unknown): string[] {
  if (tags === undefined) return [];
  if (!Array.isArray(tags)) {
    throw new TypeError("Failed to execute 'acceptWebSocket' on 'DurableObjectState': parameter 2 is not of type 'Array'.");
  }
  const unique: string[] = [];
  tags.forEach((raw, i) => {
    if (i >= MAX_TAGS) throw new Error("a Hibernatable WebSocket cannot have more than 10 tags");
    const tag = String(raw);
    if (Buffer.byteLength(tag, "utf8") > MAX_TAG_BYTES) {
      throw new Error(`"${tag}" is longer than the max tag length (256 characters).`);
    }
    if (!unique.includes(tag)) unique.push(tag);
  });
  return unique;
}

/** The 101 response's headers, `[name, value, …]`: the handshake's and the Worker's own. */
export function upgradeHeaders(key: string, response: Response): string[] {
  const accept = createHash("sha1").update(key + WEBSOCKET_GUID).digest("base64");
  const headers = ["Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Accept", accept];
  for (const [name, value] of response.headers) {
    if (!HOP_BY_HOP.has(name)) headers.push(name, value);
  }
  return headers;
}

function joinHeaders(headers: string[]): string {
  let text = "";
  for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return text;
}

const HOP_BY_HOP = new Set(["upgrade", "connection", "sec-websocket-accept", "content-length", "transfer-encoding"]);

/** The Worker refused the upgrade (a 4xx, say): the client gets that response and the socket closes. */
function writePlainResponse(socket: Duplex, response: Response): void {
  void response.arrayBuffer().then(
    (body) => {
      let head = `HTTP/1.1 ${response.status} ${response.statusText}\r\nConnection: close\r\nContent-Length: ${body.byteLength}\r\n`;
      for (const [name, value] of response.headers) {
        if (!HOP_BY_HOP.has(name)) head += `${name}: ${value}\r\n`;
      }
      socket.end(Buffer.concat([Buffer.from(`${head}\r\n`, "latin1"), Buffer.from(body)]));
    },
    () => socket.destroy(),
  );
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === "function";
}
