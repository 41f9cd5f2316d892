// Lanes: interactive writes while a bulk load drains. The API and 2 workers (the product's
// defaults: 100 jobs in flight per interactive queue, 1 batch job per process in the bulk
// lane, 200 lines per bulk transaction; no emails sent), an evenly paced interactive load
// (half POST /registrations, half PATCH /products/:id on pre-created products) for a fixed
// time, first alone (phase A), then right after 100,000 `replace` lines were posted to
// POST /products/bulk on other products (phase B). Each interactive job's latency is taken
// from the ledger, acceptance to commit: finished_at - accepted_at of the job ids the API
// answered with. The bulk drain is then awaited up to a cap. Beside the figures, what the
// time went to: CPU per process and of the machine, event-loop delay, PostgreSQL waits.
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { apiEnv, workerEnv } from "../lib/config.mjs";
import { runPaced } from "../lib/load.mjs";
import { freePort, onTeardown, startNode, startServer, state, waitFor } from "../lib/processes.mjs";
import { openQueue } from "../lib/queue.mjs";
import { deleteKeys } from "../lib/resources.mjs";

const WORKERS = 2;
// The interactive edits go to products 1..INTERACTIVE_PRODUCTS; the bulk lines to ids from
// BULK_FIRST_ID on: the two never share a product, so no edit waits for another's order.
const INTERACTIVE_PRODUCTS = 200;
const BULK_FIRST_ID = 1_000_001;
// The API's default BULK_MAX_LINES: one request carries at most this many lines.
const LINES_PER_REQUEST = 10_000;
// Longest wait for the interactive jobs of a phase to be in the ledger after its load.
const SETTLE_MS = 30_000;

// What a phase's CPU went to: clock ticks of /proc/<pid>/stat (utime + stime).
const TICKS_PER_S = 100;
async function cpuTicks(pid) {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]) || 0;
}
async function machineTicks() {
  const line = (await readFile("/proc/stat", "utf8").catch(() => "")).split("\n")[0] ?? "";
  const [, ...n] = line.trim().split(/\s+/).map(Number);
  const total = n.reduce((a, b) => a + b, 0);
  return { total, idle: (n[3] ?? 0) + (n[4] ?? 0) };
}

/**
 * A process's /metrics: its event-loop delay since the previous scrape (prom-client resets
 * that histogram on every collect), in ms, and a worker's transaction counters.
 */
async function scrape(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  // The sum over a metric's label sets.
  const get = (name) => {
    let sum;
    for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, "gm"))) sum = (sum ?? 0) + Number(m[1]);
    return sum;
  };
  const ms = (x) => (x === undefined ? undefined : Number((x * 1000).toFixed(1)));
  return {
    delay: { max: ms(get("nodejs_eventloop_lag_max_seconds")), p99: ms(get("nodejs_eventloop_lag_p99_seconds")) },
    // Worker only: transactions and the jobs (or bulk lines) they applied, and bulk lines.
    batches: get("ingest_worker_batch_size_count"),
    batched: get("ingest_worker_batch_size_sum"),
    bulkLines: get("ingest_bulk_lines_applied_total"),
  };
}
const scrapeAll = (urls) => Promise.all(urls.map((u) => scrape(u).catch(() => undefined)));

async function withClient(url, fn) {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  const unregister = onTeardown(() => client.end().catch(() => {}));
  try {
    return await fn(client);
  } finally {
    unregister();
    await client.end().catch(() => {});
  }
}

const percentile = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : undefined);
function latencyStats(ms) {
  const s = [...ms].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), max: s.at(-1) };
}

