import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BULK_QUEUE, closeQueues, createQueues, EMAILS_QUEUE, QUEUE_NAMES, WRITE_QUEUES, type QueueName } from "@ingest/jobs";
import { Redis } from "ioredis";
import { beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { checkEnv, loadEnv as loadApiEnv } from "../../apps/api/src/env.js";
import { loadEnv as loadWorkerEnv } from "../../apps/worker/src/env.js";
import { testEnv } from "../support/harness.js";
import { createValidator, type Validator } from "../support/k8s-schema.js";
import { applyJsonPatch, readObjects, renderKustomization, repoPath, type K8sObject } from "../support/kustomize.js";

// Rendered as `kubectl apply -k` would send them (see test/support/kustomize.ts for
// the subset of kustomize this implements).
const RENDERED = {
  base: renderKustomization(repoPath("deploy/k8s/base")),
  production: renderKustomization(repoPath("deploy/k8s/overlays/production")),
};
const SECRET_EXAMPLE = readObjects(repoPath("deploy/k8s/base/secret.example.yaml"));
const SECRET_NAME = "ingest-secrets";
// Values that must never sit in a ConfigMap or a plain env value.
const SECRET_KEYS = ["DATABASE_URL", "REDIS_URL", "CACHE_REDIS_URL", "ADMIN_PASSWORD", "JWT_SECRET", "SMTP_URL", "KEDA_REDIS_PASSWORD"];
// Queues whose backlog must add workers: the interactive writes, the bulk lane, emails.
const SCALED_QUEUES = [...WRITE_QUEUES, BULK_QUEUE, EMAILS_QUEUE];
const COMPOSE = parseYaml(readFileSync(repoPath("docker-compose.yml"), "utf8"), { merge: true }) as {
  services: Record<string, { command: string[] }>;
};

type Container = {
  name: string;
  image: string;
  command?: string[];
  ports?: { name?: string; containerPort: number }[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean }; configMapKeyRef?: { name: string; key: string } } }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] }; sleep?: { seconds: number } } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean; capabilities?: { drop?: string[] } };
};
type Probe = { httpGet?: { path: string; port: number | string }; periodSeconds?: number; failureThreshold?: number };
type PodSpec = {
  containers: Container[];
  initContainers?: Container[];
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
};
type PodTemplate = { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec };

const find = (objects: K8sObject[], kind: string, name: string): any => {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`${kind}/${name} is not in the rendered manifests`);
  return o;
};
const template = (o: any): PodTemplate => o.spec.template;
const containerOf = (o: any, name: string): Container => {
  const c = template(o).spec.containers.find((x) => x.name === name);
  if (!c) throw new Error(`${o.kind}/${o.metadata.name} has no container ${name}`);
  return c;
};
const allContainers = (spec: PodSpec) => [...(spec.initContainers ?? []), ...spec.containers];
const workloads = (objects: K8sObject[]) => objects.filter((o) => o.kind === "Deployment" || o.kind === "Job");
const secretData = (): Record<string, string> => (SECRET_EXAMPLE[0] as any).stringData;

/** A probe's port as a number, resolving a named port against the container's ports. */
function portOf(c: Container, port: number | string): number {
  if (typeof port === "number") return port;
  const found = c.ports?.find((p) => p.name === port);
  if (!found) throw new Error(`container ${c.name} has no port named ${port}`);
  return found.containerPort;
}

/** The environment a container starts with, the Secret's values taken from secret.example.yaml. */
function effectiveEnv(objects: K8sObject[], c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    if (from.secretRef) throw new Error(`${c.name}: envFrom a whole Secret; reference its keys one by one`);
    if (from.configMapRef) Object.assign(env, find(objects, "ConfigMap", from.configMapRef.name).data);
  }
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    const ref = e.valueFrom?.secretKeyRef;
    if (ref) {
      const value = secretData()[ref.key];
      if (value === undefined && !ref.optional) throw new Error(`${c.name}: ${e.name} needs key ${ref.key}, missing from secret.example.yaml`);
      if (value !== undefined) env[e.name] = value;
    }
    const cm = e.valueFrom?.configMapKeyRef;
    if (cm) env[e.name] = find(objects, "ConfigMap", cm.name).data[cm.key];
  }
  return env;
}

