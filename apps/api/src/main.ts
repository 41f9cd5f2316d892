// The API process: reads its configuration, then runs the cluster primary or one server, closing on SIGTERM or SIGINT.
import cluster from "node:cluster";
import { CLOSE_GRACE_MS, exitOnStopSignals, listenFailure } from "@ingest/runtime";
import { flushTracing } from "@ingest/telemetry";
import { createApp } from "./app.js";
import { runPrimary } from "./cluster.js";
import { createRuntime } from "./deps.js";
import { checkEnv, loadEnv } from "./env.js";
import { createLogger } from "./logger.js";
import { createApiServer } from "./server.js";

const env = (() => {
  try {
    const parsed = loadEnv();
    const problems = checkEnv(parsed);
    if (problems.length) throw new Error(`invalid configuration:\n  ${problems.join("\n  ")}`);
    return parsed;
  } catch (err) {
    console.error((err as Error).message);
    process.exit(1);
  }
})();

const log = createLogger(env.LOG_LEVEL, env.NODE_ENV === "development" && process.stdout.isTTY);

if (env.API_PROCESSES !== 1 && cluster.isPrimary) {
  runPrimary(env.API_PROCESSES, log, env.SHUTDOWN_TIMEOUT_MS);
} else {
  serve();
}

function serve(): void {
  const runtime = createRuntime(env, log);
  const server = createApiServer(createApp(runtime.deps));

  // A port that cannot be had is a start-up failure: one line naming it, exit 1.
  server.on("error", (err: NodeJS.ErrnoException) => {
    if (server.listening) return void log.error({ err }, "server error");
    console.error(listenFailure(err, env.PORT, "PORT"));
    process.exit(1);
  });
  server.listen(env.PORT, env.HOST, () => {
    const addr = server.address();
    const port = typeof addr === "object" && addr ? addr.port : env.PORT;
    log.info({ port, pid: process.pid }, `API listening on http://localhost:${port}`);
  });

  let closing: Promise<void> | undefined;
  const close = (signal: string): Promise<void> => {
    closing ??= (async () => {
      log.info({ signal }, "shutting down: draining requests");
      runtime.setDraining();
      // Stop accepting, let in-flight requests finish, drop idle keep-alive sockets;
      // responses still to come carry "Connection: close".
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const idleSweep = setInterval(() => server.closeIdleConnections(), 100);
      const deadline = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), env.SHUTDOWN_TIMEOUT_MS).unref());
      if ((await Promise.race([closed, deadline])) === "timeout") {
        log.warn("requests still in flight at the deadline; closing their connections");
        server.closeAllConnections();
      }
      clearInterval(idleSweep);
      await runtime.close();
      await flushTracing();
      log.info("api stopped");
    })();
    return closing;
  };

  exitOnStopSignals(close, env.SHUTDOWN_TIMEOUT_MS, () =>
    log.warn({ graceMs: CLOSE_GRACE_MS }, "connections did not close in time; exiting anyway"),
  );
}
