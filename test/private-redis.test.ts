// The tests' private Redis servers must be their own: a port handed out free can be taken
// by another file's server before ours binds it, and that one would answer for ours.
import { Redis } from "ioredis";
import { expect, inject, it } from "vitest";
import { PrivateRedis } from "./support/private-redis.js";

it("a private redis-server whose port is taken moves to a free one and is the one answering", async () => {
  const taken = Number(new URL(inject("redisUrl")).port || 6379);
  const redis = new PrivateRedis(taken);
  await redis.start();
  try {
    expect(redis.port).not.toBe(taken);
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      expect(await client.dbsize()).toBe(0);
    } finally {
      client.disconnect();
    }
  } finally {
    await redis.remove();
  }
});
