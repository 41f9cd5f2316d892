import { createHash, randomUUID } from "node:crypto";
import { withTimeout } from "@ingest/config";
import { BULK_QUEUE, JOB_ID_PREFIX, JOBS, type JobData, type JobName, type PayloadOf, type QueueName } from "./definitions.js";
import { createBulkAdder, type AddRequest } from "./bulk-add.js";
import type { RedisClient } from "./connection.js";
import { BULK_JOB, bulkLineId, type BulkJobData } from "./bulk.js";
import type { Queues } from "./queues.js";
import { createReplicaWait, type ReplicaWait } from "./replication.js";
import { check } from "./validate.js";

// Idempotency records outlive the promised 24 hours by one.
const IDEMPOTENCY_TTL_S = 25 * 3_600;
// A reserved key whose job is not found is "still being accepted" for this long;
// after it, the first request certainly failed to store its job, and a retry takes over.
const PENDING_WINDOW_MS = 15_000;
// Sequence keys may expire: a fresh one restarts from the clock, above any earlier value.
const SEQUENCE_TTL_S = 7 * 24 * 3_600;

// One round trip, atomically: look up the idempotency key; take the next sequence
// number of each ordered edit's product (one for a single write, one per ordered line
// of a bulk batch, in line order: a product twice in a batch chains to itself); record
// the key. KEYS: [idempotency?, sequence...]; ARGV: idempotency flag, record, the two
// TTLs, then the job (or batch line) id to record against each sequence key.
const RESERVE_LUA = `
local first = 1
local idemKey
if ARGV[1] == '1' then idemKey = KEYS[1]; first = 2 end
if idemKey then
  local existing = redis.call('GET', idemKey)
  if existing then return {'existing', existing} end
end
local out = {'new'}
local t = redis.call('TIME')
local clock = string.format('%.0f', tonumber(t[1]) * 1000000 + tonumber(t[2]))
for i = first, #KEYS do
  local last = redis.call('GET', KEYS[i])
  local seq, prevSeq, prevJob = clock, '', ''
  if last then
    local sep = string.find(last, '|', 1, true)
    prevSeq = string.sub(last, 1, sep - 1)
    prevJob = string.sub(last, sep + 1)
    seq = string.format('%.0f', tonumber(prevSeq) + 1)
  end
  redis.call('SET', KEYS[i], seq .. '|' .. ARGV[4 + i - first + 1], 'EX', ARGV[4])
  out[#out + 1] = seq
  out[#out + 1] = prevSeq
  out[#out + 1] = prevJob
end
if idemKey then redis.call('SET', idemKey, ARGV[2], 'EX', ARGV[3]) end
return out
`;

// Deletes the record only if it is still the one we read (compare and delete).
const RELEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

type ReserveReply = ["existing", string] | ["new", ...string[]];
type IdempotencyRecord = { f: string; j: string; t: number };

type ScriptedRedis = RedisClient & {
  ingestReserve(numKeys: number, ...args: (string | number)[]): Promise<ReserveReply>;
  ingestRelease(key: string, expected: string): Promise<number>;
};

export type Idempotency = { scope: string; key: string; fingerprint: string };
export type EnqueueOptions = { idempotency?: Idempotency; requestId?: string };
export type Accepted = { jobId: string; replayed: boolean };

/** Redis cannot take the write now; nothing was stored. */
export class QueueUnavailableError extends Error {
  constructor(cause?: unknown) {
    super("queue storage is unavailable", { cause });
  }
}

// BullMQ waits for a connection rather than failing; the API must not hang on it.
const ADD_TIMEOUT_MS = 5_000;

export class InvalidPayloadError extends Error {
  constructor(readonly errors: { path: string; message: string }[]) {
    super("invalid job payload");
  }
}

/** The same key came with another body (422), or its first request is still being accepted (409). */
export class IdempotencyConflictError extends Error {
  constructor(readonly reason: "mismatch" | "in_progress") {
    super(reason === "mismatch" ? "Idempotency-Key reused with a different request" : "request with this Idempotency-Key is in progress");
  }
}