/** Request i of the interactive load: even, POST /registrations (a fresh email); odd, PATCH /products/:id. Keeps the job ids answered. */
function interactiveRequest(tag, jobIds) {
  const onResponse = (status, text) => {
    if (status !== 202) return;
    try {
      const id = JSON.parse(text).jobId;
      if (typeof id === "string") jobIds.push(id);
    } catch {
      // a 202 always carries its job id; nothing to keep otherwise
    }
  };
  const headers = { "content-type": "application/json" };
  return (i) => {
    if (i % 2 === 0) {
      return { method: "POST", path: "/registrations", headers, onResponse, body: JSON.stringify({ email: `${tag}-${i}@bench.example`, name: "Bench User", plan: "free" }) };
    }
    const id = ((i >> 1) % INTERACTIVE_PRODUCTS) + 1;
    return { method: "PATCH", path: `/products/${id}`, headers, onResponse, body: JSON.stringify({ name: `Bench product ${id} edit ${i}`, default_price: `${(i % 900) + 10}.99` }) };
  };
}

/** The products the interactive edits change, created with PUT and applied before any load. */
async function createInteractiveProducts(ctx, url) {
  const ids = [];
  for (let first = 1; first <= INTERACTIVE_PRODUCTS; first += 20) {
    const answers = await Promise.all(
      Array.from({ length: Math.min(20, INTERACTIVE_PRODUCTS - first + 1) }, (_, k) =>
        fetch(`${url}/products/${first + k}`, {
          method: "PUT",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ name: `Bench product ${first + k}`, category: "Bench", default_price: "10.00" }),
        }).then(async (res) => {
          if (res.status !== 202) throw new Error(`PUT /products/${first + k}: ${res.status} ${await res.text()}`);
          return (await res.json()).jobId;
        }),
      ),
    );
    ids.push(...answers);
  }
  const applied = await waitLedger(ctx, ids, 20_000);
  if (applied < ids.length) throw new Error(`only ${applied} of ${ids.length} interactive products created after 20 s`);
}

/** Polls (bounded) until every id has its ledger row; returns how many have one by then. */
async function waitLedger(ctx, ids, timeoutMs) {
  return withClient(ctx.databaseUrl, async (client) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (state.aborted) throw new Error("aborted while waiting for ledger rows");
      const { rows } = await client.query("select count(*)::int as n from job_ledger where job_id = any($1::text[])", [ids]);
      if (rows[0].n >= ids.length) return rows[0].n;
      if (Date.now() > deadline) return rows[0].n;
      await sleep(200);
    }
  });
}

/** The NDJSON bodies of the bulk load: `replace` lines on ids from BULK_FIRST_ID on. */
function bulkBodies(lines) {
  const bodies = [];
  for (let first = 0; first < lines; first += LINES_PER_REQUEST) {
    const out = [];
    for (let i = first; i < Math.min(lines, first + LINES_PER_REQUEST); i++) {
      const id = BULK_FIRST_ID + i;
      out.push(JSON.stringify({ op: "replace", id, product: { name: `Bulk product ${id}`, category: "Bulk", default_price: `${(i % 500) + 1}.50`, slogan: "Loaded in bulk" } }));
    }
    bodies.push(`${out.join("\n")}\n`);
  }
  return bodies;
}

/** Backends of the bench database by what they wait on, sampled while `sampling()` holds. */
async function sampleWaits(ctx, sampling) {
  const seen = {};
  let samples = 0;
  await withClient(ctx.databaseUrl, async (client) => {
    while (sampling() && !state.aborted) {
      const { rows } = await client.query(
        `select coalesce(wait_event_type, 'CPU') as type, coalesce(wait_event, '-') as event, count(*)::int as n
           from pg_stat_activity where datname = current_database() and state = 'active' and pid <> pg_backend_pid()
          group by 1, 2`,
      );
      samples++;
      for (const r of rows) seen[`${r.type}:${r.event}`] = (seen[`${r.type}:${r.event}`] ?? 0) + r.n;
      await sleep(250);
    }
  });
  // Mean active backends per sample, by wait.
  return { samples, activeByWait: Object.fromEntries(Object.entries(seen).sort((a, b) => b[1] - a[1]).map(([k, n]) => [k, Number((n / Math.max(1, samples)).toFixed(2))])) };
}

