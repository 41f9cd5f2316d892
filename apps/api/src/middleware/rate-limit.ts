// Writes per minute per client, counted in Redis across API processes.
import type { RedisClient } from "@ingest/redis";
import type { RequestHandler } from "express";
import { RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { AppError } from "../errors.js";

const WINDOW_S = 60;

/**
 * Writes per minute per client (the token's subject, else the address), counted in
 * Redis so every API process shares the budget. Headers follow the IETF RateLimit
 * draft. When Redis cannot count, writes are let through: storing them fails on its
 * own and answers 503, and a limiter outage must not turn into a refusal of service.
 */
export function createRateLimit(
  redis: RedisClient,
  opts: { perMinute: number; prefix: string; onLimited: () => void },
): RequestHandler | undefined {
  // Off: no layer at all on the write path.
  if (opts.perMinute <= 0) return undefined;
  const limiter = new RateLimiterRedis({
    storeClient: redis,
    keyPrefix: `${opts.prefix}:ratelimit`,
    points: opts.perMinute,
    duration: WINDOW_S,
    useRedisPackage: false,
  });
  const policy = `${opts.perMinute};w=${WINDOW_S}`;

  return async (req, res, next) => {
    const client = req.auth ? `sub:${req.auth.sub}` : `ip:${req.ip ?? "unknown"}`;
    let state: RateLimiterRes;
    try {
      state = await limiter.consume(client);
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) return next();
      state = err;
      const retryAfterS = Math.max(1, Math.ceil(state.msBeforeNext / 1_000));
      opts.onLimited();
      throw new AppError("rate_limited", `More than ${opts.perMinute} writes a minute from this client; retry later.`, {
        retryAfterS,
        headers: { "RateLimit-Policy": policy, "RateLimit-Limit": String(opts.perMinute), "RateLimit-Remaining": "0", "RateLimit-Reset": String(retryAfterS) },
      });
    }
    res.set({
      "RateLimit-Policy": policy,
      "RateLimit-Limit": String(opts.perMinute),
      "RateLimit-Remaining": String(state.remainingPoints),
      "RateLimit-Reset": String(Math.ceil(state.msBeforeNext / 1_000)),
    });
    next();
  };
}
