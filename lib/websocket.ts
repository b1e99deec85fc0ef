// The Workers WebSocket surface in Node: `WebSocketPair`, `WebSocket` (both ends of a pair, in
// process), `WebSocketRequestResponsePair`, and the events they dispatch.
//
// An end is in one of four modes. "new": not usable yet, what it receives waits in its inbox.
// "accepted" (`accept()`): a standard socket that dispatches events to its listeners.
// "hibernatable" (`ctx.acceptWebSocket()`): its state lives in the core's hub and its events go to
// the object's `webSocketMessage/Close/Error` handlers, waking the object if it hibernated.
// "network": the end returned in a 101 Response and handed to a real connection; what it receives
// is sent to the network peer by the core.

import { dataCloneError } from "./errors.js";
import { deserialize, serialize } from "./values.js";

/** What the runtime's socket hub provides to the ends it serves (see socket-hub.ts). */
export interface SocketBinding {
  readonly id: number;
  readonly hub: SocketHubPort;
  /** The object whose socket it is: what it sends waits for that object's writes (output gate). */
  readonly gate?: OutputGate;
}

export interface OutputGate {
  /** Runs `send` once the object's writes so far are durable; never, if committing them fails. */
  afterWrites(send: () => void): void;
}

export interface SocketHubPort {
  /** An in-process message or close for the hibernatable socket `id`. */
  receive(id: number, message: Delivery, from: WebSocket | undefined): void;
  send(id: number, data: string | Uint8Array): void;
  /** Records our Close frame; true if it had been sent already. */
  close(id: number, code: number | undefined, reason: string): boolean;
  closeSent(id: number): boolean;
  setAttachment(id: number, bytes: Uint8Array): void;
  attachment(id: number): ArrayBuffer | null;
}

export type Delivery =
  | { readonly kind: "message"; readonly data: string | ArrayBuffer }
  | { readonly kind: "close"; readonly code: number; readonly reason: string; readonly clean: boolean }
  | { readonly kind: "error"; readonly error: Error };

type Mode = "new" | "accepted" | "hibernatable" | "network";

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

const MAX_ATTACHMENT_BYTES = 16_384;
const MAX_REASON_BYTES = 123;
/** Only the runtime builds ends; `new WebSocket(url)` is the outgoing client. */
const INTERNAL = Symbol("durable-node.websocket");
const NativeWebSocket = globalThis.WebSocket as (new (url: string | URL, protocols?: string | string[]) => object) | undefined;

const NOT_ACCEPTED =
  "You must call one of accept() or state.acceptWebSocket() on this WebSocket before sending messages.";

export class CloseEvent extends Event {
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;
  constructor(type: string, init: { code?: number; reason?: string; wasClean?: boolean } = {}) {
    super(type);
    this.code = init.code ?? 0;
    this.reason = init.reason ?? "";
    this.wasClean = init.wasClean ?? false;
  }
}

export class ErrorEvent extends Event {
  readonly error: unknown;
  readonly message: string;
  constructor(type: string, init: { error?: unknown; message?: string } = {}) {
    super(type);
    this.error = init.error;
    this.message = init.message ?? (init.error instanceof Error ? init.error.message : "");
  }
}

export class WebSocket extends EventTarget {
  static readonly CONNECTING = CONNECTING;
  static readonly OPEN = OPEN;
  static readonly CLOSING = CLOSING;
  static readonly CLOSED = CLOSED;
  static readonly READY_STATE_CONNECTING = CONNECTING;
  static readonly READY_STATE_OPEN = OPEN;
  static readonly READY_STATE_CLOSING = CLOSING;
  static readonly READY_STATE_CLOSED = CLOSED;

  readonly url: string | null = null;
  readonly protocol: string = "";
  readonly extensions: string = "";

