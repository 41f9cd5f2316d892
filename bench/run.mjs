// `npm run bench [-- --quick]`: the throughput report. Starts its own
// processes on free 127.0.0.1 ports against the configured PostgreSQL and Redis, in its
// own database and key prefixes, and removes all of them at the end, also on failure or Ctrl-C.
// The one thing kept is the catalog scenario's database (`--only catalog`; `--drop-catalog`).
import { copyFile, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createRun, parseOptions, SCENARIOS, USAGE } from "./lib/config.mjs";
import { machineInfo } from "./lib/machine.mjs";
import { buildRows, formatTable, targets } from "./lib/report.mjs";
import { ROOT, runningChildren, startServer, state, teardown } from "./lib/processes.mjs";
import { benchDatabaseUrl, createBaselineTables, deleteKeys, dropDatabase, migrate } from "./lib/resources.mjs";
import { renderSvg } from "./lib/svg.mjs";
import { catalogDatabaseName, dropCatalog, runCatalog } from "./scenarios/catalog.mjs";
import { runDrain } from "./scenarios/drain.mjs";
import { runE2e } from "./scenarios/e2e.mjs";
import { runGenerator } from "./scenarios/generator.mjs";
import { runIngest } from "./scenarios/ingest.mjs";
import { runSystem } from "./scenarios/system.mjs";
import { ensureWrk } from "./lib/wrk.mjs";
import { runLanes } from "./scenarios/lanes.mjs";
import { runReads } from "./scenarios/reads.mjs";
import { runScaling } from "./scenarios/scaling.mjs";
import { runTracing } from "./scenarios/tracing.mjs";

let opts;
try {
  opts = parseOptions(process.argv.slice(2));
} catch (err) {
  console.error(`${err.message}\n${USAGE}`);
  process.exit(2);
}
if (opts.help) {
  console.log(USAGE);
  process.exit(0);
}

