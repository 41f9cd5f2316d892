// The one processor every lane's jobs go through: format gate, unknown job names refused, metrics labelled by queue.
import type { QueueName } from "@ingest/jobs";
import { UnrecoverableError, type Job, type Processor } from "bullmq";
import type { Logger } from "./logger.js";
import type { WorkerMetrics } from "./metrics.js";
import { versionGate } from "./version-gate.js";

/** What a handler is given beside its job: the job's lock token, and the lane's metrics. */
export type JobScope = {
  token: string | undefined;
  /** A job, or one write of it, ended: the time since the job started, by job name and outcome. */
  settled(jobName: string, outcome: string): void;
  /** Failed attempts of a job, or writes of it: transient ones retry, permanent ones do not. */
  failed(jobName: string, kind: "transient" | "permanent", count?: number): void;
};

/** What a lane supplies: how to read its jobs, and how to handle what they hold. */
type LaneHandler<I, R> = {
  queue: QueueName;
  /**
   * The work a job holds, or undefined when the lane has no handler for its name. A job
   * whose payload is bad throws an UnrecoverableError here.
   */
  read(job: Job): I | undefined;
  handle(input: I, job: Job, scope: JobScope): Promise<R>;
};

export type BaseDeps = { log: Logger; metrics: WorkerMetrics };

export function createLaneProcessor<I, R>(lane: LaneHandler<I, R>, deps: BaseDeps): Processor<unknown, R> {
  const { queue } = lane;
  const { duration, failures } = deps.metrics;
  const processor = async (job: Job, token?: string): Promise<R> => {
    const input = lane.read(job);
    // Unknown names come only from foreign producers: no retry will give them a handler.
    if (input === undefined) throw new UnrecoverableError(`UNKNOWN_JOB: no handler for job name "${job.name}"`);
    const started = performance.now();
    return lane.handle(input, job, {
      token,
      settled: (jobName, outcome) => duration.observe({ queue, job_name: jobName, outcome }, (performance.now() - started) / 1_000),
      failed: (jobName, kind, count = 1) => failures.inc({ queue, job_name: jobName, kind }, count),
    });
  };
  // A job in a format newer than this worker reads never reaches the lane.
  return versionGate(queue, processor, deps);
}