  #mode: Mode = "new";
  #readyState = OPEN;
  /** The other end of the pair while it is in this process. */
  #peer: WebSocket | undefined;
  /** Returned in a Response: it belongs to whoever received that Response (who may accept it). */
  #used = false;
  #inbox: Delivery[] | undefined = [];
  #closeSent = false;
  #binding: SocketBinding | undefined;
  #attachment: Uint8Array | undefined;
  // "blob" since websocket_standard_binary_type (2026-03-17); webSocketMessage always gets ArrayBuffers.
  #binaryType: "blob" | "arraybuffer" = "blob";

  constructor(url: string | URL, protocols?: string | string[]) {
    super();
    if ((url as unknown) === INTERNAL) return;
    // Outside the runtime's own use, `new WebSocket(url)` is an outgoing client, as in Workers.
    if (NativeWebSocket === undefined) {
      throw new TypeError(
        "new WebSocket(url): this Node version has no WebSocket client (Node ≥ 22 has one); use the `ws` package.",
      );
    }
    return new NativeWebSocket(url, protocols) as WebSocket;
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return (
      Function.prototype[Symbol.hasInstance].call(WebSocket, value) ||
      (NativeWebSocket !== undefined && value instanceof NativeWebSocket)
    );
  }

  get readyState(): number {
    return this.#readyState;
  }

  get binaryType(): "blob" | "arraybuffer" {
    return this.#binaryType;
  }

  /** Other values are ignored, as in workerd. */
  set binaryType(value: "blob" | "arraybuffer") {
    if (value === "blob" || value === "arraybuffer") this.#binaryType = value;
  }

