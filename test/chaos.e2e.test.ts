// Chaos: clients writing with their Idempotency-Keys while processes are killed, PostgreSQL
// restarts and fails over, and the paths to Redis and PostgreSQL break: nothing lost, nothing doubled.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createDb, migrateDatabase, type DbHandle } from "@ingest/db";
import { sql } from "drizzle-orm";
import { Redis } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { FaultProxy, type FaultMode } from "./support/fault-proxy.js";
import { ROOT, spawnApi, spawnWorker, testEnv, waitFor, type ApiProcess, type WorkerProcess } from "./support/harness.js";
import { PrivatePostgres } from "./support/private-postgres.js";
import { freePort, PrivateRedis } from "./support/private-redis.js";

// Short in `npm test`; `npm run test:chaos` runs it for minutes.
const DURATION_MS = Number(process.env.CHAOS_DURATION_MS ?? 8_000);
const FAULT_EVERY_MS = Number(process.env.CHAOS_FAULT_EVERY_MS ?? 1_500);
// The process faults by default (`npm test`); CHAOS_FAULTS=all adds the database and
// network ones (`npm run test:chaos`), CHAOS_FAULTS=name,name… runs those alone. Those
// leave a backlog of ordered edits that takes the better part of a minute to drain (the
// run takes three): they stay out of `npm test`, where each has a test of its own.
const PROCESS_FAULTS = ["worker-sigkill", "pg-terminate", "redis-sigkill", "api-sigterm"];
const CHOSEN = process.env.CHAOS_FAULTS === "all" ? undefined : new Set(process.env.CHAOS_FAULTS ? process.env.CHAOS_FAULTS.split(",") : PROCESS_FAULTS);
const NETWORK_FAULTS = !CHOSEN || [...CHOSEN].some((f) => !PROCESS_FAULTS.includes(f));
// A worker whose lane stays wedged this long answers 503 on /healthz, and is restarted
// here as a liveness probe would restart it.
const STALL_AFTER_MS = 30_000;
const DRAIN_TIMEOUT_MS = Math.max(120_000, DURATION_MS * 2.5);
const REGISTRATION_CLIENTS = 3;
const PRODUCT_CLIENTS = 2;

const { prefix } = testEnv("chaos");
const DATABASE = "ingest";
const aofDir = mkdtempSync(join(tmpdir(), "chaos-redis-"));

// PostgreSQL of the test's own, a primary with a synchronous streaming replica, so that
// it can be restarted and failed over; the apps reach it, and the queue Redis, through
// fault proxies, as through a cloud endpoint or a Kubernetes Service.
let primary: PrivatePostgres;
let replica: PrivatePostgres;
let handle: DbHandle;
/** The test's own connection to whichever server is the primary now (not through the proxy). */
const db = () => handle.db;

async function useReplica(of: PrivatePostgres): Promise<PrivatePostgres> {
  const next = await PrivatePostgres.replicaOf(of, await freePort());
  // A commit is answered once the replica has it: a failover loses no acknowledged commit.
  await of.query("alter system set synchronous_standby_names = '*'");
  await of.query("select pg_reload_conf()");
  return next;
}

afterAll(async () => {
  await handle?.close();
  await Promise.all([primary?.remove(), replica?.remove()]);
  rmSync(aofDir, { recursive: true, force: true });
});

