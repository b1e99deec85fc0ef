// Workers globals that DO code relies on and Node lacks: `scheduler.wait`, `navigator.userAgent`,
// `Promise.withResolvers` (Node 20), `WebSocketPair` and its `WebSocket`, and a `Response` that
// takes status 101 with a WebSocket.

import { workersResponse } from "./response.js";
import { CloseEvent, ErrorEvent, WebSocket, WebSocketPair, WebSocketRequestResponsePair } from "./websocket.js";

declare global {
  // eslint-disable-next-line no-var
  var scheduler: { wait(ms: number): Promise<void> };
}

const g = globalThis as Record<string, unknown>;

if (typeof (g.scheduler as { wait?: unknown } | undefined)?.wait !== "function") {
  const scheduler = (g.scheduler as Record<string, unknown> | undefined) ?? {};
  scheduler.wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
  g.scheduler = scheduler;
}

// Node ≥ 21 has a navigator whose userAgent names Node; code that detects Workers looks for this.
if (g.navigator === undefined) {
  Object.defineProperty(globalThis, "navigator", { value: {}, writable: true, configurable: true });
}
Object.defineProperty(g.navigator as object, "userAgent", {
  value: "Cloudflare-Workers",
  configurable: true,
  enumerable: true,
});

// ES2024, which workerd has and Node gained in 22: Workers code (and its tests) use it freely.
if (typeof (Promise as { withResolvers?: unknown }).withResolvers !== "function") {
  Object.defineProperty(Promise, "withResolvers", {
    value: function withResolvers<T>(this: PromiseConstructor) {
      let resolve!: (value: T | PromiseLike<T>) => void;
      let reject!: (reason?: unknown) => void;
      const promise = new this<T>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
    writable: true,
    configurable: true,
  });
}

/** Node's own global Response (a lazy accessor in Node), which ours extends once it is made. */
const nodeResponse = Object.getOwnPropertyDescriptor(globalThis, "Response");

/**
 * An accessor that makes the value on first read and then becomes that value, as Node's fetch
 * globals do; assigning replaces it, as assigning to Node's does. (Node's own getter also sets
 * its global when first read, hence the define after `make`.)
 */
function defineLazily(name: string, make: () => unknown): void {
  Object.defineProperty(globalThis, name, {
    get() {
      const value = make();
      define(name, value);
      return value;
    },
    set(value: unknown) {
      define(name, value);
    },
    configurable: true,
    enumerable: false,
  });
}

function define(name: string, value: unknown): void {
  Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
}

define("WebSocketPair", WebSocketPair);
define("WebSocketRequestResponsePair", WebSocketRequestResponsePair);
// Ours builds pair ends; `new WebSocket(url)` still makes Node's client where Node has one.
define("WebSocket", WebSocket);
defineLazily("Response", () =>
  workersResponse(() => (nodeResponse?.get ? nodeResponse.get.call(globalThis) : nodeResponse?.value) as typeof Response),
);
if (typeof g.CloseEvent !== "function") define("CloseEvent", CloseEvent);
if (typeof g.ErrorEvent !== "function") define("ErrorEvent", ErrorEvent);

export {};
