// The write routes: each validated request becomes a job and is answered 202 with its id.
import {
  BULK_JOB,
  BULK_LISTED_MAX,
  parseBulkLine,
  type Accepted,
  type BulkLine,
  type InvalidLine,
  IdempotencyConflictError,
  NotReplicatedError,
  QueueUnavailableError,
  ZProduct,
  ZProductPatch,
  ZRegistration,
  check,
  type JobName,
  type PayloadOf,
  type Producer,
} from "@ingest/jobs";
import type { TSchema } from "@sinclair/typebox";
import { Router, type Request, type RequestHandler, type Response } from "express";
import { AppError } from "../errors.js";
import type { Logger } from "../logger.js";
import { idempotencyFor } from "../idempotency.js";
import { jsonBody } from "../middleware/json-body.js";
import { methodNotAllowed } from "../middleware/method-not-allowed.js";
import { readNdjson, requireNdjson } from "../middleware/ndjson.js";

const PRODUCT_ID = /^[1-9][0-9]{0,9}$/;
const MAX_PRODUCT_ID = 2_147_483_647;

export function parseProductId(raw: string | undefined): number {
  const id = raw !== undefined && PRODUCT_ID.test(raw) ? Number(raw) : NaN;
  if (!(id <= MAX_PRODUCT_ID)) {
    throw new AppError("bad_request", "The product id must be a positive whole number.", {
      errors: [{ path: "/id", message: `must be an integer from 1 to ${MAX_PRODUCT_ID}` }],
    });
  }
  return id;
}

function validBody<S extends TSchema>(schema: S, body: unknown) {
  const checked = check(schema, body);
  if (!checked.ok) {
    throw new AppError("validation", "The request body does not match the schema.", { errors: checked.errors });
  }
  return checked.value;
}

type WriteOptions = {
  bodyLimitBytes: number;
  bulk: { maxLines: number; maxBytes: number };
  log: Logger;
  /** Checks that run before the body is read, given the route's scope. */
  guards: (scope: string) => RequestHandler[];
  onAccepted: (job: JobName | typeof BULK_JOB, lines?: { accepted: number; invalid: number }) => void;
};

