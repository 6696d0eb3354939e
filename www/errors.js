// Errors as the runtime reports them: an OuvertError has a stable `code` and a sentence a web
// developer can act on. Shared by the page's module (ouvert.js) and the engine's worker.

/**
 * The codes only this JavaScript runtime gives; the engine's own are `Code` in src/error.rs.
 * Together they are `ErrorCode` in ouvert.d.ts (tests/error_codes.rs holds the three to one list).
 */
export const PAGE_CODES = ["integrity", "quota", "disposed", "worker_failed", "csp_blocked"];

/**
 * What a file the engine cannot use as a model fails with: a cached copy that fails so is
 * dropped and fetched again, and the widget says "this file is not a model it can read".
 */
export const FILE_ERRORS = new Set([
  "bad_magic",
  "unsupported_version",
  "truncated_file",
  "invalid_metadata",
  "invalid_tensor",
  "missing_tensor",
  "unsupported_quantization",
  "unsupported_tokenizer",
  "unsupported_architecture",
  "integrity",
]);

/** An error with a stable `code` ("network", "integrity", "aborted", "bad_magic", …). */
export class OuvertError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = "OuvertError";
    this.code = code;
  }
}

/** The error for what a Content-Security-Policy blocked (a `securitypolicyviolation` event). */
export function cspError(v) {
  const what = v.blockedURI ? ` (${v.blockedURI})` : "";
  const add =
    v.effectiveDirective === "worker-src" || v.effectiveDirective === "child-src"
      ? "add blob: to worker-src when the runtime comes from another origin (a CDN), or serve it from this site"
      : v.effectiveDirective === "script-src" && /eval/.test(v.blockedURI ?? "")
        ? "add 'wasm-unsafe-eval' to script-src"
        : `allow it in ${v.effectiveDirective}`;
  return new OuvertError(
    "csp_blocked",
    `this page's Content-Security-Policy blocked the engine: ${v.effectiveDirective}${what}; ${add}`,
  );
}
