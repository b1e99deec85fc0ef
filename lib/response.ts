// A `Response` that also takes Workers' WebSocket upgrades: `new Response(null, { status: 101,
// webSocket })`. Node's own Response refuses status 101; this one keeps every other behaviour
// (it extends Node's) and still recognises Node's responses (`fetch()` results) as instances.
//
// It is made on first use, as Node makes its own: Node's Response is its bundled undici, which
// takes tens of milliseconds to load, and an app that never touches a Response need not pay that
// when it starts.

import { WebSocket } from "./websocket.js";

export interface WorkersResponseInit extends ResponseInit {
  webSocket?: WebSocket | null;
}

/** Responses built with status 101; Node's Response holds 200 for them. */
const switching = new WeakSet<object>();
/**
 * The body each response was built with, when it is a string (see wholeBody). Not bytes: Node
 * copies those at construction, and the caller may change its buffer afterwards.
 */
const wholeBodies = new WeakMap<object, string>();

export type WorkersResponse = ReturnType<typeof extend>;
let made: WorkersResponse | undefined;

/** The Workers `Response` class, made the first time it is asked for, over `nodeResponse()`. */
export function workersResponse(nodeResponse: () => typeof globalThis.Response): WorkersResponse {
  made ??= extend(nodeResponse());
  return made;
}

function extend(NodeResponse: typeof globalThis.Response) {
  class Response extends NodeResponse {
    readonly #webSocket: WebSocket | null;

    constructor(body?: ConstructorParameters<typeof NodeResponse>[0], init?: WorkersResponseInit) {
      const webSocket = init?.webSocket ?? null;
      const upgrade = init?.status === 101;
      if (webSocket !== null && !(webSocket instanceof WebSocket)) {
        throw new TypeError(
          "Incorrect type for the 'webSocket' field on 'InitializerDict': the provided value is not of type 'WebSocket'.",
        );
      }
      if (webSocket !== null && !upgrade) throw new RangeError("Responses with a WebSocket must have status code 101.");
      if (upgrade && webSocket === null) {
        throw new RangeError("Responses may only be constructed with status codes in the range 200 to 599, inclusive.");
      }
      if (upgrade && body !== null && body !== undefined) {
        throw new TypeError("Response with null body status (101, 204, 205, or 304) cannot have a body.");
      }
      super(body, upgrade ? { ...init, status: 200, statusText: "Switching Protocols" } : init);
      if (webSocket !== null) WebSocket.claim(webSocket);
      if (upgrade) switching.add(this);
      if (typeof body === "string") wholeBodies.set(this, body);
      this.#webSocket = webSocket;
    }

    // Node's Response.json builds a base Response; this one goes through the constructor above.
    static override json(data: unknown, init?: ResponseInit): Response {
      const text = JSON.stringify(data);
      if (text === undefined) throw new TypeError("Value is not JSON serializable");
      const headers = new Headers(init?.headers);
      if (!headers.has("content-type")) headers.set("content-type", "application/json");
      return new this(text, { ...init, headers });
    }

    static override [Symbol.hasInstance](value: unknown): boolean {
      return Function.prototype[Symbol.hasInstance].call(NodeResponse, value);
    }

    get webSocket(): WebSocket | null {
      return this.#webSocket;
    }
  }

  // `status` and `ok` are accessors of Node's Response (and `clone` its method); a 101 answers for itself.
  const base = Object.getOwnPropertyDescriptors(NodeResponse.prototype);
  Object.defineProperties(Response.prototype, {
    status: {
      configurable: true,
      get(this: Response) {
        return switching.has(this) ? 101 : base.status!.get!.call(this);
      },
    },
    ok: {
      configurable: true,
      get(this: Response) {
        return switching.has(this) ? false : base.ok!.get!.call(this);
      },
    },
    clone: {
      configurable: true,
      writable: true,
      value(this: Response) {
        if (switching.has(this)) throw new TypeError("Cannot clone a response to a WebSocket handshake.");
        return (base.clone!.value as () => unknown).call(this);
      },
    },
  });
  return Response;
}

/**
 * The text `response` was built with, if nobody has read its body yet: a server can send it as
 * is instead of reading the stream Node made of it.
 */
export function wholeBody(response: globalThis.Response): string | undefined {
  const body = wholeBodies.get(response);
  return body === undefined || response.bodyUsed || response.body?.locked ? undefined : body;
}
