// Scaling (only when named: --only scaling): drain throughput of the product's worker with
// 1, 2, 4 and 8 processes (--scaling-workers) against the configured Redis and against a
// private 3-master Redis Cluster started for the run, each beside BullMQ's no-op worker
// for the same process count: the curve, and BullMQ's own ceiling to read it against.
// Same jobs, concurrency and EMAIL_CONCURRENCY=0 as the drain scenario.
import { measureDrains, startWorkers } from "./drain.mjs";
import { onTeardown } from "../lib/processes.mjs";
import { openQueue } from "../lib/queue.mjs";
import { deleteKeys } from "../lib/resources.mjs";
import { startRedisCluster } from "../../scripts/redis-cluster.mjs";

export const TARGETS = ["single", "cluster"];
const SCALING_KINDS = ["worker", "noop"];

export async function runScaling(ctx, log) {
  const { scalingJobs: jobs, scalingWorkers, repeats, quick } = ctx.opts;
  // Bounds, as the drain: one drain stops at capMs; repeats only while a pair is under budgetMs.
  const capMs = quick ? 4_000 : 10_000;
  const budgetMs = quick ? 3_000 : 8_000;
  const warmJobs = Math.min(quick ? 200 : 500, jobs);
  const results = { jobs, concurrency: ctx.opts.concurrency, runs: {} };
  for (const target of TARGETS) {
    let cluster;
    let unregister;
    if (target === "cluster") {
      const started = performance.now();
      cluster = await startRedisCluster({ masters: 3 });
      // Ctrl-C or a failure elsewhere stops it with the rest of the run.
      unregister = onTeardown(cluster.stop);
      const queueSlotMaster = await cluster.masterOf(ctx.prefix("scaling"));
      results.cluster = { masters: 3, replicas: 3, nodes: cluster.nodesEnv, startSeconds: (performance.now() - started) / 1000 };
      log(`scaling: private Redis Cluster up (3 masters + 3 replicas, ${cluster.nodesEnv}); the queue's hash slot is on ${queueSlotMaster}`);
    }
    try {
      for (const count of scalingWorkers) {
        for (const kind of SCALING_KINDS) {
          const prefix = ctx.prefix(`scaling-${target}-${kind}-${count}`);
          const extraEnv = cluster ? { REDIS_CLUSTER_NODES: cluster.nodesEnv } : {};
          const { queue, close } = openQueue(ctx.redisUrl, prefix, cluster ? { clusterNodes: cluster.nodes } : {});
          try {
            const procs = await startWorkers(ctx, kind, count, prefix, queue, extraEnv);
            try {
              const m = await measureDrains(ctx, queue, { kind, jobs, tag: `${ctx.run}-scaling-${target}-${kind}-${count}`, repeats, capMs, budgetMs, warmJobs });
              results.runs[`${target}:${kind}:${count}`] = { target, kind, workers: count, jobs, ...m };
              log(`scaling ${target} ${kind} ×${count}: ${Math.round(m.rate)} jobs/s${m.runs.some((x) => x.capped) ? " (capped)" : ""}${m.rows === undefined ? "" : `, ${m.rows} rows`}${m.failed ? `, ${m.failed} FAILED` : ""}`);
            } finally {
              await Promise.all(procs.map((p) => p.stop()));
            }
          } finally {
            await close();
            // The cluster's keys go with the cluster; the single Redis is shared.
            if (!cluster) await deleteKeys(ctx.redisUrl, `${prefix}*`);
          }
        }
      }
    } finally {
      unregister?.();
      await cluster?.stop();
    }
  }
  return results;
}