export function writeRoutes(producer: Producer, opts: WriteOptions): Router {
  const router = Router();
  const { log } = opts;
  const json = jsonBody(opts.bodyLimitBytes);
  const registrationsGuards = opts.guards("registrations:write");
  const productsGuards = opts.guards("products:write");

  /** Stores through the producer, turning its refusals into problems. */
  async function store(req: Request, enqueue: () => Promise<Accepted>): Promise<Accepted> {
    try {
      return await enqueue();
    } catch (err) {
      if (err instanceof IdempotencyConflictError) {
        throw err.reason === "mismatch"
          ? new AppError("idempotency_mismatch", "This Idempotency-Key was used with a different request.")
          : new AppError("idempotency_in_progress", "The first request with this Idempotency-Key is still being accepted; retry shortly.", { retryAfterS: 1 });
      }
      if (err instanceof QueueUnavailableError && err.cause instanceof NotReplicatedError) {
        log.warn({ err: err.cause, requestId: req.id }, "write not accepted: no replica confirmed it");
        throw new AppError(
          "queue_unavailable",
          "The write reached the queue but too few replicas confirmed it in time, so it is not accepted; it may still be applied. Retry with the same Idempotency-Key.",
          { retryAfterS: 2 },
        );
      }
      if (err instanceof QueueUnavailableError) {
        log.warn({ err: err.cause, requestId: req.id }, "write not stored: queue unavailable");
        throw new AppError("queue_unavailable", "The write could not be stored; nothing was accepted. Retry later.", { retryAfterS: 2 });
      }
      throw err;
    }
  }

  // Written straight to the response: what res.status().location().json() would send,
  // without its content negotiation and header lookups on the busiest path. Job ids are
  // URL-safe as they are.
  const answer = (res: Response, jobId: string, extra: Record<string, unknown> = {}) => {
    const statusUrl = `/jobs/${jobId}`;
    const body = JSON.stringify({ jobId, status: "queued", statusUrl, ...extra });
    res.statusCode = 202;
    res.setHeader("Location", statusUrl);
    res.setHeader("Content-Type", "application/json; charset=utf-8");
    res.setHeader("Content-Length", Buffer.byteLength(body));
    res.end(body);
  };

  async function accept<N extends JobName>(req: Request, res: Response, name: N, payload: PayloadOf<N>) {
    const idempotency = idempotencyFor(req, payload, req.auth?.sub);
    const sizeHint = Number(req.headers["content-length"]) || 0;
    const accepted = await store(req, () => producer.enqueue(name, payload, { idempotency, requestId: req.id, sizeHint }));
    if (!accepted.replayed) opts.onAccepted(name);
    answer(res, accepted.jobId);
  }

  // One product operation per line, read as it arrives; invalid lines are reported and
  // the valid ones stored as one batch job in the bulk lane.
  const bulkLimits = { maxLines: opts.bulk.maxLines, maxBytes: opts.bulk.maxBytes, maxLineBytes: opts.bodyLimitBytes };
  async function acceptBulk(req: Request, res: Response) {
    const lines: BulkLine[] = [];
    const invalid: InvalidLine[] = [];
    let invalidCount = 0;
    const digest = await readNdjson(req, bulkLimits, (text, line) => {
      const parsed = parseBulkLine(text, line);
      if (parsed.ok) lines.push(parsed.value);
      else if (++invalidCount <= BULK_LISTED_MAX) invalid.push(parsed.invalid);
    });
    const errors = invalid.flatMap((l) => l.errors.map((e) => ({ path: `/lines/${l.line}${e.path}`, message: e.message })));
    if (lines.length === 0) {
      throw new AppError("validation", invalidCount ? "No line of the batch is valid; nothing was accepted." : "The batch is empty: send one product operation per line.", { errors });
    }
    const idempotency = idempotencyFor(req, { sha256: digest }, req.auth?.sub);
    const accepted = await store(req, () => producer.enqueueBulk({ lines, invalidCount, invalid }, { idempotency, requestId: req.id }));
    if (!accepted.replayed) opts.onAccepted(BULK_JOB, { accepted: lines.length, invalid: invalidCount });
    answer(res, accepted.jobId, { accepted: lines.length, invalid: invalidCount, ...(errors.length ? { errors } : {}) });
  }

  router
    .route("/registrations")
    .post(registrationsGuards, json, (req: Request, res: Response) => accept(req, res, "registration.create", { registration: validBody(ZRegistration, req.body) }))
    .all(methodNotAllowed(["POST"]));

  router
    .route("/products")
    .post(productsGuards, json, (req: Request, res: Response) => accept(req, res, "product.create", { product: validBody(ZProduct, req.body) }))
    .all(methodNotAllowed(["POST"], { passOn: ["GET", "HEAD"] }));

  // Before /products/:id, whose methods would otherwise answer for it.
  router
    .route("/products/bulk")
    .post(productsGuards, requireNdjson(opts.bulk.maxBytes), acceptBulk)
    .all(methodNotAllowed(["POST"]));

  const withId = (req: Request) => parseProductId(String(req.params.id));
  // A bad id is reported before the body is even read.
  const idFirst: RequestHandler = (req, _res, next) => {
    withId(req);
    next();
  };
  router
    .route("/products/:id")
    .put(
      idFirst,
      productsGuards,
      json,
      (req: Request, res: Response) => accept(req, res, "product.replace", { productId: withId(req), product: validBody(ZProduct, req.body) }),
    )
    .patch(
      idFirst,
      productsGuards,
      json,
      (req: Request, res: Response) => accept(req, res, "product.patch", { productId: withId(req), changes: validBody(ZProductPatch, req.body) }),
    )
    .delete(idFirst, productsGuards, (req: Request, res: Response) => accept(req, res, "product.delete", { productId: withId(req) }))
    .all(methodNotAllowed(["PUT", "PATCH", "DELETE"], { passOn: ["GET", "HEAD"] }));

  return router;
}
