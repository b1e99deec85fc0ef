// DurableObjectNamespace (`env.ROOM`): ids and stubs of one Durable Object class.

import path from "node:path";
import type { Namespace as NativeKeys } from "../native/binding.js";
import { ActorHost, type ActorClass, type ActorSystem } from "./actor.js";
import { argumentTypeError, type DurableObjectError } from "./errors.js";
import { DurableObjectId, makeId } from "./id.js";
import { call } from "./native.js";
import type { OpenFiles } from "./open-files.js";
import type { StorageOptions } from "./storage.js";
import { makeStub, type TypedStub } from "./stub.js";

const JURISDICTIONS = new Set(["eu", "fedramp", "fedramp-high", "us"]);
/** Names whose ids are remembered (the oldest is forgotten first). */
const NAME_CACHE_SIZE = 10_000;
const ROUTING_MODES = new Set(["primary-only"]);

export interface NamespaceOptions {
  readonly className: string;
  readonly Class: ActorClass["Class"];
  /** SQLite-backed (the default) or the legacy KV-backed kind. */
  readonly sqlite: boolean;
  readonly keys: NativeKeys;
  /** The runtime's state folder; objects keep their databases under `<dir>/<class>/<hex id>.sqlite`. */
  readonly persistDir: string | undefined;
  /** synchronous=FULL rather than NORMAL. */
  readonly fullSync: boolean;
  readonly alarmNamespace: number;
  readonly files: OpenFiles | undefined;
}

// The options become the core's own read-only fields (declared by this interface, set by the constructor).
export interface NamespaceCore extends NamespaceOptions {}

/** The class and objects behind one namespace, shared by every binding to that class. */
export class NamespaceCore implements ActorClass {
  readonly hosts = new Map<string, ActorHost>();
  readonly #names = new Map<string, string>();
  constructor(
    readonly system: ActorSystem & { onHost(host: ActorHost): void },
    options: NamespaceOptions,
    readonly bindings: { readonly env: Record<string, unknown>; readonly exports: Record<string, unknown> },
  ) {
    Object.assign(this, options);
  }

  /**
   * The id of a name, derived in the core (HMAC-SHA256) once and then remembered: code that calls
   * `getByName(name)` on every request would otherwise pay the derivation and a crossing each time.
   */
  hexFromName(name: string, jurisdiction: string | undefined): string {
    // Jurisdictions never hold "\0", so "<jurisdiction>\0<name>" and "\0<name>" cannot collide.
    const key = `${jurisdiction ?? ""}\0${name}`;
    let hex = this.#names.get(key);
    if (hex === undefined) {
      hex = call(() => this.keys.idFromName(name, jurisdiction));
      if (this.#names.size >= NAME_CACHE_SIZE) this.#names.delete(this.#names.keys().next().value!);
      this.#names.set(key, hex);
    }
    return hex;
  }

  /**
   * New code for this namespace (dev's reload): live instances are evicted, so each object's next
   * event constructs the new class; hibernatable WebSockets stay open.
   */
  replaceClass(Class: ActorClass["Class"]): void {
    (this as { Class: ActorClass["Class"] }).Class = Class;
    for (const host of this.hosts.values()) host.evict();
  }

  /** Isolated storage: the committed database of each object that has one, by id. */
  snapshot(): Map<string, Buffer> {
    const saved = new Map<string, Buffer>();
    for (const [hex, host] of this.hosts) {
      const bytes = host.snapshotStorage();
      if (bytes !== undefined) saved.set(hex, bytes);
    }
    return saved;
  }

  /** Puts every object's storage back as `saved` had it; objects absent from it have none. */
  restore(saved: Map<string, Buffer>, reason: DurableObjectError): void {
    for (const [hex, host] of this.hosts) host.restoreStorage(saved.get(hex), reason);
  }

  /** The ids of the objects that have storage, ordered by id (as a folder listing is). */
  storedIds(): DurableObjectId[] {
    const ids: DurableObjectId[] = [];
    for (const hex of [...this.hosts.keys()].sort()) {
      const host = this.hosts.get(hex)!;
      if (host.hasStorage) ids.push(this.makeId(hex, undefined));
    }
    return ids;
  }

  /** The host of the object with id `hex` (the alarm scheduler knows objects by id only). */
  hostByHex(hex: string): ActorHost {
    return this.host(this.makeId(hex, undefined));
  }

  storageOptions(hex: string): StorageOptions {
    return {
      path: this.persistDir && path.join(this.persistDir, this.className, `${hex}.sqlite`),
      sqlite: this.sqlite,
      fullSync: this.fullSync,
      files: this.files,
      label: `${this.className} ${hex}`,
    };
  }

  get env(): unknown {
    return this.bindings.env;
  }

  get exports(): object {
    return this.bindings.exports;
  }

  makeId = (hex: string, name: string | undefined): DurableObjectId =>
    makeId(hex, name, call(() => this.keys.parseId(hex)).jurisdiction, this);

  readonly host = (id: DurableObjectId): ActorHost => {
    this.system.assertLive();
    const hex = id.toString();
    let host = this.hosts.get(hex);
    if (host === undefined) {
      host = new ActorHost(this.system, this, hex);
      this.hosts.set(hex, host);
      this.system.onHost(host);
    }
    if (id.name !== undefined) host.name ??= id.name;
    return host;
  };
}

export interface GetOptions {
  locationHint?: string;
  routingMode?: string;
}

export class DurableObjectNamespace<T = unknown> {
  readonly #core: NamespaceCore;
  readonly #jurisdiction: string | undefined;

