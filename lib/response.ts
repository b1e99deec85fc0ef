// A `Response` that also takes Workers' WebSocket upgrades: `new Response(null, { status: 101,
// webSocket })`. Node's own Response refuses status 101; this one keeps every other behaviour
// (it extends Node's) and still recognises Node's responses (`fetch()` results) as instances.

import { WebSocket } from "./websocket.js";

const NodeResponse = globalThis.Response;

export interface WorkersResponseInit extends ResponseInit {
  webSocket?: WebSocket | null;
}

/** Responses built with status 101; Node's Response holds 200 for them. */
const switching = new WeakSet<object>();

export class Response extends NodeResponse {
  readonly #webSocket: WebSocket | null;

  constructor(body?: ConstructorParameters<typeof NodeResponse>[0], init?: WorkersResponseInit) {
    const upgrade = init?.status === 101;
    super(body, upgrade ? { ...init, status: 200 } : init);
    const webSocket = init?.webSocket ?? null;
    if (webSocket !== null) {
      if (!(webSocket instanceof WebSocket)) {
        throw new TypeError("Failed to construct 'Response': webSocket must be a WebSocket.");
      }
      if (!upgrade) throw new RangeError("Responses with a WebSocket must have status code 101.");
      WebSocket.claim(webSocket);
    }
    if (upgrade) switching.add(this);
    this.#webSocket = webSocket;
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return Function.prototype[Symbol.hasInstance].call(NodeResponse, value);
  }

  get webSocket(): WebSocket | null {
    return this.#webSocket;
  }
}

// `status` and `ok` are accessors of Node's Response; a 101 answers for itself.
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
});
