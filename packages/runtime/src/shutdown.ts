// How a process stops on SIGTERM/SIGINT, and the one line it prints when it cannot listen.

// After the deadline for work in flight, this long to close connections: closing one to
// a Redis or PostgreSQL that is gone can wait forever, and a stop must end.
export const CLOSE_GRACE_MS = 5_000;

/**
 * SIGTERM and SIGINT run close() once and exit 0 when it is done, or in any case
 * CLOSE_GRACE_MS after the drain deadline (onLate is told first).
 */
export function exitOnStopSignals(close: (signal: string) => Promise<void>, drainMs: number, onLate: () => void): void {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.on(signal, () => {
      setTimeout(() => {
        onLate();
        process.exit(0);
      }, drainMs + CLOSE_GRACE_MS).unref();
      void close(signal).then(() => process.exit(0));
    });
  }
}

/** One line for a port a process cannot listen on, naming the variable that sets it. */
export function listenFailure(err: NodeJS.ErrnoException, port: number, variable: string): string {
  if (err.code === "EADDRINUSE") return `port ${port} is already in use: stop what listens there, or set ${variable} to a free port`;
  if (err.code === "EACCES") return `port ${port} may not be listened on by this user: set ${variable} to a port above 1023`;
  return `cannot listen on port ${port} (${variable}): ${err.message}`;
}
