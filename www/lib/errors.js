// An error that crosses from the worker to the page with a machine-readable `code`
// (the codes are listed in docs/web.md; the wasm module's errors carry the same).
export class CodedError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/** `{code, message}` for postMessage, from any error (the wasm module sets `code` itself). */
export function toWire(err) {
  return { code: err?.code || 'error', message: String(err?.message || err) };
}
