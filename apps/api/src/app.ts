import type { Producer } from "@ingest/jobs";
import express, { type Express } from "express";
import { AppError, errorHandler } from "./errors.js";
import type { JobStatusReader } from "./job-status.js";
import type { Logger } from "./logger.js";
import { requestId } from "./middleware/request-id.js";
import { healthRoutes, type HealthDeps } from "./routes/health.js";
import { jobRoutes } from "./routes/jobs.js";
import { writeRoutes } from "./routes/writes.js";

export type AppDeps = {
  producer: Producer;
  jobs: JobStatusReader;
  health: HealthDeps;
  log: Logger;
  bodyLimitBytes: number;
};

/** The whole HTTP surface, without a port: tests drive it directly. */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.set("query parser", "simple");

  app.use(requestId);
  app.use(healthRoutes(deps.health));
  app.use(writeRoutes(deps.producer, deps.bodyLimitBytes, deps.log));
  app.use(jobRoutes(deps.jobs));

  app.use((req, _res, next) => {
    next(new AppError("not_found", `No route for ${req.method} ${req.path}.`));
  });
  app.use(errorHandler(deps.log));
  return app;
}
