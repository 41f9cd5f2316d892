// AppError and its codes, and the middleware that answers every error as problem+json.
import type { ErrorRequestHandler, Response } from "express";
import type { Logger } from "./logger.js";

type FieldError = { path: string; message: string };

const CODES = {
  validation: { status: 400, title: "Request validation failed" },
  malformed_json: { status: 400, title: "Malformed JSON body" },
  invalid_utf8: { status: 400, title: "Request body not valid UTF-8" },
  bad_request: { status: 400, title: "Bad request" },
  not_found: { status: 404, title: "Not found" },
  method_not_allowed: { status: 405, title: "Method not allowed" },
  request_timeout: { status: 408, title: "Request timeout" },
  idempotency_in_progress: { status: 409, title: "Request with this Idempotency-Key is in progress" },
  payload_too_large: { status: 413, title: "Payload too large" },
  unsupported_media_type: { status: 415, title: "Unsupported media type" },
  idempotency_mismatch: { status: 422, title: "Idempotency-Key reused with a different request" },
  headers_too_large: { status: 431, title: "Request header fields too large" },
  queue_unavailable: { status: 503, title: "Service unavailable" },
  overloaded: { status: 503, title: "Service overloaded" },
  queue_full: { status: 503, title: "Service overloaded" },
  rate_limited: { status: 429, title: "Too many requests" },
  unauthorized: { status: 401, title: "Unauthorized" },
  forbidden: { status: 403, title: "Forbidden" },
  unavailable: { status: 503, title: "Service unavailable" },
  not_ready: { status: 503, title: "Not ready" },
  internal: { status: 500, title: "Internal server error" },
} as const;

type ErrorCode = keyof typeof CODES;

type Extra = {
  errors?: FieldError[];
  retryAfterS?: number;
  allow?: string[];
  headers?: Record<string, string>;
  /** Extension members of the problem (RFC 9457 §3.2), beside the standard ones. */
  members?: Record<string, unknown>;
};

/** The one error type of the API: a code, a message safe for clients, optional details. */
export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    readonly detail: string,
    readonly extra: Extra = {},
  ) {
    super(detail);
  }
  get status(): number {
    return CODES[this.code].status;
  }
}

/** The problem+json body of an error, and its status. */
export function problemOf(err: AppError): { status: number; body: string } {
  const { status, title } = CODES[err.code];
  const body = JSON.stringify({
    type: `/problems/${err.code.replaceAll("_", "-")}`,
    title,
    status,
    detail: err.detail,
    ...(err.extra.errors ? { errors: err.extra.errors } : {}),
    ...err.extra.members,
  });
  return { status, body };
}

function sendProblem(res: Response, err: AppError): void {
  if (err.extra.retryAfterS !== undefined) res.set("Retry-After", String(err.extra.retryAfterS));
  if (err.extra.allow) res.set("Allow", err.extra.allow.join(", "));
  if (err.extra.headers) res.set(err.extra.headers);
  const { status, body } = problemOf(err);
  res.status(status).type("application/problem+json").send(body);
}

// body-parser reports its failures with a `type`; map them to our codes.
function fromBodyParser(err: { type?: string; status?: number }): AppError | undefined {
  switch (err.type) {
    case "entity.parse.failed":
      return new AppError("malformed_json", "The request body is not valid JSON.");
    case "encoding.invalid":
      return new AppError("invalid_utf8", "The request body is not valid UTF-8.");
    case "entity.too.large":
      return new AppError("payload_too_large", "The request body is larger than allowed.");
    case "encoding.unsupported":
    case "charset.unsupported":
      return new AppError("unsupported_media_type", "Only UTF-8 encoded JSON bodies are accepted.");
    case "request.aborted":
    case "request.size.invalid":
    case "stream.encoding.set":
      return new AppError("bad_request", "The request body could not be read.");
    default:
      // Other client errors raised by Express itself (a malformed %-escape in the path).
      if (typeof err.status === "number" && err.status >= 400 && err.status < 500) {
        return err.status === 404
          ? new AppError("not_found", "Not found.")
          : new AppError("bad_request", "The request could not be understood.");
      }
      return undefined;
  }
}

/** Turns anything thrown into problem+json; internals go to the log, never to the client. */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const known =
      err instanceof AppError ? err : fromBodyParser(err as { type?: string }) ?? undefined;
    const problem = known ?? new AppError("internal", "An unexpected error occurred.");
    if (!known) log.error({ err, method: req.method, url: req.originalUrl }, "unhandled error");
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendProblem(res, problem);
  };
}
