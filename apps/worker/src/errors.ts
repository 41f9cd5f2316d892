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
