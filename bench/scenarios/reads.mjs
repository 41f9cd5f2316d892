// Reads: a seeded catalog imported into the bench database (the import's rows/s), then
// GET /products/:id served as HIT, MISS and STALE, against the constant-GET Express floor,
// driven by wrk.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { apiEnv } from "../lib/config.mjs";
import { runLoad } from "../lib/load.mjs";
import { roundRobinWrk } from "../lib/wrk.mjs";
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
    await runCli("apps/importer/dist/cli/seed.js", ["--products", String(products), "--out", dir], {});
    const out = await runCli("apps/importer/dist/cli/import.js", [dir, "--progress", "none"], {
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

    // How each variant serves: a sample of X-Cache answers before the loads (wrk does not count them).
    const served = async (url, paths) => {
      const counts = {};
      for (const path of paths) {
        const h = (await fetch(url + path)).headers.get("x-cache") ?? "none";
        counts[h] = (counts[h] ?? 0) + 1;
      }
      return counts;
    };
    const sample = (n, ids) => Array.from({ length: n }, (_, i) => `/products/${((i * 7919) % ids) + 1}`);
    const samples = {
      hit: await served(hitApi.url, Array.from({ length: 50 }, () => "/products/1")),
      stale: await served(staleApi.url, sample(50, staleIds)),
      miss: await served(missApi.url, sample(50, products)),
    };
    await sleep(1_100);
    const walk = (url, ids) => ({ url, script: "walk", env: { BENCH_IDS: String(ids) } });
    const results = await roundRobinWrk(
      {
        hit: { url: hitApi.url, path: "/products/1", pids: { server: hitApi.pid } },
        miss: walk(missApi.url, products),
        stale: walk(staleApi.url, staleIds),
        floorGet: { url: floor.url, path: "/products/1", pids: { server: floor.pid } },
      },
      ctx.opts,
    );
    for (const [k, r] of Object.entries(results)) {
      r.served = samples[k] ?? {};
      log(`reads ${k}: ${Math.round(r.rate)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms${r.cpuUsPerRequest.server ? `, ${Math.round(r.cpuUsPerRequest.server)} µs CPU/request` : ""}, sampled ${JSON.stringify(r.served)}`);
    }
    return { import: { ...importResult, products }, ...results };
  } finally {
    await Promise.all(started.map((s) => s.stop()));
    unregister();
    await removeDir();
  }
}
