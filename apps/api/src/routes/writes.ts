import {
  IdempotencyConflictError,
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

export type WriteOptions = {
  bodyLimitBytes: number;
  log: Logger;
  /** Checks that run before the body is read, given the route's scope. */
  guards: (scope: string) => RequestHandler[];
  onAccepted: (job: JobName) => void;
};

export function writeRoutes(producer: Producer, opts: WriteOptions): Router {
  const router = Router();
  const { log } = opts;
  const json = jsonBody(opts.bodyLimitBytes);
  const registrationsGuards = opts.guards("registrations:write");
  const productsGuards = opts.guards("products:write");

  async function accept<N extends JobName>(req: Request, res: Response, name: N, payload: PayloadOf<N>) {
    const idempotency = idempotencyFor(req, payload, req.auth?.sub);
    let accepted;
    try {
      accepted = await producer.enqueue(name, payload, { idempotency, requestId: req.id });
    } catch (err) {
      if (err instanceof IdempotencyConflictError) {
        throw err.reason === "mismatch"
          ? new AppError("idempotency_mismatch", "This Idempotency-Key was used with a different request.")
          : new AppError("idempotency_in_progress", "The first request with this Idempotency-Key is still being accepted; retry shortly.", { retryAfterS: 1 });
      }
      if (err instanceof QueueUnavailableError) {
        log.warn({ err: err.cause, requestId: req.id }, "write not stored: queue unavailable");
        throw new AppError("queue_unavailable", "The write could not be stored; nothing was accepted. Retry later.", { retryAfterS: 2 });
      }
      throw err;
    }
    if (!accepted.replayed) opts.onAccepted(name);
    const statusUrl = `/jobs/${accepted.jobId}`;
    res.status(202).location(statusUrl).json({ jobId: accepted.jobId, status: "queued", statusUrl });
  }

  router
    .route("/registrations")
    .post(registrationsGuards, json, (req: Request, res: Response) => accept(req, res, "registration.create", { registration: validBody(ZRegistration, req.body) }))
    .all(methodNotAllowed(["POST"]));

  router
    .route("/products")
    .post(productsGuards, json, (req: Request, res: Response) => accept(req, res, "product.create", { product: validBody(ZProduct, req.body) }))
    .all(methodNotAllowed(["POST"], { passOn: ["GET", "HEAD"] }));

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