const t0 = performance.now();
const log = (msg) => console.log(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${msg}`);
const names = createRun(process.env);
if (opts.dropCatalog) {
  const name = await dropCatalog(names.baseDatabaseUrl, opts.catalogProducts);
  console.log(`database ${name} dropped (if it was there); the next --only catalog run builds it again`);
  process.exit(0);
}
const ctx = { ...names, opts, databaseUrl: benchDatabaseUrl(names.baseDatabaseUrl, names.dbName) };
let floor;
ctx.floorServer = () => (floor ??= startServer("express floor", "bench/targets/floor-server.mjs", { NODE_ENV: "production" }));

let cleaning;
function cleanup() {
  cleaning ??= (async () => {
    await teardown();
    const problems = [];
    await dropDatabase(ctx.databaseUrl).catch((err) => problems.push(`database ${ctx.dbName}: ${err.message}`));
    let keys = 0;
    // Twice: a command our own connections had already sent may land after the first sweep.
    for (const pause of [0, 300]) {
      await new Promise((r) => setTimeout(r, pause));
      keys += await deleteKeys(ctx.redisUrl, ctx.keyPattern).catch((err) => (problems.push(`redis keys: ${err.message}`), 0));
    }
    if (runningChildren().length) problems.push(`${runningChildren().length} child process(es) still running`);
    for (const p of problems) console.error(`cleanup: ${p}`);
    const kept = opts.only.includes("catalog") ? `, catalog database ${catalogDatabaseName(opts.catalogProducts)} left in place` : "";
    log(`cleaned up: processes stopped, database ${ctx.dbName} dropped, ${keys} Redis keys unlinked${kept}`);
    return problems.length === 0;
  })();
  return cleaning;
}
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the benchmark`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function main() {
  const machine = await machineInfo(ctx);
  log(`bench run ${ctx.run}${opts.quick ? " (quick)" : ""} on ${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGb} GB, node ${machine.node}, load ${machine.loadAverage.join(" ")}`);
  // The catalog scenario reads its kept database only: a catalog-only run needs no database of its own.
  if (opts.only.some((s) => s !== "catalog")) {
    migrate(ctx.databaseUrl);
    await createBaselineTables(ctx.databaseUrl);
    log(`database ${ctx.dbName} migrated; prefixes {bench-${ctx.run}-*}`);
  }

  const results = {};
  const want = (s) => opts.only.includes(s);
  if (["generator", "ingest", "drain", "system", "reads", "tracing"].some(want)) ensureWrk();
  if (want("generator")) results.generator = await runGenerator(ctx, log);
  if (want("ingest")) results.ingest = await runIngest(ctx, log);
  if (want("drain")) results.drain = await runDrain(ctx, log);
  if (want("system")) results.system = await runSystem(ctx, log);
  if (want("e2e")) results.e2e = await runE2e(ctx, log, { rate: opts.e2eRate ?? 500 });
  if (want("reads")) results.reads = await runReads(ctx, log);
  if (want("lanes")) results.lanes = await runLanes(ctx, log);
  if (want("catalog")) results.catalog = await runCatalog(ctx, log);
  if (want("scaling")) results.scaling = await runScaling(ctx, log);
  if (want("tracing")) results.tracing = await runTracing(ctx, log);
  return { machine, results };
}

async function report({ machine, results }) {
  const rows = buildRows(results);
  const table = formatTable(rows);
  const verdicts = targets(rows);
  const stamp = ctx.stamp;
  const dir = join(ROOT, "bench", "results");
  await mkdir(dir, { recursive: true });
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`;
  const doc = { run: ctx.run, at: new Date().toISOString(), command, options: opts, machine, seconds: (performance.now() - t0) / 1000, targets: verdicts, rows, results };
  const svg = renderSvg(rows, {
    title: `${command} · ${doc.at.slice(0, 16).replace("T", " ")} UTC`,
    subtitle: `${machine.cpus} × ${machine.cpuModel} · ${machine.memoryGb} GB · node ${machine.node} · PostgreSQL ${machine.postgres} · Redis ${machine.redis} · load ${machine.loadAverage.join(" ")}`,
  });
  await writeFile(join(dir, `${stamp}.json`), `${JSON.stringify(doc, null, 2)}\n`);
  await writeFile(join(dir, `${stamp}.svg`), svg);
  // latest.* is what docs/BENCHMARK.md shows: only a full-length run of every default scenario
  // replaces it (not --quick, whose single short repeats are a smoke test).
  const full = SCENARIOS.every((s) => opts.only.includes(s)) && !opts.quick;
  if (full) {
    await copyFile(join(dir, `${stamp}.json`), join(dir, "latest.json"));
    await copyFile(join(dir, `${stamp}.svg`), join(dir, "latest.svg"));
  }
  console.log(`\n${table}\n`);
  const met = verdicts.filter((v) => v.met === true).length;
  const missed = verdicts.filter((v) => v.met === false);
  console.log(`targets: ${met} met, ${missed.length} not met, ${verdicts.length - met - missed.length} not judged`);
  for (const v of missed) console.log(`  NOT MET: ${v.figure}${v.against ? ` vs ${v.against}` : ""}: ${v.ratio === undefined ? "" : `${v.ratio.toFixed(2)}× `}(target ${typeof v.target === "number" ? `≥ ${v.target}×` : v.target})`);
  console.log(`results: bench/results/${stamp}.json, bench/results/${stamp}.svg (${full ? "copied to latest.*" : `${opts.quick ? "quick" : "partial"} run: latest.* left as it was`})`);
}

let code = 0;
try {
  const outcome = await main();
  if (!(await cleanup())) code = 1;
  await report(outcome);
} catch (err) {
  if (!state.aborted) console.error(`bench failed: ${err.stack ?? err.message}`);
  code = 1;
  await cleanup();
}
log(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
process.exit(code);
