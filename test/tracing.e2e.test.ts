// Traces as an operator's collector receives them: a real API and worker (as `npm start`
// runs them) exporting over OTLP/HTTP, one registration followed from the caller's
// traceparent to the SMTP server, both encodings (http/protobuf, http/json), the sweep's
// emails, and an unreachable collector that costs requests nothing.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { cachePrefixFor, request, ROOT, spawnApi, spawnWorker, testEnv, waitFor, waitForJob, type ApiProcess } from "./support/harness.js";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "./support/otlp-receiver.js";
import { freePort } from "./support/private-redis.js";
import { createScratchDb } from "./support/scratch-db.js";
import { createSmtpSink, type SmtpSink } from "./support/smtp-sink.js";

// The email lane sweeps its database's pending emails: this file's registrations stay in a database of its own.
const scratch = await createScratchDb("tracing_e2e");
afterAll(() => scratch.drop());

const SPAN_KIND = { SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 };
const FAST_EXPORT = { OTEL_BSP_SCHEDULE_DELAY: "100" };

type Stack = { receiver: OtlpReceiver; sink: SmtpSink; apiBase: string; output: () => string };
type Started = { apiBase: string; output: () => string; stop: () => Promise<unknown> };
type Start = (prefix: string, env: Record<string, string>, receiverUrl: string) => Promise<Started>;

/**
 * A receiver, an SMTP sink, and an API and a worker exporting to the receiver under the
 * given queue prefix, started before the describe's tests and stopped after them.
 */
function tracedStack(name: string, start: Start): Stack {
  const { prefix } = testEnv(name);
  const stack = {} as Stack;
  let started: Started | undefined;
  beforeAll(async () => {
    stack.receiver = await startOtlpReceiver();
    stack.sink = createSmtpSink(await freePort());
    await stack.sink.listen();
    const env = { DATABASE_URL: scratch.url, ...FAST_EXPORT, SMTP_URL: stack.sink.url, MAIL_FROM: "Ingest <hello@trace.test>" };
    started = await start(prefix, env, stack.receiver.url);
    Object.assign(stack, { apiBase: started.apiBase, output: started.output });
  }, 120_000);
  afterAll(async () => {
    await started?.stop();
    await stack.sink?.close();
    await stack.receiver?.close();
  });
  return stack;
}

