// The worker's /healthz verdict: healthy while its queue Redis answers, 503 problems otherwise.
import { describe, expect, it } from "vitest";
import { createWorkerHealth } from "../src/health.js";

const health = (lastContact: number | undefined, stopping = false) =>
  createWorkerHealth({ isStopping: () => stopping, lastContact: () => lastContact, unhealthyAfterMs: 10_000 })();

describe("worker health", () => {
  it("is 200 while the queue Redis answered within the threshold", () => {
    const answer = health(Date.now() - 9_000);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ status: "ok", checks: { redis: "up" } });
  });

  it("is a 503 problem saying since when, once the queue Redis has been silent longer", () => {
    const since = Date.now() - 12_000;
    const answer = health(since);
    expect(answer.status).toBe(503);
    expect(answer.headers["Content-Type"]).toBe("application/problem+json");
    const body = JSON.parse(answer.body);
    expect(body).toMatchObject({ type: "/problems/redis-unreachable", status: 503, checks: { redis: "down" }, redisUnreachableSince: new Date(since).toISOString() });
    expect(body.detail).toContain(new Date(since).toISOString());
  });

  it("counts from the start when no queue connection is open at all", () => {
    expect(health(undefined).status).toBe(200);
  });

  it("is a 503 problem while stopping, whatever Redis does", () => {
    const answer = health(Date.now(), true);
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body)).toMatchObject({ type: "/problems/stopping", status: 503 });
  });
});
