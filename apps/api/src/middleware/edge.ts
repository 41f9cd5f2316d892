// The one middleware every request passes first: request id, access log, metrics, headers, CORS and load shedding.
import { randomUUID } from "node:crypto";
import type { NextFunction, Request, RequestHandler, Response } from "express";
import { AppError } from "../errors.js";
import type { Logger } from "../logger.js";
import { securityHeaderSets } from "./security-headers.js";

const ACCEPTABLE_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;
// Probes and scrapes must keep answering while the service sheds load.
const SHED_EXEMPT = new Set(["/healthz", "/readyz", "/metrics"]);

declare module "express-serve-static-core" {
  interface Request {
    id: string;
  }
}

type EdgeDeps = {
  log: Logger;
  /** Called once per request when the response has ended (finished or cut off). */
  onDone: (req: Request, res: Response, seconds: number) => void;
  isDraining: () => boolean;
  /** Event-loop delay sustained now, and the threshold above which requests are refused (0: never). */
  shed: { lagMs: number; sustainedDelayMs: () => number; onShed: () => void };
  /** CORS headers and preflights; undefined (no work at all) when CORS_ORIGINS is unset. */
  cors?: RequestHandler | undefined;
};

/**
 * What every request goes through before any route, in one middleware: its request id
 * (the caller's X-Request-Id when sane, else a new one, echoed back), Connection: close
 * while draining, the security headers, one listener for the access log and the
 * metrics, CORS when configured, and the load shedder, which refuses before any body
 * is read. One layer instead of seven: each layer of Express's router is a visible
 * share of the ≈ 4–8k requests a second one process answers.
 *
 * The access log writes one line per request with the request id: successes at debug
 * (a busy API would drown its logs), client errors at info, server errors at error;
 * nothing is built for a line that is not written.
 */
export function edge(deps: EdgeDeps): RequestHandler {
  const { log, onDone, isDraining, shed, cors } = deps;
  const headers = securityHeaderSets();
  const shedOrPass = (path: string, next: NextFunction) => {
    if (shed.lagMs > 0 && !SHED_EXEMPT.has(path) && shed.sustainedDelayMs() > shed.lagMs) {
      shed.onShed();
      next(new AppError("overloaded", "The service is overloaded; retry shortly.", { retryAfterS: 1 }));
      return;
    }
    next();
  };
  return (req, res, next) => {
    const started = performance.now();
    const given = req.headers["x-request-id"];
    req.id = typeof given === "string" && ACCEPTABLE_REQUEST_ID.test(given) ? given : randomUUID();
    res.setHeader("X-Request-Id", req.id);
    if (isDraining()) res.setHeader("Connection", "close");
    const path = req.path;
    for (const [name, value] of path.startsWith("/admin/") || path.startsWith("/docs") ? headers.relaxed : headers.strict) {
      res.setHeader(name, value);
    }
    // "close" follows "finish" on every response, and also ends one that was cut off.
    res.once("close", () => {
      const ms = performance.now() - started;
      if (res.writableFinished) onDone(req, res, ms / 1_000);
      const status = res.statusCode;
      const level = status >= 500 ? "error" : status >= 400 ? "info" : "debug";
      if (!log.isLevelEnabled(level)) return;
      log[level](
        { req: { id: req.id, method: req.method, url: req.originalUrl }, res: { statusCode: status }, responseTime: Math.round(ms) },
        res.writableFinished ? "request completed" : "request aborted",
      );
    });
    // CORS before shedding: every refusal from here on carries the headers a browser
    // needs to read it, and a preflight is answered here, never shed, limited or
    // authenticated. Not for Bull Board: operators use it from the API's own origin.
    if (cors && !path.startsWith("/admin/")) {
      cors(req, res, (err?: unknown) => (err ? next(err) : shedOrPass(path, next)));
      return;
    }
    shedOrPass(path, next);
  };
}
