// DurableObjectState (`ctx`): the object's handle on its id, storage and lifecycle.

import type { ActorHost } from "./actor.js";
import { argumentTypeError, resetError } from "./errors.js";
import type { DurableObjectId } from "./id.js";
import type { DurableObjectStorage } from "./storage.js";

const MAX_EVENT_TIMEOUT_MS = 604_800_000;

// WebSocket hibernation is not built yet (issue 5); these methods say so instead of pretending.
function webSocketsNotYet(method: string): Error {
  return new Error(`ctx.${method}() is not supported yet by durable-node: hibernatable WebSockets are not implemented.`);
}

export class DurableObjectState {
  // Lazy own properties, defined in the constructor (types only here).
  declare readonly facets: DurableObjectFacets;
  declare readonly container: undefined;
  declare readonly storage: DurableObjectStorage;
  declare readonly id: DurableObjectId;
  declare readonly props: Record<string, unknown>;
  declare readonly exports: Record<string, unknown>;
  readonly #host: ActorHost;
  #eventTimeoutMs: number | null = null;

  /** @internal built by the runtime for each new instance. */
  constructor(host: ActorHost, id: unknown, exports: object) {
    if (!host || typeof host.critical !== "function") throw new TypeError("Illegal constructor");
    this.#host = host;
    // Own enumerable, lazily built and then memoised, in Cloudflare's order (spec 2–3).
    lazy(this, "facets", () => new DurableObjectFacets());
    lazy(this, "container", () => undefined);
    lazy(this, "storage", () => host.storage(this));
    lazy(this, "id", () => id);
    lazy(this, "props", () => ({}));
    lazy(this, "exports", () => exports);
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

  acceptWebSocket(_ws: unknown, _tags?: string[]): void {
    throw webSocketsNotYet("acceptWebSocket");
  }

  getWebSockets(_tag?: string): never {
    throw webSocketsNotYet("getWebSockets");
  }

  setWebSocketAutoResponse(_pair?: unknown): void {
    throw webSocketsNotYet("setWebSocketAutoResponse");
  }

  getWebSocketAutoResponse(): never {
    throw webSocketsNotYet("getWebSocketAutoResponse");
  }

  getWebSocketAutoResponseTimestamp(_ws: unknown): never {
    throw webSocketsNotYet("getWebSocketAutoResponseTimestamp");
  }

  setHibernatableWebSocketEventTimeout(timeoutMs?: number): void {
    if (timeoutMs === undefined || timeoutMs === 0) {
      this.#eventTimeoutMs = null;
      return;
    }
    if (timeoutMs > MAX_EVENT_TIMEOUT_MS) throw new Error("Event timeout should not exceed 604800000 ms.");
    this.#eventTimeoutMs = timeoutMs;
  }

  getHibernatableWebSocketEventTimeout(): number | null {
    return this.#eventTimeoutMs;
  }

  getTags(_ws: unknown): never {
    throw webSocketsNotYet("getTags");
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
