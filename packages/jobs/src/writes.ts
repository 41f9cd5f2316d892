// Writes travel to the workers in carrier jobs: the writes the API accepts close together
// go to Redis as ONE BullMQ job of their queue, so BullMQ's fixed cost (add, fetch, lock,
// finish, event entries) is paid once per carrier, not once per write. Each write keeps
// an id of its own (`<carrier id>.<n>`): its ledger key, its GET /jobs/:id, and the id of
// the job it becomes when it fails for good (spilled, so Bull Board shows it on its own).
import { BULK_QUEUE, JOB_ID_PREFIX, JOBS, WRITE_QUEUES, isJobName, type JobData, type JobName, type WriteQueueName } from "./definitions.js";

/** The name of a carrier job; a job named after a write (`registration.create`) holds that one write. */
export const WRITES_JOB = "writes";

/** One accepted write, as a carrier holds it. */
export type Write<N extends JobName = JobName> = JobData<N> & { id: string; name: N };

export type WritesJobData = { writes: Write[] };

/**
 * What a carrier answers for each of its writes, in the order of data.writes; null for a
 * write that ran out of retries and became a job of its own (its id), which answers for it.
 */
export type WriteOutcome = { state: "completed"; result: unknown } | { state: "failed"; error: string };
export type WritesResult = { results: (WriteOutcome | null)[] };

const UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
const WRITE_PREFIXES = WRITE_QUEUES.map((q) => JOB_ID_PREFIX[q]).join("|");
const WRITE_ID = new RegExp(`^((?:${WRITE_PREFIXES})-${UUID})\\.(\\d{1,6})$`);
const BULK_LINE_ID = new RegExp(`^(${JOB_ID_PREFIX[BULK_QUEUE]}-${UUID})-L\\d+$`);

export const writeIdOf = (carrierId: string, n: number) => `${carrierId}.${n}`;

/** The carrier job that holds a write, by the write's id; undefined for an id that is a job's own. */
export function carrierIdOf(writeId: string): string | undefined {
  return WRITE_ID.exec(writeId)?.[1];
}

/**
 * The job that carries an edit, for telling whether it is still pending: a carrier's
 * write is carried by the carrier, a bulk line by its batch, anything else is its own job.
 */
export const carrierJobId = (jobId: string) => carrierIdOf(jobId) ?? BULK_LINE_ID.exec(jobId)?.[1] ?? jobId;

/**
 * The ids a client may ask for: a write in a carrier (`reg-<uuid>.<n>`), a single write
 * job (`reg-<uuid>`), a bulk batch (`blk-<uuid>`). A string, for the OpenAPI document too.
 */
export const CLIENT_JOB_ID_PATTERN = `^(?:(?:${WRITE_PREFIXES})-${UUID}(?:\\.\\d{1,6})?|${JOB_ID_PREFIX[BULK_QUEUE]}-${UUID})$`;
const CLIENT_JOB_ID = new RegExp(CLIENT_JOB_ID_PATTERN);

/** Whether a client may ask for this id (a write, a single write job, a bulk batch). */
export const isClientJobId = (id: string) => CLIENT_JOB_ID.test(id);

/** The write queue a write belongs to, by its id. */
export function writeQueueOf(id: string): WriteQueueName | undefined {
  const prefix = id.slice(0, id.indexOf("-"));
  return WRITE_QUEUES.find((q) => JOB_ID_PREFIX[q] === prefix);
}

type JobLike = { id?: string | undefined; name: string; data: unknown };

/**
 * The writes a job of a write queue holds: a carrier's list, or the job itself as one
 * write (a write spilled from its carrier, or one added by an older producer).
 * Undefined for a job that is neither.
 */
export function writesOf(job: JobLike): Write[] | undefined {
  if (job.name === WRITES_JOB) {
    const writes = (job.data as Partial<WritesJobData> | null)?.writes;
    return Array.isArray(writes) ? writes : undefined;
  }
  if (!isJobName(job.name) || !job.id) return undefined;
  return [{ ...(job.data as JobData), id: job.id, name: job.name }];
}

/** The product an ordered edit belongs to; undefined for a write that has no order. */
export function orderKeyOf(write: { name: JobName; payload: unknown }): number | undefined {
  const def = JOBS[write.name];
  return def.orderKey ? def.orderKey(write.payload as never) : undefined;
}
