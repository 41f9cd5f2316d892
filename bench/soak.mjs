// `npm run soak [-- --minutes 10 --rate N]`: the API and two workers under a steady
// offered rate (default 70 % of the API's peak, measured first) for minutes, in windows
// of one minute. Memory and latency must stay flat and nothing may fail. Not for CI.
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { apiEnv, createRun, workerEnv } from "./lib/config.mjs";
import { registrationRequest, runLoad } from "./lib/load.mjs";
import { rssOf, startNode, startServer, teardown, waitFor } from "./lib/processes.mjs";
import { openQueue, pendingJobs } from "./lib/queue.mjs";
import { benchDatabaseUrl, countRows, deleteKeys, dropDatabase, migrate, redisInfo } from "./lib/resources.mjs";

const { values } = parseArgs({ options: { minutes: { type: "string", default: "10" }, rate: { type: "string" }, share: { type: "string", default: "0.7" } } });
const minutes = Number(values.minutes);
const names = createRun(process.env);
const ctx = { ...names, opts: { concurrency: 20 }, databaseUrl: benchDatabaseUrl(names.baseDatabaseUrl, names.dbName) };
const prefix = ctx.prefix("soak");
const mb = (b) => (b === undefined ? "?" : `${Math.round(b / 1_048_576)} MB`);
const log = (m) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${m}`);

let cleaning;
const cleanup = () =>
  (cleaning ??= (async () => {
    await teardown();
    await dropDatabase(ctx.databaseUrl).catch(() => {});
    await deleteKeys(ctx.redisUrl, ctx.keyPattern).catch(() => {});
  })());
for (const s of ["SIGINT", "SIGTERM"]) process.once(s, () => void cleanup().finally(() => process.exit(130)));

let failed = false;
try {
  migrate(ctx.databaseUrl);
  const { queue, close } = openQueue(ctx.redisUrl, prefix);
  const api = await startServer("api", "apps/api/dist/index.js", apiEnv(ctx, prefix), "/readyz");
  const workers = [1, 2].map((i) => startNode(`worker ${i}`, "apps/worker/dist/index.js", workerEnv(ctx, prefix)));
  await waitFor(async () => (await queue.getWorkersCount()) >= 2, { label: "workers" });

  let rate = Number(values.rate);
  if (!rate) {
    const peak = await runLoad(api.url, { seconds: 10, request: registrationRequest(`${ctx.run}-peak`) });
    rate = Math.max(50, Math.round(peak.rate * Number(values.share)));
    log(`peak ${Math.round(peak.rate)} req/s; soaking at ${rate} req/s for ${minutes} min`);
    await waitFor(async () => (await pendingJobs(queue)) === 0, { timeoutMs: 120_000, label: "drain after the peak" });
  }

  const windows = [];
  for (let m = 0; m < minutes; m++) {
    const w = await runLoad(api.url, { seconds: 60, overallRate: rate, request: registrationRequest(`${ctx.run}-${m}`) });
    const [backlog, apiRss, w1, w2, redis] = await Promise.all([
      pendingJobs(queue), rssOf(api.pid), rssOf(workers[0].proc.pid), rssOf(workers[1].proc.pid), redisInfo(ctx.redisUrl),
    ]);
    windows.push({ minute: m + 1, ...w, backlog, apiRss, workerRss: [w1, w2], redisUsedMemory: redis.usedMemory });
    log(`minute ${m + 1}: ${Math.round(w.rate)} req/s, p50 ${w.p50} ms, p99 ${w.p99} ms, non-2xx ${w.non2xx}, errors ${w.errors}, ` +
      `backlog ${backlog}, API ${mb(apiRss)}, workers ${mb(w1)} / ${mb(w2)}, Redis ${mb(redis.usedMemory)}`);
    failed ||= w.non2xx > 0 || w.errors > 0;
  }
  await waitFor(async () => (await pendingJobs(queue)) === 0, { timeoutMs: 300_000, label: "final drain" });
  const accepted = windows.reduce((s, w) => s + w.ok, 0);
  const rows = await countRows(ctx.databaseUrl, "registrations");
  const first = windows[0];
  const last = windows.at(-1);
  log(`accepted ${accepted}, rows ${rows}; p99 ${first.p99} → ${last.p99} ms; API RSS ${mb(first.apiRss)} → ${mb(last.apiRss)}; ` +
    `Redis ${mb(first.redisUsedMemory)} → ${mb(last.redisUsedMemory)}`);
  failed ||= rows < accepted;
  await close();
  await sleep(100);
} catch (err) {
  console.error(`soak failed: ${err.stack ?? err.message}`);
  failed = true;
}
await cleanup();
log(failed ? "soak FAILED" : "soak passed: zero errors");
process.exit(failed ? 1 : 0);
