// During a rolling deploy, releases with different job formats run side by side. A job
// written in a format newer than this worker reads is not misread, failed or lost: it
// steps aside into the delayed set (spending no attempt, with a line in its log that
// Bull Board shows) and comes back until a worker of the newer release takes it.
import { payloadVersion, versionOf, type QueueName } from "@ingest/jobs";
import { DelayedError, type Job, type Processor } from "bullmq";
import type { Logger } from "./logger.js";
import type { WorkerMetrics } from "./metrics.js";

// A job left for a newer worker comes back after this, doubling up to the maximum: short,
// as an old worker may take it again before a new one does.
const FIRST_MS = 1_000;
const MAX_MS = 5_000;

export function versionGate<D>(queue: QueueName, processor: Processor<D>, deps: { log: Logger; metrics: WorkerMetrics }): Processor<D> {
  return async (job: Job<D>, token?: string) => {
    const version = versionOf(job.data);
    const reads = payloadVersion();
    if (version <= reads) return processor(job, token);
    // Times this job stepped aside since its last failed attempt.
    const deferred = Math.max(0, job.attemptsStarted - job.attemptsMade - 1);
    const delayMs = Math.min(FIRST_MS * 2 ** deferred, MAX_MS);
    deps.metrics.deferred.inc({ queue, reason: "newer_format" });
    const why = `job format v${version} is newer than this worker reads (up to v${reads}): left for a worker of a newer release, back in ${delayMs} ms`;
    deps.log.warn({ jobId: job.id, queue, version, reads }, "job format newer than this worker reads; left for a newer worker");
    await job.log(why).catch(() => undefined);
    await job.moveToDelayed(Date.now() + delayMs, token);
    throw new DelayedError();
  };
}
