const TICK_MS = 20;
const WINDOW_MS = 500;

export type Shedder = { lagMs: number; delayMs: () => number; onShed: () => void; stop: () => void };

/**
 * Measures event-loop delay with a fast timer (how late each tick fires) and keeps the
 * worst of the current and previous half-second. Timers run before I/O callbacks, so
 * after a stall the delay is known before the queued requests are handled, and the edge
 * middleware refuses them before their bodies are read.
 */
export function createShedder(opts: { lagMs: number; onShed: () => void }): Shedder {
  let expected = performance.now() + TICK_MS;
  let current = 0;
  let previous = 0;
  let windowStart = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    current = Math.max(current, now - expected);
    expected = now + TICK_MS;
    if (now - windowStart >= WINDOW_MS) {
      previous = current;
      current = 0;
      windowStart = now;
    }
  }, TICK_MS);
  timer.unref();
  const delayMs = () => Math.max(current, previous, performance.now() - expected);

  return { lagMs: opts.lagMs, delayMs, onShed: opts.onShed, stop: () => clearInterval(timer) };
}
