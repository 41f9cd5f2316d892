// Ingest: POST /registrations on the product's API (each accepted write stored in Redis,
// no worker running) against the Express floor (parses JSON, answers 202) and the
// synchronous design (Express + one INSERT per request), all driven by wrk.
import { apiEnv } from "../lib/config.mjs";
import pg from "pg";
import { pidsNamed, postgresPidsOf } from "../lib/cpu.mjs";
import { startServer } from "../lib/processes.mjs";
import { deleteKeys } from "../lib/resources.mjs";
import { roundRobinWrk } from "../lib/wrk.mjs";

export async function runIngest(ctx, log) {
  const api = await startServer("api", "apps/api/dist/index.js", apiEnv(ctx, ctx.prefix("ingest")), "/readyz");
  const floor = await ctx.floorServer();
  const sync = await startServer("sync design", "bench/targets/sync-server.mjs", { DATABASE_URL: ctx.databaseUrl, NODE_ENV: "production", DB_POOL_SIZE: "20" });
  const db = new pg.Client({ connectionString: ctx.databaseUrl });
  await db.connect();
  try {
    const post = (server, extra = {}) => ({ url: server.url, script: "registrations", tag: `${ctx.run}-ingest`, pids: { server: server.pid, ...extra } });
    const results = await roundRobinWrk(
      {
        api: post(api, { redis: () => pidsNamed("redis-server") }),
        floorPost: post(floor),
        sync: post(sync, { postgres: () => postgresPidsOf(db, ctx.dbName) }),
      },
      ctx.opts,
    );
    for (const [k, r] of Object.entries(results)) {
      const cpu = Object.entries(r.cpuUsPerRequest).map(([p, us]) => `${p} ${Math.round(us)}`).join(", ");
      log(`ingest ${k}: ${Math.round(r.rate)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms; CPU µs/request: ${cpu}${r.non2xx + r.errors ? `; ${r.non2xx} non-2xx, ${r.errors} errors` : ""}`);
    }
    return results;
  } finally {
    await db.end().catch(() => {});
    await Promise.all([api.stop(), sync.stop()]);
    // The jobs piled up here (no worker ran) would only weigh on Redis in later scenarios.
    await deleteKeys(ctx.redisUrl, `${ctx.prefix("ingest")}*`);
  }
}