  /** @internal the core behind a binding (the vitest integration lists its objects). */
  static coreOf(namespace: DurableObjectNamespace<unknown>): NamespaceCore {
    return namespace.#core;
  }

  /** @internal built by the runtime. */
  constructor(core: NamespaceCore, jurisdiction?: string) {
    if (!(core instanceof NamespaceCore)) throw new TypeError("Illegal constructor");
    this.#core = core;
    this.#jurisdiction = jurisdiction;
  }

  newUniqueId(options?: { jurisdiction?: string }): DurableObjectId {
    this.#core.system.assertLive();
    const jurisdiction = checkJurisdiction(options?.jurisdiction ?? this.#jurisdiction);
    return makeId(call(() => this.#core.keys.newUniqueId(jurisdiction)), undefined, jurisdiction, this.#core);
  }

  idFromName(name: string): DurableObjectId {
    this.#core.system.assertLive();
    if (name === undefined) throw argumentTypeError("idFromName", "DurableObjectNamespace", 1, "string");
    const text = `${name}`; // a Symbol throws here, as in workerd
    return makeId(this.#core.hexFromName(text, this.#jurisdiction), text, this.#jurisdiction, this.#core);
  }

  idFromString(id: string): DurableObjectId {
    this.#core.system.assertLive();
    if (id === undefined) throw argumentTypeError("idFromString", "DurableObjectNamespace", 1, "string");
    const text = `${id}`;
    const parsed = call(() => this.#core.keys.parseId(text));
    return makeId(parsed.hex, undefined, parsed.jurisdiction, this.#core);
  }

  get(id: DurableObjectId, options?: GetOptions): TypedStub<T> {
    this.#core.system.assertLive();
    if (!(id instanceof DurableObjectId)) throw argumentTypeError("get", "DurableObjectNamespace", 1, "DurableObjectId");
    if (DurableObjectId.namespaceOf(id) !== this.#core) {
      throw new TypeError("Durable Object ID is not valid for this namespace.");
    }
    if (this.#jurisdiction !== undefined && id.jurisdiction !== this.#jurisdiction) {
      throw new TypeError("get called on jurisdictional subnamespace with an ID from a different jurisdiction");
    }
    const routingMode = options?.routingMode;
    if (routingMode !== undefined && !ROUTING_MODES.has(routingMode)) {
      throw new RangeError(`unknown routingMode: ${routingMode}`);
    }
    return makeStub(this.#core.host, id) as TypedStub<T>;
  }

  getByName(name: string, options?: GetOptions): TypedStub<T> {
    return this.get(this.idFromName(name), options);
  }

  jurisdiction(jurisdiction: string | null | undefined): DurableObjectNamespace<T> {
    if (jurisdiction === null || jurisdiction === undefined) return new DurableObjectNamespace<T>(this.#core);
    return new DurableObjectNamespace<T>(this.#core, checkJurisdiction(jurisdiction));
  }
}

function checkJurisdiction(jurisdiction: string | undefined): string | undefined {
  if (jurisdiction !== undefined && !JURISDICTIONS.has(jurisdiction)) {
    throw new TypeError(`Unknown jurisdiction "${jurisdiction}": expected one of eu, fedramp, fedramp-high, us.`);
  }
  return jurisdiction;
}
