// DurableObjectIds, namespaces and stubs (spec §8, 182–195), jurisdictions, and ids across persisted runtimes.
import assert from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createRuntime, type Runtime, type RuntimeOptions } from "../lib/runtime.js";
import type { DurableObjectNamespace } from "../lib/namespace.js";
import { IdProbe, OtherProbe, type Remote } from "./fixtures/ids-objects.js";
import { thrown } from "./helpers.js";

const WORKERD_VECTOR = "d20c3594dd036e13f796a34584917d05bb9786c7f2b3e9efabb90112aa7cb49a";
const BAD_FORMAT = "Invalid Durable Object ID: must be 64 hex digits";
const FOREIGN = "Durable Object ID is not valid for this namespace.";
const HEX64 = /^[0-9a-f]{64}$/;

const runtimes: Runtime[] = [];
const dirs: string[] = [];

function start(options: RuntimeOptions = { durableObjects: { NS: IdProbe, OTHER: OtherProbe } }): Runtime {
  const rt = createRuntime(options);
  runtimes.push(rt);
  return rt;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "durable-node-ids-"));
  dirs.push(dir);
  return dir;
}

function binding(rt: Runtime, name = "NS"): DurableObjectNamespace {
  return rt.env[name] as DurableObjectNamespace;
}

function probe(stub: unknown): Remote<IdProbe> {
  return stub as Remote<IdProbe>;
}

/** Asserts the exact class and message of what `fn` throws. */
function expectThrow(fn: () => unknown, Class: ErrorConstructor, message: string): void {
  const err = thrown(fn);
  expect(err).toBeInstanceOf(Class);
  expect((err as Error).message).toBe(message);
}

beforeEach(() => {
  IdProbe.constructed = 0;
});

