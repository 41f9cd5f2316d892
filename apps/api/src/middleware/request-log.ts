import type { RequestHandler } from "express";
import type { Logger } from "../logger.js";

/**
 * One line per request with the request id; the request id also travels into the job
 * and the worker's lines for it. Successes log at debug (a busy API would drown its
 * logs), client errors at info, server errors at error. Nothing is built for a line
 * that is not written: no per-request child logger, which at thousands of requests a
 * second was the largest cost on the write path after Express itself.
 */
export function requestLog(log: Logger): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    const done = () => {
      res.off("finish", done);
      res.off("close", done);
      const status = res.statusCode;
      const level = status >= 500 ? "error" : status >= 400 ? "info" : "debug";
      if (!log.isLevelEnabled(level)) return;
      log[level](
        {
          req: { id: req.id, method: req.method, url: req.originalUrl },
          res: { statusCode: status },
          responseTime: Math.round(performance.now() - started),
        },
        res.writableFinished ? "request completed" : "request aborted",
      );
    };
    res.on("finish", done);
    res.on("close", done);
    next();
  };
}
