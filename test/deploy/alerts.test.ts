// The alert rules as Prometheus reads them: promtool's check and unit tests of
// deploy/prometheus/alerts.yml, the same groups in the Kubernetes PrometheusRule, and a
// runbook entry for every alert.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { findPrometheus } from "../support/prometheus.js";
import { repoPath } from "../support/kustomize.js";

type Rule = { alert: string; expr: string; annotations: Record<string, string> };
type Groups = { groups: { name: string; rules: Rule[] }[] };

const ALERTS = repoPath("deploy/prometheus/alerts.yml");
const rules = parseYaml(readFileSync(ALERTS, "utf8")) as Groups;
const alerts = rules.groups.flatMap((g) => g.rules);

function promtool(...args: string[]) {
  const { promtool: bin } = findPrometheus();
  const run = spawnSync(bin, args, { encoding: "utf8", timeout: 60_000 });
  return { code: run.status, output: `${run.stdout}${run.stderr}` };
}

describe("alert rules", () => {
  it("promtool accepts the rules", { timeout: 600_000 }, () => {
    const { code, output } = promtool("check", "rules", ALERTS);
    expect(code, output).toBe(0);
  });

  it("every rule's promtool unit tests pass", () => {
    const { code, output } = promtool("test", "rules", repoPath("deploy/prometheus/alerts.test.yml"));
    expect(code, output).toBe(0);
  });

  it("every alert has a unit test that fires it", () => {
    const tests = parseYaml(readFileSync(repoPath("deploy/prometheus/alerts.test.yml"), "utf8")) as {
      tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[];
    };
    const fired = new Set(tests.tests.flatMap((t) => t.alert_rule_test.filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname)));
    expect(alerts.map((a) => a.alert).filter((a) => !fired.has(a))).toEqual([]);
  });

  it("the Kubernetes overlay's PrometheusRule holds the same groups", () => {
    const rule = parseYaml(readFileSync(repoPath("deploy/k8s/overlays/production/prometheus-rule.yaml"), "utf8")) as { kind: string; spec: Groups };
    expect(rule.kind).toBe("PrometheusRule");
    expect(rule.spec.groups).toEqual(rules.groups);
  });

  it("every alert has a runbook entry in docs/OPERATIONS.md: what it means, what to check, what to do", () => {
    const doc = readFileSync(repoPath("docs/OPERATIONS.md"), "utf8");
    const sections = new Map(doc.split(/^### /m).slice(1).map((s) => [s.slice(0, s.indexOf("\n")).trim(), s]));
    for (const { alert, annotations } of alerts) {
      expect(annotations.runbook, alert).toBe(`docs/OPERATIONS.md#${alert.toLowerCase()}`);
      const section = sections.get(alert);
      expect(section, `no "### ${alert}" in docs/OPERATIONS.md`).toBeDefined();
      for (const part of ["What it means", "What to check", "What to do"]) expect(section, `${alert}: ${part}`).toContain(`**${part}**`);
    }
  });
});

describe("docker compose's observability profile", () => {
  type Service = { profiles?: string[]; volumes?: string[]; environment?: Record<string, string>; expose?: string[] };
  const compose = parseYaml(readFileSync(repoPath("docker-compose.yml"), "utf8"), { merge: true }) as { services: Record<string, Service> };
  const PROMETHEUS_CONFIG = repoPath("deploy/prometheus/prometheus.yml");

  it("adds Prometheus, Grafana and Jaeger, and only with the profile", () => {
    for (const name of ["prometheus", "grafana", "jaeger"]) expect(compose.services[name]?.profiles, name).toEqual(["observability"]);
    for (const [name, s] of Object.entries(compose.services)) {
      if (!["prometheus", "grafana", "jaeger"].includes(name)) expect(s.profiles, name).toBeUndefined();
    }
  });

  it("mounts files that exist: the scrape config, the rules, Grafana's provisioning and the dashboard", () => {
    for (const name of ["prometheus", "grafana"]) {
      for (const volume of compose.services[name]!.volumes ?? []) {
        const source = volume.split(":")[0]!;
        if (source.startsWith("./")) expect(existsSync(repoPath(source)), source).toBe(true);
      }
    }
  });

  it("Prometheus scrapes every API replica and every worker replica on the ports they serve metrics on, as the rules' job names", () => {
    const { code, output } = promtool("check", "config", PROMETHEUS_CONFIG);
    expect(code, output).toBe(0);
    const config = parseYaml(readFileSync(PROMETHEUS_CONFIG, "utf8")) as { scrape_configs: { job_name: string; dns_sd_configs: { names: string[]; port: number }[] }[] };
    const jobs = Object.fromEntries(config.scrape_configs.map((c) => [c.job_name, c.dns_sd_configs[0]!]));
    expect(jobs["ingest-api"]).toMatchObject({ names: ["api"], port: Number(compose.services.api!.environment!.PORT) });
    expect(jobs["ingest-worker"]).toMatchObject({ names: ["worker"], port: Number(compose.services.worker!.environment!.WORKER_METRICS_PORT) });
  });

  it("the apps export traces to Jaeger's OTLP port when OTEL_EXPORTER_OTLP_ENDPOINT is set", () => {
    for (const name of ["api", "worker"]) expect(compose.services[name]!.environment!.OTEL_EXPORTER_OTLP_ENDPOINT, name).toBe("${OTEL_EXPORTER_OTLP_ENDPOINT:-}");
    expect(compose.services.jaeger!.expose).toContain("4318");
  });
});
