// Catalog: GET /products/:id as a MISS on a catalog of --catalog-products products (default
// 1,000,000), the size the MISS p99 target is stated for. Seeding and importing that many
// takes minutes, more than a whole default run may, so the catalog lives in a database of its
// own, ingest_bench_catalog_<N>, built by the first run and kept for the next ones: the run's
// cleanup drops only the run's own database. `--drop-catalog` removes it.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { apiEnv } from "../lib/config.mjs";
import { roundRobin } from "../lib/load.mjs";
import { ROOT, onTeardown, runCli, startServer } from "../lib/processes.mjs";
import { benchDatabaseUrl, dropDatabase, migrate } from "../lib/resources.mjs";
import { parseImportTotal } from "./reads.mjs";

export const CONNECTIONS = [1, 4, 16];
// The target is judged here, and styles and related are measured here: a few misses in
// flight per API process is what a storefront's uncached traffic looks like, not 50.
export const JUDGED_AT = 4;

export const catalogDatabaseName = (n) => `ingest_bench_catalog_${n}`;

// The mark a build sets on the database as its very last step; anything else means incomplete.
const completeMark = (n, at, seconds) => `ingest bench catalog ${n} complete ${at} (built in ${seconds} s)`;
const COMPLETE = /^ingest bench catalog (\d+) complete (\S+) \(built in (\d+) s\)$/;

const quoteIdent = (s) => `"${s.replaceAll('"', '""')}"`;
const quoteLiteral = (s) => `'${s.replaceAll("'", "''")}'`;
const count = (n) => n.toLocaleString("en-US");
const secondsSince = (t) => Math.round((performance.now() - t) / 1000);

