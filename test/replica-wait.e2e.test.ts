import { carrierIdOf } from "@ingest/jobs";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request, startApi, testEnv, waitFor, type Api } from "./support/harness.js";
import { freePort, PrivateRedis } from "./support/private-redis.js";

// REDIS_WAIT_REPLICAS: a 202 only once the job reached a replica of the queue Redis.
const { prefix } = testEnv("replica-wait");
let primary: PrivateRedis;
let replica: PrivateRedis;
let api: Api;
let replicaClient: Redis;
// Long enough for a replica on a busy machine to acknowledge; the hung case waits it out.
const WAIT_TIMEOUT_MS = 1_000;

/**
 * Until the primary counts the replica for WAIT: the replica's own "link up" comes
 * before the primary has it online and acknowledging, and writes in between get 503.
 */
async function replicated(label: string): Promise<void> {
  const client = new Redis(primary.url, { maxRetriesPerRequest: 1 });
  try {
    await waitFor(async () => {
      if (!(await replicaClient.info("replication")).includes("master_link_status:up")) return false;
      await client.set(`${prefix}:replica-probe`, Date.now());
      return (await client.call("WAIT", 1, 200)) === 1;
    }, 15_000, label);
  } finally {
    client.disconnect();
  }
}

beforeAll(async () => {
  primary = new PrivateRedis(await freePort());
  await primary.start();
  replica = new PrivateRedis(await freePort(), { replicaOf: primary.port });
  await replica.start();
  replicaClient = new Redis(replica.url, { maxRetriesPerRequest: 1 });
  await replicated("replica in sync");
  api = await startApi(prefix, { REDIS_URL: primary.url, REDIS_WAIT_REPLICAS: "1", REDIS_WAIT_TIMEOUT_MS: String(WAIT_TIMEOUT_MS), RATE_LIMIT_PER_MIN: "0" });
}, 30_000);

afterAll(async () => {
  replica?.resume();
  await api?.close();
  replicaClient?.disconnect();
  await replica?.remove();
  await primary?.remove();
});

// A write is stored in its carrier job: the key the replica must hold.
const jobKey = (writeId: string) => `${prefix}:registrations:${carrierIdOf(writeId)}`;

describe("writes wait for a replica when REDIS_WAIT_REPLICAS is set", () => {
  it("a 202 means the job is already on the replica", async () => {
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) => request(api.url, "POST", "/registrations", { json: { email: `rw${i}@example.com`, name: "R" } })),
    );
    expect(replies.map((r) => r.status)).toEqual(replies.map(() => 202));
    // Read from the replica right after the answers: nothing is still on its way.
    for (const r of replies) expect(await replicaClient.exists(jobKey(r.body.jobId))).toBe(1);
  });

  it("with the replica hung, writes get 503 after the timeout, not a 202 the master alone holds; an Idempotency-Key retry is answered once it is back", async () => {
    replica.pause();
    try {
      const started = performance.now();
      const refused = await request(api.url, "POST", "/registrations", {
        json: { email: "rw-hung@example.com", name: "R" },
        headers: { "idempotency-key": "replica-wait-1" },
      });
      expect(refused.status).toBe(503);
      expect(refused.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(refused.headers.get("retry-after")).toBe("2");
      expect(refused.body.detail).toMatch(/replicas confirmed/);
      expect(performance.now() - started).toBeGreaterThanOrEqual(WAIT_TIMEOUT_MS - 10);
      const bulk = await request(api.url, "POST", "/products/bulk", {
        body: `${JSON.stringify({ op: "create", product: { name: "n", category: "c", default_price: 1 } })}\n`,
        headers: { "content-type": "application/x-ndjson" },
      });
      expect(bulk.status).toBe(503);
    } finally {
      replica.resume();
    }
    await replicated("replica back");
    // The first attempt's job did reach the master: the retry answers it, now replicated, instead of adding a twin.
    const retried = await request(api.url, "POST", "/registrations", {
      json: { email: "rw-hung@example.com", name: "R" },
      headers: { "idempotency-key": "replica-wait-1" },
    });
    expect(retried.status).toBe(202);
    expect(await replicaClient.exists(jobKey(retried.body.jobId))).toBe(1);
    expect(retried.body.jobId).toBe((await request(api.url, "POST", "/registrations", { json: { email: "rw-hung@example.com", name: "R" }, headers: { "idempotency-key": "replica-wait-1" } })).body.jobId);
    const fresh = await request(api.url, "POST", "/registrations", { json: { email: "rw-after@example.com", name: "R" } });
    expect(fresh.status).toBe(202);
  });
});
