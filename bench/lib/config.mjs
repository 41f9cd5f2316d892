// Options of `npm run bench` and the environment every process of the run gets.
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";

export const USAGE = `usage: npm run bench -- [--quick] [options]
  --quick                fewer, shorter runs (about a minute)
  --only LIST            scenarios to run, of generator,ingest,drain,system,reads (default all);
                         e2e, catalog, lanes and scaling only when named
  --seconds S            length of one ingest or read load run (default 4, quick 2)
  --repeats N            rounds per measurement; medians are reported (default 3, quick 1)
  --system-seconds S     closed-loop load of one whole-system round (default 10, quick 4)
  --paced-seconds S      length of each paced phase of the system scenario (default 10, quick 4)
  --fill-seconds S       load that fills the queue before each one-worker drain (default 3, quick 1.5)
  --concurrency N        jobs in flight per process of the BullMQ no-op baseline (default 100)
e2e (only when named): the API and two workers at a fixed offered rate
  --e2e-seconds S        length of the end-to-end run (default 20, quick 4)
  --e2e-rate R           offered req/s in the end-to-end run (default 500)
  --jobs N               jobs per drain of the scaling scenario (default 6000, quick 800)
  --workers LIST         worker process counts (default 1,2,4)
  --products N           catalog size for the reads and the import (default 10000, quick 2000)
lanes (only when named: --only lanes): interactive job latency (registrations and product
edits, acceptance to commit, from the ledger) alone, then while a bulk load drains
  --lanes-seconds S      length of each interactive phase (default 8, quick 4)
  --lanes-rate R         offered interactive req/s, half each kind (default 200)
  --lanes-lines N        bulk lines posted before the second phase (default 100000, quick 20000)
catalog (only when named: --only catalog): GET /products/:id MISS at 1, 4 and 16 connections on
a large catalog, kept between runs in its own database ingest_bench_catalog_<N>; the first run
builds it (about 4 minutes for 1,000,000 products on 2 cores), later runs reuse it
  --catalog-products N   products in the kept catalog (default 1000000, also with --quick)
  --drop-catalog         drop the kept catalog database of --catalog-products N, then stop
scaling (only when named: --only scaling): drain throughput of the product's worker and of
BullMQ's no-op worker per process count, against the configured Redis and against a private
3-master Redis Cluster (redis-server and redis-cli on PATH) started and stopped by the run
  --scaling-workers LIST worker process counts (default 1,2,4,8; 1 to 8)
  --scaling-jobs N       jobs per drain (default 6000, quick 1500)
tracing (only when named: --only tracing): POST /registrations with no OTLP endpoint (tracing
off, the default) against APIs exporting every trace, and 10% of them, to a local OTLP receiver`;

// The default run, and the only kind that may replace bench/results/latest.*.
export const SCENARIOS = ["generator", "ingest", "drain", "system", "reads"];
// Named with --only, never run by default: catalog's first build takes longer than a whole
// default run; lanes takes about 70 s (bounded near 2 min by its drain cap and settle
// waits), which would take the default run's bound past 5 minutes.
// scaling drains 16 pairs (2 targets × 4 counts × 2 kinds), about 3 minutes on its own.
// tracing measures the API with and without an OTLP endpoint (docs/OPERATIONS.md).
const OPTIONAL_SCENARIOS = ["e2e", "catalog", "lanes", "scaling", "tracing"];

