// The worker process: reads its configuration, runs the runtime (runtime.ts), closes it on SIGTERM or SIGINT.
import { CLOSE_GRACE_MS, exitOnStopSignals, listenFailure } from "@ingest/runtime";
import { hasHashTag } from "@ingest/jobs";
import { setPriority } from "node:os";
import { loadEnv } from "./env.js";
import { createLogger } from "./logger.js";
import { createWorkerRuntime } from "./runtime.js";

const env = (() => {
  try {
    return loadEnv();
  } catch (err) {
    console.error((err as Error).message);
    process.exit(1);
  }
})();

const log = createLogger(env.LOG_LEVEL, env.NODE_ENV === "development" && process.stdout.isTTY);
if (env.WORKER_NICE > 0) {
  try {
    setPriority(env.WORKER_NICE);
  } catch (err) {
    log.warn({ err, nice: env.WORKER_NICE }, "could not lower the worker's CPU priority");
  }
}
if (env.REDIS_CLUSTER_NODES && !hasHashTag(env.QUEUE_PREFIX)) {
  console.error(`QUEUE_PREFIX must contain a {hash tag} on a Redis Cluster (REDIS_CLUSTER_NODES), got "${env.QUEUE_PREFIX}"`);
  process.exit(1);
}

const runtime = createWorkerRuntime(env, { log });
// Probes and scrapes need the metrics port: without it the worker does not run.
runtime.start().catch((err: NodeJS.ErrnoException) => {
  console.error(listenFailure(err, env.WORKER_METRICS_PORT, "WORKER_METRICS_PORT"));
  void runtime.close("start-up failure").finally(() => process.exit(1));
});

exitOnStopSignals(runtime.close, env.SHUTDOWN_TIMEOUT_MS, () =>
  log.warn({ graceMs: CLOSE_GRACE_MS }, "connections did not close in time; exiting anyway"),
);