export type ProducerDeps = {
  redis: RedisClient;
  queues: Queues;
  prefix: string;
  /** Whether a job is known anywhere (Redis or the durable ledger). */
  jobExists: (jobId: string) => Promise<boolean>;
  /** When replicas > 0, a write is accepted only once it reached that many Redis replicas. */
  replicas?: ReplicaWait;
};

export function hashKey(value: string): string {
  return createHash("sha256").update(value).digest("base64url");
}

export class Producer {
  private readonly redis: ScriptedRedis;
  private readonly adders = new Map<QueueName, (request: AddRequest) => Promise<void>>();
  private readonly replicated: (() => Promise<void>) | undefined;

  constructor(private readonly deps: ProducerDeps) {
    const redis = deps.redis as ScriptedRedis;
    if (typeof (deps.redis as unknown as Partial<ScriptedRedis>).ingestReserve !== "function") {
      deps.redis.defineCommand("ingestReserve", { lua: RESERVE_LUA });
      deps.redis.defineCommand("ingestRelease", { numberOfKeys: 1, lua: RELEASE_LUA });
    }
    this.redis = redis;
    // Any key of the queues' slot leads the WAIT to the master that took the writes.
    this.replicated = deps.replicas ? createReplicaWait(deps.redis, `${deps.prefix}:replication`, deps.replicas) : undefined;
  }

  /** Validates the payload and stores the job; resolves only once Redis has it. */
  async enqueue<N extends JobName>(name: N, payload: PayloadOf<N>, opts: EnqueueOptions = {}): Promise<Accepted> {
    const def = JOBS[name];
    const checked = check(def.payload, payload);
    if (!checked.ok) throw new InvalidPayloadError(checked.errors);

    if (this.redis.status !== "ready") throw new QueueUnavailableError();
    try {
      return await this.store(name, checked.value, opts);
    } catch (err) {
      if (err instanceof IdempotencyConflictError) throw err;
      throw new QueueUnavailableError(err);
    }
  }

  /**
   * Stores a bulk batch as one job in the bulk lane: one Lua call takes the idempotency
   * key and every ordered line's place in its product's edit order, then one add stores
   * the batch. Lines were validated by the caller (parseBulkLine).
   */
  async enqueueBulk(batch: Omit<BulkJobData, "requestId">, opts: EnqueueOptions = {}): Promise<Accepted> {
    if (this.redis.status !== "ready") throw new QueueUnavailableError();
    try {
      return await this.storeBulk(batch, opts);
    } catch (err) {
      if (err instanceof IdempotencyConflictError) throw err;
      throw new QueueUnavailableError(err);
    }
  }

  private async storeBulk(batch: Omit<BulkJobData, "requestId">, opts: EnqueueOptions): Promise<Accepted> {
    const jobId = `${JOB_ID_PREFIX[BULK_QUEUE]}-${randomUUID()}`;
    const idem = opts.idempotency;
    const idemKey = idem ? `${this.deps.prefix}:idem:${hashKey(idem.scope)}:${hashKey(idem.key)}` : undefined;
    const record = idem ? JSON.stringify({ f: idem.fingerprint, j: jobId, t: Date.now() } satisfies IdempotencyRecord) : undefined;
    const ordered = batch.lines.filter((l) => JOBS[l.name].ordered);
    const seqKeys = ordered.map((l) => `${this.deps.prefix}:seq:product:${(l.payload as { productId: number }).productId}`);
    const reply = await this.redis.ingestReserve(
      (idemKey ? 1 : 0) + seqKeys.length,
      ...(idemKey ? [idemKey] : []),
      ...seqKeys,
      idemKey ? "1" : "0",
      record ?? "",
      IDEMPOTENCY_TTL_S,
      SEQUENCE_TTL_S,
      ...ordered.map((l) => bulkLineId(jobId, l.line)),
    );
    if (reply[0] === "existing") return this.replay(opts, idemKey!, reply[1], () => this.storeBulk(batch, opts));
    ordered.forEach((l, i) => {
      l.seq = Number(reply[1 + i * 3]);
      const prevSeq = reply[2 + i * 3];
      const prevJobId = reply[3 + i * 3];
      l.prevSeq = prevSeq ? Number(prevSeq) : null;
      if (prevJobId) l.prevJobId = prevJobId;
    });
    const data: BulkJobData = { ...batch, ...(opts.requestId ? { requestId: opts.requestId } : {}) };
    try {
      await withTimeout(this.deps.queues[BULK_QUEUE].add(BULK_JOB, data as never, { jobId }), ADD_TIMEOUT_MS, "bulk add");
      await this.replicated?.();
    } catch (err) {
      if (idemKey && record) this.releaseIfAbsent(idemKey, record, jobId);
      throw err;
    }
    return { jobId, replayed: false };
  }

