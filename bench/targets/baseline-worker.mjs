// Baseline drains of the same jobs the product's worker takes: BENCH_MODE=noop completes
// each job without work (BullMQ's own ceiling); BENCH_MODE=insert does one INSERT per job.
import { Worker } from "bullmq";
import { Cluster, Redis } from "ioredis";
import pg from "pg";

const mode = process.env.BENCH_MODE;
if (mode !== "noop" && mode !== "insert") throw new Error(`BENCH_MODE must be noop or insert, got ${mode}`);
const pool = mode === "insert" ? new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DB_POOL_SIZE ?? 10) }) : undefined;
// REDIS_CLUSTER_NODES=host:port,… as the product's worker: a Redis Cluster (QUEUE_PREFIX carries a hash tag).
const clusterNodes = process.env.REDIS_CLUSTER_NODES?.split(",").filter(Boolean).map((hp) => ({ host: hp.slice(0, hp.lastIndexOf(":")), port: Number(hp.slice(hp.lastIndexOf(":") + 1)) }));
const connection = clusterNodes?.length
  ? new Cluster(clusterNodes, { redisOptions: { maxRetriesPerRequest: null } })
  : new Redis(process.env.REDIS_URL, { maxRetriesPerRequest: null });

const processor = pool
  ? async (job) => {
      const { email, name } = job.data.payload.registration;
      await pool.query(
        "insert into bench_job_registrations (email, name) values ($1, $2) on conflict ((lower(email))) do nothing",
        [email, name],
      );
    }
  : async () => {};

const worker = new Worker("registrations", processor, {
  connection,
  prefix: process.env.QUEUE_PREFIX,
  concurrency: Number(process.env.WORKER_CONCURRENCY),
});
worker.on("error", (err) => console.error(`worker error: ${err.message}`));

process.on("SIGTERM", async () => {
  await worker.close();
  await pool?.end();
  connection.disconnect();
  process.exit(0);
});
