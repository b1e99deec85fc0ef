// The public types: `env` follows the options, stubs expose the class's members over RPC.
// (Type assertions are checked by `tsc --noEmit` in `npm test`; the calls run as well.)
import { DurableObject } from "cloudflare:workers";
import { expect, expectTypeOf, it } from "vitest";
import { createRuntime } from "../lib/index.js";

class Counter extends DurableObject {
  private count = 0;
  increment(by = 1): number {
    this.count += by;
    return this.count;
  }
  async label(prefix: string): Promise<string> {
    return `${prefix}${this.count}`;
  }
  get doubled(): number {
    return this.count * 2;
  }
}

it("env is typed from createRuntime's options; stubs expose the class over RPC", async () => {
  const runtime = createRuntime({ durableObjects: { COUNTER: { class: Counter } }, bindings: { GREETING: "hi" } });
  try {
    const stub = runtime.env.COUNTER.getByName("a");
    // Types only (expectTypeOf's argument would run): nothing is called here.
    type Stub = typeof stub;
    expectTypeOf<Parameters<Stub["increment"]>>().toEqualTypeOf<[by?: number]>();
    expectTypeOf<Awaited<ReturnType<Stub["increment"]>>>().toEqualTypeOf<number>();
    expectTypeOf<Awaited<ReturnType<Stub["label"]>>>().toEqualTypeOf<string>();
    expectTypeOf<Awaited<Stub["doubled"]>>().toEqualTypeOf<number>();
    expectTypeOf<typeof runtime.env.GREETING>().toEqualTypeOf<"hi">();
    // @ts-expect-error — private members are not part of the stub
    type Hidden = Stub["count"];
    expect(await stub.increment(2)).toBe(2);
    expect(await stub.label("n=")).toBe("n=2");
    expect(await stub.doubled).toBe(4);
    expect(runtime.env.GREETING).toBe("hi");
  } finally {
    await runtime.dispose();
  }
});
