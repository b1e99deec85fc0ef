// Stored values: V8's serialization format (wire version 15, header 0xFF 0x0F), as workerd
// writes it, so data moves between the two runtimes.
//
// Primitives — the bulk of what objects store (counters, flags, short strings) — are written and
// read here directly, byte for byte as V8 writes them: a V8 Serializer or Deserializer object per
// value costs more than the storage operation itself. Everything else goes through V8.

import v8 from "node:v8";

const HEADER = [0xff, 0x0f];
const TAG = {
  undefined: 0x5f, // '_'
  null: 0x30, // '0'
  true: 0x54, // 'T'
  false: 0x46, // 'F'
  int32: 0x49, // 'I', zigzag varint
  double: 0x4e, // 'N', 8 bytes little-endian
  oneByteString: 0x22, // '"', varint length, Latin-1 bytes
} as const;
const LATIN1 = /^[\x00-\xff]*$/;

export function serialize(value: unknown): Buffer {
  return serializePrimitive(value) ?? serializeWithV8(value);
}

/**
 * Node's `v8.serialize()` writes typed arrays in a Node-only way; the base Serializer keeps V8's own
 * format, which is workerd's. Values that cannot be cloned fail with V8's DataCloneError message.
 */
function serializeWithV8(value: unknown): Buffer {
  const serializer = new v8.Serializer();
  (serializer as unknown as { _getDataCloneError: (m: string) => Error })._getDataCloneError = (message) =>
    new DOMException(message, "DataCloneError");
  serializer.writeHeader();
  serializer.writeValue(value);
  return serializer.releaseBuffer();
}

function serializePrimitive(value: unknown): Buffer | undefined {
  switch (typeof value) {
    case "string": {
      if (value.length > 4096 || !LATIN1.test(value)) return undefined;
      const length = varintLength(value.length);
      const out = Buffer.allocUnsafe(3 + length + value.length);
      out[0] = HEADER[0];
      out[1] = HEADER[1];
      out[2] = TAG.oneByteString;
      writeVarint(out, 3, value.length);
      out.write(value, 3 + length, "latin1");
      return out;
    }
    case "number": {
      if (Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31 && !Object.is(value, -0)) {
        const zigzag = ((value << 1) ^ (value >> 31)) >>> 0;
        const out = Buffer.allocUnsafe(3 + varintLength(zigzag));
        out[0] = HEADER[0];
        out[1] = HEADER[1];
        out[2] = TAG.int32;
        writeVarint(out, 3, zigzag);
        return out;
      }
      const out = Buffer.allocUnsafe(11);
      out[0] = HEADER[0];
      out[1] = HEADER[1];
      out[2] = TAG.double;
      out.writeDoubleLE(value, 3);
      return out;
    }
    case "boolean":
      return Buffer.from([...HEADER, value ? TAG.true : TAG.false]);
    case "undefined":
      return Buffer.from([...HEADER, TAG.undefined]);
    case "object":
      return value === null ? Buffer.from([...HEADER, TAG.null]) : undefined;
    default:
      return undefined;
  }
}

/**
 * Values written without the version header (first byte not 0xFF: legacy data, spec 71) are read
 * as a headerless body, which V8 decodes as its pre-header wire format.
 */
export function deserialize(bytes: Uint8Array): unknown {
  return deserializeAt(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), 0, bytes.length);
}

/** A value as the core's `kvGet` hands it over: already read when a string or number, else its bytes. */
export function readStored(stored: string | number | ArrayBuffer | null): unknown {
  if (stored === null) return undefined;
  return stored instanceof ArrayBuffer ? deserialize(new Uint8Array(stored)) : stored;
}

/** The value stored in `bytes[start, end)`. */
export function deserializeAt(bytes: Buffer, start: number, end: number): unknown {
  const primitive = deserializePrimitive(bytes, start, end);
  if (primitive !== NOT_PRIMITIVE) return primitive;
  const deserializer = new v8.Deserializer(bytes.subarray(start, end));
  if (bytes[start] === 0xff) deserializer.readHeader();
  return deserializer.readValue();
}

const NOT_PRIMITIVE = Symbol("not a primitive");

function deserializePrimitive(bytes: Buffer, start: number, end: number): unknown {
  // Any header version from 13 on reads primitives the same way.
  const size = end - start;
  if (size < 3 || bytes[start] !== 0xff || bytes[start + 1] < 13 || bytes[start + 1] > 15) return NOT_PRIMITIVE;
  const body = start + 3;
  switch (bytes[start + 2]) {
    case TAG.undefined:
      return size === 3 ? undefined : NOT_PRIMITIVE;
    case TAG.null:
      return size === 3 ? null : NOT_PRIMITIVE;
    case TAG.true:
      return size === 3 ? true : NOT_PRIMITIVE;
    case TAG.false:
      return size === 3 ? false : NOT_PRIMITIVE;
    case TAG.double:
      return size === 11 ? bytes.readDoubleLE(body) : NOT_PRIMITIVE;
    case TAG.int32: {
      const [zigzag, after] = readVarint(bytes, body);
      return after === end ? (zigzag >>> 1) ^ -(zigzag & 1) : NOT_PRIMITIVE;
    }
    case TAG.oneByteString: {
      const [length, from] = readVarint(bytes, body);
      return from !== -1 && from + length === end ? bytes.toString("latin1", from, end) : NOT_PRIMITIVE;
    }
    default:
      return NOT_PRIMITIVE;
  }
}

function varintLength(n: number): number {
  let length = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    length++;
  }
  return length;
}

function writeVarint(out: Uint8Array, at: number, n: number): void {
  while (n >= 0x80) {
    out[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[at] = n;
}

/** A varint (up to 32 bits) at `at`: [value, index after it]; an overlong one reads as -1. */
function readVarint(bytes: Uint8Array, at: number): [number, number] {
  let value = 0;
  for (let shift = 0; shift < 35 && at < bytes.length; shift += 7) {
    const byte = bytes[at++];
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return [value, at];
  }
  return [-1, -1];
}
