// The `dev` bench's Worker: every request makes one RPC call to one Durable Object, which counts it in memory,
// and answers with JSON. HTTP, the Worker, the call and the object are measured; storage is not touched.
import { DurableObject } from "cloudflare:workers";

export class Counter extends DurableObject {
  count = 0;

  hit() {
    this.count += 1;
    return this.count;
  }
}

export default {
  async fetch(request, env) {
    const hits = await env.COUNTER.getByName("x").hit();
    return Response.json({ hits });
  },
};
