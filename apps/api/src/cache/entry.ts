// A cached catalog answer: its bytes, its ETag, its encoding in Redis and If-None-Match against it.
import { createHash } from "node:crypto";

/** One cached answer: the JSON PostgreSQL built (or "no such product") and when it was read. */
export type Entry = {
  status: 200 | 404;
  body: Buffer;
  etag: string;
  storedAt: number;
};

/** A strong validator: the same bytes always give the same tag, in every process. */
function etagOf(body: Buffer): string {
  return `"${createHash("sha256").update(body).digest("base64url").slice(0, 32)}"`;
}

export function makeEntry(json: string | undefined, storedAt: number): Entry {
  if (json === undefined) return { status: 404, body: Buffer.alloc(0), etag: "", storedAt };
  const body = Buffer.from(json);
  return { status: 200, body, etag: etagOf(body), storedAt };
}

// In Redis: one header line "<status> <storedAt> <etag>" and the body bytes as they are,
// so a hit costs no JSON parsing and no re-hashing.
export function encodeEntry(e: Entry): Buffer {
  return Buffer.concat([Buffer.from(`${e.status} ${e.storedAt} ${e.etag || "-"}\n`), e.body]);
}

export function decodeEntry(raw: Buffer): Entry | undefined {
  const eol = raw.indexOf(10);
  if (eol < 0) return undefined;
  const [status, storedAt, etag] = raw.subarray(0, eol).toString().split(" ");
  const at = Number(storedAt);
  if ((status !== "200" && status !== "404") || !Number.isFinite(at) || !etag) return undefined;
  return { status: status === "200" ? 200 : 404, body: raw.subarray(eol + 1), etag: etag === "-" ? "" : etag, storedAt: at };
}

/** If-None-Match holds this tag (or "*"); weak comparison, as RFC 9110 asks for this header. */
export function matchesIfNoneMatch(header: string | undefined, etag: string): boolean {
  if (!header || !etag) return false;
  if (header.trim() === "*") return true;
  return header.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag);
}
