import { sql } from "drizzle-orm";
import { afterAll, describe, expect, it } from "vitest";
import { spawnApi, spawnWorker, testDb, testEnv, waitFor, type WorkerProcess } from "./support/harness.js";
import { freePort } from "./support/private-redis.js";

const { prefix } = testEnv("deploys");
const { db, close: closeDb } = testDb();
afterAll(() => closeDb());

describe("deploying under load", () => {
  it("SIGTERM on the API and on a worker mid-load: no in-flight request is cut and no accepted write is lost", async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    let api = await spawnApi(prefix, port);
    const workers: WorkerProcess[] = [await spawnWorker(prefix), await spawnWorker(prefix)];
    const accepted = new Map<string, string>();
    const failures: string[] = [];
    let refused = 0;
    let dropped = 0;
    let sent = 0;
    let stop = false;
    try {

    // A client that retries refused connections with the same Idempotency-Key, as a real one would.
    const client = async (n: number) => {
      for (let i = 0; !stop; i++) {
        const key = `deploy-${n}-${i}`;
        const email = `${key}@deploys.example.com`;
        for (;;) {
          try {
            sent++;
            const res = await fetch(`${base}/registrations`, {
              method: "POST",
              headers: { "content-type": "application/json", "idempotency-key": key },
              body: JSON.stringify({ email, name: key }),
            });
            const body = (await res.json()) as { jobId?: string };
            if (res.status === 202) {
              const before = accepted.get(key);
              if (before && before !== body.jobId) failures.push(`${key}: a retry got another jobId`);
              accepted.set(key, body.jobId!);
            } else if (res.status !== 503) failures.push(`${key}: ${res.status}`);
            break;
          } catch (err) {
            const code = (err as { cause?: { code?: string } }).cause?.code ?? "";
            // No API listening (between stop and start) or a keep-alive socket closed by
            // the stopping server just as a request went out on it: retry with the same
            // key; idempotency makes a retry of a request that did land harmless.
            if (code === "ECONNREFUSED") refused++;
            else dropped++;
            await new Promise((r) => setTimeout(r, 20));
          }
        }
      }
    };
    const load = Promise.all(Array.from({ length: 8 }, (_, n) => client(n)));

    await waitFor(() => accepted.size > 100, 15_000, "load to build up");
    api.proc.kill("SIGTERM");
    expect(await api.exited).toBe(0);
    const firstApiOutput = api.output;
    api = await spawnApi(prefix, port);
    await waitFor(() => accepted.size > 250, 15_000, "load after the API restart");
    const old = workers.shift()!;
    old.proc.kill("SIGTERM");
    expect(await old.exited).toBe(0);
    workers.push(await spawnWorker(prefix));
    await waitFor(() => accepted.size > 400, 15_000, "load after the worker restart");
    stop = true;
    await load;

    expect(failures).toEqual([]);
    // The stopped API finished what it had in flight within its deadline.
    expect(firstApiOutput()).toContain("api stopped");
    expect(firstApiOutput()).not.toContain("requests still in flight");
    const ids = [...accepted.values()];
    await waitFor(async () => {
      const { rows } = await db.execute<{ n: number }>(
        sql`select count(*)::int as n from job_ledger where status = 'completed' and job_id = any(string_to_array(${ids.join(",")}, ','))`,
      );
      return rows[0]!.n === ids.length;
    }, 30_000, "every accepted write applied");
    const { rows } = await db.execute<{ n: number; distinct_emails: number }>(
      sql`select count(*)::int as n, count(distinct lower(email))::int as distinct_emails from registrations where email like 'deploy-%'`,
    );
    expect(rows[0]).toEqual({ n: accepted.size, distinct_emails: accepted.size });
    console.log(`deploy test: ${sent} requests, ${accepted.size} accepted, ${refused} refused and ${dropped} dropped connections retried`);
    } finally {
      stop = true;
      await Promise.all(workers.map((w) => w.stop()));
      api.proc.kill("SIGTERM");
      await api.exited;
    }
  }, 90_000);
});
