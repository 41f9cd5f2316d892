// The API's Express app (createApp): middleware and routes wired from their dependencies, without a port.
import type { Producer, Queues } from "@ingest/jobs";
import express, { type Express, type RequestHandler } from "express";
import { boardRoutes, type BoardConfig } from "./admin/board.js";
import { AppError, errorHandler } from "./errors.js";
import type { JobStatusReader } from "./job-status.js";
import type { Logger } from "./logger.js";
import type { Metrics } from "./metrics.js";
import type { Auth } from "./middleware/auth.js";
import type { QueueGuard } from "./middleware/queue-guard.js";
import { edge } from "./middleware/edge.js";
import { methodNotAllowed } from "./middleware/method-not-allowed.js";
import type { Shedder } from "./middleware/shed.js";
import { docsRoutes } from "./routes/docs.js";
import { healthRoutes, type HealthDeps } from "./routes/health.js";
import { jobRoutes } from "./routes/jobs.js";
import { readRoutes } from "./routes/reads.js";
import { writeRoutes } from "./routes/writes.js";
import type { CatalogReads } from "./cache/catalog-reads.js";

export type AppDeps = {
  producer: Producer;
  jobs: JobStatusReader;
  health: HealthDeps;
  log: Logger;
  bodyLimitBytes: number;
  /** POST /products/bulk: lines and bytes per request. */
  bulk: { maxLines: number; maxBytes: number };
  queues: Queues;
  metrics: Metrics;
  auth: Auth;
  /** Undefined when rate limiting is off. */
  rateLimit: RequestHandler | undefined;
  shedder: Shedder;
  queueGuard: QueueGuard;
  board: BoardConfig | undefined;
  trustProxy: number;
  catalog: CatalogReads;
  /** Undefined when CORS_ORIGINS is unset: no CORS headers, no layer. */
  cors?: RequestHandler | undefined;
};

/** The whole HTTP surface, without a port: tests drive it directly. */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.set("query parser", "simple");
  app.set("trust proxy", deps.trustProxy);

  // Request id, security headers, access log and metrics, CORS, load shedding: one layer.
  app.use(edge({ log: deps.log, onDone: deps.metrics.observeRequest, isDraining: deps.health.isDraining, shed: deps.shedder, cors: deps.cors }));
  // The hot path first: a write passes no other router on its way.
  app.use(
    writeRoutes(deps.producer, {
      bodyLimitBytes: deps.bodyLimitBytes,
      bulk: deps.bulk,
      log: deps.log,
      // Refusals that need no body: who, how often, and whether there is room. A guard
      // that is off adds no layer.
      guards: (scope) =>
        [deps.auth.enabled ? deps.auth.require(scope) : undefined, deps.rateLimit, deps.queueGuard.middleware].filter(
          (g): g is RequestHandler => g !== undefined,
        ),
      onAccepted: (job, lines) => {
        deps.metrics.writes.inc({ job_name: job });
        if (lines) {
          deps.metrics.bulkLines.inc({ verdict: "accepted" }, lines.accepted);
          deps.metrics.bulkLines.inc({ verdict: "invalid" }, lines.invalid);
        }
      },
    }),
  );
  app.use(healthRoutes(deps.health));
  app.route("/metrics").get(deps.metrics.handler).all(methodNotAllowed(["GET", "HEAD"]));
  app.use(docsRoutes());
  if (deps.board) app.use(boardRoutes(deps.queues, deps.board));
  app.use(jobRoutes(deps.jobs));
  // After the writes: their /products routes pass GET and HEAD on to these.
  app.use(readRoutes(deps.catalog));

  app.use((req, _res, next) => {
    next(new AppError("not_found", `No route for ${req.method} ${req.path}.`));
  });
  app.use(errorHandler(deps.log));
  return app;
}
