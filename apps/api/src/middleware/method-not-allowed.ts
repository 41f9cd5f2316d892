// 405 with an Allow header for a known path asked with another method.
import type { RequestHandler } from "express";
import { AppError } from "../errors.js";

/** 405 with Allow for a known path; methods in passOn go on to later routers (reads). */
export function methodNotAllowed(allow: string[], opts: { passOn?: string[] } = {}): RequestHandler {
  const passOn = new Set(opts.passOn ?? []);
  const advertised = [...allow, ...(opts.passOn ?? [])];
  return (req, _res, next) => {
    if (passOn.has(req.method)) return next("route");
    next(new AppError("method_not_allowed", `${req.method} is not allowed here.`, { allow: advertised }));
  };
}