  /** Starts a standard socket: events go to its listeners, and the object stays in memory. */
  accept(_options?: { allowHalfOpen?: boolean }): void {
    if (this.#mode === "hibernatable") throw new TypeError("Can't accept() WebSocket after enabling hibernation.");
    if (this.#mode === "accepted") return;
    this.#mode = "accepted";
    this.#flushInbox();
  }

  send(message: ArrayBuffer | ArrayBufferView | string): void {
    if (arguments.length === 0) {
      throw new TypeError(
        "Failed to execute 'send' on 'WebSocket': parameter 1 is not of type 'ArrayBuffer or ArrayBufferView or string'.",
      );
    }
    if (this.#mode === "new" || this.#mode === "network") throw new TypeError(NOT_ACCEPTED);
    if (this.#closeSent || this.#readyState === CLOSED) throw new TypeError("Can't call WebSocket send() after close().");
    const data = messageData(message);
    const binding = this.#binding;
    const deliver = () => {
      if (this.#peer) this.#peer.#receive({ kind: "message", data }, this);
      else binding!.hub.send(binding!.id, typeof data === "string" ? data : new Uint8Array(data));
    };
    if (binding?.gate) binding.gate.afterWrites(deliver);
    else deliver();
  }

  close(code?: number, reason?: string): void {
    const [closeCode, closeReason] = validateClose(code, reason);
    if (this.#mode === "new" || this.#mode === "network") throw new TypeError(NOT_ACCEPTED);
    if (this.#readyState === CLOSED) return;
    const binding = this.#binding;
    const already = this.#mode === "hibernatable" ? binding!.hub.close(binding!.id, closeCode, closeReason) : this.#closeSent;
    if (already || this.#closeSent) return;
    this.#closeSent = true;
    this.#readyState = CLOSING;
    const peer = this.#peer;
    if (peer === undefined) return;
    const deliver = () => peer.#receive({ kind: "close", code: closeCode ?? 1005, reason: closeReason, clean: true }, this);
    if (binding?.gate) binding.gate.afterWrites(deliver);
    else deliver();
  }

  serializeAttachment(value: unknown): void {
    let bytes: Uint8Array;
    try {
      bytes = serialize(value);
    } catch (err) {
      throw err instanceof DOMException ? err : dataCloneError(String((err as Error)?.message ?? err));
    }
    if (bytes.length > MAX_ATTACHMENT_BYTES) {
      throw new Error(
        `A WebSocket 'attachment' cannot be larger than ${MAX_ATTACHMENT_BYTES} bytes.'attachment' was ${bytes.length} bytes.`,
      );
    }
    const binding = this.#binding;
    if (this.#mode === "hibernatable") binding!.hub.setAttachment(binding!.id, bytes);
    else this.#attachment = bytes;
  }

  deserializeAttachment(): unknown {
    const binding = this.#binding;
    if (this.#mode === "hibernatable") {
      const stored = binding!.hub.attachment(binding!.id);
      return stored === null ? null : deserialize(new Uint8Array(stored));
    }
    return this.#attachment === undefined ? null : deserialize(this.#attachment);
  }

  // Event handler properties, as on a browser WebSocket.
  declare onmessage: ((event: MessageEvent) => void) | null;
  declare onclose: ((event: CloseEvent) => void) | null;
  declare onerror: ((event: ErrorEvent) => void) | null;
  declare onopen: ((event: Event) => void) | null;

  /** Something arrives from the other end (or, for a network end, from the core). */
  #receive(message: Delivery, from: WebSocket | undefined): void {
    switch (this.#mode) {
      case "new":
        this.#inbox!.push(message);
        return;
      case "hibernatable":
        this.#binding!.hub.receive(this.#binding!.id, message, from);
        return;
      case "network": {
        // The network end relays what its in-process peer sends to the real client.
        const { hub, id } = this.#binding!;
        if (message.kind === "message") {
          hub.send(id, typeof message.data === "string" ? message.data : new Uint8Array(message.data));
        } else if (message.kind === "close") {
          hub.close(id, message.code === 1005 ? undefined : message.code, message.reason);
        }
        return;
      }
      case "accepted":
        queueMicrotask(() => this.#dispatch(message));
        return;
    }
  }

  #flushInbox(): void {
    const inbox = this.#inbox ?? [];
    this.#inbox = undefined;
    for (const message of inbox) this.#receive(message, this.#peer);
  }

  /** A standard socket's listeners hear of it; a Close is answered automatically. */
  #dispatch(message: Delivery): void {
    if (this.#readyState === CLOSED) return;
    if (message.kind === "message") {
      const data =
        typeof message.data === "string" || this.#binaryType === "arraybuffer" ? message.data : new Blob([message.data]);
      fire(this, new MessageEvent("message", { data }));
      return;
    }
    if (message.kind === "error") {
      this.#readyState = CLOSED;
      fire(this, new ErrorEvent("error", { error: message.error }));
      return;
    }
    // With web_socket_auto_reply_to_close the runtime answers the Close itself; the socket is
    // CLOSED by the time listeners run.
    const reply = !this.#closeSent && message.clean;
    this.#closeSent = true;
    this.#readyState = CLOSED;
    if (reply && this.#peer) this.#peer.#receive({ ...message }, this);
    fire(this, new CloseEvent("close", { code: message.code, reason: message.reason, wasClean: message.clean }));
  }

  // —— used by the runtime (socket-hub.ts, state.ts, response.ts) ——

  /** `ctx.acceptWebSocket(ws)`: checks and marks this end hibernatable, bound to `binding`. */
  static hibernate(ws: WebSocket, bind: () => SocketBinding): void {
    if (ws.#mode === "accepted" || ws.#mode === "hibernatable") {
      throw new Error("Cannot call `acceptWebSocket()` if the WebSocket was already accepted via `accept()`");
    }
    const peer = ws.#peer;
    if (ws.#mode !== "new" || ws.#used || (peer !== undefined && (peer.#mode !== "new" || peer.#used))) {
      throw new Error(
        "Cannot call `acceptWebSocket()` on this WebSocket because its pair has already been accepted or used in a Response.",
      );
    }
    const binding = (ws.#binding = bind());
    ws.#mode = "hibernatable";
    // An attachment set before acceptance now lives with the socket in the core.
    if (ws.#attachment !== undefined) binding.hub.setAttachment(binding.id, ws.#attachment);
    ws.#attachment = undefined;
    ws.#flushInbox();
  }

  /** A Response takes this end to its receiver (spec 211). */
  static claim(ws: WebSocket): void {
    if (ws.#mode === "hibernatable") {
      throw new TypeError("Can't return WebSocket in a Response after calling acceptWebSocket().");
    }
    if (ws.#mode === "accepted") throw new TypeError("Can't return WebSocket in a Response after calling accept().");
    if (ws.#used) throw new TypeError("Can't return WebSocket in a Response that was already used in another Response.");
    ws.#used = true;
  }

  /** The hub's id of a hibernatable end, or undefined. */
  static bindingOf(ws: WebSocket): SocketBinding | undefined {
    return ws.#mode === "hibernatable" ? ws.#binding : undefined;
  }

  /** Runs `fn` once, when the socket has closed or failed. */
  static whenClosed(ws: WebSocket, fn: () => void): void {
    let done = false;
    const once = () => {
      if (!done) fn();
      done = true;
    };
    ws.addEventListener("close", once, { once: true });
    ws.addEventListener("error", once, { once: true });
  }

  static isAccepted(ws: WebSocket): boolean {
    return ws.#mode === "accepted";
  }

  static peerOf(ws: WebSocket): WebSocket | undefined {
    return ws.#peer;
  }

  /** A new JS face for a hibernatable socket, after its object woke from hibernation. */
  static revive(binding: SocketBinding, peer: WebSocket | undefined): WebSocket {
    const ws = new WebSocket(INTERNAL as unknown as string);
    ws.#mode = "hibernatable";
    ws.#inbox = undefined;
    ws.#binding = binding;
    ws.#peer = peer;
    ws.#closeSent = binding.hub.closeSent(binding.id);
    if (ws.#closeSent) ws.#readyState = CLOSING;
    return ws;
  }

  /** Hands this end of a pair to a network connection (`binding`): its peer now talks to it. */
  static connect(ws: WebSocket, binding: SocketBinding): void {
    ws.#mode = "network";
    ws.#binding = binding;
    ws.#flushInbox();
  }

  /** The network end received `message` from the client: its in-process peer gets it. */
  static fromNetwork(ws: WebSocket, message: Delivery): void {
    if (message.kind === "close") {
      ws.#closeSent = true;
      ws.#readyState = CLOSED;
    }
    if (ws.#peer) ws.#peer.#receive(message, ws);
  }

  /** What a hibernatable socket's handlers see of its state around a close. */
  static setReadyState(ws: WebSocket, state: number): void {
    ws.#readyState = state;
    if (state === CLOSED) ws.#closeSent = true;
  }

  /** Answers an auto-response or a close on behalf of a hibernatable end. */
  static reply(ws: WebSocket | undefined, message: Delivery, from: WebSocket | undefined): void {
    if (ws) ws.#receive(message, from);
  }

  static pair(): [WebSocket, WebSocket] {
    const client = new WebSocket(INTERNAL as unknown as string);
    const server = new WebSocket(INTERNAL as unknown as string);
    client.#peer = server;
    server.#peer = client;
    return [client, server];
  }
}

type Listener<E> = ((event: E) => void) | { handleEvent(event: E): void };
type ListenerOptions = Parameters<EventTarget["addEventListener"]>[2];

// The events' own types for listeners, as workers-types gives them.
export interface WebSocket {
  addEventListener(type: "message", listener: Listener<MessageEvent> | null, options?: ListenerOptions): void;
  addEventListener(type: "close", listener: Listener<CloseEvent> | null, options?: ListenerOptions): void;
  addEventListener(type: "error", listener: Listener<ErrorEvent> | null, options?: ListenerOptions): void;
  addEventListener(type: string, listener: Parameters<EventTarget["addEventListener"]>[1], options?: ListenerOptions): void;
}

for (const name of ["message", "close", "error", "open"]) {
  handlerProperty(WebSocket.prototype, name);
}

/** `new WebSocketPair()`: `{0: client, 1: server}`, in that order for Object.values (spec 206). */
export const WebSocketPair = function WebSocketPair(this: unknown) {
  if (!new.target) {
    throw new TypeError(
      "Failed to construct 'WebSocketPair': Please use the 'new' operator, this DOM object constructor cannot be called as a function.",
    );
  }
  const [client, server] = WebSocket.pair();
  const pair = Object.create(WebSocketPair.prototype) as Record<number, WebSocket>;
  pair[0] = client;
  pair[1] = server;
  return pair;
} as unknown as new () => { 0: WebSocket; 1: WebSocket };

export class WebSocketRequestResponsePair {
  readonly #request: string;
  readonly #response: string;
  constructor(request: string, response: string) {
    if (arguments.length < 2) {
      throw new TypeError(
        `Failed to construct 'WebSocketRequestResponsePair': constructor parameter ${arguments.length + 1} is not of type 'string'.`,
      );
    }
    this.#request = String(request);
    this.#response = String(response);
    if (utf8Length(this.#request) > 2048) {
      throw new RangeError(
        `Request cannot be larger than 2048 bytes. A request of size ${utf8Length(this.#request)} was provided.`,
      );
    }
    if (utf8Length(this.#response) > 2048) {
      throw new RangeError(
        `Response cannot be larger than 2048 bytes. A response of size ${utf8Length(this.#response)} was provided.`,
      );
    }
  }
  get request(): string {
    return this.#request;
  }
  get response(): string {
    return this.#response;
  }
}

/** What crosses: a copy of binary data; anything else as its string (workerd sends `123` as "123"). */
function messageData(message: unknown): string | ArrayBuffer {
  if (message instanceof ArrayBuffer) return message.slice(0);
  if (ArrayBuffer.isView(message)) {
    const view = new Uint8Array(message.buffer, message.byteOffset, message.byteLength);
    return view.slice().buffer;
  }
  return String(message);
}

/** The close code and reason as sent, or the exact DOMException (spec 243–245). */
function validateClose(code: number | undefined, reason: string | undefined): [number | undefined, string] {
  if (code === undefined) {
    if (reason !== undefined) {
      throw new DOMException("If you specify a WebSocket close reason, you must also specify a code.", "InvalidAccessError");
    }
    return [undefined, ""];
  }
  const n = Number(code);
  const valid = Number.isInteger(n) && n >= 1000 && n < 5000 && n !== 1004 && n !== 1005 && n !== 1006 && n !== 1015;
  if (!valid) throw new DOMException(`Invalid WebSocket close code: ${code}.`, "InvalidAccessError");
  const text = reason === undefined ? "" : String(reason);
  if (utf8Length(text) > MAX_REASON_BYTES) {
    throw new DOMException("WebSocket close reason must not be longer than 123 bytes when UTF-8 encoded.", "SyntaxError");
  }
  return [n, text];
}

export function utf8Length(text: string): number {
  return Buffer.byteLength(text, "utf8");
}

function fire(target: EventTarget, event: Event): void {
  try {
    target.dispatchEvent(event);
  } catch (err) {
    queueMicrotask(() => {
      throw err;
    });
  }
}

/** `ws.onmessage = fn` and friends: one listener per property, replaced on assignment. */
function handlerProperty(proto: object, type: string): void {
  const slot = new WeakMap<EventTarget, (event: Event) => void>();
  const handlers = new WeakMap<EventTarget, unknown>();
  Object.defineProperty(proto, `on${type}`, {
    configurable: true,
    enumerable: true,
    get(this: EventTarget) {
      return handlers.get(this) ?? null;
    },
    set(this: EventTarget, fn: unknown) {
      const old = slot.get(this);
      if (old) this.removeEventListener(type, old);
      handlers.set(this, typeof fn === "function" ? fn : null);
      if (typeof fn !== "function") return;
      const listener = (event: Event) => (fn as (e: Event) => void).call(this, event);
      slot.set(this, listener);
      this.addEventListener(type, listener);
    },
  });
}
