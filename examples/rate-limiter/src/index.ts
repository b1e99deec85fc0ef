// A token bucket per client: one Durable Object per client address, so every request of a client
// is counted in one place, in order. The bucket lives in storage, so limits survive restarts; an
// alarm deletes the bucket of a client that has gone quiet.
//
//   npx durable-node dev examples/rate-limiter    (from this repository: npm run dev examples/rate-limiter)
//   for i in 1 2 3 4 5 6; do curl -s http://127.0.0.1:8787/; echo; done   # the sixth is a 429
//   curl -s "http://127.0.0.1:8787/?key=someone-else"                     # another bucket
import { DurableObject } from "cloudflare:workers";

interface Env {
  LIMITER: DurableObjectNamespace<RateLimiter>;
  CAPACITY: string;
  REFILL_PER_SECOND: string;
}

interface Bucket {
  tokens: number;
  updated: number;
}

/** How long a bucket is kept after its client's last request: by then it is full again, so forgetting it changes no answer. */
const FORGET_AFTER_MS = 10 * 60_000;

export class RateLimiter extends DurableObject<Env> {
  /** Takes a token if there is one; the answer says how many are left. */
  take(): { allowed: boolean; remaining: number; retryAfterSeconds: number } {
    const capacity = Number(this.env.CAPACITY);
    const rate = Number(this.env.REFILL_PER_SECOND);
    const now = Date.now();
    const kv = this.ctx.storage.kv;
    const bucket = kv.get<Bucket>("bucket") ?? { tokens: capacity, updated: now };
    const tokens = Math.min(capacity, bucket.tokens + ((now - bucket.updated) / 1000) * rate);
    const allowed = tokens >= 1;
    const left = allowed ? tokens - 1 : tokens;
    kv.put("bucket", { tokens: left, updated: now });
    // Not awaited: the output gate holds the answer back until the bucket and the alarm are stored.
    void this.ctx.storage.setAlarm(now + FORGET_AFTER_MS);
    return { allowed, remaining: Math.floor(left), retryAfterSeconds: allowed ? 0 : Math.ceil((1 - left) / rate) };
  }

  async alarm(): Promise<void> {
    await this.ctx.storage.deleteAll();
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    // One bucket per client address. `?key=` picks a bucket by hand, to try several clients from one
    // machine; a deployed limiter would not let the client choose (key by IP, or by a verified API key).
    const client = url.searchParams.get("key") ?? request.headers.get("cf-connecting-ip") ?? "unknown";
    const verdict = await env.LIMITER.getByName(client).take();
    if (!verdict.allowed) {
      return Response.json(verdict, { status: 429, headers: { "retry-after": String(verdict.retryAfterSeconds) } });
    }
    return Response.json(verdict);
  },
};
