import { randomUUID } from "node:crypto";
import type { RequestHandler } from "express";

const ACCEPTABLE = /^[\x21-\x7e]{1,128}$/;

declare module "express-serve-static-core" {
  interface Request {
    id: string;
  }
}

/** Takes the caller's X-Request-Id when it is sane, else makes one; echoes it back. */
export const requestId: RequestHandler = (req, res, next) => {
  const given = req.get("x-request-id");
  req.id = given && ACCEPTABLE.test(given) ? given : randomUUID();
  res.set("X-Request-Id", req.id);
  next();
};
