// The whole system as `npm start` runs it: the API and 2 worker processes (welcome emails
// on), PostgreSQL and Redis on the same cores, against the synchronous design (Express +
// one INSERT per request, pool of 20). Then, on the same processes, two paced phases: at
// half the sustained rate (latency of the 202 and from acceptance to applied), and at a
// fifth of it (CPU per applied write against its value at saturation).
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { apiEnv, workerEnv } from "../lib/config.mjs";
import { cpuBetween, cpuOf, cpuSnapshot, postgresPidsOf } from "../lib/cpu.mjs";
import { median, runPaced } from "../lib/load.mjs";
import { startNode, startServer, waitFor } from "../lib/processes.mjs";
import { openQueue, waitEmpty } from "../lib/queue.mjs";
import { countRows, deleteKeys } from "../lib/resources.mjs";
import { runWrk } from "../lib/wrk.mjs";

const WORKERS = 2;

/** CPU µs per write of each group (API, workers, Redis, PostgreSQL, generator), and their sum without the generator. */
function perWrite(cpu, writes) {
  const out = {};
  for (const [k, s] of Object.entries(cpu)) if (s !== undefined && writes) out[k] = (s * 1e6) / writes;
  out.system = ["api", "worker", "redis", "postgres"].reduce((sum, k) => (out[k] === undefined || sum === undefined ? undefined : sum + out[k]), 0);
  return out;
}

/** A snapshot of every process of the run: the API, the workers, Redis and PostgreSQL (this database's). */
const snapOf = (ctx, db) => async (api, workers) => ({
  ...cpuSnapshot(workers.map((w) => w.proc.pid), { postgres: await postgresPidsOf(db, ctx.dbName) }),
  api: cpuOf(api.pid),
});
const between = (a, b) => ({ ...cpuBetween(a, b), api: a.api === undefined || b.api === undefined ? undefined : b.api - a.api });

export async function runSystem(ctx, log) {
  const { repeats, systemSeconds, pacedSeconds } = ctx.opts;
  const prefix = ctx.prefix("system");
  const { queue, close } = openQueue(ctx.redisUrl, prefix);
  const emails = openQueue(ctx.redisUrl, prefix, { name: "emails" });
  const api = await startServer("api (system)", "apps/api/dist/index.js", apiEnv(ctx, prefix), "/readyz");
  // As npm start runs them: the workers at a lower CPU priority than the API.
  const workers = Array.from({ length: WORKERS }, (_, i) => startNode(`worker ${i + 1} (system)`, "apps/worker/dist/index.js", workerEnv(ctx, prefix, { WORKER_NICE: "10" })));
  const sync = await startServer("sync design (system)", "bench/targets/sync-server.mjs", { DATABASE_URL: ctx.databaseUrl, NODE_ENV: "production", DB_POOL_SIZE: "20" });
  const db = new pg.Client({ connectionString: ctx.databaseUrl });
  await db.connect();
  const snap = snapOf(ctx, db);
  try {
    await waitFor(async () => (await queue.getWorkersCount()) >= WORKERS, { label: "system workers", child: workers[0] });
    /** Until every write accepted so far is applied and its welcome email sent. */
    const settle = async () => {
      await waitEmpty(queue, { timeoutMs: 120_000 });
      await waitEmpty(emails.queue, { timeoutMs: 120_000 });
    };

    const ours = [];
    const theirs = [];
    for (let r = -1; r < repeats; r++) {
      // Round -1 warms every process (JIT, pools, connections) and is not counted.
      const seconds = r < 0 ? Math.min(2, systemSeconds) : systemSeconds;
      const before = await countRows(ctx.databaseUrl, "registrations");
      const cpu0 = await snap(api, workers);
      const t0 = performance.now();
      const load = await runWrk(api.url, { seconds, script: "registrations", env: { BENCH_TAG: `${ctx.run}-system-${r}` } });
      // The last write is committed when the queue is empty: then the rate is taken.
      await waitEmpty(queue, { timeoutMs: 120_000 });
      const t1 = performance.now();
      const cpu1 = await snap(api, workers);
      const writes = (await countRows(ctx.databaseUrl, "registrations")) - before;
      // The welcome emails of those writes, before the next round starts.
      await waitEmpty(emails.queue, { timeoutMs: 120_000 });

      const syncBefore = await countRows(ctx.databaseUrl, "bench_sync_registrations");
      const syncCpu0 = { server: cpuOf(sync.pid), postgres: snapshotOf(await postgresPidsOf(db, ctx.dbName)) };
      const syncLoad = await runWrk(sync.url, { seconds, script: "registrations", env: { BENCH_TAG: `${ctx.run}-sync-${r}` } });
      const syncWrites = (await countRows(ctx.databaseUrl, "bench_sync_registrations")) - syncBefore;
      const syncCpu = { server: cpuOf(sync.pid) - syncCpu0.server, postgres: spentSince(syncCpu0.postgres, await postgresPidsOf(db, ctx.dbName)), generator: syncLoad.cpuUsPerRequest.generator * syncLoad.requests / 1e6 };
      if (r < 0) continue;
      const cpu = { ...between(cpu0, cpu1), generator: (load.cpuUsPerRequest.generator * load.requests) / 1e6 };
      ours.push({ writes, seconds: (t1 - t0) / 1000, rate: (writes * 1000) / (t1 - t0), p50: load.p50, p99: load.p99, non2xx: load.non2xx, cpuUs: perWrite(cpu, writes) });
      theirs.push({ writes: syncWrites, seconds: syncLoad.seconds, rate: syncWrites / syncLoad.seconds, p50: syncLoad.p50, p99: syncLoad.p99, non2xx: syncLoad.non2xx, cpuUs: perWrite({ api: syncCpu.server, worker: 0, redis: 0, postgres: syncCpu.postgres, generator: syncCpu.generator }, syncWrites) });
      log(`system round ${r + 1}: ${Math.round(ours.at(-1).rate)} writes/s applied (${writes} in ${ours.at(-1).seconds.toFixed(1)} s), sync design ${Math.round(theirs.at(-1).rate)} writes/s`);
    }
    const summary = (runs) => ({
      rate: median(runs.map((x) => x.rate)),
      p50: median(runs.map((x) => x.p50)),
      p99: median(runs.map((x) => x.p99)),
      cpuUs: Object.fromEntries(Object.keys(runs[0].cpuUs).map((k) => [k, median(runs.map((x) => x.cpuUs[k]).filter((v) => v !== undefined))])),
      runs,
    });
    const system = summary(ours);
    const syncDesign = summary(theirs);
    log(`system: ${Math.round(system.rate)} writes/s applied vs sync ${Math.round(syncDesign.rate)}; CPU µs per write ${cpuText(system.cpuUs)}; sync ${cpuText(syncDesign.cpuUs)}`);

    // Paced at half the sustained rate: the 202's latency and acceptance → applied.
    const half = Math.max(50, Math.round(system.rate / 2));
    const latency = await pacedPhase(ctx, { api, workers, queue, db, snap, rate: half, seconds: pacedSeconds, tag: "half" });
    log(`paced at ${half}/s: 202 p99 ${latency.http.p99?.toFixed(1)} ms, accepted → applied p99 ${latency.applied.p99?.toFixed(0)} ms`);
    await settle();
    // Paced at a fifth: what a write costs when the system is far from saturation.
    const fifth = Math.max(20, Math.round(system.rate / 5));
    const efficiency = await pacedPhase(ctx, { api, workers, queue, db, snap, rate: fifth, seconds: pacedSeconds, tag: "fifth" });
    log(`paced at ${fifth}/s: CPU µs per write ${cpuText(efficiency.cpuUs)} (saturated: ${Math.round(system.cpuUs.system)})`);
    return { workers: WORKERS, system, sync: syncDesign, latency, efficiency };
  } finally {
    await db.end().catch(() => {});
    await Promise.all([...workers.map((w) => w.stop()), api.stop(), sync.stop()]);
    await Promise.all([close(), emails.close()]);
    await deleteKeys(ctx.redisUrl, `${prefix}*`);
  }
}

