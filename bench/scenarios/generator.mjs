// The load generators' own ceilings, beside which every other rate is read: wrk (the
// closed-loop loads) and the paced Node generator (the paced phases) against plain
// node:http answering a constant body, the fastest server there is here.
import { runPaced } from "../lib/load.mjs";
import { startServer } from "../lib/processes.mjs";
import { summariseWrk, runWrk } from "../lib/wrk.mjs";

export async function runGenerator(ctx, log) {
  const server = await startServer("constant node:http", "bench/targets/constant-server.mjs", {});
  try {
    const runs = [];
    for (let r = 0; r < ctx.opts.repeats; r++) runs.push(await runWrk(server.url, { seconds: ctx.opts.seconds, path: "/", pids: { server: server.pid } }));
    const wrk = summariseWrk(runs);
    // The paced generator asked for far more than any phase needs: what it manages is its ceiling.
    const paced = await runPaced(server.url, { seconds: Math.min(3, ctx.opts.seconds), rate: 20_000, request: () => ({ method: "GET", path: "/" }) });
    log(`generator ceilings: wrk ${Math.round(wrk.rate)} req/s (p99 ${wrk.p99} ms), paced Node generator ${Math.round(paced.rate)} req/s of 20,000 asked (p99 ${paced.p99?.toFixed(1)} ms)`);
    return { wrk, paced: { asked: 20_000, rate: paced.rate, p50: paced.p50, p99: paced.p99, skipped: paced.skipped } };
  } finally {
    await server.stop();
  }
}
