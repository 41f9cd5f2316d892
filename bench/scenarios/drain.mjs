// Drain: one worker process empties a backlog of registrations the API queued, beside
// BullMQ's no-op worker emptying as many single jobs (its fixed cost per job is the floor
// a design with one job per write cannot pass). The helpers also serve the scaling scenario.
import { setTimeout as sleep } from "node:timers/promises";
import { apiEnv, workerEnv } from "../lib/config.mjs";
import { median } from "../lib/load.mjs";
import { startNode, startServer, state, waitFor } from "../lib/processes.mjs";
import { runWrk } from "../lib/wrk.mjs";
import { openQueue, pendingJobs, prefill, waitEmpty, WRITES_PER_CARRIER } from "../lib/queue.mjs";
import pg from "pg";
import { cpuBetween, cpuSnapshot, postgresPidsOf } from "../lib/cpu.mjs";
import { countRows, deleteKeys } from "../lib/resources.mjs";

export const KINDS = {
  worker: { script: "apps/worker/dist/index.js", table: "registrations", perCarrier: WRITES_PER_CARRIER },
  noop: { script: "bench/targets/baseline-worker.mjs", mode: "noop" },
  insert: { script: "bench/targets/baseline-worker.mjs", mode: "insert", table: "bench_job_registrations" },
};

export async function startWorkers(ctx, kind, count, prefix, queue, extraEnv = {}) {
  const { script, mode } = KINDS[kind];
  // The product's worker applies the registrations, each with its welcome email's outbox
  // row; dispatching and sending the emails is a lane of its own (EMAIL_CONCURRENCY,
  // scaled apart), kept out of this figure as the baselines send nothing either.
  const env = workerEnv(ctx, prefix, { ...(mode ? { BENCH_MODE: mode, WORKER_CONCURRENCY: String(ctx.opts.concurrency) } : { EMAIL_CONCURRENCY: "0" }), ...extraEnv });
  const procs = Array.from({ length: count }, (_, i) => startNode(`${kind} worker ${i + 1}`, script, env));
  await waitFor(async () => (await queue.getWorkersCount()) >= count, { label: `${count} ${kind} worker(s)`, child: procs[0] });
  return procs;
}

/**
 * Prefills while paused, then resumes and polls until empty (or the time cap). With
 * workerPids, also the CPU the workers, Redis and PostgreSQL spent on the drain.
 */
export async function drainOnce(queue, n, tag, capMs, workerPids, perCarrier = 0) {
  await queue.pause();
  await prefill(queue, n, tag, { perCarrier });
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
  const done = Math.max(0, n - pending * (perCarrier || 1));
  return { ms, done, rate: (done * 1000) / ms, capped: pending > 0, cpu };
}