/** As `npm start` runs them: scripts/run.mjs starts the API and one worker with the same environment. */
const asNpmStart =
  (otel: (receiverUrl: string) => Record<string, string>): Start =>
  async (prefix, env, receiverUrl) => {
    const port = await freePort();
    const proc = spawn(process.execPath, [join(ROOT, "scripts/run.mjs"), "start"], {
      cwd: ROOT,
      env: {
        ...process.env,
        ...env,
        ...otel(receiverUrl),
        REDIS_URL: inject("redisUrl"),
        QUEUE_PREFIX: prefix,
        CACHE_PREFIX: cachePrefixFor(prefix),
        PORT: String(port),
        HOST: "127.0.0.1",
        WORKERS: "1",
        WORKER_METRICS_PORT: String(await freePort()),
        NODE_ENV: "test",
        LOG_LEVEL: "info",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    proc.stdout.on("data", (d) => (out += d));
    proc.stderr.on("data", (d) => (out += d));
    const exited = new Promise((resolve) => proc.on("exit", resolve));
    await waitFor(() => proc.exitCode !== null || (out.includes("> Job status:") && out.includes('"worker started"')), 90_000, "npm start");
    if (proc.exitCode !== null) throw new Error(`npm start exited:\n${out}`);
    return {
      apiBase: `http://127.0.0.1:${port}`,
      output: () => out,
      stop: () => (proc.kill("SIGTERM"), exited),
    };
  };

/** The API and a worker as processes of their own, each with its own OTEL_* settings. */
const asProcesses =
  (otel: (receiverUrl: string) => { api: Record<string, string>; worker: Record<string, string> }): Start =>
  async (prefix, env, receiverUrl) => {
    const own = otel(receiverUrl);
    const worker = await spawnWorker(prefix, { ...env, ...own.worker });
    const port = await freePort();
    const api = await spawnApi(prefix, port, { ...env, ...own.api }).catch(async (err) => (await worker.stop(), Promise.reject(err)));
    return {
      apiBase: `http://127.0.0.1:${port}`,
      output: () => api.output() + worker.output(),
      stop: () => Promise.all([api.stop(), worker.stop()]),
    };
  };

describe("one registration is one trace", () => {
  const stack = tracedStack(
    "otel",
    asNpmStart((url) => ({
      // The per-signal variant is a full URL, path included; the protocol is the default, http/protobuf.
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${url}/v1/traces`,
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=test",
    })),
  );

  it("the HTTP request, enqueue, the write's processing, its statements, the email job and its SMTP send share the caller's trace", async () => {
    const { receiver, sink, apiBase } = stack;
    const traceId = randomBytes(16).toString("hex");
    const callerSpanId = randomBytes(8).toString("hex");
    const r = await request(apiBase, "POST", "/registrations", {
      json: { email: `trace-${traceId.slice(0, 8)}@example.com`, name: "Ada" },
      headers: { traceparent: `00-${traceId}-${callerSpanId}-01` },
    });
    expect(r.status, r.text).toBe(202);
    const jobId = r.body.jobId as string;
    const job = await waitForJob(apiBase, jobId);
    expect(job.state).toBe("completed");
    await waitFor(() => sink.messages.length === 1, 15_000, "the welcome email");

    const inTrace = () => receiver.spans.filter((s) => s.traceId === traceId);
    const named = (name: string | RegExp, service?: string) =>
      inTrace().find((s) => (typeof name === "string" ? s.name === name : name.test(s.name)) && (!service || s.service === service));
    await waitFor(() => named("smtp send"), 15_000, "the SMTP send span");
    const spans = inTrace();
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const ancestors = (s: ReceivedSpan) => {
      const chain: ReceivedSpan[] = [];
      for (let p = byId.get(s.parentSpanId); p; p = byId.get(p.parentSpanId)) chain.push(p);
      return chain;
    };
    const describeTrace = () => spans.map((s) => `${s.service} ${s.name} ${s.spanId}<-${s.parentSpanId}`).join("\n");

    // The HTTP request continues the caller's span.
    const server = spans.find((s) => s.service === "ingest-api" && s.kind === SPAN_KIND.SERVER);
    expect(server, describeTrace()).toBeDefined();
    expect(server!.parentSpanId).toBe(callerSpanId);
    expect(server!.attributes["http.route"] ?? server!.name).toMatch(/registrations/);
    // express's own spans, under the request.
    expect(spans.some((s) => s.service === "ingest-api" && s.name.includes("/registrations") && s.parentSpanId === server!.spanId), describeTrace()).toBe(true);

    // The enqueue, named by the write's job id, and its Redis commands.
    const publish = named("registrations publish", "ingest-api");
    expect(publish, describeTrace()).toBeDefined();
    expect(publish!.kind).toBe(SPAN_KIND.PRODUCER);
    expect(publish!.attributes["messaging.message.id"]).toBe(jobId);
    expect(ancestors(publish!)).toContain(server);

    // The worker's processing of this write: its own span in the caller's trace, linked to the carrier's.
    const processed = named("registration.create process", "ingest-worker");
    expect(processed, describeTrace()).toBeDefined();
    expect(processed!.kind).toBe(SPAN_KIND.CONSUMER);
    expect(processed!.parentSpanId).toBe(publish!.spanId);
    expect(processed!.attributes["messaging.message.id"]).toBe(jobId);
    expect(processed!.links.length).toBe(1);
    const carrierSpan = receiver.spans.find((s) => s.spanId === processed!.links[0]!.spanId);
    expect(carrierSpan?.service).toBe("ingest-worker");
    expect(carrierSpan?.name).toMatch(/^process /);

    // Its PostgreSQL statements.
    const statements = spans.filter((s) => s.service === "ingest-worker" && s.kind === SPAN_KIND.CLIENT && ancestors(s).includes(processed!) && /pg|postgres/i.test(String(s.attributes["db.system.name"] ?? s.attributes["db.system"] ?? s.name)));
    expect(statements.length, describeTrace()).toBeGreaterThan(0);
    expect(statements.some((s) => /insert into registrations/i.test(String(s.attributes["db.query.text"] ?? s.attributes["db.statement"] ?? "")))).toBe(true);

    // The welcome email's job and its SMTP send, after the write.
    const email = named("email.welcome process", "ingest-worker");
    expect(email, describeTrace()).toBeDefined();
    expect(ancestors(email!)).toContain(processed);
    expect(String(email!.attributes["messaging.message.id"])).toMatch(/^eml-welcome-/);
    const smtp = named("smtp send", "ingest-worker")!;
    expect(smtp.parentSpanId).toBe(email!.spanId);
    expect(smtp.kind).toBe(SPAN_KIND.CLIENT);

    // The standard resource variables reach the exported resource; the default names apply.
    expect(new Set(spans.map((s) => s.service))).toEqual(new Set(["ingest-api", "ingest-worker"]));
    for (const s of spans) expect(s.resource["deployment.environment.name"], s.name).toBe("test");
    expect(new Set(receiver.encodings)).toEqual(new Set(["application/x-protobuf"]));
    // BullMQ's housekeeping (stalled-job checks every few seconds per queue) is not exported.
    expect(receiver.spans.filter((s) => /^(startStalledCheckTimer|moveStalledJobsToWait|getNextJob) /.test(s.name)).map((s) => s.name)).toEqual([]);
  });

  it("each line of a bulk batch has a span of its own in the caller's trace, named by its ledger id", async () => {
    const { receiver, apiBase } = stack;
    const traceId = randomBytes(16).toString("hex");
    const tag = traceId.slice(0, 8);
    const body = [1, 2].map((n) => JSON.stringify({ op: "create", product: { name: `bulk-trace-${tag}-${n}`, category: "c", default_price: "1.00" } })).join("\n");
    const r = await request(apiBase, "POST", "/products/bulk", {
      body,
      headers: { "content-type": "application/x-ndjson", traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01` },
    });
    expect(r.status, r.text).toBe(202);
    expect((await waitForJob(apiBase, r.body.jobId)).state).toBe("completed");
    const lineSpans = () => receiver.spans.filter((s) => s.traceId === traceId && s.name === "product.create process");
    await waitFor(() => lineSpans().length === 2, 15_000, "a span per bulk line");
    expect(lineSpans().map((s) => s.attributes["messaging.message.id"]).sort()).toEqual([`${r.body.jobId}-L1`, `${r.body.jobId}-L2`]);
    for (const s of lineSpans()) expect(s.service).toBe("ingest-worker");
  });

  it("a caller's decision not to sample is followed by the API and the worker: nothing of that write is exported", async () => {
    const { receiver, apiBase } = stack;
    const unsampled = randomBytes(16).toString("hex");
    const sampled = randomBytes(16).toString("hex");
    const post = (traceId: string, flags: string, email: string) =>
      request(apiBase, "POST", "/registrations", { json: { email, name: "Cy" }, headers: { traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-${flags}` } });
    const [off, on] = await Promise.all([post(unsampled, "00", `off-${unsampled.slice(0, 8)}@example.com`), post(sampled, "01", `on-${sampled.slice(0, 8)}@example.com`)]);
    await Promise.all([waitForJob(apiBase, off.body.jobId), waitForJob(apiBase, on.body.jobId)]);
    // Both welcome emails went; the sampled one's send is exported, so the export caught up.
    await waitFor(() => receiver.spans.some((s) => s.traceId === sampled && s.name === "smtp send"), 15_000, "the sampled write's SMTP span");
    expect(receiver.spans.filter((s) => s.traceId === unsampled)).toEqual([]);
    // Nor under a trace of the worker's own: the write carried the decision with it.
    expect(receiver.spans.filter((s) => s.attributes["messaging.message.id"] === off.body.jobId)).toEqual([]);
    expect(receiver.spans.filter((s) => s.attributes["messaging.message.id"] === on.body.jobId).length).toBe(2);
  });

  it("log lines written inside a traced job carry its trace_id and span_id", async () => {
    const { receiver, output } = stack;
    await waitFor(() => output().includes('"welcome emails done"'), 15_000, "the email's log line");
    const line = output().split("\n").find((l) => l.includes('"welcome emails done"'))!;
    const parsed = JSON.parse(line) as { trace_id?: string; span_id?: string };
    expect(parsed.trace_id).toMatch(/^[0-9a-f]{32}$/);
    expect(parsed.span_id).toMatch(/^[0-9a-f]{16}$/);
    await waitFor(() => receiver.spans.some((s) => s.traceId === parsed.trace_id && s.spanId === parsed.span_id), 10_000, "the logged span among the exported ones");
  });

  it("a line about one write of a carrier names that write's trace, not the carrier's", async () => {
    const { apiBase, output } = stack;
    const traceId = randomBytes(16).toString("hex");
    // A PATCH of a product that does not exist fails for good, and the worker says so.
    const r = await request(apiBase, "PATCH", "/products/2000000001", { json: { name: "Gone" }, headers: { traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01` } });
    expect(r.status, r.text).toBe(202);
    expect((await waitForJob(apiBase, r.body.jobId)).state).toBe("failed");
    const line = await waitFor(() => output().split("\n").find((l) => l.includes('"write failed permanently"') && l.includes(r.body.jobId)), 10_000, "the failure's log line");
    expect(JSON.parse(line)).toMatchObject({ trace_id: traceId, span_id: expect.stringMatching(/^[0-9a-f]{16}$/) });
  });
});

describe("an unreachable collector", () => {
  const { prefix } = testEnv("otel-down");
  let api: ApiProcess;
  let apiBase: string;
  let blackhole: ReturnType<typeof createServer>;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    // Accepts connections and never answers: worse than a refused port, which fails at once.
    blackhole = createServer((socket) => {
      sockets.add(socket);
      socket.on("error", () => {});
    });
    await new Promise<void>((resolve) => blackhole.listen(0, "127.0.0.1", resolve));
    const { port: holePort } = blackhole.address() as { port: number };
    const port = await freePort();
    api = await spawnApi(prefix, port, {
      DATABASE_URL: scratch.url,
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${holePort}`,
      OTEL_BSP_SCHEDULE_DELAY: "50",
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "8",
    });
    apiBase = `http://127.0.0.1:${port}`;
  }, 60_000);

  afterAll(async () => {
    await api?.stop();
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => blackhole.close(() => resolve()));
  });

  it("never slows or fails a request: writes answer 202 at once while exports hang", async () => {
    const slowest: number[] = [];
    for (let round = 0; round < 10; round++) {
      const replies = await Promise.all(
        Array.from({ length: 20 }, (_, i) => request(apiBase, "POST", "/registrations", { json: { email: `down-${round}-${i}@example.com`, name: "Bo" } })),
      );
      for (const r of replies) expect(r.status, r.text).toBe(202);
      slowest.push(Math.max(...replies.map((r) => r.ms)));
    }
    expect(sockets.size).toBeGreaterThan(0);
    // The exporter's timeout is 10 s: a request that waited on it would show here.
    expect(Math.max(...slowest)).toBeLessThan(2_000);
  });
});

describe("a welcome email the outbox sweep sends", () => {
  // The relay holds its emails for 10 s; the sweep takes pending outbox rows at once.
  const stack = tracedStack(
    "otel-sweep",
    asProcesses((url) => ({
      // The relay holds its emails for 10 s; the sweep takes pending outbox rows at once.
      worker: { OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json", OTEL_SERVICE_NAME: "ingest-mailer", EMAIL_RELAY_WAIT_MS: "10000", EMAIL_DISPATCH_AFTER_MS: "0", EMAIL_DISPATCH_INTERVAL_MS: "50" },
      api: { OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf" },
    })),
  );

  it("still joins the trace of the write that owes it (the outbox row keeps its trace context)", async () => {
    const { receiver, apiBase } = stack;
    const traceId = randomBytes(16).toString("hex");
    const r = await request(apiBase, "POST", "/registrations", {
      json: { email: `sweep-${traceId.slice(0, 8)}@example.com`, name: "Di" },
      headers: { traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01` },
    });
    expect(r.status, r.text).toBe(202);
    // Well before the relay's 10 s: this send is the sweep's.
    await waitFor(() => receiver.spans.some((s) => s.traceId === traceId && s.name === "smtp send"), 8_000, "the swept email's SMTP span");
    const spans = receiver.spans.filter((s) => s.traceId === traceId);
    const write = spans.find((s) => s.name === "registration.create process")!;
    const email = spans.find((s) => s.name === "email.welcome process")!;
    expect(write.attributes["messaging.message.id"]).toBe(r.body.jobId);
    expect(email.parentSpanId).toBe(write.spanId);
    // OTEL_SERVICE_NAME replaces the default name.
    expect(new Set(spans.map((s) => s.service))).toEqual(new Set(["ingest-api", "ingest-mailer"]));
    // The worker exported in JSON, the API in protobuf.
    expect(new Set(receiver.encodings)).toEqual(new Set(["application/json", "application/x-protobuf"]));
  });
});
