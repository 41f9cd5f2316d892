// CORS for storefronts and tools that call the API from a browser on their own origin.
import cors from "cors";
import type { RequestHandler } from "express";

/** CORS_ORIGINS parsed: any origin, or these exact ones. */
type CorsOrigins = "*" | readonly string[];

// Writes send a bearer token, JSON and an Idempotency-Key; reads may revalidate with
// If-None-Match; any request may carry its own X-Request-Id.
const CORS_REQUEST_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "If-None-Match", "X-Request-Id"];
// What a script may read of an answer besides the safelisted headers: where a job is
// followed, the validator to revalidate with, how a read was served, when to retry, and
// the id to quote to an operator.
const CORS_EXPOSED_HEADERS = ["Location", "ETag", "X-Cache", "Retry-After", "X-Request-Id"];
// Browsers keep a preflight's answer this long (Chromium caps it at 2 hours).
const PREFLIGHT_MAX_AGE_S = 600;

/**
 * The `cors` package's middleware for these origins. A listed origin is echoed in
 * Access-Control-Allow-Origin (with Vary: Origin, so a shared cache keeps one answer
 * per origin); any other gets no Allow-Origin and its browser refuses the answer. A
 * preflight (OPTIONS) is answered 204 here and goes no further. No credentials: the
 * API uses bearer tokens, never cookies.
 */
export function createCors(origins: CorsOrigins): RequestHandler {
  return cors({
    // Always a list for specific origins: a single string would be sent to every caller.
    origin: origins === "*" ? "*" : [...origins],
    methods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
    allowedHeaders: CORS_REQUEST_HEADERS,
    exposedHeaders: CORS_EXPOSED_HEADERS,
    maxAge: PREFLIGHT_MAX_AGE_S,
    optionsSuccessStatus: 204,
  });
}

/** Reads CORS_ORIGINS: `*`, or a comma list of origins (`scheme://host[:port]`); unset or empty: undefined. */
export function corsOrigins() {
  return (name: string, raw: string | undefined): CorsOrigins | undefined => {
    if (raw === undefined || raw.trim() === "") return undefined;
    const items = raw.split(",").map((s) => s.trim()).filter(Boolean);
    if (items.includes("*")) {
      if (items.length > 1) throw new Error(`${name} is either * or a list of origins, not both`);
      return "*";
    }
    return items.map((item) => {
      let origin: string | undefined;
      try {
        const u = new URL(item);
        if (u.protocol === "http:" || u.protocol === "https:") origin = u.origin;
      } catch {
        // reported below
      }
      if (origin === undefined) throw new Error(`${name}: "${item}" is not an http(s) origin (scheme://host[:port])`);
      // Browsers send the origin exactly so: no path, no trailing slash, lower-case host.
      if (origin !== item) throw new Error(`${name}: "${item}" is not an origin as browsers send it; write "${origin}"`);
      return origin;
    });
  };
}
