// Bounding how long a call may take, and keeping a repeated error from flooding the log.

/** An operation that did not settle in time: it may still complete later. */
class TimeoutError extends Error {}

/** Rejects when the promise has not settled within ms; the timer never outlives it. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what = "operation"): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Logs the first of a burst of repeated errors, then at most one per interval. */
export function throttled<A extends unknown[]>(fn: (...args: A) => void, intervalMs = 10_000): (...args: A) => void {
  let last = 0;
  return (...args) => {
    const now = Date.now();
    if (now - last < intervalMs) return;
    last = now;
    fn(...args);
  };
}
