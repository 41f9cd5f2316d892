// NDJSON request bodies for bulk writes, read line by line within the limits.
import { isUtf8 } from "node:buffer";
import { createHash } from "node:crypto";
import type { Request, RequestHandler } from "express";
import { AppError } from "../errors.js";
import { announcedOver } from "./json-body.js";

type NdjsonLimits = { maxBytes: number; maxLineBytes: number; maxLines: number };

/** Checks the media type and the announced length before anything of the body is read. */
export function requireNdjson(maxBytes: number): RequestHandler {
  return (req, _res, next) => {
    if (!req.is(["application/x-ndjson", "application/jsonl"])) {
      next(new AppError("unsupported_media_type", "Send the body as application/x-ndjson: one JSON object per line."));
    } else if ((req.headers["content-encoding"] ?? "identity").toLowerCase() !== "identity") {
      next(new AppError("unsupported_media_type", "Send the NDJSON body without a Content-Encoding."));
    } else if (announcedOver(req, maxBytes)) {
      next(new AppError("payload_too_large", `The body may be at most ${maxBytes} bytes.`, { headers: { Connection: "close" } }));
    } else next();
  };
}

/**
 * Reads an NDJSON body line by line as it arrives: no line is held longer than it takes
 * to hand it on, and nothing beyond the limits is read (413). Lines are split on LF (a
 * CR before it is dropped) before decoding, so a character split across chunks stays
 * whole; a line that is not UTF-8 refuses the whole body (400), as a JSON body would
 * be. Blank lines count for numbering and are skipped. Answers the body's SHA-256,
 * which identifies the batch for Idempotency-Key.
 */
export async function readNdjson(req: Request, limits: NdjsonLimits, onLine: (text: string, line: number) => void): Promise<string> {
  const hash = createHash("sha256");
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let total = 0;
  let line = 0;
  const tooLarge = (detail: string) => new AppError("payload_too_large", detail, { headers: { Connection: "close" } });
  const emit = (bytes: Buffer) => {
    line++;
    if (line > limits.maxLines) throw tooLarge(`At most ${limits.maxLines} lines per request.`);
    if (!isUtf8(bytes)) {
      throw new AppError("invalid_utf8", "The request body is not valid UTF-8.", {
        errors: [{ path: `/lines/${line}`, message: "is not valid UTF-8" }],
        headers: { Connection: "close" },
      });
    }
    let text = bytes.toString("utf8");
    if (text.endsWith("\r")) text = text.slice(0, -1);
    if (text.trim() !== "") onLine(text, line);
  };
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) onChunk(chunk);
  } catch (err) {
    if (err instanceof AppError) throw err;
    // The client went away or the connection broke mid-body: nothing was stored.
    throw new AppError("bad_request", "The request body could not be read to its end.");
  }
  if (pendingBytes) emit(Buffer.concat(pending));
  return hash.digest("base64url");

  function onChunk(chunk: Buffer) {
    total += chunk.length;
    if (total > limits.maxBytes) throw tooLarge(`The body may be at most ${limits.maxBytes} bytes.`);
    hash.update(chunk);
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      const piece = chunk.subarray(start, nl);
      if (pendingBytes + piece.length > limits.maxLineBytes) throw tooLarge(`Line ${line + 1} is longer than ${limits.maxLineBytes} bytes.`);
      emit(pendingBytes ? Buffer.concat([...pending, piece]) : piece);
      pending = [];
      pendingBytes = 0;
      start = nl + 1;
    }
    if (start < chunk.length) {
      pending.push(chunk.subarray(start));
      pendingBytes += chunk.length - start;
      if (pendingBytes > limits.maxLineBytes) throw tooLarge(`Line ${line + 1} is longer than ${limits.maxLineBytes} bytes.`);
    }
  }
}
