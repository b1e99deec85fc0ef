// DurableObjectId: the value object; derivation and validation live in the core (src/id.rs).

const CREATE = Symbol("durable-node.id.create");

export class DurableObjectId {
  // Own enumerable properties in this order, as on Cloudflare (`Object.keys(id)`).
  readonly jurisdiction: string | undefined;
  readonly name: string | undefined;
  readonly #hex: string;
  readonly #namespace: object;

  /** @internal use `namespace.idFromName()` and friends. */
  constructor(
    token: typeof CREATE,
    hex: string,
    name: string | undefined,
    jurisdiction: string | undefined,
    namespace: object,
  ) {
    if (token !== CREATE) throw new TypeError("Illegal constructor");
    this.jurisdiction = jurisdiction;
    this.name = name;
    this.#hex = hex;
    this.#namespace = namespace;
  }

  toString(): string {
    return this.#hex;
  }

  equals(other: DurableObjectId): boolean {
    if (!(other instanceof DurableObjectId)) {
      throw new TypeError(
        "Failed to execute 'equals' on 'DurableObjectId': parameter 1 is not of type 'DurableObjectId'.",
      );
    }
    return other.#hex === this.#hex;
  }

  /** @internal the namespace core that made this id. */
  static namespaceOf(id: DurableObjectId): object {
    return id.#namespace;
  }
}

export function makeId(
  hex: string,
  name: string | undefined,
  jurisdiction: string | undefined,
  namespace: object,
): DurableObjectId {
  return new DurableObjectId(CREATE, hex, name, jurisdiction, namespace);
}
