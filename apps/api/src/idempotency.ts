// The Idempotency-Key header of a write: its check and the fingerprint of the body it covers.
import { createHash } from "node:crypto";
import type { Request } from "express";
import type { Idempotency } from "@ingest/jobs";
import { AppError } from "./errors.js";

/** 1 to 255 printable ASCII characters; a string, for the OpenAPI document too. */
export const IDEMPOTENCY_KEY_PATTERN = "^[\\x20-\\x7E]{1,255}$";
const KEY_PATTERN = new RegExp(IDEMPOTENCY_KEY_PATTERN);

/** Reads the Idempotency-Key header; undefined when absent, 400 when malformed. */
export function idempotencyFor(req: Request, payload: unknown, subject?: string): Idempotency | undefined {
  const raw = req.headers["idempotency-key"];
  if (raw === undefined) return undefined;
  if (typeof raw !== "string" || !KEY_PATTERN.test(raw)) {
    throw new AppError("bad_request", "Idempotency-Key must be 1 to 255 printable ASCII characters.", {
      errors: [{ path: "header/Idempotency-Key", message: "must be 1 to 255 printable ASCII characters" }],
    });
  }
  // Node joins repeated headers with ", ", which a single key may contain too: only then
  // count the raw headers.
  if (raw.includes(", ") && repeated(req.rawHeaders, "idempotency-key")) {
    throw new AppError("bad_request", "Send one Idempotency-Key header, not several.", {
      errors: [{ path: "header/Idempotency-Key", message: "must be sent once" }],
    });
  }
  const fingerprint = createHash("sha256")
    .update(`${req.method} ${req.baseUrl}${req.path}\n${stableStringify(payload)}`)
    .digest("base64url");
  // Keys are per client: the token's subject; without auth every client shares one scope.
  return { scope: subject === undefined ? "anonymous" : `sub:${subject}`, key: raw, fingerprint };
}

function repeated(rawHeaders: string[], name: string): boolean {
  let seen = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === name) seen++;
  return seen > 1;
}

/** JSON with object keys sorted, so the same body in another key order matches. */
function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableStringify((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}
