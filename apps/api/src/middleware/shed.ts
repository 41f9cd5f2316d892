// Event-loop lag for the load shedder and the metrics.
const TICK_MS = 20;
const WINDOW_MS = 500;
// Overload is a loop late tick after tick. One late tick alone is a one-off: a first
// request compiling its code paths, a module loaded on first use, a major GC.
const STREAK = 3;
// Start-up (modules, connections, cold code) stalls the loop; it is not overload.
const WARMUP_MS = 3_000;

export type Shedder = {
  lagMs: number;
  /** The loop's delay as measured (worst of about the last second), for the metrics. */
  delayMs: () => number;
  /** The delay sustained over STREAK ticks in a row after the warm-up: what sheds. */
  sustainedDelayMs: () => number;
  onShed: () => void;
  /** True during the warm-up after start, when no delay counts. */
  warmingUp: () => boolean;
  stop: () => void;
};

/**
 * Measures event-loop delay with a fast timer (how late each tick fires) and keeps the
 * worst of the current and previous half-second. Timers run before I/O callbacks, so
 * after a stall the delay is known before the queued requests are handled, and the edge
 * middleware refuses them before their bodies are read.
 */
export function createShedder(opts: { lagMs: number; onShed: () => void; warmupMs?: number }): Shedder {
  const warmUntil = performance.now() + (opts.warmupMs ?? WARMUP_MS);
  let expected = performance.now() + TICK_MS;
  let windowStart = performance.now();
  const raw = { current: 0, previous: 0 };
  const sustained = { current: 0, previous: 0 };
  const late: number[] = []; // lateness of the last ticks, newest last, at most STREAK
  const timer = setInterval(() => {
    const now = performance.now();
    const lateness = now - expected;
    expected = now + TICK_MS;
    raw.current = Math.max(raw.current, lateness);
    if (now >= warmUntil) {
      late.push(lateness);
      if (late.length > STREAK) late.shift();
      if (late.length === STREAK) sustained.current = Math.max(sustained.current, Math.min(...late));
    }
    if (now - windowStart >= WINDOW_MS) {
      for (const w of [raw, sustained]) [w.previous, w.current] = [w.current, 0];
      windowStart = now;
    }
  }, TICK_MS);
  timer.unref();
  const delayMs = () => Math.max(raw.current, raw.previous, performance.now() - expected);
  const warmingUp = () => performance.now() < warmUntil;
  const sustainedDelayMs = () => {
    const now = performance.now();
    if (now < warmUntil) return 0;
    // The tick now overdue counts as the newest of the streak.
    const inProgress = late.length >= STREAK - 1 ? Math.min(now - expected, ...late.slice(1 - STREAK)) : 0;
    return Math.max(sustained.current, sustained.previous, inProgress);
  };

  return { lagMs: opts.lagMs, delayMs, sustainedDelayMs, onShed: opts.onShed, warmingUp, stop: () => clearInterval(timer) };
}