async function withClient(url, fn) {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** `--drop-catalog`: removes the kept database (a no-op when there is none); returns its name. */
export async function dropCatalog(baseDatabaseUrl, n) {
  const name = catalogDatabaseName(n);
  await dropDatabase(benchDatabaseUrl(baseDatabaseUrl, name));
  return name;
}

/** The kept database as PostgreSQL sees it: undefined when absent, else its comment and open sessions. */
async function findCatalog(baseDatabaseUrl, name) {
  return withClient(benchDatabaseUrl(baseDatabaseUrl, "postgres"), async (c) => {
    const { rows } = await c.query(
      `select shobj_description(d.oid, 'pg_database') as comment,
              (select count(*)::int from pg_stat_activity a where a.datname = d.datname) as sessions
         from pg_database d where d.datname = $1`,
      [name],
    );
    return rows[0];
  });
}

/** The kept catalog, reused when a build completed it, else (re)built: { name, url, reused, builtAt, buildSeconds, ... }. */
async function ensureCatalog(ctx, log) {
  const n = ctx.opts.catalogProducts;
  const name = catalogDatabaseName(n);
  const url = benchDatabaseUrl(ctx.baseDatabaseUrl, name);
  const found = await findCatalog(ctx.baseDatabaseUrl, name);
  const done = found?.comment?.match(COMPLETE);
  if (done && Number(done[1]) === n) {
    // Migrations added since it was built, so the API finds the schema it expects.
    migrate(url);
    log(`catalog: reusing database ${name} (completed ${done[2]}; building it took ${done[3]} s)`);
    return { name, url, reused: true, builtAt: done[2], buildSeconds: Number(done[3]) };
  }
  if (found) {
    // Left by a build that failed or was stopped. One with sessions may be another run's
    // build still going: dropping it (with force) would break that run, so stop instead.
    if (found.sessions) throw new Error(`database ${name} is incomplete and has ${found.sessions} open session(s): is another run building it? Wait, or --drop-catalog`);
    log(`catalog: database ${name} is incomplete (${found.comment ?? "not marked"}): dropping it to build it anew`);
    await dropDatabase(url);
  }
  return buildCatalog(ctx, log, { n, name, url });
}

async function buildCatalog(ctx, log, { n, name, url }) {
  const t0 = performance.now();
  await withClient(benchDatabaseUrl(ctx.baseDatabaseUrl, "postgres"), async (c) => {
    await c.query(`create database ${quoteIdent(name)}`);
    // Incomplete from its first moment: a build that fails or is stopped anywhere after this
    // leaves the database so marked, and the next run drops it instead of measuring it.
    await c.query(`comment on database ${quoteIdent(name)} is ${quoteLiteral(`ingest bench catalog ${n} building since ${new Date().toISOString()}`)}`);
  });
  migrate(url);
  log(`catalog: building database ${name} with ${count(n)} products (minutes; kept for later runs)`);
  const dir = await mkdtemp(join(tmpdir(), `ingest-bench-catalog-${ctx.run}-`));
  const removeDir = () => rm(dir, { recursive: true, force: true });
  const unregister = onTeardown(removeDir);
  let imported;
  try {
    const tSeed = performance.now();
    await runCli("apps/importer/dist/cli/seed.js", ["--products", String(n), "--out", dir], {});
    log(`catalog: seeded in ${secondsSince(tSeed)} s; importing`);
    const out = await runCli("apps/importer/dist/cli/import.js", [dir, "--progress", "none"], {
      DATABASE_URL: url,
      REDIS_URL: ctx.redisUrl,
      // The import invalidates the cache at its end: under this run's prefix, swept at cleanup.
      CACHE_PREFIX: ctx.cachePrefix,
    });
    imported = parseImportTotal(out);
    log(`catalog: import: ${count(imported.loaded)} rows in ${imported.took} (${count(imported.rate)} rows/s)`);
  } finally {
    unregister();
    await removeDir();
  }
  // Freshly loaded rows have no hint bits and no visibility map yet: the first read of each page
  // would write it, and autovacuum would soon scan it all during some measurement. Doing that once
  // here makes the first run and the later ones read the same database.
  const tVacuum = performance.now();
  await withClient(url, (c) => c.query("vacuum (analyze)"));
  log(`catalog: vacuum (analyze) in ${secondsSince(tVacuum)} s`);
  await verifyCatalog(url, n);
  const buildSeconds = secondsSince(t0);
  const builtAt = new Date().toISOString();
  await withClient(url, (c) => c.query(`comment on database ${quoteIdent(name)} is ${quoteLiteral(completeMark(n, builtAt, buildSeconds))}`));
  log(`catalog: database ${name} built in ${buildSeconds} s and marked complete`);
  return { name, url, reused: false, builtAt, buildSeconds, import: imported };
}

/** After an ANALYZE: about n products (the planner's count), ids up to n (the ids the loads read). */
async function verifyCatalog(url, n) {
  const { estimate, maxId } = await withClient(url, async (c) => {
    const { rows } = await c.query(
      `select (select reltuples::bigint from pg_class where oid = 'products'::regclass) as estimate,
              (select max(id) from products) as "maxId"`,
    );
    return { estimate: Number(rows[0].estimate), maxId: Number(rows[0].maxId) };
  });
  if (Math.abs(estimate - n) > n * 0.02 || maxId !== n) {
    throw new Error(`catalog check failed: about ${count(estimate)} products up to id ${count(maxId)}, expected ${count(n)}`);
  }
  return estimate;
}

/** Size and cache of the database, since a 1M catalog's latency depends on what fits in memory. */
async function databaseFacts(url) {
  return withClient(url, async (c) => {
    const { rows } = await c.query(
      `select pg_database_size(current_database())::bigint as bytes, current_setting('shared_buffers') as "sharedBuffers",
              (select reltuples::bigint from pg_class where oid = 'products'::regclass) as products`,
    );
    return { bytes: Number(rows[0].bytes), sharedBuffers: rows[0].sharedBuffers, productsEstimate: Number(rows[0].products) };
  });
}

/** Ids 1..n in a random order, each handed out once: no read finds what an earlier one cached or warmed. */
function idSequence(n) {
  const ids = new Uint32Array(n);
  for (let i = 0; i < n; i++) ids[i] = i + 1;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  let next = 0;
  return {
    next: () => ids[next++ % n],
    get used() {
      return next;
    },
  };
}

/**
 * The id-keyed statements of packages/catalog/src/queries.ts, read from the source at run time so
 * EXPLAIN runs exactly the SQL the API sends (drizzle turns `${id}` into `$1`); {} if it changed shape.
 */
async function catalogStatements() {
  const source = await readFile(join(ROOT, "packages/catalog/src/queries.ts"), "utf8");
  const found = [...source.matchAll(/const (\w+) = \(id: number\) => sql`([^`]*)`/g)];
  return Object.fromEntries(
    found.map(([, name, text]) => [name.toLowerCase(), text.replaceAll("${id}", "$1")]).filter(([, text]) => !text.includes("${")),
  );
}

/** EXPLAIN (ANALYZE, BUFFERS) of each statement once, each for an id not read before. */
async function explainStatements(url, statements, nextId) {
  return withClient(url, async (c) => {
    const out = {};
    for (const [name, text] of Object.entries(statements)) {
      const id = nextId();
      const { rows } = await c.query(`explain (analyze, buffers, format json) ${text}`, [id]);
      const [plan] = rows[0]["QUERY PLAN"];
      out[name] = {
        id,
        executionMs: plan["Execution Time"],
        planningMs: plan["Planning Time"],
        sharedHit: plan.Plan["Shared Hit Blocks"],
        sharedRead: plan.Plan["Shared Read Blocks"],
      };
    }
    return out;
  });
}

/** How the answers were served, over all rounds: { MISS: n, ... }. */
function tally(r) {
  const served = {};
  for (const run of r.runs) for (const [h, k] of Object.entries(run["x-cache"] ?? {})) served[h] = (served[h] ?? 0) + k;
  for (const run of r.runs) delete run["x-cache"];
  return served;
}

export async function runCatalog(ctx, log) {
  const n = ctx.opts.catalogProducts;
  const database = await ensureCatalog(ctx, log);
  await verifyCatalog(database.url, n);
  Object.assign(database, await databaseFacts(database.url));
  log(`catalog: ${Math.round(database.bytes / 2 ** 20)} MB on disk, shared_buffers ${database.sharedBuffers}, ~${count(database.productsEstimate)} products`);

  const api = await startServer(
    "api (catalog miss)",
    "apps/api/dist/index.js",
    apiEnv(ctx, ctx.prefix("catalog"), {
      DATABASE_URL: database.url,
      // A cache prefix nothing has written to, fresh for 1 s, never stale, no in-process copy:
      // every read of an id not read before goes to PostgreSQL (the X-Cache counts show it).
      CACHE_PREFIX: `bench-${ctx.run}-catalog:cache`,
      CACHE_TTL_S: "1",
      CACHE_STALE_S: "0",
      CACHE_LOCAL_TTL_MS: "0",
    }),
    "/readyz",
  );
  // One sequence for every load: styles and related never read a product the product loads warmed.
  const ids = idSequence(n);
  const load = (path, connections) => ({
    path,
    connections,
    url: api.url,
    countHeader: "x-cache",
    request: { method: "GET", setupRequest: (req) => ({ ...req, path: path.replace(":id", ids.next()) }) },
  });
  const targets = {};
  for (const c of CONNECTIONS) targets[`product ×${c}`] = load("/products/:id", c);
  targets[`styles ×${JUDGED_AT}`] = load("/products/:id/styles", JUDGED_AT);
  targets[`related ×${JUDGED_AT}`] = load("/products/:id/related", JUDGED_AT);
  let measured;
  try {
    measured = await roundRobin(targets, ctx.opts);
  } finally {
    await api.stop();
  }
  const loads = Object.entries(measured).map(([key, r]) => {
    const { path, connections } = targets[key];
    const served = tally(r);
    log(`catalog ${path} ×${connections}: ${Math.round(r.rate)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms, served ${JSON.stringify(served)}`);
    return { path, connections, ...r, served };
  });
  // Past n every id would come round again: still a MISS a second later, but no longer cold.
  const idsRead = ids.used;
  if (idsRead > n) log(`catalog: ${count(idsRead)} reads went past the ${count(n)} ids: some ids were read twice`);

  const statements = await catalogStatements();
  if (!Object.keys(statements).length) log("catalog: no id-keyed statement found in packages/catalog/src/queries.ts: EXPLAIN skipped");
  const explain = await explainStatements(database.url, statements, ids.next);
  for (const [k, e] of Object.entries(explain)) {
    log(`catalog EXPLAIN ${k} (id ${e.id}): execution ${e.executionMs} ms, planning ${e.planningMs} ms, buffers ${e.sharedHit} hit / ${e.sharedRead} read`);
  }
  // Without its URL: the configured DATABASE_URL may carry a password, and results are committed.
  const { url: _url, ...kept } = database;
  return { products: n, judgedAt: JUDGED_AT, database: kept, idsRead, loads, explain };
}
