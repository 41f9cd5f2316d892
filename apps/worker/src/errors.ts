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
