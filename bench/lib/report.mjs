// Turns the scenario results into rows (figure, baseline, ratio, target) for the table,
// the JSON and the chart, and prints the table.
const fmt = (n, digits = 0) => (n === undefined || Number.isNaN(n) ? "–" : n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }));
const median = (xs) => {
  const v = xs.filter((x) => x !== undefined && !Number.isNaN(x)).sort((a, b) => a - b);
  return v.length ? (v.length % 2 ? v[v.length >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2) : undefined;
};
const ms = (n) => (n === undefined ? "" : `${fmt(n, n < 10 ? 1 : 0)} ms`);

/** Each row: { group, label, value, unit, p50?, p99?, product?, ratios: [{to, ratio, target?, met?}] , note? } */
export function buildRows(results) {
  const rows = [];
  const ratio = (a, b) => (a && b ? a / b : undefined);
  const check = (r, target) => (r === undefined ? { target, met: undefined } : { target, met: r >= target });
  const { generator, system, ingest, drain, e2e, reads, catalog, lanes, scaling, tracing } = results;

  const us = (v) => (v === undefined ? "n/a" : fmt(v));
  const cpuParts = (c, keys) => keys.filter(([k]) => c?.[k] !== undefined).map(([k, label]) => `${label} ${us(c[k])}`).join(", ");
  const PROCESSES = [["api", "API"], ["worker", "workers"], ["redis", "Redis"], ["postgres", "PostgreSQL"], ["generator", "wrk"]];

  if (generator) {
    rows.push({ group: "generator", label: "wrk vs node:http constant answer (its ceiling)", value: generator.wrk.rate, unit: "req/s", p50: generator.wrk.p50, p99: generator.wrk.p99, ratios: [] });
    rows.push({ group: "generator", label: `paced Node generator, 20,000/s asked (its ceiling)`, value: generator.paced.rate, unit: "req/s", p50: generator.paced.p50, p99: generator.paced.p99, ratios: [] });
  }
  if (system) {
    const { system: ours, sync, latency, efficiency } = system;
    const r = ratio(ours.rate, sync.rate);
    rows.push({ group: "whole system", label: `API + ${system.workers} workers: writes applied/s (first request → last commit)`, value: ours.rate, unit: "writes/s", p50: ours.p50, p99: ours.p99, product: true,
      ratios: [{ to: "sync design", ratio: r, ...check(r, 1.0) }] });
    rows.push({ group: "whole system", label: "baseline: Express + INSERT per request (pool 20)", value: sync.rate, unit: "writes/s", p50: sync.p50, p99: sync.p99, ratios: [] });
    rows.push({ group: "whole system", label: `CPU µs per write, ours: ${cpuParts(ours.cpuUs, PROCESSES)}; all but wrk ${us(ours.cpuUs.system)}`, value: undefined, unit: "", ratios: [] });
    rows.push({ group: "whole system", label: `CPU µs per write, sync: ${cpuParts(sync.cpuUs, [["api", "server"], ["postgres", "PostgreSQL"], ["generator", "wrk"]])}; all but wrk ${us(sync.cpuUs.system)}`, value: undefined, unit: "", ratios: [] });
    if (latency) {
      const okHttp = latency.http.p99 === undefined ? undefined : latency.http.p99 <= 20;
      const okApplied = latency.applied.p99 === undefined ? undefined : latency.applied.p99 <= 250;
      rows.push({ group: "whole system, paced", label: `202 p99 at ${fmt(latency.rate)} writes/s (half), ${fmt(latency.http.ok)} answered`, value: latency.http.p99, unit: "ms", p50: latency.http.p50, p99: latency.http.p99, product: true,
        note: latency.http.non2xx + latency.http.errors + latency.http.skipped ? `${latency.http.non2xx} non-2xx, ${latency.http.errors} errors, ${latency.http.skipped} skipped` : undefined,
        ratios: [{ to: "", target: "≤ 20 ms", met: okHttp }] });
      rows.push({ group: "whole system, paced", label: `accepted → applied p99 at ${fmt(latency.rate)} writes/s (${fmt(latency.applied.writes)} writes)`, value: latency.applied.p99, unit: "ms", p50: latency.applied.p50, p99: latency.applied.p99, product: true,
        ratios: [{ to: "", target: "≤ 250 ms", met: okApplied }] });
    }
    if (efficiency) {
      const e = ratio(efficiency.cpuUs.system, ours.cpuUs.system);
      rows.push({ group: "whole system, paced", label: `CPU µs per write at ${fmt(efficiency.rate)} writes/s (a fifth): ${cpuParts(efficiency.cpuUs, PROCESSES.slice(0, 4))}`, value: efficiency.cpuUs.system, unit: "µs", product: true,
        ratios: [{ to: "saturated", ratio: e, target: "≤ 2×", met: e === undefined ? undefined : e <= 2 }] });
    }
  }
  if (ingest) {
    const { api, floorPost, sync } = ingest;
    const r1 = ratio(api.rate, floorPost.rate);
    const r2 = ratio(api.rate, sync.rate);
    rows.push({ group: "ingest", label: "API POST /registrations → 202 (no worker)", value: api.rate, unit: "req/s", p50: api.p50, p99: api.p99, product: true,
      ratios: [{ to: "floor POST", ratio: r1, ...check(r1, 0.8) }, { to: "sync design", ratio: r2 }] });
    rows.push({ group: "ingest", label: "baseline: Express floor POST", value: floorPost.rate, unit: "req/s", p50: floorPost.p50, p99: floorPost.p99, ratios: [] });
    rows.push({ group: "ingest", label: "baseline: Express + INSERT (sync)", value: sync.rate, unit: "req/s", p50: sync.p50, p99: sync.p99, ratios: [] });
    const c = (x) => x.cpuUsPerRequest ?? {};
    rows.push({ group: "ingest", label: `CPU µs per request: API ${us(c(api).server)} + Redis ${us(c(api).redis)}; floor ${us(c(floorPost).server)}; sync ${us(c(sync).server)} + PostgreSQL ${us(c(sync).postgres)}; wrk ${us(c(api).generator)}`, value: undefined, unit: "", ratios: [] });
  }
  if (drain) {
    const { worker, noop } = drain;
    const r = ratio(worker.rate, noop.rate);
    const carriers = worker.runs.map((x) => x.writes / x.carriers);
    rows.push({ group: "drain ×1", label: `one worker: writes applied/s (${fmt(median(worker.runs.map((x) => x.writes)))} writes queued by the API, ${fmt(median(carriers), 1)} per job)`, value: worker.rate, unit: "writes/s", product: true,
      ratios: [{ to: "no-op", ratio: r, ...check(r, 1.0) }] });
    rows.push({ group: "drain ×1", label: "baseline: BullMQ no-op worker, as many jobs", value: noop.rate, unit: "jobs/s", ratios: [] });
    rows.push({ group: "drain ×1", label: `CPU µs per write: ${cpuParts(worker.cpuUsPerWrite, [["worker", "worker"], ["redis", "Redis"], ["postgres", "PostgreSQL"]])}; no-op per job: ${cpuParts(noop.cpuUsPerWrite, [["worker", "worker"], ["redis", "Redis"]])}`, value: undefined, unit: "", ratios: [] });
  }
  if (e2e) {
    const bounded = e2e.backlogAtEnd <= Math.max(50, e2e.offeredRate * 0.5);
    rows.push({ group: "end to end", label: `accepted at ${e2e.offeredRate} req/s offered, ${fmt(e2e.seconds, 1)} s`, value: e2e.acceptedRate, unit: "req/s", p50: e2e.p50, p99: e2e.p99, product: true,
      ratios: [{ to: "offered", ratio: ratio(e2e.acceptedRate, e2e.offeredRate) }] });
    rows.push({ group: "end to end", label: "drained during the load (2 workers)", value: e2e.drainedRate, unit: "rows/s", product: true,
      ratios: [{ to: "accepted", ratio: ratio(e2e.drainedDuringLoad, e2e.accepted) }] });
    rows.push({ group: "end to end", label: `accepted = drained (${e2e.accepted} / ${e2e.drained})`, value: undefined, unit: "",
      ratios: [{ to: "", target: "equal", met: e2e.accepted === e2e.drained && e2e.failed === 0 }] });
    rows.push({ group: "end to end", label: `backlog at end ${e2e.backlogAtEnd} (max ${e2e.backlogMax}), tail ${fmt(e2e.tailMs)} ms`, value: undefined, unit: "",
      ratios: [{ to: "", target: "< 0.5 s of intake", met: bounded }] });
    const rss = e2e.samples.map((s) => s.apiRss).filter(Boolean);
    const mem = e2e.samples.map((s) => s.redisUsedMemory).filter(Boolean);
    const long = e2e.seconds >= 115;
    const mb = (b) => fmt(b / 2 ** 20, 1);
    if (rss.length > 1) {
      // The heap saws up and down between collections: compare the median of the last
      // quarter with that of the second (after warming), not two single samples.
      const quarter = (i) => rss.slice(Math.floor((rss.length * i) / 4), Math.floor((rss.length * (i + 1)) / 4));
      const mid = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
      const growth = rss.length >= 8 ? mid(quarter(3)) / mid(quarter(1)) : rss.at(-1) / rss[Math.floor(rss.length / 4)];
      rows.push({ group: "end to end", label: `API RSS ${mb(rss[0])} → ${mb(rss.at(-1))} MB (median of the last quarter ${fmt(growth, 2)}× the second's)`, value: undefined, unit: "",
        ratios: [{ to: "", target: long ? "flat over 2 min" : "2 min run needed", met: long ? growth < 1.1 : undefined }] });
    }
    if (mem.length > 1) {
      rows.push({ group: "end to end", label: `Redis used memory ${mb(mem[0])} → ${mb(mem.at(-1))} MB`, value: undefined, unit: "",
        ratios: [{ to: "", target: long ? "bounded" : "2 min run needed", met: long ? mem.at(-1) < mem[Math.floor(mem.length / 2)] * 1.2 : undefined }] });
    }
  }
  if (reads) {
    const { hit, miss, stale, floorGet } = reads;
    const share = (r, h) => (r.served?.[h] ?? 0) / Object.values(r.served ?? {}).reduce((a, b) => a + b, 0);
    const rr = ratio(hit.rate, floorGet.rate);
    rows.push({ group: "reads", label: "GET /products/:id HIT", value: hit.rate, unit: "req/s", p50: hit.p50, p99: hit.p99, product: true,
      note: `${fmt(share(hit, "HIT") * 100)}% HIT sampled`, ratios: [{ to: "floor GET", ratio: rr, ...check(rr, 0.9) }] });
    rows.push({ group: "reads", label: "GET /products/:id STALE", value: stale.rate, unit: "req/s", p50: stale.p50, p99: stale.p99, product: true,
      note: `${fmt(share(stale, "STALE") * 100)}% STALE sampled`, ratios: [{ to: "floor GET", ratio: ratio(stale.rate, floorGet.rate) }] });
    rows.push({ group: "reads", label: "GET /products/:id MISS", value: miss.rate, unit: "req/s", p50: miss.p50, p99: miss.p99, product: true,
      note: `${fmt(share(miss, "MISS") * 100)}% MISS sampled`,
      // At the run's full concurrency this is the MISS throughput; the p99 target is judged
      // by `--only catalog`, on 1,000,000 products at a stated concurrency.
      ratios: [{ to: "floor GET", ratio: ratio(miss.rate, floorGet.rate) }] });
    rows.push({ group: "reads", label: "baseline: Express constant GET", value: floorGet.rate, unit: "req/s", p50: floorGet.p50, p99: floorGet.p99, ratios: [] });
    const imp = reads.import;
    rows.push({ group: "import", label: `import ${fmt(imp.loaded)} rows (${fmt(imp.products)} products) in ${imp.took}`, value: imp.rate, unit: "rows/s", product: true,
      ratios: [{ to: "", target: "≥ 100,000 rows/s", met: imp.rate >= 100_000 }] });
  }
  if (lanes) {
    const { without: a, with: b, bulk } = lanes;
    const group = "lanes: interactive jobs";
    const note = (p) => `${fmt(p.jobs)} jobs, max ${fmt(p.job.max)} ms; HTTP p99 ${ms(p.httpP99)}${p.failed ? `; ${p.failed} failed` : ""}${p.inLedger < p.jobs ? `; ${p.jobs - p.inLedger} not applied` : ""}`;
    rows.push({ group, label: `job latency p99 without bulk (${fmt(a.offeredRate)} req/s, ${fmt(a.seconds)} s)`, value: a.job.p99, unit: "ms", p50: a.job.p50, p99: a.job.p99, product: true,
      note: note(a), ratios: [] });
    // The lane holds if the p99 with the bulk draining stays within 2× of the baseline, or
    // within 50 ms of it (a few ms of noise must not fail a small baseline).
    const r = ratio(b.job.p99, a.job.p99);
    const met = b.job.p99 === undefined || a.job.p99 === undefined || b.inLedger < b.jobs ? false : b.job.p99 <= Math.max(2 * a.job.p99, a.job.p99 + 50);
    rows.push({ group, label: `job latency p99 with a ${fmt(bulk.lines / 1000)}k-line bulk load draining`, value: b.job.p99, unit: "ms", p50: b.job.p50, p99: b.job.p99, product: true,
      note: note(b), ratios: [{ to: "without bulk", ratio: r, target: "≤ 2× or ≤ +50 ms", met }] });
    // Context, not a target: how fast the bulk lane drained, and how much the interactive load slowed it.
    rows.push({ group: "lanes: bulk drain", label: `bulk ${fmt(bulk.applied)} of ${fmt(bulk.accepted)} lines ${bulk.finished ? "applied" : `by the ${fmt(bulk.capSeconds)} s cap`} in ${fmt(bulk.seconds, 1)} s`, value: bulk.rate, unit: "lines/s", product: true,
      note: `${fmt(bulk.rateDuringLoad)} lines/s during the interactive load, ${fmt(bulk.rateAfterLoad)} after; ${fmt(bulk.appliedByLoadEnd)} applied by its end; posted in ${fmt(bulk.postSeconds, 1)} s${bulk.failed ? `; ${bulk.failed} failed` : ""}`,
      ratios: [] });
  }
  if (catalog) {
    const group = `catalog: ${fmt(catalog.products)} products`;
    const missShare = (r) => (r.served?.MISS ?? 0) / Object.values(r.served ?? {}).reduce((a, b) => a + b, 0);
    for (const l of catalog.loads) {
      rows.push({ group, label: `GET ${l.path} MISS, ${l.connections} connection${l.connections === 1 ? "" : "s"}`, value: l.rate, unit: "req/s", p50: l.p50, p99: l.p99, product: true,
        note: `${fmt(missShare(l) * 100)}% MISS`, ratios: [] });
    }
    // Judged only when what was measured really was MISS.
    const judged = catalog.loads.find((l) => l.path === "/products/:id" && l.connections === catalog.judgedAt);
    const allMiss = judged && missShare(judged) >= 0.99;
    rows.push({ group, label: `MISS p99 < 20 ms on ${fmt(catalog.products)} products`, value: undefined, unit: "", p50: judged?.p50, p99: judged?.p99,
      ratios: [{ to: `p99 at ${catalog.judgedAt} connections`, target: "< 20 ms", met: allMiss ? judged.p99 < 20 : undefined }] });
    for (const [name, e] of Object.entries(catalog.explain)) {
      rows.push({ group, label: `EXPLAIN ANALYZE ${name} statement (id ${e.id})`, value: undefined, unit: "", ratios: [],
        note: `execution ${fmt(e.executionMs, 2)} ms, planning ${fmt(e.planningMs, 2)} ms, buffers ${fmt(e.sharedHit)} hit / ${fmt(e.sharedRead)} read` });
    }
    const db = catalog.database;
    const size = `${db.bytes < 2 ** 30 ? `${fmt(db.bytes / 2 ** 20)} MB` : `${fmt(db.bytes / 2 ** 30, 1)} GB`}, shared_buffers ${db.sharedBuffers}`;
    rows.push({ group, label: db.reused ? `database reused (built in ${fmt(db.buildSeconds)} s on ${db.builtAt.slice(0, 10)})` : `database built in ${fmt(db.buildSeconds)} s`,
      value: undefined, unit: "", ratios: [], note: db.import ? `${size}; import ${fmt(db.import.rate)} rows/s` : size });
  }
  if (scaling) {
    // A curve, not a target: every row is informational (no verdict), each worker count
    // as a ratio to ×1 on the same Redis and to the no-op worker at the same count.
    const group = "scaling";
    const where = { single: "single Redis", cluster: "3-master cluster" };
    const at = (target, kind, w) => scaling.runs[`${target}:${kind}:${w}`];
    const counts = [...new Set(Object.values(scaling.runs).map((d) => d.workers))].sort((a, b) => a - b);
    for (const target of ["single", "cluster"]) {
      for (const kind of ["worker", "noop"]) {
        for (const w of counts) {
          const d = at(target, kind, w);
          if (!d) continue;
          const one = at(target, kind, counts[0]);
          const ratios = [];
          if (kind === "worker") ratios.push({ to: `no-op ×${w}`, ratio: ratio(d.rate, at(target, "noop", w)?.rate) });
          if (w !== counts[0]) ratios.push({ to: `×${counts[0]}`, ratio: ratio(d.rate, one?.rate) });
          const capped = d.runs.some((x) => x.capped);
          rows.push({ group, label: `${kind === "worker" ? "worker" : "baseline: BullMQ no-op"} ×${w}, ${where[target]}`, value: d.rate, unit: "jobs/s", product: kind === "worker",
            note: ["informational", capped && "capped", d.failed && `${d.failed} failed`, d.rows !== undefined && d.rows !== d.completed && `${d.rows} rows for ${d.completed} jobs`].filter(Boolean).join(", "),
            ratios });
        }
      }
    }
  }
  if (tracing) {
    const group = "tracing";
    rows.push({ group, label: "API POST /registrations, no OTLP endpoint (tracing off)", value: tracing.off.rate, unit: "req/s", p50: tracing.off.p50, p99: tracing.off.p99, product: true, ratios: [] });
    rows.push({ group, label: "API POST /registrations, every span exported over OTLP", value: tracing.on.rate, unit: "req/s", p50: tracing.on.p50, p99: tracing.on.p99, product: true, note: "informational",
      ratios: [{ to: "tracing off", ratio: ratio(tracing.on.rate, tracing.off.rate) }] });
    rows.push({ group, label: "API POST /registrations, 10% of traces sampled and exported", value: tracing.sampled.rate, unit: "req/s", p50: tracing.sampled.p50, p99: tracing.sampled.p99, product: true, note: "informational",
      ratios: [{ to: "tracing off", ratio: ratio(tracing.sampled.rate, tracing.off.rate) }] });
  }
  return rows;
}

const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);

