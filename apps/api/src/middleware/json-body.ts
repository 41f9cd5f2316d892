import express, { type RequestHandler } from "express";
import { AppError } from "../errors.js";

/** Checks the media type before reading anything, then parses JSON within the size limit. One layer. */
export function jsonBody(limitBytes: number): RequestHandler {
  const parse = express.json({ limit: limitBytes, strict: true, type: () => true });
  return (req, res, next) => {
    if (!req.is(["application/json", "application/*+json"])) {
      next(new AppError("unsupported_media_type", "Send the body as application/json."));
      return;
    }
    parse(req, res, next);
  };
}
