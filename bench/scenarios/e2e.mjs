// End to end: the API and two workers together under a fixed offered rate for a fixed
// time. Every accepted write must be drained, and the backlog must not build up.
import { setTimeout as sleep } from "node:timers/promises";
import { apiEnv, workerEnv } from "../lib/config.mjs";
import { registrationRequest, runLoad } from "../lib/load.mjs";
import { rssOf, startNode, startServer, waitFor } from "../lib/processes.mjs";
import { openQueue, pendingJobs } from "../lib/queue.mjs";
import { countRows, deleteKeys, redisInfo } from "../lib/resources.mjs";

const WORKERS = 2;

/**
 * Writes the API stored as jobs, from its own counter: the client's count misses the
 * answers still in flight when the load stops. Undefined if the metric is not there.
 */
async function acceptedByApi(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = text.match(/^ingest_writes_accepted_total\{job_name="registration\.create"\} (\d+)/m);
  return m ? Number(m[1]) : undefined;
}

export async function runE2e(ctx, log, { rate }) {
  const prefix = ctx.prefix("e2e");
  const { queue, close } = openQueue(ctx.redisUrl, prefix);
  const api = await startServer("api (e2e)", "apps/api/dist/index.js", apiEnv(ctx, prefix), "/readyz");
  const workers = Array.from({ length: WORKERS }, (_, i) => startNode(`worker ${i + 1} (e2e)`, "apps/worker/dist/index.js", workerEnv(ctx, prefix)));
  try {
    await waitFor(async () => (await queue.getWorkersCount()) >= WORKERS, { label: "e2e workers", child: workers[0] });
    const rowsBefore = await countRows(ctx.databaseUrl, "registrations");
    const samples = [];
    let sampling = true;
    const started = performance.now();
    const sampler = (async () => {
      while (sampling) {
        const [backlog, rss, redis] = await Promise.all([pendingJobs(queue), rssOf(api.pid), redisInfo(ctx.redisUrl)]);
        samples.push({ t: Math.round(performance.now() - started), backlog, apiRss: rss, redisUsedMemory: redis.usedMemory });
        await sleep(1_000);
      }
    })();
    const load = await runLoad(api.url, {
      seconds: ctx.opts.e2eSeconds,
      overallRate: rate,
      request: registrationRequest(`${ctx.run}-e2e`),
    });
    sampling = false;
    await sampler;
    const backlogAtEnd = await pendingJobs(queue);
    const acceptedServer = await acceptedByApi(api.url).catch(() => undefined);
    const drainedDuringLoad = (await countRows(ctx.databaseUrl, "registrations")) - rowsBefore;
    // The tail: how long the workers need for what was still queued when the load stopped.
    const tailStart = performance.now();
    await waitFor(async () => (await pendingJobs(queue)) === 0, { timeoutMs: ctx.opts.quick ? 5_000 : 20_000, label: "e2e backlog to drain" }).catch(() => {});
    const tailMs = performance.now() - tailStart;
    const drained = (await countRows(ctx.databaseUrl, "registrations")) - rowsBefore;
    const failed = (await queue.getJobCounts("failed")).failed ?? 0;
    const result = {
      offeredRate: rate,
      seconds: load.seconds,
      accepted: acceptedServer ?? load.ok,
      acceptedCountedBy: acceptedServer === undefined ? "client" : "api metric",
      answered: load.ok,
      acceptedRate: load.rate,
      p50: load.p50,
      p99: load.p99,
      non2xx: load.non2xx,
      errors: load.errors,
      drainedDuringLoad,
      drainedRate: drainedDuringLoad / load.seconds,
      drained,
      failed,
      backlogAtEnd,
      backlogMax: Math.max(0, ...samples.map((s) => s.backlog)),
      tailMs,
      samples,
    };
    log(`e2e at ${rate} req/s for ${load.seconds} s: ${result.accepted} accepted, ${drained} drained (${drainedDuringLoad} during the load), backlog at end ${backlogAtEnd}, max ${result.backlogMax}`);
    return result;
  } finally {
    await Promise.all([api.stop(), ...workers.map((w) => w.stop())]);
    await close();
    await deleteKeys(ctx.redisUrl, `${prefix}*`);
  }
}
