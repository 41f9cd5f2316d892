// Reads: a seeded catalog imported into the bench database (the import's rows/s), then
// GET /products/:id served as HIT, MISS and STALE, against the constant-GET Express floor.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { apiEnv } from "../lib/config.mjs";
import { roundRobin, runLoad } from "../lib/load.mjs";
import { onTeardown, runCli, startServer } from "../lib/processes.mjs";

const number = (s) => Number(s.replaceAll(",", ""));

/** "total: 84,123 rows read, 84,123 loaded, 0 skipped in 1.2 s (70,102 rows/s)" */
export function parseImportTotal(out) {
  const m = out.match(/^total: ([\d,]+) rows read, ([\d,]+) loaded, ([\d,]+) skipped.* in (.+) \(([\d,]+) rows\/s\)$/m);
  if (!m) throw new Error(`import summary not understood:\n${out}`);
  return { rows: number(m[1]), loaded: number(m[2]), skipped: number(m[3]), took: m[4], rate: number(m[5]) };
}

/** A GET /products/:id whose id walks the range 1..n, one step per request. */
function walkingRequest(n) {
  let i = 0;
  return { method: "GET", setupRequest: (req) => ({ ...req, path: `/products/${(i++ % n) + 1}` }) };
}

export async function runReads(ctx, log) {
  const { products } = ctx.opts;
  const dir = await mkdtemp(join(tmpdir(), `ingest-bench-${ctx.run}-`));
  const removeDir = () => rm(dir, { recursive: true, force: true });
  const unregister = onTeardown(removeDir);
  const started = [];
  try {
    await runCli("apps/worker/dist/cli/seed.js", ["--products", String(products), "--out", dir], {});
    const out = await runCli("apps/worker/dist/cli/import.js", [dir, "--progress", "none"], {
      DATABASE_URL: ctx.databaseUrl,
      REDIS_URL: ctx.redisUrl,
      CACHE_PREFIX: ctx.cachePrefix,
    });
    const importResult = parseImportTotal(out);
    log(`import: ${importResult.loaded} rows in ${importResult.took} (${importResult.rate} rows/s)`);

    const variant = (name, cachePrefix, extra) =>
      startServer(`api (${name})`, "apps/api/dist/index.js", apiEnv(ctx, ctx.prefix("reads"), { CACHE_PREFIX: cachePrefix, ...extra }), "/readyz")
        .then((s) => (started.push(s), s));
    const short = { CACHE_TTL_S: "1", CACHE_LOCAL_TTL_MS: "0" };
    const [hitApi, missApi, staleApi] = await Promise.all([
      variant("hit", ctx.cachePrefix, {}),
      // Fresh for 1 s and never stale: an id read again more than a second later is a MISS.
      variant("miss", `bench-${ctx.run}-miss:cache`, { ...short, CACHE_STALE_S: "0" }),
      // Fresh for 1 s, then stale for an hour: once warmed and a second old, every read is STALE.
      variant("stale", `bench-${ctx.run}-stale:cache`, { ...short, CACHE_STALE_S: "3600" }),
    ]);
    const floor = await ctx.floorServer();
    // STALE walks fewer ids than MISS so its warm-up stays short; at a few thousand req/s
    // each id still comes round again only after its 1 s TTL (the X-Cache counts show it).
    const staleIds = Math.min(products, 4_000);
    await runLoad(staleApi.url, { amount: staleIds, request: walkingRequest(staleIds) });
    await sleep(1_100);

    const get = (path) => ({ method: "GET", path });
    const results = await roundRobin(
      {
        hit: { url: hitApi.url, request: get("/products/1"), countHeader: "x-cache" },
        miss: { url: missApi.url, request: walkingRequest(products), countHeader: "x-cache" },
        stale: { url: staleApi.url, request: walkingRequest(staleIds), countHeader: "x-cache" },
        floorGet: { url: floor.url, request: get("/products/1"), countHeader: "x-cache" },
      },
      ctx.opts,
    );
    for (const [k, r] of Object.entries(results)) {
      const served = {};
      for (const run of r.runs) for (const [h, n] of Object.entries(run["x-cache"] ?? {})) served[h] = (served[h] ?? 0) + n;
      r.served = served;
      for (const run of r.runs) delete run["x-cache"];
      log(`reads ${k}: ${Math.round(r.rate)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms, served ${JSON.stringify(served)}`);
    }
    return { import: { ...importResult, products }, ...results };
  } finally {
    await Promise.all(started.map((s) => s.stop()));
    unregister();
    await removeDir();
  }
}