/** A warm-up drain, then up to `repeats` drains of `jobs` (more only while under budgetMs); the median rate. */
export async function measureDrains(ctx, queue, { kind, jobs, tag, repeats, capMs, budgetMs, warmJobs, workerPids }) {
  const table = KINDS[kind].table;
  const before = table ? await countRows(ctx.databaseUrl, table) : 0;
  const { perCarrier } = KINDS[kind];
  const warm = await drainOnce(queue, warmJobs, `${tag}-warm`, 2_000, undefined, perCarrier); // JIT, pools, connections
  const runs = [];
  const begun = performance.now();
  for (let r = 0; r < repeats && (r === 0 || performance.now() - begun < budgetMs); r++) {
    runs.push(await drainOnce(queue, jobs, `${tag}-${r}`, capMs, workerPids, perCarrier));
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

/**
 * One worker process draining a backlog the API itself queued (no worker running while
 * wrk posts registrations for fillSeconds: carriers as production makes them), against
 * BullMQ's no-op worker draining as many single jobs. Both workers stay up and warm
 * across the rounds; the queue is paused while it fills.
 */
export async function runDrain(ctx, log) {
  const { repeats, fillSeconds } = ctx.opts;
  const ours = ctx.prefix("drain");
  const noopPrefix = ctx.prefix("drain-noop");
  const { queue, close } = openQueue(ctx.redisUrl, ours);
  const noop = openQueue(ctx.redisUrl, noopPrefix);
  const api = await startServer("api (drain)", "apps/api/dist/index.js", apiEnv(ctx, ours), "/readyz");
  const procs = [];
  const db = new pg.Client({ connectionString: ctx.databaseUrl });
  await db.connect();
  const pgPids = () => postgresPidsOf(db, ctx.dbName);
  try {
    procs.push(...(await startWorkers(ctx, "worker", 1, ours, queue)), ...(await startWorkers(ctx, "noop", 1, noopPrefix, noop.queue)));
    const [workerPid, noopPid] = procs.map((p) => p.proc.pid);
    const rounds = { worker: [], noop: [] };
    for (let r = -1; r < repeats; r++) {
      // Round -1 warms both workers (JIT, pools) and is not counted.
      await queue.pause();
      await runWrk(api.url, { seconds: r < 0 ? 1 : fillSeconds, script: "registrations", env: { BENCH_TAG: `${ctx.run}-drain-${r}` } });
      const carriers = await pendingJobs(queue);
      const before = await countRows(ctx.databaseUrl, "registrations");
      const ourDrain = await timedDrain(queue, [workerPid], pgPids);
      const writes = (await countRows(ctx.databaseUrl, "registrations")) - before;
      await noop.queue.pause();
      await prefill(noop.queue, writes, `${ctx.run}-noop-${r}`);
      const noopDrain = await timedDrain(noop.queue, [noopPid], pgPids);
      if (r < 0) continue;
      rounds.worker.push({ writes, carriers, ms: ourDrain.ms, rate: (writes * 1000) / ourDrain.ms, cpuUsPerWrite: perUnit(ourDrain.cpu, writes) });
      rounds.noop.push({ jobs: writes, ms: noopDrain.ms, rate: (writes * 1000) / noopDrain.ms, cpuUsPerWrite: perUnit(noopDrain.cpu, writes) });
      log(`drain round ${r + 1}: worker ${Math.round(rounds.worker.at(-1).rate)} writes/s (${writes} writes in ${carriers} carriers), no-op ${Math.round(rounds.noop.at(-1).rate)} jobs/s`);
    }
    const summary = (runs) => ({
      rate: median(runs.map((x) => x.rate)),
      cpuUsPerWrite: Object.fromEntries(["worker", "redis", "postgres"].map((k) => [k, median(runs.map((x) => x.cpuUsPerWrite[k]).filter((v) => v !== undefined))])),
      runs,
    });
    const result = { worker: summary(rounds.worker), noop: summary(rounds.noop) };
    log(`drain ×1: worker ${Math.round(result.worker.rate)} writes/s, no-op ${Math.round(result.noop.rate)} jobs/s; ${cpuLine(result.worker.cpuUsPerWrite, "write")}`);
    return result;
  } finally {
    await db.end().catch(() => {});
    await Promise.all(procs.map((p) => p.stop()));
    await api.stop();
    await Promise.all([close(), noop.close()]);
    await deleteKeys(ctx.redisUrl, `${ours}*`);
    await deleteKeys(ctx.redisUrl, `${noopPrefix}*`);
  }
}

/** Resumes a paused, filled queue and times it to empty, with the CPU spent meanwhile (PostgreSQL: this database's). */
async function timedDrain(queue, workerPids, pgPids) {
  const before = cpuSnapshot(workerPids, { postgres: await pgPids() });
  const started = performance.now();
  await queue.resume();
  await waitEmpty(queue, { timeoutMs: 120_000 });
  const ms = performance.now() - started;
  return { ms, cpu: cpuBetween(before, cpuSnapshot(workerPids, { postgres: await pgPids() })) };
}

/** CPU µs per unit, from seconds spent. */
const perUnit = (cpu, n) => Object.fromEntries(Object.entries(cpu).map(([k, s]) => [k, s === undefined || !n ? undefined : (s * 1e6) / n]));

const cpuUs = (v) => (v === undefined ? "n/a" : `${Math.round(v)} µs`);
/** "CPU per write: worker 40 µs, Redis 12 µs, PostgreSQL 60 µs". */
export const cpuLine = (c, unit) => `CPU per ${unit}: worker ${cpuUs(c.worker)}, Redis ${cpuUs(c.redis)}, PostgreSQL ${cpuUs(c.postgres)}`;
