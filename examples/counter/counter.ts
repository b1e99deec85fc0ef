// A Durable Object written for Cloudflare, unchanged: one counter per name, with a session RpcTarget.
import { DurableObject, RpcTarget } from "cloudflare:workers";

export class Counter extends DurableObject {
  private value = 0;

  increment(by = 1): number {
    this.value += by;
    return this.value;
  }

  get current(): number {
    return this.value;
  }

  /** A per-caller session: its methods run inside this object, through promise pipelining. */
  session(user: string): Session {
    return new Session(this, user);
  }
}

class Session extends RpcTarget {
  constructor(
    private readonly counter: Counter,
    private readonly user: string,
  ) {
    super();
  }

  click(): string {
    return `${this.user} made it ${this.counter.increment()}`;
  }
}
