// Error shapes that cross a stub: remote copies, resets, and the JSG-style argument errors.

/** Flags Cloudflare puts on errors: `remote` after a stub/RPC boundary, `durableObjectReset` on resets. */
export interface DurableObjectError extends Error {
  remote?: boolean;
  durableObjectReset?: boolean;
}

const STANDARD_ERRORS: Record<string, ErrorConstructor> = {
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
};

/**
 * The error a caller sees when `err` was thrown on the other side of a stub: the same class
 * (standard classes and DOMException names; others become `Error`) and message, `remote = true`.
 */
export function remoteError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  let copy: DurableObjectError;
  if (err instanceof DOMException) {
    copy = new DOMException(err.message, err.name) as DurableObjectError;
  } else {
    const Class = STANDARD_ERRORS[err.name] ?? Error;
    copy = new Class(err.message);
  }
  if (err.stack) copy.stack = err.stack;
  copy.remote = true;
  if ((err as DurableObjectError).durableObjectReset) copy.durableObjectReset = true;
  return copy;
}

/** Marks `err` as the reason an object was reset (`err.durableObjectReset === true`). */
export function resetError(err: unknown): DurableObjectError {
  const e = (err instanceof Error ? err : new Error(String(err))) as DurableObjectError;
  e.durableObjectReset = true;
  return e;
}

/** `TypeError: Failed to execute '<method>' on '<Class>': parameter <n> is not of type '<type>'.` */
export function argumentTypeError(method: string, className: string, n: number, type: string): TypeError {
  return new TypeError(
    `Failed to execute '${method}' on '${className}': parameter ${n} is not of type '${type}'.`,
  );
}

export function dataCloneError(message: string): DOMException {
  return new DOMException(message, "DataCloneError");
}

/** A wrangler config (or a Worker it names) that cannot be used; the message names file and key. */
export class ConfigError extends Error {
  override name = "ConfigError";
}
