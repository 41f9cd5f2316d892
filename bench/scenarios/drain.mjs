// Drain: N jobs waiting, then time to empty with 1, 2, 4 worker processes, for the
// product's worker and two baselines taking the very same jobs: BullMQ's no-op ceiling
// and a worker doing one INSERT per job.
import { setTimeout as sleep } from "node:timers/promises";
import { workerEnv } from "../lib/config.mjs";
import { median } from "../lib/load.mjs";
import { startNode, state, waitFor } from "../lib/processes.mjs";
import { openQueue, pendingJobs, prefill } from "../lib/queue.mjs";
import { cpuBetween, cpuSnapshot } from "../lib/cpu.mjs";
import { countRows, deleteKeys } from "../lib/resources.mjs";

export const KINDS = {
  worker: { script: "apps/worker/dist/index.js", table: "registrations" },
  noop: { script: "bench/targets/baseline-worker.mjs", mode: "noop" },
  insert: { script: "bench/targets/baseline-worker.mjs", mode: "insert", table: "bench_job_registrations" },
};

export async function startWorkers(ctx, kind, count, prefix, queue, extraEnv = {}) {
  const { script, mode } = KINDS[kind];
  // The product's worker applies the registrations, each with its welcome email's outbox
  // row; dispatching and sending the emails is a lane of its own (EMAIL_CONCURRENCY,
  // scaled apart), kept out of this figure as the baselines send nothing either.
  const env = workerEnv(ctx, prefix, { ...(mode ? { BENCH_MODE: mode } : { EMAIL_CONCURRENCY: "0" }), ...extraEnv });
  const procs = Array.from({ length: count }, (_, i) => startNode(`${kind} worker ${i + 1}`, script, env));
  await waitFor(async () => (await queue.getWorkersCount()) >= count, { label: `${count} ${kind} worker(s)`, child: procs[0] });
  return procs;
}

/**
 * Prefills while paused, then resumes and polls until empty (or the time cap). With
 * workerPids, also the CPU the workers, Redis and PostgreSQL spent on the drain.
 */
export async function drainOnce(queue, n, tag, capMs, workerPids) {
  await queue.pause();
  await prefill(queue, n, tag);
  const cpuBefore = workerPids ? cpuSnapshot(workerPids) : undefined;
  await queue.resume();
  const started = performance.now();
  let pending = n;
  while (pending > 0 && performance.now() - started < capMs) {
    if (state.aborted) throw new Error("aborted");
    await sleep(10);
    pending = await pendingJobs(queue);
  }
  const ms = performance.now() - started;
  const cpu = cpuBefore ? cpuBetween(cpuBefore, cpuSnapshot(workerPids)) : undefined;
  if (pending > 0) {
    // Capped: drop what is still waiting so the next round starts from an empty queue.
    await queue.pause();
    await queue.drain(true);
    await queue.resume();
  }
  return { ms, done: n - pending, rate: ((n - pending) * 1000) / ms, capped: pending > 0, cpu };
}

/** A warm-up drain, then up to `repeats` drains of `jobs` (more only while under budgetMs); the median rate. */
export async function measureDrains(ctx, queue, { kind, jobs, tag, repeats, capMs, budgetMs, warmJobs, workerPids }) {
  const table = KINDS[kind].table;
  const before = table ? await countRows(ctx.databaseUrl, table) : 0;
  const warm = await drainOnce(queue, warmJobs, `${tag}-warm`, 2_000); // JIT, pools, connections
  const runs = [];
  const begun = performance.now();
  for (let r = 0; r < repeats && (r === 0 || performance.now() - begun < budgetMs); r++) {
    runs.push(await drainOnce(queue, jobs, `${tag}-${r}`, capMs, workerPids));
  }
  const rows = table ? (await countRows(ctx.databaseUrl, table)) - before : undefined;
  const failed = (await queue.getJobCounts("failed")).failed ?? 0;
  const rate = median(runs.map((x) => x.rate));
  const completed = warm.done + runs.reduce((sum, x) => sum + x.done, 0);
  // Milliseconds of CPU per 1,000 jobs, median over the runs, for each side that could be read.
  const per1k = (group) =>
    runs.length && runs.every((x) => x.cpu?.[group] !== undefined) ? median(runs.map((x) => (x.cpu[group] * 1e6) / x.done)) : undefined;
  const cpuMsPer1k = { worker: per1k("worker"), redis: per1k("redis"), postgres: per1k("postgres") };
  return { rate, runs, completed, rows, failed, cpuMsPer1k };
}

export async function runDrain(ctx, log) {
  const { jobs, repeats, workers, quick } = ctx.opts;
  // Bounds: one drain stops at capMs (what finished by then is measured); further repeats
  // of a kind and count start only while that pair has used less than budgetMs.
  const capMs = quick ? 4_000 : 10_000;
  const budgetMs = quick ? 4_000 : 12_000;
  const results = {};
  for (const count of workers) {
    for (const kind of Object.keys(KINDS)) {
      const prefix = ctx.prefix(`drain-${kind}-${count}`);
      const { queue, close } = openQueue(ctx.redisUrl, prefix);
      const procs = await startWorkers(ctx, kind, count, prefix, queue);
      try {
        const workerPids = procs.map((p) => p.proc.pid);
        const { rate, runs, completed, rows, failed, cpuMsPer1k } = await measureDrains(ctx, queue, { kind, jobs, tag: `${ctx.run}-${kind}-${count}`, repeats, capMs, budgetMs, warmJobs: Math.min(quick ? 100 : 500, jobs), workerPids });
        results[`${kind}:${count}`] = { kind, workers: count, jobs, rate, runs, completed, rows, failed, cpuMsPer1k };
        log(`drain ${kind} ×${count}: ${Math.round(rate)} jobs/s${runs.some((x) => x.capped) ? " (capped)" : ""}${rows === undefined ? "" : `, ${rows} rows`}${failed ? `, ${failed} FAILED` : ""}; ${cpuLine(cpuMsPer1k)}`);
      } finally {
        await Promise.all(procs.map((p) => p.stop()));
        await close();
        await deleteKeys(ctx.redisUrl, `${prefix}*`);
      }
    }
  }
  return results;
}

const cpuMs = (v) => (v === undefined ? "n/a" : `${Math.round(v)} ms`);
/** "CPU per 1,000 jobs: workers 210 ms, Redis 140 ms, PostgreSQL 120 ms". */
export const cpuLine = (c) => `CPU per 1,000 jobs: workers ${cpuMs(c.worker)}, Redis ${cpuMs(c.redis)}, PostgreSQL ${cpuMs(c.postgres)}`;