/** The variables migrate.ts reads (it parses its environment inline, at import time). */
function migrateEnvKeys(): string[] {
  const source = readFileSync(repoPath("packages/db/src/migrate.ts"), "utf8");
  const spec = /parseEnv\(\{([\s\S]*?)\}\)/.exec(source)?.[1];
  if (!spec) throw new Error("packages/db/src/migrate.ts: no parseEnv({...}) found");
  return [...spec.matchAll(/^\s*([A-Z][A-Z0-9_]*):/gm)].map((m) => m[1]!);
}

const quantity = (q: string): number => {
  const m = /^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi)?$/.exec(q);
  if (!m) throw new Error(`unparsed quantity ${q}`);
  const scale = { m: 0.001, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[m[2] as "m"] ?? 1;
  return Number(m[1]) * scale;
};

let validate: Validator;
beforeAll(() => {
  validate = createValidator();
});

describe.each(Object.entries(RENDERED))("Kubernetes manifests: %s", (variant, objects) => {
  const api = find(objects, "Deployment", "ingest-api");
  const worker = find(objects, "Deployment", "ingest-worker");
  const apiContainer = containerOf(api, "api");
  const workerContainer = containerOf(worker, "worker");

  it("every object matches the Kubernetes, KEDA or Prometheus Operator schema of its kind, with no unknown field", () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(
      [
        // The alert rules ship with the production overlay (the base needs no Operator).
        ...(variant === "production" ? ["PrometheusRule/ingest"] : []),
        "ConfigMap/ingest-api-config",
        "ConfigMap/ingest-config",
        "ConfigMap/ingest-worker-config",
        "Deployment/ingest-api",
        "Deployment/ingest-worker",
        "HorizontalPodAutoscaler/ingest-api",
        "PodDisruptionBudget/ingest-api",
        "ScaledObject/ingest-worker",
        "Service/ingest-api",
        "Service/ingest-worker-metrics",
        "TriggerAuthentication/ingest-queue-redis",
      ].sort(),
    );
    expect(objects.flatMap(validate)).toEqual([]);
  });

  it("the API is ready on GET /readyz and alive on GET /healthz, on the port it listens on", () => {
    const env = loadApiEnv(effectiveEnv(objects, apiContainer));
    expect(apiContainer.command).toEqual(COMPOSE.services.api!.command);
    expect(apiContainer.readinessProbe?.httpGet?.path).toBe("/readyz");
    expect(apiContainer.livenessProbe?.httpGet?.path).toBe("/healthz");
    expect(apiContainer.startupProbe?.httpGet?.path).toBe("/healthz");
    for (const probe of [apiContainer.readinessProbe, apiContainer.livenessProbe, apiContainer.startupProbe]) {
      expect(portOf(apiContainer, probe!.httpGet!.port)).toBe(env.PORT);
    }
    const service = find(objects, "Service", "ingest-api");
    expect(template(api).metadata.labels).toMatchObject(service.spec.selector);
    expect(portOf(apiContainer, service.spec.ports[0].targetPort)).toBe(env.PORT);
    const pdb = find(objects, "PodDisruptionBudget", "ingest-api");
    expect(template(api).metadata.labels).toMatchObject(pdb.spec.selector.matchLabels);
    expect(pdb.spec.maxUnavailable ?? 0).toBeGreaterThan(0);
    expect(find(objects, "HorizontalPodAutoscaler", "ingest-api").spec.scaleTargetRef).toEqual({ apiVersion: "apps/v1", kind: "Deployment", name: "ingest-api" });
    // A rollout starts new pods before it stops old ones.
    expect(api.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
  });

  it("the worker is alive and ready on GET /healthz of WORKER_METRICS_PORT, where it serves /metrics", () => {
    const env = loadWorkerEnv(effectiveEnv(objects, workerContainer));
    expect(workerContainer.command).toEqual(COMPOSE.services.worker!.command);
    expect(env.WORKER_METRICS_PORT).toBeGreaterThan(0);
    for (const probe of [workerContainer.readinessProbe, workerContainer.livenessProbe, workerContainer.startupProbe]) {
      expect(probe?.httpGet?.path).toBe("/healthz");
      expect(portOf(workerContainer, probe!.httpGet!.port)).toBe(env.WORKER_METRICS_PORT);
    }
    const metrics = find(objects, "Service", "ingest-worker-metrics");
    expect(metrics.spec.clusterIP).toBe("None");
    expect(template(worker).metadata.labels).toMatchObject(metrics.spec.selector);
    expect(portOf(workerContainer, metrics.spec.ports[0].targetPort)).toBe(env.WORKER_METRICS_PORT);
    expect(Number(template(worker).metadata.annotations?.["prometheus.io/port"])).toBe(env.WORKER_METRICS_PORT);
  });

  it("the grace periods outlast the preStop sleep plus the drain SIGTERM starts, and liveness cannot cut a drain short", () => {
    const apiDrainS = loadApiEnv(effectiveEnv(objects, apiContainer)).SHUTDOWN_TIMEOUT_MS / 1000;
    const preStop = apiContainer.lifecycle?.preStop;
    const sleepS = preStop?.sleep?.seconds ?? (preStop?.exec?.command[0] === "sleep" ? Number(preStop.exec.command[1]) : 0);
    // Long enough for the endpoint removal to reach kube-proxy and the Ingress.
    expect(sleepS).toBeGreaterThanOrEqual(3);
    // Margin for closing Redis, the queues and the pool after the drain.
    expect(template(api).spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(sleepS + apiDrainS + 5);
    const liveApi = apiContainer.livenessProbe!;
    expect(liveApi.periodSeconds! * liveApi.failureThreshold!).toBeGreaterThan(sleepS + apiDrainS);

    const workerDrainS = loadWorkerEnv(effectiveEnv(objects, workerContainer)).SHUTDOWN_TIMEOUT_MS / 1000;
    expect(workerDrainS).toBe(25);
    expect(template(worker).spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(workerDrainS + 5);
    const liveWorker = workerContainer.livenessProbe!;
    expect(liveWorker.periodSeconds! * liveWorker.failureThreshold!).toBeGreaterThan(workerDrainS);
  });

  it("liveness restarts a worker cut off from its queue Redis only after its watchdog had time to reconnect it, and within two minutes", () => {
    const env = loadWorkerEnv(effectiveEnv(objects, workerContainer));
    // A silent connection is dropped within 1.5 x REDIS_PING_TIMEOUT_MS and reconnects once the path is back.
    expect(env.WORKER_UNHEALTHY_AFTER_MS).toBeGreaterThanOrEqual(env.REDIS_PING_TIMEOUT_MS * 3);
    const live = workerContainer.livenessProbe!;
    expect(env.WORKER_UNHEALTHY_AFTER_MS / 1000 + live.periodSeconds! * live.failureThreshold!).toBeLessThanOrEqual(120);
  });

  it("KEDA scales the worker Deployment on the waiting list of each queue that matters", () => {
    const scaled = find(objects, "ScaledObject", "ingest-worker");
    expect(scaled.spec.scaleTargetRef).toMatchObject({ kind: "Deployment", name: worker.metadata.name });
    // The autoscalers own the replica counts; a fixed spec.replicas would fight them.
    expect(worker.spec.replicas).toBeUndefined();
    expect(api.spec.replicas).toBeUndefined();
    expect(scaled.spec.minReplicaCount).toBeGreaterThanOrEqual(2);
    expect(scaled.spec.maxReplicaCount).toBeGreaterThan(scaled.spec.minReplicaCount);
    // KEDA applies cooldownPeriod only when it scales to zero: elsewhere it would mislead.
    if (scaled.spec.cooldownPeriod !== undefined) expect(scaled.spec.minReplicaCount).toBe(0);
    expect(scaled.spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilizationWindowSeconds).toBeGreaterThan(0);

    const prefix = loadWorkerEnv(effectiveEnv(objects, workerContainer)).QUEUE_PREFIX;
    const byQueue = new Map<string, any>();
    for (const trigger of scaled.spec.triggers) {
      expect(trigger.type).toBe("redis");
      const match = /^(.*):([^:]+):wait$/.exec(trigger.metadata.listName);
      expect(match, trigger.metadata.listName).not.toBeNull();
      expect(match![1]).toBe(prefix);
      expect(QUEUE_NAMES).toContain(match![2]);
      expect(Number.isInteger(Number(trigger.metadata.listLength)) && Number(trigger.metadata.listLength) > 0).toBe(true);
      byQueue.set(match![2]!, trigger);
    }
    expect([...byQueue.keys()].sort()).toEqual([...SCALED_QUEUES].sort());

    for (const trigger of byQueue.values()) {
      const auth = find(objects, "TriggerAuthentication", trigger.authenticationRef.name);
      const params = auth.spec.secretTargetRef.map((r: { parameter: string; name: string; key: string }) => {
        expect(r.name).toBe(SECRET_NAME);
        expect(secretData()).toHaveProperty(r.key);
        return r.parameter;
      });
      expect(params).toContain("address");
    }
  });

  it("secrets are referenced from the ingest-secrets Secret, never written into the manifests", () => {
    expect(objects.filter((o) => o.kind === "Secret")).toEqual([]);
    for (const cm of objects.filter((o) => o.kind === "ConfigMap") as any[]) {
      for (const [key, value] of Object.entries<string>(cm.data)) {
        expect(SECRET_KEYS, `${cm.metadata.name}.${key}`).not.toContain(key);
        expect(value, `${cm.metadata.name}.${key}`).not.toMatch(/:\/\/[^/\s@]*:[^/\s@]*@/);
      }
    }
    const referenced = new Set<string>();
    for (const w of workloads(objects)) {
      for (const c of allContainers(template(w).spec)) {
        for (const e of c.env ?? []) {
          if (SECRET_KEYS.includes(e.name)) expect(e.valueFrom?.secretKeyRef, `${w.metadata.name}/${c.name}: ${e.name}`).toBeDefined();
          const ref = e.valueFrom?.secretKeyRef;
          if (!ref) continue;
          expect(ref.name).toBe(SECRET_NAME);
          referenced.add(ref.key);
          if (!ref.optional) expect(secretData()).toHaveProperty(ref.key);
        }
      }
    }
    expect([...referenced]).toEqual(expect.arrayContaining(["DATABASE_URL", "REDIS_URL", "ADMIN_USER", "ADMIN_PASSWORD"]));
  });

  it("every variable a container gets is one its app reads, and the values parse as that app's configuration", () => {
    const apiKeys = Object.keys(loadApiEnv({}));
    const workerKeys = Object.keys(loadWorkerEnv({}));
    const migrateKeys = migrateEnvKeys();
    expect(migrateKeys).toContain("DATABASE_URL");

    const apiEnv = effectiveEnv(objects, apiContainer);
    expect(Object.keys(apiEnv).filter((k) => !apiKeys.includes(k))).toEqual([]);
    expect(checkEnv(loadApiEnv(apiEnv))).toEqual([]);
    expect(loadApiEnv(apiEnv).NODE_ENV).toBe("production");

    const workerEnv = effectiveEnv(objects, workerContainer);
    expect(Object.keys(workerEnv).filter((k) => !workerKeys.includes(k))).toEqual([]);
    expect(loadWorkerEnv(workerEnv).NODE_ENV).toBe("production");

    // Migrations run before every API and worker pod starts, not in a Job.
    const migrations = [...template(api).spec.initContainers!, ...template(worker).spec.initContainers!];
    expect(migrations).toHaveLength(2);
    for (const c of migrations) {
      expect(c.command).toEqual(COMPOSE.services.migrate!.command);
      expect(Object.keys(effectiveEnv(objects, c)).filter((k) => !migrateKeys.includes(k))).toEqual([]);
    }
  });

  it("pods run as the image's non-root user on a read-only root filesystem, with requests and limits", () => {
    expect(readFileSync(repoPath("Dockerfile"), "utf8")).toMatch(/^USER node$/m);
    for (const w of workloads(objects)) {
      const spec = template(w).spec;
      expect(spec.securityContext, w.metadata.name).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
      for (const c of allContainers(spec)) {
        const where = `${w.metadata.name}/${c.name}`;
        expect(c.securityContext, where).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
        expect(c.securityContext?.capabilities?.drop, where).toContain("ALL");
        expect(c.image, where).toBe(variant === "base" ? "ingest" : "registry.example.com/ingest:1.0.0");
        const { requests = {}, limits = {} } = c.resources ?? {};
        for (const r of ["cpu", "memory"]) {
          expect(requests[r], `${where} requests.${r}`).toBeDefined();
          expect(limits[r], `${where} limits.${r}`).toBeDefined();
          expect(quantity(limits[r]!), `${where} ${r}`).toBeGreaterThanOrEqual(quantity(requests[r]!));
        }
      }
    }
  });
});

describe("the production overlay", () => {
  const prod = RENDERED.production;

  it("puts everything in the ingest namespace with production sizes and bounds", () => {
    expect(RENDERED.base.every((o) => o.metadata.namespace === undefined)).toBe(true);
    expect(prod.every((o) => o.metadata.namespace === "ingest")).toBe(true);
    expect(find(prod, "ConfigMap", "ingest-config").data.NODE_ENV).toBe("production");
    expect(find(prod, "HorizontalPodAutoscaler", "ingest-api").spec).toMatchObject({ minReplicas: 3, maxReplicas: 12 });
    expect(find(prod, "ScaledObject", "ingest-worker").spec).toMatchObject({ minReplicaCount: 3, maxReplicaCount: 20, fallback: { replicas: 3 } });
    for (const name of ["ingest-api", "ingest-worker"]) {
      expect(find(prod, "Deployment", name).spec.template.spec.containers[0].resources.requests).toEqual({ cpu: "500m", memory: "512Mi" });
    }
  });

  it("the example Secret is valid, holds placeholders only, and is not applied by kustomize", () => {
    const base = parseYaml(readFileSync(repoPath("deploy/k8s/base/kustomization.yaml"), "utf8"));
    expect(base.resources).not.toContain("secret.example.yaml");
    expect(SECRET_EXAMPLE).toHaveLength(1);
    expect(SECRET_EXAMPLE[0]!.metadata.name).toBe(SECRET_NAME);
    expect(validate(SECRET_EXAMPLE[0]!)).toEqual([]);
    for (const key of SECRET_KEYS) expect(secretData()[key], key).toMatch(/CHANGE-ME/);
  });
});

describe("re-applying with a new image", () => {
  it("changes only objects whose changed fields may change: no Job, whose pod template is immutable", () => {
    const dir = mkdtempSync(join(tmpdir(), "kustomize-"));
    writeFileSync(
      join(dir, "kustomization.yaml"),
      "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n" +
        `resources:\n  - ${repoPath("deploy/k8s/overlays/production")}\n` +
        "images:\n  - name: registry.example.com/ingest\n    newTag: \"1.0.1\"\n",
    );
    const next = renderKustomization(dir);
    const key = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;
    const before = new Map(RENDERED.production.map((o) => [key(o), JSON.stringify(o)]));
    const changed = next.filter((o) => before.get(key(o)) !== JSON.stringify(o)).map(key);
    // Deployments roll their pods to a new template; a Job would be refused by the API server.
    expect(changed.sort()).toEqual(["Deployment/ingest-api", "Deployment/ingest-worker"]);
    for (const base of ["base", "production"] as const) expect(RENDERED[base].filter((o) => o.kind === "Job").map(key)).toEqual([]);
  });
});

describe("the checks above can fail", () => {
  it("the schema check reports a misspelt field, a wrong type and a missing required field", () => {
    const objects = RENDERED.production;
    const api = applyJsonPatch(find(objects, "Deployment", "ingest-api"), [
      { op: "add", path: "/spec/template/spec/containers/1", value: { name: "typo", image: "x", readinesProbe: { httpGet: { path: "/readyz", port: 3000 } } } },
      { op: "replace", path: "/spec/template/spec/terminationGracePeriodSeconds", value: "30" },
    ]);
    const scaled = applyJsonPatch(find(objects, "ScaledObject", "ingest-worker"), [
      { op: "remove", path: "/spec/scaleTargetRef/name" },
      { op: "add", path: "/spec/triggers/0/authRef", value: { name: "x" } },
    ]);
    expect(validate(api)).toEqual(
      expect.arrayContaining([
        "Deployment/ingest-api/spec/template/spec/terminationGracePeriodSeconds: must be integer",
        "Deployment/ingest-api/spec/template/spec/containers/1/readinesProbe: unknown field",
      ]),
    );
    expect(validate(scaled)).toEqual(
      expect.arrayContaining([
        "ScaledObject/ingest-worker/spec/scaleTargetRef: must have required property name",
        "ScaledObject/ingest-worker/spec/triggers/0/authRef: unknown field",
      ]),
    );
  });

  it("the renderer refuses kustomize features it does not implement and patches that match nothing", () => {
    const dir = mkdtempSync(join(tmpdir(), "kustomize-"));
    const write = (body: string) => writeFileSync(join(dir, "kustomization.yaml"), `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n${body}`);
    write(`resources:\n  - ${repoPath("deploy/k8s/base")}\nconfigMapGenerator:\n  - name: x\n`);
    expect(() => renderKustomization(dir)).toThrow(/configMapGenerator/);
    write(`resources:\n  - ${repoPath("deploy/k8s/base")}\npatches:\n  - target: {kind: Deployment, name: ingest-apii}\n    patch: "[]"\n`);
    expect(() => renderKustomization(dir)).toThrow(/matches no resource/);
    write(`resources:\n  - ${repoPath("deploy/k8s/base")}\npatches:\n  - target: {kind: Deployment, name: ingest-api}\n    patch: |-\n      - op: replace\n        path: /spec/replicaz\n        value: 3\n`);
    expect(() => renderKustomization(dir)).toThrow(/no such member/);
  });
});

describe("the waiting lists KEDA reads", () => {
  it("are where the app's queues keep their waiting jobs", async () => {
    const { prefix, redisUrl } = testEnv("k8s");
    const scaled = find(RENDERED.production, "ScaledObject", "ingest-worker");
    const configured = loadWorkerEnv({}).QUEUE_PREFIX;
    const redis = new Redis(redisUrl);
    // The app's own queue factory, under this run's prefix instead of the production one.
    const queues = createQueues(redis, prefix, () => {});
    try {
      for (const trigger of scaled.spec.triggers) {
        const listName: string = trigger.metadata.listName;
        const queueName = listName.split(":").at(-2) as QueueName;
        expect(listName.startsWith(`${configured}:`)).toBe(true);
        await queues[queueName].add("k8s-probe", {});
        expect(await redis.llen(prefix + listName.slice(configured.length)), listName).toBe(1);
      }
    } finally {
      for (const queue of Object.values(queues)) await queue.obliterate({ force: true });
      await closeQueues(queues);
      await redis.quit();
    }
  });
});
