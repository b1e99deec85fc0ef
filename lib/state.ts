// DurableObjectState (`ctx`): the object's handle on its id, storage and lifecycle.

import type { ActorHost } from "./actor.js";
import { argumentTypeError, resetError } from "./errors.js";
import type { DurableObjectId } from "./id.js";
import type { DurableObjectStorage } from "./storage.js";
import { WebSocket, WebSocketRequestResponsePair } from "./websocket.js";

const MAX_EVENT_TIMEOUT_MS = 604_800_000;

export class DurableObjectState {
  // Lazy own properties, defined in the constructor (types only here).
  declare readonly facets: DurableObjectFacets;
  declare readonly container: undefined;
  declare readonly storage: DurableObjectStorage;
  declare readonly id: DurableObjectId;
  declare readonly props: Record<string, unknown>;
  declare readonly exports: Record<string, unknown>;
  readonly #host: ActorHost;

  /** @internal built by the runtime for each new instance. */
  constructor(host: ActorHost, id: unknown, exports: object | undefined) {
    if (!host || typeof host.critical !== "function") throw new TypeError("Illegal constructor");
    this.#host = host;
    // Own enumerable, lazily built and then memoised, in Cloudflare's order (spec 2–3).
    lazy(this, "facets", () => new DurableObjectFacets());
    lazy(this, "container", () => undefined);
    lazy(this, "storage", () => host.storage(this));
    lazy(this, "id", () => id);
    lazy(this, "props", () => ({}));
    // Without enable_ctx_exports (a compatibility date before 2025-11-17), there is no such property.
    if (exports !== undefined) lazy(this, "exports", () => exports);
  }

  waitUntil(promise: Promise<unknown>): void {
    this.#host.keepAlive(this, promise);
  }

  blockConcurrencyWhile<T>(callback: () => T | Promise<T>): Promise<T> {
    if (typeof callback !== "function") {
      throw argumentTypeError("blockConcurrencyWhile", "DurableObjectState", 1, "function");
    }
    return this.#host.critical(this, callback);
  }

  acceptWebSocket(ws: WebSocket, tags?: string[]): void {
    this.#host.assertCurrent(this);
    if (!isWebSocket(ws)) throw argumentTypeError("acceptWebSocket", "DurableObjectState", 1, "WebSocket");
    this.#host.system.sockets.accept(this.#host, ws, tags);
  }

  getWebSockets(tag?: string): WebSocket[] {
    this.#host.assertCurrent(this);
    return this.#host.system.sockets.list(this.#host, tag === undefined ? undefined : String(tag));
  }

  setWebSocketAutoResponse(maybeReqResp?: WebSocketRequestResponsePair): void {
    this.#host.assertCurrent(this);
    if (maybeReqResp !== undefined && !(maybeReqResp instanceof WebSocketRequestResponsePair)) {
      throw argumentTypeError("setWebSocketAutoResponse", "DurableObjectState", 1, "WebSocketRequestResponsePair");
    }
    this.#host.system.sockets.setAutoResponse(this.#host, maybeReqResp);
  }

  getWebSocketAutoResponse(): WebSocketRequestResponsePair | null {
    const pair = this.#host.system.sockets.autoResponse(this.#host);
    return pair === null ? null : new WebSocketRequestResponsePair(pair[0], pair[1]);
  }

  getWebSocketAutoResponseTimestamp(ws: WebSocket): Date | null {
    if (!isWebSocket(ws)) {
      throw argumentTypeError("getWebSocketAutoResponseTimestamp", "DurableObjectState", 1, "WebSocket");
    }
    const binding = WebSocket.bindingOf(ws);
    const time = binding === undefined ? null : this.#host.system.sockets.autoResponseTimestamp(binding.id);
    return time === null ? null : new Date(time);
  }

  setHibernatableWebSocketEventTimeout(timeoutMs?: number): void {
    let ms: number | null = null;
    if (timeoutMs !== undefined && timeoutMs !== 0) {
      if (timeoutMs > MAX_EVENT_TIMEOUT_MS) throw new Error("Event timeout should not exceed 604800000 ms.");
      ms = Number(timeoutMs);
    }
    this.#host.system.sockets.setEventTimeout(this.#host, ms);
  }

  getHibernatableWebSocketEventTimeout(): number | null {
    return this.#host.system.sockets.eventTimeout(this.#host);
  }

  getTags(ws: WebSocket): string[] {
    if (!isWebSocket(ws)) throw argumentTypeError("getTags", "DurableObjectState", 1, "WebSocket");
    const binding = WebSocket.bindingOf(ws);
    if (binding === undefined) {
      if (WebSocket.isAccepted(ws)) throw new Error("only hibernatable websockets can have tags.");
      throw new Error("you must call 'acceptWebSocket()' before attempting to access the tags of a WebSocket.");
    }
    return this.#host.system.sockets.tags(binding.id);
  }

  /** Resets the object: every pending call fails with the reason; this call never returns. */
  abort(reason?: string, options?: { retryAlarm?: boolean }): never {
    const message = reason === undefined ? "Application called abort() to reset Durable Object." : String(reason);
    const error = resetError(new Error(message));
    if (options?.retryAlarm === false) this.#host.noAlarmRetry();

    if (this.#host.isCurrent(this)) this.#host.reset(error);
    throw error;
  }
}
moveConstructorLast(DurableObjectState.prototype);

/** Facets need a host that supports them; workerd's answer where it does not (spec 251). */
const NO_FACETS = "This Durable Object does not support creating facets.";

export class DurableObjectFacets {
  get(_name: string, _startup: unknown): never {
    throw new Error(NO_FACETS);
  }
  abort(_name: string, _reason: unknown): never {
    throw new Error(NO_FACETS);
  }
  delete(_name: string): never {
    throw new Error(NO_FACETS);
  }
  clone(_src: string, _dst: string): never {
    throw new Error(NO_FACETS);
  }
}

/** An own enumerable property built on first read, then memoised (spec 2–3). */
export function lazy(target: object, name: string, make: () => unknown): void {
  Object.defineProperty(target, name, {
    enumerable: true,
    configurable: true,
    get() {
      const value = make();
      Object.defineProperty(target, name, { value, enumerable: true, configurable: true, writable: false });
      return value;
    },
  });
}

/** workerd lists `constructor` after the methods (`Object.getOwnPropertyNames(proto)`). */
export function moveConstructorLast(proto: object): void {
  const desc = Object.getOwnPropertyDescriptor(proto, "constructor")!;
  delete (proto as { constructor?: unknown }).constructor;
  Object.defineProperty(proto, "constructor", desc);
}

/** An end of a WebSocketPair (not Node's own client, which the global WebSocket also recognises). */
function isWebSocket(value: unknown): value is WebSocket {
  return Function.prototype[Symbol.hasInstance].call(WebSocket, value);
}
