// The dashboard and the alert rules against what the apps really expose: a real
// Prometheus scrapes a real API and worker that have done some work, and every query of
// deploy/grafana/ and deploy/prometheus/alerts.yml must run there with metric names,
// label names and exact label values that the scrape has.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { request, ROOT, spawnApi, spawnWorker, testEnv, waitFor, waitForJob, type ApiProcess, type WorkerProcess } from "../support/harness.js";
import { freePort } from "../support/private-redis.js";
import { findPrometheus, startPrometheus, type PrometheusServer } from "../support/prometheus.js";
import { promqlNames } from "../support/promql-names.js";
import { createScratchDb } from "../support/scratch-db.js";
import { createSmtpSink, type SmtpSink } from "../support/smtp-sink.js";

// The email lane sweeps its database's pending emails: this file's registrations stay in a database of its own.
const scratch = await createScratchDb("dashboard_e2e");
afterAll(() => scratch.drop());

type Panel = { title: string; type: string; targets?: { expr: string }[]; panels?: Panel[] };
const dashboard = JSON.parse(readFileSync(`${ROOT}/deploy/grafana/ingest-overview.json`, "utf8")) as { panels: Panel[] };
const panelQueries = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr })));
const rules = parseYaml(readFileSync(`${ROOT}/deploy/prometheus/alerts.yml`, "utf8")) as { groups: { rules: { alert: string; expr: string }[] }[] };
const ruleQueries = rules.groups.flatMap((g) => g.rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })));

describe("dashboard and alert queries", () => {
  const { prefix } = testEnv("dash");
  let api: ApiProcess;
  let worker: WorkerProcess;
  let sink: SmtpSink;
  let prometheus: PrometheusServer;

  beforeAll(async () => {
    findPrometheus();
    sink = createSmtpSink(await freePort());
    await sink.listen();
    const workerPort = await freePort();
    worker = await spawnWorker(prefix, { DATABASE_URL: scratch.url, WORKER_METRICS_PORT: String(workerPort), SMTP_URL: sink.url });
    const apiPort = await freePort();
    api = await spawnApi(prefix, apiPort, { DATABASE_URL: scratch.url });
    const base = `http://127.0.0.1:${apiPort}`;
    // Some of each kind of work, so that the series born on first use exist.
    const reg = await request(base, "POST", "/registrations", { json: { email: "dash@example.com", name: "Dee" } });
    const prd = await request(base, "POST", "/products", { json: { name: "Dash", category: "Tools", default_price: "9.50" } });
    const done = await waitForJob(base, prd.body.jobId);
    await waitForJob(base, reg.body.jobId);
    await request(base, "GET", `/products/${done.result.productId}`);
    await request(base, "GET", "/products/abc");
    await waitFor(() => sink.messages.length === 1, 15_000, "the welcome email");
    prometheus = await startPrometheus({ "ingest-api": [`127.0.0.1:${apiPort}`], "ingest-worker": [`127.0.0.1:${workerPort}`] });
    await waitFor(async () => (await prometheus.query('up == 1')).length === 2 && (await prometheus.query('ingest_job_duration_seconds_count{queue="emails"}')).length > 0, 30_000, "both targets scraped");
  }, 120_000);

  afterAll(async () => {
    await prometheus?.stop();
    await api?.stop();
    await worker?.stop();
    await sink?.close();
  });

  it("the checker finds names that no scrape has", () => {
    expect(promqlNames('sum by (route) (rate(http_requests_total{code="500"}[5m]))')).toEqual({
      metrics: ["http_requests_total"],
      labels: ["route", "code"],
      exact: [{ metric: "http_requests_total", label: "code", value: "500" }],
    });
  });

  it("there are queries for everything the dashboard must show", () => {
    const all = panelQueries.map((q) => q.expr).join("\n");
    for (const metric of [
      "http_request_duration_seconds_count", "http_request_duration_seconds_bucket", "ingest_writes_accepted_total", "ingest_job_duration_seconds_count",
      "ingest_queue_jobs", "ingest_queue_oldest_waiting_age_seconds", "ingest_job_duration_seconds_bucket", "ingest_job_failures_total",
      "ingest_cache_reads_total", "ingest_event_loop_delay_seconds", "ingest_shed_requests_total", "ingest_rate_limited_requests_total",
      "ingest_db_pool_connections",
    ]) {
      expect(all, metric).toContain(metric);
    }
  });

  it.each([...panelQueries, ...ruleQueries])("$where: $expr", async ({ expr }) => {
    // It runs (the syntax is Prometheus's).
    await prometheus.query(expr.replace(/\$__(rate_)?interval/g, "1m"));
    const { metrics, labels, exact } = promqlNames(expr);
    expect(metrics.length).toBeGreaterThan(0);
    const missing: string[] = [];
    for (const metric of metrics) {
      if ((await prometheus.query(`count(${metric})`)).length === 0) missing.push(`metric ${metric}`);
    }
    const anyOf = `{__name__=~"${metrics.join("|")}"`;
    for (const label of labels) {
      if ((await prometheus.query(`count(${anyOf}, ${label}!=""})`)).length === 0) missing.push(`label ${label}`);
    }
    for (const { metric, label, value } of exact) {
      if ((await prometheus.query(`count(${metric}{${label}=${JSON.stringify(value)}})`)).length === 0) missing.push(`${metric}{${label}="${value}"}`);
    }
    expect(missing).toEqual([]);
  });
});
