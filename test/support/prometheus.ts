// Debian's Prometheus for the tests: `promtool check metrics` on a /metrics body, and a real
// server scraping the apps, asked through its HTTP API.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./private-redis.js";
import { waitFor } from "./harness.js";

const PROMTOOL = "/usr/bin/promtool";
const PROMETHEUS = "/usr/bin/prometheus";

/**
 * The paths of promtool and prometheus, installing Debian's `prometheus` package with
 * apt-get when the test runs as root and they are missing; fails (the tests do not skip)
 * when neither works.
 */
export function findPrometheus(): { promtool: string; prometheus: string } {
  if (!existsSync(PROMTOOL) || !existsSync(PROMETHEUS)) {
    if (process.getuid?.() === 0 && existsSync("/usr/bin/apt-get")) {
      const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
      execFileSync("apt-get", ["update", "-qq"], { stdio: "ignore", env, timeout: 300_000 });
      // Without the recommended exporters and web assets: only the two binaries are needed.
      execFileSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", "prometheus"], { stdio: "ignore", env, timeout: 600_000 });
    }
  }
  if (!existsSync(PROMTOOL) || !existsSync(PROMETHEUS)) {
    throw new Error("promtool and prometheus not found: install Debian's `prometheus` package");
  }
  return { promtool: PROMTOOL, prometheus: PROMETHEUS };
}

/** `promtool check metrics` on a body: its exit code and what it printed (the lint problems). */
export function checkMetrics(body: string): { code: number | null; problems: string } {
  const { promtool } = findPrometheus();
  const run = spawnSync(promtool, ["check", "metrics"], { input: body, encoding: "utf8", timeout: 30_000 });
  return { code: run.status, problems: `${run.stdout}${run.stderr}`.trim() };
}

export type Sample = { metric: Record<string, string>; value: [number, string] };

export type PrometheusServer = {
  url: string;
  /** An instant query through the HTTP API (/api/v1/query): its vector. */
  query: (promql: string) => Promise<Sample[]>;
  output: () => string;
  stop: () => Promise<void>;
};

/** A Prometheus server scraping each scrape job's targets (host:port) every second. */
export async function startPrometheus(jobs: Record<string, string[]>): Promise<PrometheusServer> {
  const { prometheus } = findPrometheus();
  const dir = mkdtempSync(join(tmpdir(), "ingest-prometheus-"));
  const scrapeConfigs = Object.entries(jobs)
    .map(([job, targets]) => `  - job_name: ${JSON.stringify(job)}\n    static_configs:\n      - targets: ${JSON.stringify(targets)}`)
    .join("\n");
  writeFileSync(join(dir, "prometheus.yml"), `global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n${scrapeConfigs}\n`);
  const port = await freePort();
  const proc = spawn(
    prometheus,
    [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  proc.stdout.on("data", (d) => (out += d));
  proc.stderr.on("data", (d) => (out += d));
  const exited = new Promise<void>((resolve) => proc.on("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(async () => proc.exitCode !== null || (await fetch(`${url}/-/ready`).then((r) => r.ok, () => false)), 30_000, "prometheus ready");
    if (proc.exitCode !== null) throw new Error(`prometheus exited at start:\n${out}`);
  } catch (err) {
    await stop();
    throw err;
  }
  const query = async (promql: string): Promise<Sample[]> => {
    const res = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: promql })}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: Sample[] } };
    if (body.status !== "success") throw new Error(`query ${promql} failed: ${body.error}`);
    return body.data!.result;
  };
  return { url, query, output: () => out, stop };
}
