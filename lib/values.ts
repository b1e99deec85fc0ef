// Stored values: V8's serialization format (wire version 15, header 0xFF 0x0F), as workerd
// writes it, so data moves between the two runtimes.

import v8 from "node:v8";

/**
 * Node's `v8.serialize()` writes typed arrays in a Node-only way; the base Serializer keeps V8's own
 * format, which is workerd's. Values that cannot be cloned fail with V8's DataCloneError message.
 */
export function serialize(value: unknown): Buffer {
  const serializer = new v8.Serializer();
  (serializer as unknown as { _getDataCloneError: (m: string) => Error })._getDataCloneError = (message) =>
    new DOMException(message, "DataCloneError");
  serializer.writeHeader();
  serializer.writeValue(value);
  return serializer.releaseBuffer();
}

/**
 * Values written without the version header (first byte not 0xFF: legacy data, spec 71) are read
 * as a headerless body, which V8 decodes as its pre-header wire format.
 */
export function deserialize(bytes: Uint8Array): unknown {
  const deserializer = new v8.Deserializer(bytes);
  if (bytes[0] === 0xff) deserializer.readHeader();
  return deserializer.readValue();
}

