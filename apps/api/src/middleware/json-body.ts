import express, { type RequestHandler } from "express";
import { AppError } from "../errors.js";

/** Checks the media type before reading anything, then parses JSON within the size limit. */
export function jsonBody(limitBytes: number): RequestHandler[] {
  const parse = express.json({ limit: limitBytes, strict: true, type: () => true });
  const requireJson: RequestHandler = (req, _res, next) => {
    if (!req.is(["application/json", "application/*+json"])) {
      next(new AppError("unsupported_media_type", "Send the body as application/json."));
      return;
    }
    next();
  };
  return [requireJson, parse];
}
