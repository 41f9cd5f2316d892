// The registrations queue seen from outside: prefilled with the producer's job shape,
// watched until empty.
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Queue } from "bullmq";
import { Cluster, Redis } from "ioredis";
import { onTeardown, state } from "./processes.mjs";

// The producer's defaults (packages/jobs/src/queues.ts), so finished jobs are trimmed alike.
const JOB_OPTIONS = {
  attempts: 10,
  backoff: { type: "exponential", delay: 1_000 },
  removeOnComplete: { age: 3_600, count: 10_000 },
  removeOnFail: { age: 7 * 24 * 3_600, count: 100_000 },
};
const PENDING = ["waiting", "active", "delayed", "prioritized", "paused", "waiting-children"];

/** A queue (registrations unless named) on one Redis (the URL) or, with clusterNodes ([{host, port}]), a Redis Cluster. */
export function openQueue(redisUrl, prefix, { clusterNodes, name = "registrations" } = {}) {
  if (state.aborted) throw new Error("aborted");
  // Fails rather than waits when Redis goes away, and is cut at teardown.
  const connection = clusterNodes
    ? new Cluster(clusterNodes, { redisOptions: { maxRetriesPerRequest: 1 } })
    : new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  const unregister = onTeardown(() => connection.disconnect());
  const queue = new Queue(name, { connection, prefix, streams: { events: { maxLen: 10_000 } } });
  queue.on("error", (err) => console.error(`bench queue error: ${err.message}`));
  return {
    queue,
    async close() {
      unregister();
      await queue.close().catch(() => {});
      connection.disconnect();
    },
  };
}

// What the API's carriers hold under a closed loop of 50 connections, measured: about 25.
export const WRITES_PER_CARRIER = 25;

/**
 * Adds n registrations in a few round trips: as the API stores them (carrier jobs of
 * perCarrier writes each, ids `<carrier>.<n>`), or with perCarrier 0 one job each (what
 * the BullMQ baselines take).
 */
export async function prefill(queue, n, tag, { perCarrier = 0 } = {}) {
  const registration = (j) => ({ registration: { email: `${tag}-${j}@bench.example`, name: "Bench User" } });
  const size = perCarrier || 1;
  for (let i = 0; i < n; i += 1_000 * size) {
    const jobs = [];
    for (let j = i; j < Math.min(n, i + 1_000 * size); j += size) {
      const jobId = `reg-${randomUUID()}`;
      if (!perCarrier) {
        jobs.push({ name: "registration.create", data: { payload: registration(j) }, opts: { ...JOB_OPTIONS, jobId } });
        continue;
      }
      const writes = [];
      for (let k = j; k < Math.min(n, j + size); k++) writes.push({ id: `${jobId}.${k - j}`, name: "registration.create", payload: registration(k) });
      jobs.push({ name: "writes", data: { writes }, opts: { ...JOB_OPTIONS, jobId } });
    }
    await queue.addBulk(jobs);
  }
}

export async function pendingJobs(queue) {
  const counts = await queue.getJobCounts(...PENDING);
  return PENDING.reduce((sum, k) => sum + (counts[k] ?? 0), 0);
}

/** Waits (polling every 10 ms) until nothing is pending; returns the elapsed ms. */
export async function waitEmpty(queue, { timeoutMs }) {
  const started = performance.now();
  while ((await pendingJobs(queue)) > 0) {
    if (state.aborted) throw new Error("aborted");
    if (performance.now() - started > timeoutMs) throw new Error(`queue not drained after ${timeoutMs} ms`);
    await sleep(10);
  }
  return performance.now() - started;
}
