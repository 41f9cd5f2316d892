import type { Queues } from "@ingest/jobs";
import type { RequestHandler } from "express";
import { AppError } from "../errors.js";

const REFRESH_MS = 1_000;

/** middleware is undefined when the guard is off (QUEUE_HIGH_WATER 0). */
export type QueueGuard = { middleware: RequestHandler | undefined; stop: () => void };

/**
 * Bounded queues protect Redis memory: above QUEUE_HIGH_WATER waiting jobs, writes
 * get 503 until the workers catch up. The count is refreshed in the background once a
 * second, so the check costs a request nothing.
 */
export function createQueueGuard(queues: Queues, opts: { highWater: number; onShed: () => void }): QueueGuard {
  let waiting = 0;
  const refresh = async () => {
    try {
      const counts = await Promise.all(Object.values(queues).map((q) => q.getJobCounts("waiting", "prioritized")));
      waiting = counts.reduce((sum, c) => sum + (c.waiting ?? 0) + (c.prioritized ?? 0), 0);
    } catch {
      // Redis away: the write itself will answer 503; keep the last count.
    }
  };
  const timer = opts.highWater > 0 ? setInterval(() => void refresh(), REFRESH_MS) : undefined;
  timer?.unref();
  if (timer) void refresh();

  const middleware: RequestHandler = (_req, _res, next) => {
    if (waiting > opts.highWater) {
      opts.onShed();
      next(new AppError("queue_full", "Too much work is waiting; retry later.", { retryAfterS: 5 }));
      return;
    }
    next();
  };
  return { middleware: opts.highWater > 0 ? middleware : undefined, stop: () => clearInterval(timer) };
}