/** CPU use while nothing is offered: what the processes and the rest of the machine take at rest. */
async function idleCpu(api, workers, ms) {
  const pids = [api.pid, ...workers.map((w) => w.proc.pid)];
  const before = { procs: await Promise.all(pids.map(cpuTicks)), machine: await machineTicks() };
  const started = performance.now();
  await sleep(ms);
  const wallS = (performance.now() - started) / 1000;
  const after = { procs: await Promise.all(pids.map(cpuTicks)), machine: await machineTicks() };
  const cores = pids.map((_, i) => Number(((after.procs[i] - before.procs[i]) / TICKS_PER_S / wallS).toFixed(2)));
  const busy = after.machine.total - before.machine.total;
  return { apiCores: cores[0], workerCores: cores.slice(1), machineBusy: Number((busy ? 1 - (after.machine.idle - before.machine.idle) / busy : 0).toFixed(2)) };
}

/** One phase: the interactive load for `seconds` at `rate`, then its jobs' latencies from the ledger. */
async function interactivePhase(ctx, { api, workers, tag, seconds, rate }) {
  const jobIds = [];
  const pids = { api: api.pid, workers: workers.map((w) => w.proc.pid) };
  const metricsUrls = [api.url, ...workers.map((w) => w.metricsUrl)];
  const scraped = await scrapeAll(metricsUrls);
  const before = { api: await cpuTicks(pids.api), workers: await Promise.all(pids.workers.map(cpuTicks)), machine: await machineTicks() };
  let sampling = true;
  const waits = sampleWaits(ctx, () => sampling);
  const started = performance.now();
  const fromMs = Date.now();
  const load = await runPaced(api.url, { seconds, rate, request: interactiveRequest(tag, jobIds) });
  const toMs = Date.now();
  const wallS = (performance.now() - started) / 1000;
  sampling = false;
  const after = { api: await cpuTicks(pids.api), workers: await Promise.all(pids.workers.map(cpuTicks)), machine: await machineTicks() };
  const [apiAfter, ...workersAfter] = await scrapeAll(metricsUrls);
  // Interactive jobs per transaction over the load: all transactions, less the bulk
  // lane's (its chunks are BULK_CHUNK_SIZE lines, default 200).
  const delta = (k) => workersAfter.reduce((sum, w, i) => sum + ((w?.[k] ?? 0) - (scraped[i + 1]?.[k] ?? 0)), 0);
  const bulkLines = delta("bulkLines");
  const interactiveBatches = delta("batches") - Math.ceil(bulkLines / 200);
  const settled = await waitLedger(ctx, jobIds, SETTLE_MS);
  const { rows } = await withClient(ctx.databaseUrl, (client) =>
    client.query(
      `select queue, status, extract(epoch from finished_at - accepted_at) * 1000 as ms
         from job_ledger where job_id = any($1::text[])`,
      [jobIds],
    ),
  );
  const ms = rows.map((r) => Number(r.ms));
  const byQueue = {};
  for (const q of ["registrations", "products"]) byQueue[q] = latencyStats(rows.filter((r) => r.queue === q).map((r) => Number(r.ms)));
  const cores = (a, b) => Number(((b - a) / TICKS_PER_S / wallS).toFixed(2));
  const busy = after.machine.total - before.machine.total;
  return {
    fromMs,
    toMs,
    seconds: load.seconds,
    offeredRate: rate,
    answered: load.ok,
    acceptedRate: load.rate,
    httpP50: load.p50,
    httpP99: load.p99,
    httpMax: load.max,
    non2xx: load.non2xx,
    errors: load.errors,
    skipped: load.skipped,
    jobs: jobIds.length,
    inLedger: settled,
    failed: rows.filter((r) => r.status !== "completed").length,
    job: latencyStats(ms),
    byQueue,
    cpu: {
      apiCores: cores(before.api, after.api),
      workerCores: pids.workers.map((_, i) => cores(before.workers[i], after.workers[i])),
      machineBusy: Number((busy ? 1 - (after.machine.idle - before.machine.idle) / busy : 0).toFixed(2)),
    },
    // Event-loop delay over the load (ms; prom-client samples every 10 ms, so 10 is no delay):
    // a worker's interactive jobs wait behind whatever its bulk lane computes.
    eventLoopDelay: { api: apiAfter?.delay, workers: workersAfter.map((w) => w?.delay) },
    jobsPerTransaction: interactiveBatches > 0 ? Number(((delta("batched") - bulkLines) / interactiveBatches).toFixed(2)) : undefined,
    db: await waits,
  };
}

