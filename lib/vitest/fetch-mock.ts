// `fetchMock` of `cloudflare:test`: an undici MockAgent for the Worker's outbound fetch(), as
// Cloudflare's classic pool gives it — inactive until `activate()`, a fresh one for each test file.
//
// The Worker's code calls the global fetch(), which is patched once per process: while the
// current file's agent is inactive (or was never used) the call is Node's own fetch, untouched;
// once active, the request goes through undici's fetch with the agent as its dispatcher, and the
// answer comes back as a global Response. SELF.fetch() and stub.fetch() never use the global
// fetch, so they are not mocked.

import { createRequire } from "node:module";
import type { MockAgent } from "undici";

type Undici = typeof import("undici");

let undici: Undici | undefined;
// Loaded on first use, synchronously (undici is CommonJS): fetchMock is used without awaiting.
const loadUndici = (): Undici => (undici ??= createRequire(import.meta.url)("undici") as Undici);

/** One test file's agent: created on first use, so a file that never mocks never loads undici. */
export class FetchMock {
  #agent: MockAgent | undefined;
  #active = false;

  get agent(): MockAgent {
    if (this.#agent === undefined) {
      this.#agent = new (loadUndici().MockAgent)();
      const agent = this.#agent;
      // MockAgent keeps its activation private; ours is read by the patched fetch.
      const activate = agent.activate.bind(agent);
      const deactivate = agent.deactivate.bind(agent);
      agent.activate = () => {
        this.#active = true;
        activate();
      };
      agent.deactivate = () => {
        this.#active = false;
        deactivate();
      };
    }
    return this.#agent;
  }

  get active(): boolean {
    return this.#active;
  }

  /** Closes the agent, if the file made one. */
  async close(): Promise<void> {
    this.#active = false;
    await this.#agent?.close();
  }

  /** The request through the agent: its interceptors answer, or the network if it allows. */
  async fetch(input: Request | string | URL, init: RequestInit | undefined): Promise<Response> {
    const request = new Request(input, init);
    let response;
    try {
      response = await loadUndici().fetch(request.url, {
        method: request.method,
        headers: [...request.headers],
        body: await bodyOf(request),
        redirect: request.redirect,
        signal: request.signal as never,
        dispatcher: this.agent,
      });
    } catch (err) {
      // undici wraps dispatch errors in "fetch failed"; the pool surfaces the mock's own error.
      const cause = (err as { cause?: { code?: string } }).cause;
      if (cause?.code?.startsWith("UND_MOCK_ERR")) throw cause;
      throw err;
    }
    return new Response(response.body as ReadableStream | null, {
      status: response.status,
      statusText: response.statusText,
      headers: [...response.headers],
    });
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The body read whole: interceptors match a `body` against text, so text goes as a string, and
 * only what is not UTF-8 as bytes.
 */
async function bodyOf(request: Request): Promise<string | Uint8Array | undefined> {
  if (request.body === null) return undefined;
  const bytes = new Uint8Array(await request.arrayBuffer());
  try {
    return utf8.decode(bytes);
  } catch {
    return bytes;
  }
}

const original = globalThis.fetch;
let current: (() => FetchMock | undefined) | undefined;

/** Routes the global fetch() through `mock()`'s agent whenever it is active (installed once). */
export function interceptFetch(mock: () => FetchMock | undefined): void {
  if (current === undefined) {
    globalThis.fetch = function fetch(input: Request | string | URL, init?: RequestInit): Promise<Response> {
      const active = current?.();
      return active?.active ? active.fetch(input, init) : original(input, init);
    };
  }
  current = mock;
}
