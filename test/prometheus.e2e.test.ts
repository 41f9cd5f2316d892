// The metrics as Prometheus itself reads them: promtool's lint on each /metrics body, a real
// server scraping the API (in cluster mode) and a worker, and one answer for all API processes.
import { Queue } from "bullmq";
import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnApi, spawnWorker, startApi, testEnv, waitFor, waitForJob, type ApiProcess, type WorkerProcess } from "./support/harness.js";
import { freePort } from "./support/private-redis.js";
import { checkMetrics, findPrometheus, startPrometheus, type PrometheusServer } from "./support/prometheus.js";

const { prefix, redisUrl } = testEnv("prom");

/** One request on a connection of its own, so node:cluster hands each to the next process. */
function fresh(base: string, method: string, path: string, json?: unknown): Promise<{ status: number; text: string }> {
  const body = json === undefined ? undefined : JSON.stringify(json);
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${path}`, { method, agent: false, headers: body ? { "content-type": "application/json" } : {} }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** A sample's value in an exposition body, by its name and labels as written. */
function sampleOf(body: string, series: string): number | undefined {
  const line = body.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("metrics as Prometheus reads them", () => {
  const WRITES = 10;
  let api: ApiProcess;
  let apiBase: string;
  let worker: WorkerProcess;
  let workerPort: number;
  let prometheus: PrometheusServer | undefined;

  beforeAll(async () => {
    // Installs Debian's prometheus first if it is missing: that may take a while.
    findPrometheus();
    workerPort = await freePort();
    worker = await spawnWorker(prefix, { WORKER_METRICS_PORT: String(workerPort) });
    const apiPort = await freePort();
    api = await spawnApi(prefix, apiPort, { API_PROCESSES: "2" });
    apiBase = `http://127.0.0.1:${apiPort}`;
    await waitFor(() => (api.output().match(/API listening/g) ?? []).length === 2, 15_000, "two API processes");
  }, 600_000);

  afterAll(async () => {
    await prometheus?.stop();
    await api?.stop();
    await worker?.stop();
  });

  it("with API_PROCESSES=2 every scrape answers the sum over both processes", async () => {
    const ids: string[] = [];
    for (let i = 0; i < WRITES; i++) {
      const r = await fresh(apiBase, "POST", "/registrations", { email: `prom${i}@example.com`, name: `Prom ${i}` });
      expect(r.status).toBe(202);
      ids.push(JSON.parse(r.text).jobId);
    }
    for (const id of ids) await waitForJob(apiBase, id);
    const queue = new Queue("registrations", { connection: { url: redisUrl }, prefix });
    const completed = await queue.getCompletedCount().finally(() => queue.close());
    expect(completed).toBeGreaterThan(0);
    // Connections go to the processes in turn: each process took about half the writes,
    // and a scrape answered by one process alone would count only its own.
    for (let scrape = 0; scrape < 6; scrape++) {
      const r = await fresh(apiBase, "GET", "/metrics");
      expect(r.status).toBe(200);
      expect(sampleOf(r.text, 'ingest_writes_accepted_total{job_name="registration.create"}'), `scrape ${scrape}`).toBe(WRITES);
      expect(sampleOf(r.text, 'http_request_duration_seconds_count{method="POST",route="/registrations",status="202"}'), `scrape ${scrape}`).toBe(WRITES);
      // What every process reads from Redis is taken once, not summed.
      expect(sampleOf(r.text, 'ingest_queue_jobs{queue="registrations",state="completed"}'), `scrape ${scrape}`).toBe(completed);
    }
  });

  it("promtool check metrics accepts the API's body (one process and the cluster's sum) and a worker's", async () => {
    const bad = await fresh(apiBase, "PATCH", "/products/987654", { name: "nobody" });
    expect(bad.status).toBe(202);
    await waitForJob(apiBase, JSON.parse(bad.text).jobId);
    const single = await startApi(`${prefix.slice(0, -1)}-single}`);
    try {
      expect((await fresh(single.url, "POST", "/registrations", { email: "prom-single@example.com", name: "Single" })).status).toBe(202);
      const bodies = {
        "API cluster": (await fresh(apiBase, "GET", "/metrics")).text,
        "API single process": (await fresh(single.url, "GET", "/metrics")).text,
        worker: (await fresh(`http://127.0.0.1:${workerPort}`, "GET", "/metrics")).text,
      };
      for (const [what, body] of Object.entries(bodies)) {
        expect(body, what).toContain("# TYPE ingest_");
        const { code, problems } = checkMetrics(body);
        expect(problems, what).toBe("");
        expect(code, what).toBe(0);
      }
    } finally {
      await single.close();
    }
  });

  it("a real Prometheus scraping the API and a worker finds their series by job_name, the known ones from 0", async () => {
    const target = (url: string) => new URL(url).host;
    prometheus = await startPrometheus({ "ingest-api": [target(apiBase)], "ingest-worker": [`127.0.0.1:${workerPort}`] });
    const p = prometheus;
    const one = async (promql: string) => {
      const result = await p.query(promql);
      return result.length === 1 ? result[0] : undefined;
    };
    // Each scrape job is up, and its samples keep the scrape's own `job` label.
    await waitFor(async () => (await p.query("up == 1")).length === 2, 30_000, `both targets up\n${p.output()}`);

    const accepted = await waitFor(() => one('ingest_writes_accepted_total{job_name="registration.create"}'), 15_000, "accepted writes");
    expect(accepted.metric.job).toBe("ingest-api");
    expect(Number(accepted.value[1])).toBe(WRITES);

    const failed = await waitFor(() => one('ingest_job_failures_total{job_name="product.patch",kind="permanent"}'), 15_000, "failures");
    expect(failed.metric).toMatchObject({ job: "ingest-worker", queue: "products" });
    expect(Number(failed.value[1])).toBe(1);
    const duration = await waitFor(() => one('sum by (job) (ingest_job_duration_seconds_count{job_name="registration.create",outcome="completed"})'), 15_000, "durations");
    expect(duration.metric.job).toBe("ingest-worker");
    expect(Number(duration.value[1])).toBe(WRITES);

    // Counters alerts watch exist before their first event, so increase() sees it.
    for (const series of [
      'ingest_job_failures_total{job_name="registration.create",kind="transient"}',
      'ingest_email_failures_total{email="welcome",kind="final"}',
      'ingest_shed_requests_total{reason="queue_full"}',
      'ingest_shed_requests_total{reason="event_loop"}',
      "ingest_rate_limited_requests_total",
    ]) {
      const sample = await one(series);
      expect(sample?.value[1], series).toBe("0");
    }
    const finished = await waitFor(() => one('ingest_jobs_finished_total{queue="products",outcome="failed"}'), 15_000, "finished jobs");
    expect(Number(finished.value[1])).toBeGreaterThanOrEqual(1);

    // No application label collided with the scrape's.
    expect(await p.query('count({exported_job=~".+"})')).toEqual([]);
  }, 90_000);
});