afterEach(async () => {
  for (const rt of runtimes.splice(0)) await rt.dispose();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("ID format", () => {
  it("idFromName: 64 lowercase hex digits, the same for the same name in one namespace (spec 182)", () => {
    const ns = binding(start());
    const a = ns.idFromName("room").toString();
    expect(a).toMatch(HEX64);
    expect(ns.idFromName("room").toString()).toBe(a);
    expect(ns.idFromName("other").toString()).not.toBe(a);
  });

  it("ids of names are remembered, and stay right after the oldest are forgotten (past 10,000 names)", () => {
    const uniqueKey = "probe-unique-key";
    const ns = binding(start({ durableObjects: { NS: { class: IdProbe, uniqueKey } } }));
    expect(ns.idFromName("foo").toString()).toBe("d20c3594dd036e13f796a34584917d05bb9786c7f2b3e9efabb90112aa7cb49a");
    const early = ns.idFromName("name-0").toString();
    for (let i = 1; i <= 10_050; i++) ns.idFromName(`name-${i}`);
    expect(ns.idFromName("name-0").toString()).toBe(early);
    expect(ns.idFromName("foo").toString()).toBe("d20c3594dd036e13f796a34584917d05bb9786c7f2b3e9efabb90112aa7cb49a");
    expect(ns.jurisdiction("eu").idFromName("foo").toString()).not.toBe(ns.idFromName("foo").toString());
  });

  it("idFromName(''): a valid id (spec 182)", () => {

    const ns = binding(start());
    const id = ns.idFromName("");
    expect(id.toString()).toMatch(HEX64);
    expect(id.name).toBe("");
    expect(ns.idFromString(id.toString()).equals(id)).toBe(true);
  });

  it("idFromName: two classes give different ids for the same name (spec 182)", () => {
    const rt = start();
    const other = binding(rt, "OTHER").idFromName("room").toString();
    expect(binding(rt, "NS").idFromName("room").toString()).not.toBe(other);
  });

  it('idFromName("foo") with uniqueKey "probe-unique-key" is workerd\'s id (spec 183)', () => {
    const rt = start({ durableObjects: { NS: { class: IdProbe, uniqueKey: "probe-unique-key" } } });
    expect(binding(rt).idFromName("foo").toString()).toBe(WORKERD_VECTOR);
  });

  it("newUniqueId: distinct ids, name undefined, accepted by idFromString (spec 184)", () => {
    const ns = binding(start());
    const a = ns.newUniqueId();
    const b = ns.newUniqueId();
    expect(a.toString()).toMatch(HEX64);
    expect(b.toString()).toMatch(HEX64);
    expect(a.toString()).not.toBe(b.toString());
    expect(a.equals(b)).toBe(false);
    expect(a.name).toBe(undefined);
    const parsed = ns.idFromString(a.toString());
    expect(parsed.toString()).toBe(a.toString());
    expect(parsed.equals(a)).toBe(true);
  });

  it("idFromString: upper case accepted, toString lowercase, name undefined for a name-derived id (spec 185)", () => {
    const ns = binding(start());
    const named = ns.idFromName("foo");
    const parsed = ns.idFromString(named.toString().toUpperCase());
    expect(parsed.toString()).toBe(named.toString());
    expect(parsed.name).toBe(undefined);
    expect(parsed.equals(named)).toBe(true);
  });

  it("idFromString('abc') → TypeError (spec 186)", () => {
    expectThrow(() => binding(start()).idFromString("abc"), TypeError, BAD_FORMAT);
  });

  it("idFromString: 64 non-hex characters → TypeError (spec 186)", () => {
    expectThrow(() => binding(start()).idFromString("g".repeat(64)), TypeError, BAD_FORMAT);
  });

  it("idFromString: 63 and 65 hex digits → TypeError (spec 186)", () => {
    const ns = binding(start());
    const hex = ns.idFromName("foo").toString();
    expectThrow(() => ns.idFromString(hex.slice(1)), TypeError, BAD_FORMAT);
    expectThrow(() => ns.idFromString(hex + "0"), TypeError, BAD_FORMAT);
  });

  it("idFromString('0'.repeat(64)) → TypeError: not valid for this namespace (spec 187)", () => {
    expectThrow(() => binding(start()).idFromString("0".repeat(64)), TypeError, FOREIGN);
  });

  it("idFromString: an id from another namespace → TypeError (spec 187)", () => {
    const rt = start();
    const other = binding(rt, "OTHER").idFromName("foo").toString();
    expectThrow(() => binding(rt, "NS").idFromString(other), TypeError, FOREIGN);
  });

  it("get: an id object from another namespace → TypeError (spec 187)", () => {
    const rt = start();
    const other = binding(rt, "OTHER").idFromName("foo");
    expectThrow(() => binding(rt, "NS").get(other), TypeError, FOREIGN);
  });

  it("equals: compares the bytes only, not the name (spec 188)", () => {
    const ns = binding(start());
    const named = ns.idFromName("x");
    const parsed = ns.idFromString(named.toString());
    expect(named.name).toBe("x");
    expect(parsed.name).toBe(undefined);
    expect(named.equals(parsed)).toBe(true);
    expect(parsed.equals(named)).toBe(true);
    expect(named.equals(ns.idFromName("y"))).toBe(false);
  });

  it('Object.keys(id) → ["jurisdiction","name"]; JSON is {"name":…}; String(id) is toString() (spec 189)', () => {
    const ns = binding(start());
    const id = ns.idFromName("foo");
    expect(Object.keys(id)).toEqual(["jurisdiction", "name"]);
    expect(Object.keys(ns.newUniqueId())).toEqual(["jurisdiction", "name"]);
    expect(JSON.stringify(id)).toBe('{"name":"foo"}');
    expect(String(id)).toBe(id.toString());
  });
});

describe("jurisdictions (our extension of spec 190–191)", () => {
  it("jurisdiction('eu').idFromName: jurisdiction 'eu', another id than the plain one (spec 190)", () => {
    const ns = binding(start());
    const eu = ns.jurisdiction("eu").idFromName("x");
    const plain = ns.idFromName("x");
    expect(eu.jurisdiction).toBe("eu");
    expect(eu.name).toBe("x");
    expect(eu.toString()).toMatch(HEX64);
    expect(eu.toString()).not.toBe(plain.toString());
    expect(eu.equals(plain)).toBe(false);
    expect(plain.jurisdiction).toBe(undefined);
    expect(JSON.stringify(eu)).toBe('{"jurisdiction":"eu","name":"x"}');
  });

  it("idFromString on the plain namespace recovers jurisdiction 'eu' (spec 190)", () => {
    const ns = binding(start());
    const eu = ns.jurisdiction("eu").idFromName("x");
    const parsed = ns.idFromString(eu.toString());
    expect(parsed.jurisdiction).toBe("eu");
    expect(parsed.name).toBe(undefined);
    expect(parsed.equals(eu)).toBe(true);
  });

  it("newUniqueId({jurisdiction:'fedramp'}): the jurisdiction is kept and recovered by idFromString (spec 190)", () => {
    const ns = binding(start());
    const id = ns.newUniqueId({ jurisdiction: "fedramp" });
    expect(id.jurisdiction).toBe("fedramp");
    expect(ns.idFromString(id.toString()).jurisdiction).toBe("fedramp");
  });

  it("jurisdiction('eu').newUniqueId(): the sub-namespace's jurisdiction (spec 190)", () => {
    const ns = binding(start());
    const id = ns.jurisdiction("eu").newUniqueId();
    expect(id.jurisdiction).toBe("eu");
    expect(ns.idFromString(id.toString()).jurisdiction).toBe("eu");
  });

  it("jurisdiction(null) and jurisdiction(undefined) behave as the plain namespace (spec 190)", () => {
    const ns = binding(start());
    const plain = ns.idFromName("x");
    for (const sub of [ns.jurisdiction(null), ns.jurisdiction(undefined)]) {
      const id = sub.idFromName("x");
      expect(id.toString()).toBe(plain.toString());
      expect(id.jurisdiction).toBe(undefined);
      expect(sub.newUniqueId().jurisdiction).toBe(undefined);
      expect(sub.get(plain).id).toBe(plain);
    }
  });

  it("an unknown jurisdiction → TypeError naming it (spec 190)", () => {
    const ns = binding(start());
    const message = 'Unknown jurisdiction "mars": expected one of eu, fedramp, fedramp-high, us.';
    expectThrow(() => ns.jurisdiction("mars"), TypeError, message);
    expectThrow(() => ns.newUniqueId({ jurisdiction: "mars" }), TypeError, message);
  });

  it("jurisdiction('eu').get(plain id) → TypeError (spec 191)", () => {
    const ns = binding(start());
    expectThrow(
      () => ns.jurisdiction("eu").get(ns.idFromName("x")),
      TypeError,
      "get called on jurisdictional subnamespace with an ID from a different jurisdiction",
    );
    expectThrow(
      () => ns.jurisdiction("eu").get(ns.jurisdiction("us").idFromName("x")),
      TypeError,
      "get called on jurisdictional subnamespace with an ID from a different jurisdiction",
    );
  });

  it("jurisdiction('eu').get(eu id) reaches an object whose ctx.id has jurisdiction 'eu' (spec 191)", async () => {
    const ns = binding(start());
    const eu = ns.jurisdiction("eu");
    const id = eu.idFromName("x");
    const stub = probe(eu.get(id));
    expect(await stub.idJurisdiction()).toBe("eu");
    expect(await stub.idString()).toBe(id.toString());
  });
});

describe("ctx.id inside the object (spec 192)", () => {
  it("getByName: ctx.id.name is the name, ctx.id.toString() the stub's id (spec 192)", async () => {
    const ns = binding(start());
    const stub = probe(ns.getByName("by-name"));
    expect(await stub.idName()).toBe("by-name");
    expect(await stub.idString()).toBe(stub.id.toString());
  });

  it("get(idFromName): ctx.id.name is the name (spec 192)", async () => {
    const ns = binding(start());
    const stub = probe(ns.get(ns.idFromName("from-name")));
    expect(await stub.idName()).toBe("from-name");
    expect(await stub.idString()).toBe(ns.idFromName("from-name").toString());
  });

  it("get(newUniqueId()): ctx.id.name is undefined (spec 192)", async () => {
    const ns = binding(start());
    const id = ns.newUniqueId();
    const stub = probe(ns.get(id));
    expect(await stub.idName()).toBe(undefined);
    expect(await stub.idString()).toBe(id.toString());
  });

  it("get(idFromString()): ctx.id.name is undefined (spec 192)", async () => {
    const ns = binding(start());
    const hex = ns.idFromName("never-by-name").toString();
    const stub = probe(ns.get(ns.idFromString(hex)));
    expect(await stub.idName()).toBe(undefined);
    expect(await stub.idString()).toBe(hex);
  });
});

describe("stubs (spec 193–195)", () => {
  it("get(id) returns at once and does not construct the object before the first call (spec 193)", async () => {
    const ns = binding(start());
    const stub = probe(ns.get(ns.idFromName("lazy")));
    await new Promise((resolve) => setImmediate(resolve));
    expect(IdProbe.constructed).toBe(0);
    expect(await stub.increment()).toBe(1);
    expect(IdProbe.constructed).toBe(1);
  });

  it('Object.keys(stub) → ["name","id"]; stub.id is the id given (spec 193)', () => {
    const ns = binding(start());
    const id = ns.idFromName("foo");
    const stub = ns.get(id);
    expect(Object.keys(stub)).toEqual(["name", "id"]);
    expect(stub.id).toBe(id);
  });

  it("stub.name: the name for a named id, undefined for unique and parsed ids (spec 193)", () => {
    const ns = binding(start());
    expect(ns.get(ns.idFromName("foo")).name).toBe("foo");
    expect(ns.getByName("foo").name).toBe("foo");
    expect(ns.get(ns.newUniqueId()).name).toBe(undefined);
    expect(ns.get(ns.idFromString(ns.idFromName("foo").toString())).name).toBe(undefined);
  });

  it("getByName('bar') is deepStrictEqual to get(idFromName('bar')) (spec 194)", () => {
    const ns = binding(start());
    assert.deepStrictEqual(ns.getByName("bar"), ns.get(ns.idFromName("bar")));
  });

  it("get(id, {locationHint:'wnam'}) works as get(id) (spec 195)", async () => {
    const ns = binding(start());
    const id = ns.idFromName("hinted");
    const hinted = probe(ns.get(id, { locationHint: "wnam" }));
    expect(Object.keys(hinted)).toEqual(["name", "id"]);
    expect(hinted.id).toBe(id);
    expect(await hinted.increment()).toBe(1);
    expect(await probe(ns.get(id)).increment()).toBe(2);
  });

  it("get(id, {routingMode:'bogus'}) → RangeError (spec 195)", () => {
    const ns = binding(start());
    expectThrow(() => ns.get(ns.idFromName("x"), { routingMode: "bogus" }), RangeError, "unknown routingMode: bogus");
    expectThrow(() => ns.getByName("x", { routingMode: "bogus" }), RangeError, "unknown routingMode: bogus");
  });
});

describe("namespace keys across runtimes", () => {
  it("persist: a second runtime on the same folder gives the same idFromName and accepts the first's ids", async () => {
    const dir = tempDir();
    const first = start({ persist: dir, durableObjects: { NS: IdProbe } });
    const named = binding(first).idFromName("room").toString();
    const unique = binding(first).newUniqueId().toString();
    await first.dispose();

    const second = start({ persist: dir, durableObjects: { NS: IdProbe } });
    expect(binding(second).idFromName("room").toString()).toBe(named);
    expect(binding(second).idFromString(named).toString()).toBe(named);
    expect(binding(second).idFromString(unique).toString()).toBe(unique);
  });

  it("in memory: two runtimes have different keys, so different ids and refused id strings", () => {
    const a = binding(start({ durableObjects: { NS: IdProbe } }));
    const b = binding(start({ durableObjects: { NS: IdProbe } }));
    const fromA = a.idFromName("room").toString();
    expect(b.idFromName("room").toString()).not.toBe(fromA);
    expectThrow(() => b.idFromString(fromA), TypeError, FOREIGN);
  });

  it("uniqueKey: the same ids in memory and persisted (spec 183)", () => {
    const options = { durableObjects: { NS: { class: IdProbe, uniqueKey: "probe-unique-key" } } };
    const memory = binding(start(options));
    const persisted = binding(start({ ...options, persist: tempDir() }));
    expect(memory.idFromName("foo").toString()).toBe(WORKERD_VECTOR);
    expect(persisted.idFromName("foo").toString()).toBe(WORKERD_VECTOR);
    expect(persisted.idFromString(memory.newUniqueId().toString()).jurisdiction).toBe(undefined);
  });
});

describe("the name cache (second review)", () => {
  it("a name and a jurisdiction's name cannot share a cache entry", () => {
    const ns = binding(start({ durableObjects: { NS: { class: IdProbe, uniqueKey: "probe-unique-key" } } }));
    const plain = ns.idFromName("eu\0foo").toString();
    const eu = ns.jurisdiction("eu").idFromName("foo");
    const fresh = binding(start({ durableObjects: { NS: { class: IdProbe, uniqueKey: "probe-unique-key" } } }));
    expect(eu.toString()).toBe(fresh.jurisdiction("eu").idFromName("foo").toString());
    expect(eu.toString()).not.toBe(plain);
  });
});
