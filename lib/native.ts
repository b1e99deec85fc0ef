// The generated napi binding, loaded once; everything else imports the core from here.
import { createRequire } from "node:module";
import type * as Binding from "../native/binding.js";

const require = createRequire(import.meta.url);

export const native: typeof Binding = require("../native/binding.cjs");

/** Turns a core error (`"<Class>\0<message>"`, see src/error.rs) into the real JS class. */
export function fromNative(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const sep = err.message.indexOf("\0");
  if (sep < 0) return err;
  const name = err.message.slice(0, sep);
  const message = err.message.slice(sep + 1);
  const Class = NATIVE_CLASSES[name] ?? Error;
  return new Class(message);
}

const NATIVE_CLASSES: Record<string, ErrorConstructor> = {
  Error,
  TypeError,
  RangeError,
};

/** Calls into the core, converting its errors. */
export function call<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw fromNative(err);
  }
}