export function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      seconds: { type: "string" },
      repeats: { type: "string" },
      jobs: { type: "string" },
      workers: { type: "string" },
      concurrency: { type: "string" },
      "e2e-seconds": { type: "string" },
      "system-seconds": { type: "string" },
      "paced-seconds": { type: "string" },
      "fill-seconds": { type: "string" },
      "e2e-rate": { type: "string" },
      products: { type: "string" },
      "lanes-seconds": { type: "string" },
      "lanes-rate": { type: "string" },
      "lanes-lines": { type: "string" },
      "catalog-products": { type: "string" },
      "drop-catalog": { type: "boolean", default: false },
      "scaling-workers": { type: "string" },
      "scaling-jobs": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return { help: true };
  const q = values.quick;
  const num = (name, fallback, { min = 0, max = Infinity } = {}) => {
    const raw = values[name];
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number from ${min} to ${max}`);
    return n;
  };
  const only = values.only ? values.only.split(",").map((s) => s.trim()) : SCENARIOS;
  const known = [...SCENARIOS, ...OPTIONAL_SCENARIOS];
  const unknown = only.filter((s) => !known.includes(s));
  if (unknown.length) throw new Error(`--only: unknown scenario ${unknown.join(", ")} (known: ${known.join(", ")})`);
  const workers = (values.workers ?? "1,2,4").split(",").map(Number);
  if (workers.some((w) => !Number.isInteger(w) || w < 1 || w > 8)) throw new Error("--workers takes counts from 1 to 8");
  const scalingWorkers = (values["scaling-workers"] ?? "1,2,4,8").split(",").map(Number);
  if (scalingWorkers.some((w) => !Number.isInteger(w) || w < 1 || w > 8)) throw new Error("--scaling-workers takes counts from 1 to 8");
  return {
    quick: q,
    only,
    seconds: num("seconds", q ? 2 : 4, { min: 0.5, max: 30 }),
    systemSeconds: num("system-seconds", q ? 4 : 10, { min: 1, max: 120 }),
    pacedSeconds: num("paced-seconds", q ? 4 : 10, { min: 1, max: 120 }),
    fillSeconds: num("fill-seconds", q ? 1.5 : 3, { min: 0.5, max: 30 }),
    repeats: Math.round(num("repeats", q ? 1 : 3, { min: 1, max: 9 })),
    warmupSeconds: q ? 0.3 : 1,
    jobs: Math.round(num("jobs", q ? 800 : 6_000, { min: 100, max: 200_000 })),
    workers,
    concurrency: Math.round(num("concurrency", 100, { min: 1, max: 500 })),
    e2eSeconds: num("e2e-seconds", q ? 4 : 20, { min: 2, max: 180 }),
    e2eRate: values["e2e-rate"] === undefined ? undefined : num("e2e-rate", 0, { min: 1, max: 50_000 }),
    products: Math.round(num("products", q ? 2_000 : 10_000, { min: 100, max: 1_000_000 })),
    lanesSeconds: num("lanes-seconds", q ? 4 : 8, { min: 2, max: 60 }),
    lanesRate: num("lanes-rate", 200, { min: 10, max: 5_000 }),
    lanesLines: Math.round(num("lanes-lines", q ? 20_000 : 100_000, { min: 1_000, max: 200_000 })),
    // Not smaller with --quick: a quick run should reuse the kept catalog, not build another.
    catalogProducts: Math.round(num("catalog-products", 1_000_000, { min: 100, max: 10_000_000 })),
    dropCatalog: values["drop-catalog"],
    scalingWorkers,
    scalingJobs: Math.round(num("scaling-jobs", q ? 1_500 : 6_000, { min: 100, max: 200_000 })),
  };
}

/** Names of this run: its database, queue prefixes and cache prefix all carry `bench-<run>`. */
export function createRun(env) {
  const now = new Date();
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  const run = `${now.getTime().toString(36)}${randomBytes(2).toString("hex")}`;
  return {
    run,
    stamp,
    baseDatabaseUrl: env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/ingest",
    redisUrl: env.REDIS_URL || "redis://127.0.0.1:6379",
    dbName: `ingest_bench_${run}`,
    keyPattern: `*bench-${run}*`,
    prefix: (scenario) => `{bench-${run}${scenario ? `-${scenario}` : ""}}`,
    cachePrefix: `bench-${run}:cache`,
    adminPassword: randomBytes(12).toString("hex"),
  };
}

/** What the API and the workers share: production mode, this run's database, Redis and prefixes. */
const baseEnv = (ctx, prefix) => ({
  NODE_ENV: "production",
  LOG_LEVEL: "warn",
  DATABASE_URL: ctx.databaseUrl,
  REDIS_URL: ctx.redisUrl,
  QUEUE_PREFIX: prefix,
  CACHE_PREFIX: ctx.cachePrefix,
});

/** Environment of the product's API, as production would run it, minus the guards that would skew a load test. */
export function apiEnv(ctx, prefix, extra = {}) {
  return {
    ...baseEnv(ctx, prefix),
    RATE_LIMIT_PER_MIN: "0",
    SHED_LAG_MS: "0",
    QUEUE_HIGH_WATER: "0",
    ADMIN_USER: "bench",
    ADMIN_PASSWORD: ctx.adminPassword,
    ...extra,
  };
}

/** The product's worker as production runs it (its own per-queue concurrency). */
export function workerEnv(ctx, prefix, extra = {}) {
  return { ...baseEnv(ctx, prefix), ...extra };
}
