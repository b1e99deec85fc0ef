// The Counter Durable Object both sides run: `ping()` is the trivial RPC the bench times.
import { DurableObject } from "cloudflare:workers";

export class Counter extends DurableObject {
  count = 0;

  ping() {
    return 1;
  }

  increment() {
    this.count += 1;
    return this.count;
  }
}

export default {
  fetch() {
    return new Response("ok");
  },
};
