// Ingest: POST /registrations on the product's API (each accepted write stored as a job,
// no worker running) against the Express floor and the synchronous INSERT design.
import { apiEnv } from "../lib/config.mjs";
import { registrationRequest, roundRobin } from "../lib/load.mjs";
import { rssOf, startServer } from "../lib/processes.mjs";
import { deleteKeys } from "../lib/resources.mjs";

export async function runIngest(ctx, log) {
  const api = await startServer("api", "apps/api/dist/index.js", apiEnv(ctx, ctx.prefix("ingest")), "/readyz");
  const floor = await ctx.floorServer();
  const sync = await startServer("sync design", "bench/targets/sync-server.mjs", {
    DATABASE_URL: ctx.databaseUrl,
    NODE_ENV: "production",
  });
  try {
    const rssStart = await rssOf(api.pid);
    const results = await roundRobin(
      {
        api: { url: api.url, pid: api.pid, request: registrationRequest(`${ctx.run}-api`) },
        floorPost: { url: floor.url, pid: floor.pid, request: registrationRequest(`${ctx.run}-floor`) },
        sync: { url: sync.url, pid: sync.pid, request: registrationRequest(`${ctx.run}-sync`) },
      },
      ctx.opts,
    );
    results.api.rss = { start: rssStart, end: await rssOf(api.pid) };
    for (const [k, r] of Object.entries(results)) {
      log(`ingest ${k}: ${Math.round(r.rate)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms${r.cpuUsPerRequest === undefined ? "" : `, ${Math.round(r.cpuUsPerRequest)} µs CPU/request`}${r.non2xx + r.errors ? `, ${r.non2xx} non-2xx, ${r.errors} errors` : ""}`);
    }
    return results;
  } finally {
    await Promise.all([api.stop(), sync.stop()]);
    // The jobs piled up here (no worker ran) would only weigh on Redis in later scenarios.
    await deleteKeys(ctx.redisUrl, `${ctx.prefix("ingest")}*`);
  }
}
