// The worker's failure kinds: permanent (no retry), waiting for an earlier edit, and PostgreSQL errors that are permanent.
/**
 * A failure that retrying cannot fix: the data is wrong or the target is missing.
 * The worker records it in the ledger and fails the job at once (UnrecoverableError).
 * Anything else thrown is taken as transient (database restarting, connection cut)
 * and retried with backoff.
 */
export class PermanentJobError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** An earlier edit of the same product has not been applied yet. */
export class PredecessorPendingError extends Error {
  constructor(readonly prevJobId: string | undefined) {
    super("an earlier edit of this product is not applied yet");
  }
}

// The integrity violations a row's own values decide. Unique and foreign-key violations
// (23505, 23503) are not among them: they depend on what else has committed (another
// delivery's ledger row, a concurrent delete), so a retry may well pass.
const ROW_VIOLATIONS = new Set(["23502", "23514"]);

/**
 * The permanent failure for an error PostgreSQL raised over the job's data: a data
 * exception (class 22: a NUL or an untranslatable character, a number out of range, a
 * value too long, a sequence at its limit) or a violation of the row's own constraints.
 * The same data fails the same way on every retry, and a failed edit that kept being
 * retried would hold up every later edit of its product. Drizzle wraps the driver's
 * error: the SQLSTATE is on a cause.
 */
export function invalidDataError(err: unknown): PermanentJobError | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && (code.startsWith("22") || ROW_VIOLATIONS.has(code))) {
      return new PermanentJobError("INVALID_DATA", e.message);
    }
  }
  return undefined;
}

// SQLSTATEs of a server that is going away or not the primary (yet): the statement never
// ran or was rolled back with its transaction.
const UNAVAILABLE_STATES = new Set(["57P01", "57P02", "57P03", "25006"]);
const UNAVAILABLE_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN"]);
// pg and pg-pool say so in words: a pool that found no connection in time, a connection
// that ended or went silent (the client closes it after `query_timeout`).
const UNAVAILABLE_MESSAGES =
  /^(timeout exceeded when trying to connect|Connection terminated|Query read timeout|Client has encountered a connection error|Client was closed)/;

/**
 * Whether an error says PostgreSQL could not be reached or went away (a restart, a
 * failover, a cut or dead connection), not that something was wrong with the write.
 * Drizzle wraps the driver's error: the cause chain is searched.
 */
export function databaseUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && (code.startsWith("08") || UNAVAILABLE_STATES.has(code) || UNAVAILABLE_CODES.has(code))) return true;
    if (UNAVAILABLE_MESSAGES.test(e.message)) return true;
  }
  return false;
}
