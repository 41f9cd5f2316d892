// The cluster primary with API_PROCESSES > 1: forks the API processes and replaces those that crash.
import cluster, { type Worker } from "node:cluster";
import { availableParallelism } from "node:os";
import type { Logger } from "./logger.js";
import { serveClusterMetrics } from "./metrics-cluster.js";

// A process that dies this soon after its start counts as failing at start: its
// replacement waits longer each time, and the primary gives up after a run of them.
const EARLY_DEATH_MS = 10_000;
const MAX_EARLY_DEATHS = 8;
const MAX_BACKOFF_MS = 30_000;

/**
 * Runs `count` API processes on one port (node:cluster) and replaces any that crash,
 * under an exponential backoff so a process that cannot start does not fork in a loop.
 * SIGTERM/SIGINT go to every process; the primary exits once they all have. The primary
 * also sums the processes' metrics for /metrics, whichever process takes the scrape.
 */
export function runPrimary(count: number, log: Logger, shutdownTimeoutMs: number): void {
  const processes = count === 0 ? availableParallelism() : count;
  let stopping = false;
  let earlyDeaths = 0;
  const started = new Map<number, number>();

  const fork = () => {
    const worker = cluster.fork();
    started.set(worker.id, Date.now());
  };

  cluster.on("exit", (worker: Worker, code, signal) => {
    const lived = Date.now() - (started.get(worker.id) ?? 0);
    started.delete(worker.id);
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      return;
    }
    earlyDeaths = lived < EARLY_DEATH_MS ? earlyDeaths + 1 : 0;
    if (earlyDeaths >= MAX_EARLY_DEATHS) {
      log.fatal({ earlyDeaths }, "API processes keep dying at start; giving up");
      process.exit(1);
    }
    const delay = earlyDeaths === 0 ? 0 : Math.min(MAX_BACKOFF_MS, 500 * 2 ** (earlyDeaths - 1));
    log.error({ pid: worker.process.pid, code, signal, restartInMs: delay }, "API process died; replacing it");
    setTimeout(fork, delay);
  });

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping API processes");
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal);
    setTimeout(() => process.exit(0), shutdownTimeoutMs + 5_000).unref();
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGTERM"));

  serveClusterMetrics();
  log.info({ processes }, "starting API processes");
  for (let i = 0; i < processes; i++) fork();
}