type Fault = { name: string; at: number; recoveredMs?: number };
type ChaosWorker = WorkerProcess & { metricsPort: number };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("chaos: nothing lost, nothing doubled", () => {
  it(
    "writes under process kills and restarts, database restarts and failovers, and broken networks each take effect exactly once",
    async () => {
      const redis = new PrivateRedis(await freePort(), { aofDir });
      await redis.start();
      primary = await PrivatePostgres.primary(await freePort());
      await migrateDatabase(primary.url(DATABASE), join(ROOT, "migrations"));
      replica = await useReplica(primary);
      handle = createDb(primary.url(DATABASE), { max: 2, applicationName: "ingest-test" });
      const [redisPath, pgPath] = await Promise.all([
        FaultProxy.start(FaultProxy.upstreamOf(redis.url)),
        FaultProxy.start({ host: "127.0.0.1", port: primary.port }),
      ]);
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      const env = {
        // Through the proxy when network faults run.
        REDIS_URL: NETWORK_FAULTS ? redisPath.urlFor(redis.url) : redis.url,
        CACHE_REDIS_URL: inject("redisUrl"),
        DATABASE_URL: pgPath.urlFor(primary.url(DATABASE)),
        // Dead connections are given up within the run's patience.
        DB_STATEMENT_TIMEOUT_MS: "3000",
        REDIS_PING_TIMEOUT_MS: "2000",
      };
      const workerEnv = { ...env, LOCK_DURATION_MS: "5000", STALLED_INTERVAL_MS: "1000", WORKER_STALL_AFTER_MS: String(STALL_AFTER_MS) };
      /** A worker serving /healthz on a port of its own, for the liveness loop below. */
      const startWorker = async (): Promise<ChaosWorker> => {
        const metricsPort = await freePort();
        return Object.assign(await spawnWorker(prefix, { ...workerEnv, WORKER_METRICS_PORT: String(metricsPort) }), { metricsPort });
      };
      /** A network fault for a while, then the path passes again. */
      const networkFault = async (path: FaultProxy, mode: FaultMode, ms: number) => {
        path.set(mode);
        await sleep(ms);
        path.pass();
      };
      let api: ApiProcess = await spawnApi(prefix, port, env);
      const workers: ChaosWorker[] = [await startWorker(), await startWorker()];

      const accepted = new Map<string, { jobId: string; email?: string }>();
      const lastEdit = new Map<number, string>();
      const unexpected: string[] = [];
      let stop = false;
      let requests = 0;

      /** Sends one write until it is accepted, retrying 503/409/429 and connection errors with the same key. */
      const write = async (key: string, method: string, path: string, body: unknown): Promise<string> => {
        for (;;) {
          requests++;
          try {
            const res = await fetch(base + path, {
              method,
              headers: { "content-type": "application/json", "idempotency-key": key },
              body: JSON.stringify(body),
              signal: AbortSignal.timeout(10_000),
            });
            const json = (await res.json().catch(() => ({}))) as { jobId?: string };
            if (res.status === 202) return json.jobId!;
            if (![503, 409, 429].includes(res.status)) unexpected.push(`${method} ${path} ${key}: ${res.status}`);
            if (res.status >= 500 && res.status !== 503) return "";
          } catch {
            // connection refused or dropped while a process restarts: retry
          }
          await sleep(50 + Math.random() * 150);
        }
      };

      const registrations = async (n: number) => {
        for (let i = 0; !stop; i++) {
          const key = `chaos-r${n}-${i}`;
          const email = `${key}@chaos.example.com`;
          const jobId = await write(key, "POST", "/registrations", { email, name: key });
          if (jobId) accepted.set(key, { jobId, email });
        }
      };
      const edits = async (n: number) => {
        const id = 990_000 + n;
        const first = await write(`chaos-p${n}-put`, "PUT", `/products/${id}`, { name: "v-start", category: "chaos", default_price: 1 });
        accepted.set(`chaos-p${n}-put`, { jobId: first });
        lastEdit.set(id, "v-start");
        for (let i = 0; !stop; i++) {
          const name = `v${i}`;
          const jobId = await write(`chaos-p${n}-${i}`, "PATCH", `/products/${id}`, { name });
          if (jobId) {
            accepted.set(`chaos-p${n}-${i}`, { jobId });
            lastEdit.set(id, name);
          }
        }
      };

      /** Time from a fault until a fresh write is accepted and applied again. */
      const recovery = async (fault: Fault) => {
        const key = `chaos-probe-${fault.name}-${fault.at}`;
        const email = `${key}@chaos.example.com`;
        const jobId = await write(key, "POST", "/registrations", { email, name: key });
        accepted.set(key, { jobId, email });
        await waitFor(async () => {
          const rows = (await db().execute(sql`select 1 from job_ledger where job_id = ${jobId} and status = 'completed'`).catch(() => ({ rows: [] }))).rows;
          return rows.length > 0;
        }, 60_000, `recovery after ${fault.name}`).catch((err) => {
          for (const w of workers) console.log(`--- worker\n${w.output().split("\n").filter((l) => /"level":(40|50|60)/.test(l)).slice(-15).join("\n")}`);
          console.log(`--- api\n${api.output().split("\n").filter((l) => /"level":(40|50|60)/.test(l)).slice(-15).join("\n")}`);
          throw err;
        });
        fault.recoveredMs = Date.now() - fault.at;
      };

      const faults: Fault[] = [];
      const allInjectors: [string, () => Promise<void>][] = [
        ["worker-sigkill", async () => {
          const victim = workers.shift()!;
          victim.proc.kill("SIGKILL");
          await victim.exited;
          workers.push(await startWorker());
        }],
        ["pg-terminate", async () => {
          await db().execute(sql`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'ingest-worker' and datname = current_database()`);
        }],
        ["pg-restart", async () => {
          await primary.stop("fast");
          await sleep(500);
          await primary.start();
        }],
        ["pg-failover", async () => {
          // The primary crashes; its replica is promoted and the apps' address moves to it.
          await primary.stop("immediate");
          await replica.promote();
          pgPath.setUpstream({ host: "127.0.0.1", port: replica.port });
          pgPath.resetAll();
          const old = primary;
          primary = replica;
          await handle.close();
          handle = createDb(primary.url(DATABASE), { max: 2, applicationName: "ingest-test" });
          await old.remove();
          // A new replica, for the next failover.
          replica = await useReplica(primary);
        }],
        ["pg-blackhole", () => networkFault(pgPath, { kind: "blackhole" }, 5_000)],
        ["redis-blackhole", () => networkFault(redisPath, { kind: "blackhole" }, 5_000)],
        ["redis-latency", () => networkFault(redisPath, { kind: "latency", ms: 200 }, 3_000)],
        ["redis-reset", async () => redisPath.resetAll()],
        ["redis-full", async () => {
          // maxmemory down to what is in use: the queue Redis is full (noeviction) for a while.
          const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
          try {
            const used = Number(/used_memory:(\d+)/.exec(await admin.info("memory"))![1]);
            await admin.config("SET", "maxmemory", String(used));
            await sleep(2_000);
            await admin.config("SET", "maxmemory", "0");
          } finally {
            admin.disconnect();
          }
        }],
        ["redis-sigkill", async () => {
          await redis.kill();
          await sleep(500);
          await redis.start();
        }],
        ["api-sigterm", async () => {
          api.proc.kill("SIGTERM");
          const code = await api.exited;
          if (code !== 0) unexpected.push(`API exited ${code} on SIGTERM`);
          api = await spawnApi(prefix, port, env);
        }],
      ];
      const injectors = allInjectors.filter(([name]) => !CHOSEN || CHOSEN.has(name));

      // A liveness probe: a worker whose /healthz says a lane is wedged is killed and
      // replaced, as an orchestrator does (its active jobs come back as stalled jobs).
      const livenessRestarts: string[] = [];
      let probing = true;
      const liveness = (async () => {
        while (probing) {
          await sleep(1_000);
          for (const w of [...workers]) {
            const answer = await fetch(`http://127.0.0.1:${w.metricsPort}/healthz`, { signal: AbortSignal.timeout(2_000) })
              .then(async (r) => (r.status === 503 ? ((await r.json()) as { type?: string; stalledLanes?: unknown }) : undefined))
              .catch(() => undefined);
            if (answer?.type !== "/problems/lane-stalled" || !probing) continue;
            livenessRestarts.push(JSON.stringify(answer.stalledLanes));
            const lastWords = w.output().split("\n").filter((l) => /"level":(40|50|60)/.test(l)).slice(-12).join("\n");
            console.log(`chaos: worker ${w.proc.pid} restarted by its liveness probe: ${JSON.stringify(answer.stalledLanes)}\n${lastWords}`);
            const at = workers.indexOf(w);
            if (at >= 0) workers.splice(at, 1);
            w.proc.kill("SIGKILL");
            await w.exited;
            workers.push(await startWorker());
          }
        }
      })();

      const clients = [
        ...Array.from({ length: REGISTRATION_CLIENTS }, (_, n) => registrations(n)),
        ...Array.from({ length: PRODUCT_CLIENTS }, (_, n) => edits(n)),
      ];
      const started = Date.now();
      const recoveries: Promise<void>[] = [];
      try {
        // Every kind of fault at least once, then on until the duration is up.
        for (let i = 0; i < injectors.length || Date.now() - started < DURATION_MS; i++) {
          await sleep(FAULT_EVERY_MS);
          const [name, injectFault] = injectors[i % injectors.length]!;
          const fault: Fault = { name, at: Date.now() };
          faults.push(fault);
          await injectFault();
          recoveries.push(recovery(fault));
        }
        stop = true;
        await Promise.all(clients);
        const loadDone = Date.now();
        await Promise.all(recoveries);
        console.log(`chaos: load ${loadDone - started} ms, recoveries done +${Date.now() - loadDone} ms`);

        // Everything accepted drains and applies exactly once.
        const ids = [...accepted.values()].map((a) => a.jobId);
        const progress = new Redis(redis.url, { maxRetriesPerRequest: 1 });
        let reported = loadDone;
        await waitFor(async () => {
          // A look twice a second: each reads thousands of ledger rows, on the machine the workers drain on.
          await sleep(500);
          const { rows } = await db().execute<{ n: number }>(
            sql`select count(*)::int as n from job_ledger where status = 'completed' and job_id = any(string_to_array(${ids.join(",")}, ','))`,
          );
          if (Date.now() - reported >= 5_000) {
            reported = Date.now();
            const key = (k: string) => `${prefix}:products:${k}`;
            const [wait, active, delayed] = await Promise.all([progress.llen(key("wait")), progress.llen(key("active")), progress.zcard(key("delayed"))]).catch(() => []);
            console.log(`chaos: draining +${reported - loadDone} ms: ${rows[0]!.n} of ${new Set(ids).size} applied; products wait ${wait}, active ${active}, delayed ${delayed}`);
          }
          return rows[0]!.n === new Set(ids).size;
          // Jobs hit by several faults wait in exponential backoff (1 s, doubling): give
          // the backlog minutes after a long run.
        }, DRAIN_TIMEOUT_MS, "every accepted write applied").catch(async (err) => {
          // Say which writes are missing and where their jobs are, before failing.
          const { rows } = await db().execute<{ job_id: string }>(
            sql`select job_id from job_ledger where job_id = any(string_to_array(${ids.join(",")}, ','))`,
          );
          const done = new Set(rows.map((r) => r.job_id));
          const missing = [...new Set(ids)].filter((id) => !done.has(id));
          const states = await Promise.all(missing.slice(0, 20).map(async (id) => (await fetch(`${base}/jobs/${id}`)).text()));
          console.log(`chaos: ${missing.length} accepted writes not applied; first ones:\n${states.join("\n")}`);
          // Where the queues stand, as BullMQ keeps them.
          const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
          for (const queue of ["registrations", "products", "emails"]) {
            const key = (k: string) => `${prefix}:${queue}:${k}`;
            const [wait, active, delayed, prioritized, marker, meta, limiter, workersSeen] = await Promise.all([
              admin.llen(key("wait")), admin.llen(key("active")), admin.zcard(key("delayed")), admin.zcard(key("prioritized")),
              admin.zrange(key("marker"), 0, -1, "WITHSCORES"), admin.hgetall(key("meta")), admin.pttl(key("limiter")),
              admin.client("LIST").then((l) => String(l).split("\n").filter((c) => c.includes(queue)).length),
            ]);
            console.log(`chaos: ${queue}: wait ${wait}, active ${active}, delayed ${delayed}, prioritized ${prioritized}, marker ${JSON.stringify(marker)}, meta ${JSON.stringify(meta)}, limiter pttl ${limiter}, clients named for it ${workersSeen}`);
          }
          const first = missing[0] && (await admin.hgetall(`${prefix}:${missing[0].startsWith("reg") ? "registrations" : "products"}:${missing[0].split(".")[0]}`));
          console.log(`chaos: first missing job's hash: ${JSON.stringify(first).slice(0, 600)}`);
          admin.disconnect();
          for (const w of workers) console.log(`--- worker\n${w.output().split("\n").filter((l) => /"level":(40|50|60)/.test(l)).slice(-25).join("\n")}`);
          throw err;
        }).finally(() => progress.disconnect());
        console.log(`chaos: drained +${Date.now() - loadDone} ms`);

        const emails = [...accepted.values()].flatMap((a) => (a.email ? [a.email] : []));
        const { rows: regs } = await db().execute<{ email: string; job_id: string }>(
          sql`select email, job_id from registrations where email like '%@chaos.example.com'`,
        );
        const byEmail = new Map<string, string[]>();
        for (const r of regs) byEmail.set(r.email, [...(byEmail.get(r.email) ?? []), r.job_id]);
        const lost = emails.filter((e) => !byEmail.has(e));
        const doubled = [...byEmail.entries()].filter(([, jobs]) => jobs.length > 1).map(([e]) => e);
        // A second job for one write would have applied as a "duplicate" registration.
        const { rows: dupJobs } = await db().execute<{ n: number }>(
          sql`select count(*)::int as n from job_ledger l
              where l.name = 'registration.create' and l.result->>'outcome' = 'duplicate'
                and (l.result->>'registrationId')::int in (select id from registrations where email like '%@chaos.example.com')`,
        );
        for (const [id, name] of lastEdit) {
          const { rows } = await db().execute<{ name: string }>(sql`select name from products where id = ${id}`);
          expect(rows[0]?.name, `product ${id} ends at its last accepted edit`).toBe(name);
        }
        console.log(
          `chaos: ${requests} requests, ${accepted.size} writes accepted, lost ${lost.length}, doubled ${doubled.length}; ` +
            `faults: ${faults.map((f) => `${f.name} recovered in ${f.recoveredMs} ms`).join(", ")}; ` +
            `workers restarted by their liveness probe: ${livenessRestarts.length}`,
        );
        expect(unexpected).toEqual([]);
        expect(lost).toEqual([]);
        expect(doubled).toEqual([]);
        expect(dupJobs[0]!.n).toBe(0);
        expect(faults.length).toBeGreaterThanOrEqual(injectors.length);
      } finally {
        stop = true;
        probing = false;
        await liveness;
        await Promise.allSettled(workers.map((w) => w.stop()));
        api.proc.kill("SIGTERM");
        await api.exited;
        await redis.kill();
        await Promise.all([redisPath.close(), pgPath.close()]);
      }
    },
    DURATION_MS * 1.5 + DRAIN_TIMEOUT_MS + 120_000,
  );
});