/** Bulk lines applied per second (by commit time, ledger clock), from `fromMs` (epoch ms) on. */
async function bulkTimeline(ctx, fromMs) {
  return withClient(ctx.databaseUrl, async (client) => {
    const { rows } = await client.query(
      `select floor((extract(epoch from finished_at) * 1000 - $1) / 1000)::int as s, count(*)::int as n
         from job_ledger where queue = 'bulk' and job_id like 'blk-%-L%' group by 1 order by 1`,
      [fromMs],
    );
    return rows.map((r) => [r.s, r.n]);
  });
}

/**
 * The bulk lines in the ledger: how many, how many of them committed during the interactive
 * load [fromMs, toMs) and after it, the first batch's acceptance and the last line's commit.
 * (finished_at is the commit's transaction start, a chunk's few ms early.)
 */
async function bulkLedger(ctx, fromMs, toMs) {
  return withClient(ctx.databaseUrl, async (client) => {
    const { rows } = await client.query(
      `select count(*)::int as n, count(*) filter (where status <> 'completed')::int as failed,
              count(*) filter (where finished_at < to_timestamp($2 / 1000.0))::int as by_end,
              count(*) filter (where finished_at >= to_timestamp($1 / 1000.0) and finished_at < to_timestamp($2 / 1000.0))::int as during,
              extract(epoch from min(accepted_at)) * 1000 as first_accepted, extract(epoch from max(finished_at)) * 1000 as last_finished
         from job_ledger where queue = 'bulk' and job_id like 'blk-%-L%'`,
      [fromMs, toMs],
    );
    const r = rows[0];
    return { lines: r.n, failed: r.failed, byEnd: r.by_end, during: r.during, firstAcceptedMs: Number(r.first_accepted) || undefined, lastFinishedMs: Number(r.last_finished) || undefined };
  });
}

