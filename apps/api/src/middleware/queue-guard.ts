// Bounded queues protect Redis memory: writes get 503 while too much is waiting, or while
// the queue Redis is close to its maxmemory.
import type { Queues } from "@ingest/jobs";
import type { RedisClient } from "@ingest/redis";
import type { RequestHandler } from "express";
import { AppError } from "../errors.js";

const REFRESH_MS = 1_000;

/** middleware is undefined when both checks are off. */
export type QueueGuard = { middleware: RequestHandler | undefined; stop: () => void };

type QueueGuardOptions = {
  /** Waiting jobs above which writes get 503; 0: off. */
  highWater: number;
  /** Share of the queue Redis's maxmemory (percent) above which writes get 503; 0: off. */
  memoryHighWaterPct: number;
  /** Called with why a write was refused. */
  onShed: (reason: "queue_full" | "redis_memory") => void;
};

/** used_memory and maxmemory of a server, from INFO memory (one server: the queues' master). */
export async function memoryOf(redis: RedisClient): Promise<{ used: number; max: number }> {
  const info = await (redis as { info(section: string): Promise<string> }).info("memory");
  const field = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, "m").exec(info)?.[1] ?? 0);
  return { used: field("used_memory"), max: field("maxmemory") };
}

/**
 * Both figures are refreshed in the background once a second, so the check costs a
 * request nothing. The memory check leaves the workers room: under noeviction, a Redis at
 * its maxmemory refuses BullMQ's scripts too, so nothing could drain — and trimming
 * finished jobs, which frees the memory, is one of those scripts.
 */
export function createQueueGuard(queues: Queues, redis: RedisClient, opts: QueueGuardOptions): QueueGuard {
  let waiting = 0;
  let memoryFull = false;
  const refresh = async () => {
    if (opts.highWater > 0) {
      try {
        const counts = await Promise.all(Object.values(queues).map((q) => q.getJobCounts("waiting", "prioritized")));
        waiting = counts.reduce((sum, c) => sum + (c.waiting ?? 0) + (c.prioritized ?? 0), 0);
      } catch {
        // Redis away: the write itself will answer 503; keep the last count.
      }
    }
    if (opts.memoryHighWaterPct > 0) {
      try {
        const { used, max } = await memoryOf(redis);
        memoryFull = max > 0 && used > (max * opts.memoryHighWaterPct) / 100;
      } catch {
        // A cluster, or INFO refused (some managed Redis): the check stays off.
      }
    }
  };
  const on = opts.highWater > 0 || opts.memoryHighWaterPct > 0;
  const timer = on ? setInterval(() => void refresh(), REFRESH_MS) : undefined;
  timer?.unref();
  if (timer) void refresh();

  const middleware: RequestHandler = (_req, _res, next) => {
    if (opts.highWater > 0 && waiting > opts.highWater) {
      opts.onShed("queue_full");
      next(new AppError("queue_full", "Too much work is waiting; retry later.", { retryAfterS: 5 }));
      return;
    }
    if (memoryFull) {
      opts.onShed("redis_memory");
      next(new AppError("queue_full", "The queue storage is nearly full; retry later.", { retryAfterS: 5 }));
      return;
    }
    next();
  };
  return { middleware: on ? middleware : undefined, stop: () => clearInterval(timer) };
}