  private async store<N extends JobName>(name: N, payload: PayloadOf<N>, opts: EnqueueOptions): Promise<Accepted> {
    const def = JOBS[name];
    const jobId = `${JOB_ID_PREFIX[def.queue]}-${randomUUID()}`;
    const idem = opts.idempotency;
    const idemKey = idem ? `${this.deps.prefix}:idem:${hashKey(idem.scope)}:${hashKey(idem.key)}` : undefined;
    const productId = def.ordered ? (payload as { productId: number }).productId : undefined;
    const seqKey = productId === undefined ? undefined : `${this.deps.prefix}:seq:product:${productId}`;

    const data: JobData<N> = { payload };
    if (opts.requestId) data.requestId = opts.requestId;
    let record: string | undefined;

    if (idemKey || seqKey) {
      const keys = [idemKey, seqKey].filter((k): k is string => k !== undefined);
      if (idem) record = JSON.stringify({ f: idem.fingerprint, j: jobId, t: Date.now() } satisfies IdempotencyRecord);
      const reply = await this.redis.ingestReserve(
        keys.length,
        ...keys,
        idemKey ? "1" : "0",
        record ?? "",
        IDEMPOTENCY_TTL_S,
        SEQUENCE_TTL_S,
        ...(seqKey ? [jobId] : []),
      );
      if (reply[0] === "existing") return this.replay(opts, idemKey!, reply[1], () => this.store(name, payload, opts));
      if (seqKey) {
        data.seq = Number(reply[1]);
        data.prevSeq = reply[2] ? Number(reply[2]) : null;
        if (reply[3]) data.prevJobId = reply[3];
      }
    }

    try {
      await this.adder(def.queue)({ name, data, jobId });
    } catch (err) {
      // A timed-out add may still have landed. Free the key only when the job is
      // certainly absent; otherwise a retry waits out the pending window (409) and
      // then finds the job or takes the key over.
      if (idemKey && record) this.releaseIfAbsent(idemKey, record, jobId);
      throw err;
    }
    return { jobId, replayed: false };
  }

  /** Concurrent requests' jobs go to Redis together, one pipelined addBulk per event-loop turn. */
  private adder(queue: QueueName) {
    let add = this.adders.get(queue);
    if (!add) {
      add = createBulkAdder(this.deps.queues[queue], { timeoutMs: ADD_TIMEOUT_MS, ...(this.replicated ? { afterAdd: this.replicated } : {}) });
      this.adders.set(queue, add);
    }
    return add;
  }

  /** The key was taken before: the same request answers its first job, another one is refused. */
  private async replay(opts: EnqueueOptions, idemKey: string, raw: string, retry: () => Promise<Accepted>): Promise<Accepted> {
    const rec = JSON.parse(raw) as IdempotencyRecord;
    if (rec.f !== opts.idempotency!.fingerprint) throw new IdempotencyConflictError("mismatch");
    if (await this.deps.jobExists(rec.j)) {
      // The first answer may have been a 503 for want of a replica: this one must not promise more.
      await this.replicated?.();
      return { jobId: rec.j, replayed: true };
    }
    if (Date.now() - rec.t < PENDING_WINDOW_MS) throw new IdempotencyConflictError("in_progress");
    // The first request never stored its job (Redis failed under it): take the key over.
    await this.redis.ingestRelease(idemKey, raw);
    return retry();
  }

  private releaseIfAbsent(idemKey: string, record: string, jobId: string): void {
    this.deps
      .jobExists(jobId)
      .then((exists) => (exists ? 0 : this.redis.ingestRelease(idemKey, record)))
      .catch(() => {});
  }
}