export async function runLanes(ctx, log) {
  const { lanesSeconds: seconds, lanesRate: rate, lanesLines: lines, quick } = ctx.opts;
  const capMs = quick ? 20_000 : 60_000;
  const prefix = ctx.prefix("lanes");
  const { queue, close } = openQueue(ctx.redisUrl, prefix);
  const api = await startServer("api (lanes)", "apps/api/dist/index.js", apiEnv(ctx, prefix), "/readyz");
  // Welcome emails are a lane of their own: not sent here, as in the drain. The metrics port
  // only serves /metrics (event-loop delay); everything else is the product's default.
  const ports = await Promise.all(Array.from({ length: WORKERS }, () => freePort()));
  const workers = ports.map((port, i) =>
    Object.assign(startNode(`worker ${i + 1} (lanes)`, "apps/worker/dist/index.js", workerEnv(ctx, prefix, { EMAIL_CONCURRENCY: "0", WORKER_METRICS_PORT: String(port) })), {
      metricsUrl: `http://127.0.0.1:${port}`,
    }),
  );
  try {
    await waitFor(async () => (await queue.getWorkersCount()) >= WORKERS, { label: "lanes workers", child: workers[0] });
    await createInteractiveProducts(ctx, api.url);
    // Warm-up (JIT, pools, connections), not measured.
    await runPaced(api.url, { seconds: quick ? 1 : 2, rate, request: interactiveRequest(`${ctx.run}-lanes-warm`, []) });
    const idle = await idleCpu(api, workers, 2_000);

    const a = await interactivePhase(ctx, { api, workers, tag: `${ctx.run}-lanes-a`, seconds, rate });
    log(`lanes without bulk: ${a.jobs} interactive jobs at ${rate} req/s, job latency p50 ${a.job.p50?.toFixed(1)} ms, p99 ${a.job.p99?.toFixed(1)} ms, max ${a.job.max?.toFixed(0)} ms; HTTP p99 ${a.httpP99?.toFixed(1)} ms`);

    const bodies = bulkBodies(lines);
    const postStarted = performance.now();
    const batches = await Promise.all(
      bodies.map((body, k) =>
        fetch(`${api.url}/products/bulk`, { method: "POST", headers: { "content-type": "application/x-ndjson" }, body }).then(async (res) => {
          const json = await res.json().catch(() => ({}));
          if (res.status !== 202) throw new Error(`POST /products/bulk (request ${k + 1}): ${res.status} ${JSON.stringify(json).slice(0, 300)}`);
          return json;
        }),
      ),
    );
    const postMs = performance.now() - postStarted;
    const accepted = batches.reduce((s, b) => s + b.accepted, 0);
    log(`lanes: ${bodies.length} bulk requests, ${accepted} lines accepted in ${(postMs / 1000).toFixed(1)} s (${batches.reduce((s, b) => s + b.invalid, 0)} invalid)`);
    const b = await interactivePhase(ctx, { api, workers, tag: `${ctx.run}-lanes-b`, seconds, rate });
    log(`lanes with bulk: ${b.jobs} interactive jobs, job latency p50 ${b.job.p50?.toFixed(1)} ms, p99 ${b.job.p99?.toFixed(1)} ms, max ${b.job.max?.toFixed(0)} ms; HTTP p99 ${b.httpP99?.toFixed(1)} ms`);

    // The rest of the drain, bounded (the cap counts from phase B's start): the batches' own
    // ledger rows mark them done.
    const batchIds = batches.map((x) => x.jobId);
    const done = await waitLedger(ctx, batchIds, Math.max(0, capMs - (Date.now() - b.fromMs)));
    const bulk = await bulkLedger(ctx, b.fromMs, b.toMs);
    const finished = done === batchIds.length && bulk.lines === accepted;
    const spanS = bulk.firstAcceptedMs && bulk.lastFinishedMs ? (bulk.lastFinishedMs - bulk.firstAcceptedMs) / 1000 : undefined;
    const result = {
      workers: WORKERS,
      interactiveProducts: INTERACTIVE_PRODUCTS,
      idle,
      without: a,
      with: b,
      bulk: {
        requests: bodies.length,
        lines,
        accepted,
        postSeconds: postMs / 1000,
        // Applied by the end of the interactive load (some before it: the drain starts with the first batch).
        appliedByLoadEnd: bulk.byEnd,
        rateDuringLoad: bulk.during / ((b.toMs - b.fromMs) / 1000),
        rateAfterLoad: bulk.lastFinishedMs > b.toMs ? (bulk.lines - bulk.byEnd) / ((bulk.lastFinishedMs - b.toMs) / 1000) : undefined,
        applied: bulk.lines,
        failed: bulk.failed,
        finished,
        capSeconds: capMs / 1000,
        // From the first batch's acceptance to the last applied line's commit (ledger clocks).
        seconds: spanS,
        rate: spanS ? bulk.lines / spanS : undefined,
        // [second since the interactive load began (it lasted loadSeconds), lines committed in it]
        loadSeconds: (b.toMs - b.fromMs) / 1000,
        perSecond: await bulkTimeline(ctx, b.fromMs),
      },
    };
    log(`lanes bulk: ${bulk.lines} of ${accepted} lines applied${finished ? "" : ` (not finished within ${capMs / 1000} s)`} in ${spanS?.toFixed(1)} s: ${Math.round(result.bulk.rate ?? 0)} lines/s; ${Math.round(result.bulk.rateDuringLoad)} lines/s during the interactive load, ${Math.round(result.bulk.rateAfterLoad ?? 0)} after it`);
    return result;
  } finally {
    await Promise.all([api.stop(), ...workers.map((w) => w.stop())]);
    await close();
    await deleteKeys(ctx.redisUrl, `${prefix}*`);
  }
}
