// Tracing: POST /registrations on the API (no worker running) with tracing off (no OTLP
// endpoint: the default), on with every request sampled, and on with 10% sampled (OTLP/HTTP
// protobuf to a receiver in this process that answers 200 and drops the spans), driven by
// wrk in alternating rounds.
import { createServer } from "node:http";
import { apiEnv } from "../lib/config.mjs";
import { pidsNamed } from "../lib/cpu.mjs";
import { startServer } from "../lib/processes.mjs";
import { deleteKeys } from "../lib/resources.mjs";
import { roundRobinWrk } from "../lib/wrk.mjs";

export async function runTracing(ctx, log) {
  let spansBytes = 0;
  const receiver = createServer((req, res) => {
    req.on("data", (d) => (spansBytes += d.length));
    req.on("end", () => res.writeHead(200, { "content-type": "application/x-protobuf" }).end());
  });
  await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const endpoint = `http://127.0.0.1:${receiver.address().port}`;
  const off = await startServer("api (tracing off)", "apps/api/dist/index.js", apiEnv(ctx, ctx.prefix("trace-off")), "/readyz");
  const on = await startServer("api (tracing on)", "apps/api/dist/index.js", apiEnv(ctx, ctx.prefix("trace-on"), { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }), "/readyz");
  const sampled = await startServer(
    "api (tracing 10%)",
    "apps/api/dist/index.js",
    apiEnv(ctx, ctx.prefix("trace-sampled"), { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.1" }),
    "/readyz",
  );
  try {
    const post = (server) => ({ url: server.url, script: "registrations", tag: `${ctx.run}-tracing`, pids: { server: server.pid, redis: () => pidsNamed("redis-server") } });
    const results = await roundRobinWrk({ off: post(off), on: post(on), sampled: post(sampled) }, ctx.opts);
    for (const [k, r] of Object.entries(results)) {
      log(`tracing ${k}: ${Math.round(r.rate)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms; API CPU µs/request ${Math.round(r.cpuUsPerRequest.server)}`);
    }
    log(`tracing on and sampled: ${(spansBytes / 1e6).toFixed(1)} MB of spans exported`);
    return results;
  } finally {
    await Promise.all([off.stop(), on.stop(), sampled.stop()]);
    await new Promise((resolve) => receiver.close(resolve));
    for (const p of ["trace-off", "trace-on", "trace-sampled"]) await deleteKeys(ctx.redisUrl, `${ctx.prefix(p)}*`);
  }
}