export function formatTable(rows) {
  const lines = [];
  const head = `${pad("figure", 52)}${lpad("value", 16)}${lpad("p50", 9)}${lpad("p99", 9)}   ratio (target) met`;
  lines.push(head, "-".repeat(head.length + 12));
  let group;
  for (const r of rows) {
    if (r.group !== group) {
      group = r.group;
      lines.push(`[${group}]`);
    }
    const value = r.value === undefined ? "" : `${fmt(r.value)} ${r.unit}`;
    const ratios = r.ratios
      .map((x) => {
        const target = typeof x.target === "number" ? ` (≥ ${x.target}×)` : x.target ? ` (${x.target})` : "";
        const met = x.met === undefined ? (x.target ? " not judged" : "") : x.met ? " MET" : " NOT MET";
        const value = x.ratio === undefined ? "" : `${fmt(x.ratio, 2)}× `;
        return `${value}${x.to}${target}${met}`.trim();
      })
      .join("; ");
    lines.push(`  ${pad(r.label, 50)}${lpad(value, 16)}${lpad(ms(r.p50), 9)}${lpad(ms(r.p99), 9)}   ${ratios}${r.note ? ` [${r.note}]` : ""}`);
  }
  return lines.join("\n");
}

/** Every target with its verdict, for the JSON and the summary line. */
export function targets(rows) {
  return rows.flatMap((r) => r.ratios.filter((x) => x.target !== undefined).map((x) => ({ figure: r.label, against: x.to, ratio: x.ratio, target: x.target, met: x.met ?? null })));
}