const snapshotOf = (pids) => new Map(pids.map((pid) => [pid, cpuOf(pid)]));
/** CPU seconds PostgreSQL's processes spent since the snapshot (backends started since count from zero). */
function spentSince(before, pids) {
  let spent = 0;
  for (const pid of pids) {
    const now = cpuOf(pid);
    if (now !== undefined) spent += now - (before.get(pid) ?? 0);
  }
  return spent;
}

const cpuText = (c) =>
  ["api", "worker", "redis", "postgres", "generator"]
    .filter((k) => c[k] !== undefined)
    .map((k) => `${k} ${Math.round(c[k])}`)
    .join(", ") + (c.system === undefined ? "" : ` (system ${Math.round(c.system)})`);

/**
 * An open loop at an even pace (bench/lib/load.mjs runPaced; its first second, new
 * connections and cold paths, not counted): the 202's latency from each request's due time, then, once every write is applied, the time from acceptance to
 * applied of each (the ledger: accepted_at is when its carrier was stored, finished_at
 * when the statement that applied it ran), and the CPU of every process per applied write.
 */
async function pacedPhase(ctx, { api, workers, queue, db, snap, rate, seconds, tag }) {
  const run = `${ctx.run}-${tag}`;
  const before = await countRows(ctx.databaseUrl, "registrations");
  const cpu0 = await snap(api, workers);
  const startedAt = new Date();
  const http = await runPaced(api.url, {
    seconds,
    warmupSeconds: 1,
    rate,
    request: (i) => ({
      method: "POST",
      path: "/registrations",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: `${run}-${i}@bench.example`, name: "Bench User", plan: "free" }),
    }),
  });
  await waitEmpty(queue, { timeoutMs: 60_000 });
  // Give the email lane its share of these writes too, as it would have at saturation.
  await sleep(200);
  const cpu = between(cpu0, await snap(api, workers));
  const writes = (await countRows(ctx.databaseUrl, "registrations")) - before;
  const { rows } = await db.query(
    `select extract(epoch from (l.finished_at - l.accepted_at)) * 1000 as ms
     from registrations r join job_ledger l on l.job_id = r.job_id
     where r.email like $1 and r.created_at >= $2`,
    [`${run}-%`, startedAt],
  );
  const ms = rows.map((x) => Number(x.ms)).sort((a, b) => a - b);
  const at = (p) => (ms.length ? ms[Math.min(ms.length - 1, Math.ceil(p * ms.length) - 1)] : undefined);
  return {
    rate,
    seconds,
    http: { p50: http.p50, p99: http.p99, max: http.max, ok: http.ok, non2xx: http.non2xx, errors: http.errors, skipped: http.skipped, achievedRate: http.rate },
    applied: { writes: ms.length, p50: at(0.5), p99: at(0.99), max: ms.at(-1) },
    cpuUs: perWrite(cpu, writes),
  };
}
