// JSON request bodies: media type, announced size and UTF-8 checked before parsing within the limit.
import { isUtf8 } from "node:buffer";
import type { IncomingMessage } from "node:http";
import express, { type RequestHandler } from "express";
import { AppError } from "../errors.js";

const bodyError = (type: string) => Object.assign(new Error(type), { type });

// body-parser hands the raw bytes here before decoding them, and would otherwise put
// U+FFFD in place of bytes that are not UTF-8. Its errors carry a `type` (errors.ts).
function verifyUtf8(_req: IncomingMessage, _res: unknown, buf: Buffer, encoding: string): void {
  if (encoding !== "utf-8") throw bodyError("charset.unsupported");
  if (!isUtf8(buf)) throw bodyError("encoding.invalid");
}

/**
 * Whether the body is announced larger than the limit: such a request is refused from
 * its Content-Length before a byte is read (body-parser would first read it all to the
 * end), with Connection: close so the rest is never drained. A compressed body is
 * judged by what it inflates to, as it is read.
 */
export function announcedOver(req: IncomingMessage, limitBytes: number): boolean {
  const encoding = req.headers["content-encoding"];
  return Number(req.headers["content-length"]) > limitBytes && (encoding === undefined || encoding === "identity");
}

/**
 * Checks the media type and the announced length before reading anything, then parses
 * JSON within the size limit. Any JSON value parses (not only objects and arrays), so
 * `null` or `5` is reported by the schema ("must be object"), not as malformed JSON.
 */
export function jsonBody(limitBytes: number): RequestHandler {
  const parse = express.json({ limit: limitBytes, strict: false, type: () => true, verify: verifyUtf8 });
  const tooLarge = `The request body may be at most ${limitBytes} bytes.`;
  return (req, res, next) => {
    if (!req.is(["application/json", "application/*+json"])) {
      next(new AppError("unsupported_media_type", "Send the body as application/json."));
      return;
    }
    if (announcedOver(req, limitBytes)) {
      next(new AppError("payload_too_large", tooLarge, { headers: { Connection: "close" } }));
      return;
    }
    parse(req, res, next);
  };
}
