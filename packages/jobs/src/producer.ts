// The Producer: validates a write, reserves its idempotency key and sequence number in Redis, then adds its job.
import { createHash, randomUUID } from "node:crypto";
import type { RedisClient } from "@ingest/redis";
import { withTimeout } from "@ingest/runtime";
import { ReplyError } from "ioredis";
import { activeTraceCarrier, inSpan, SpanKind, tracer, tracingEnabled } from "@ingest/telemetry";
import { BULK_QUEUE, JOB_ID_PREFIX, JOBS, type JobName, type PayloadOf, type WriteQueueName } from "./definitions.js";
import { createCarrierAdder, type CarrierAdder } from "./carrier-add.js";
import { BULK_JOB, bulkLineId, type BulkJobData } from "./bulk.js";
import { orderKeyOf, type Write } from "./writes.js";
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

/**
 * Whether a failed add certainly stored nothing: Redis answered it with an error (OOM,
 * MISCONF, READONLY: a script refused before it ran), or the command was never sent.
 * A timeout or a connection lost with the command in flight proves nothing.
 */
export function certainlyNotStored(err: unknown): boolean {
  if (err instanceof ReplyError) return true;
  return err instanceof Error && /^Stream isn't writeable/.test(err.message);
}

type ReserveReply = ["existing", string] | ["new", ...string[]];
type IdempotencyRecord = { f: string; j: string; t: number };

type ScriptedRedis = RedisClient & {
  ingestReserve(numKeys: number, ...args: (string | number)[]): Promise<ReserveReply>;
  ingestRelease(key: string, expected: string): Promise<number>;
};

export type Idempotency = { scope: string; key: string; fingerprint: string };
/** sizeHint: the write's size in bytes (its request body), to keep carriers bounded. */
type EnqueueOptions = { idempotency?: Idempotency; requestId?: string; sizeHint?: number };
export type Accepted = { jobId: string; replayed: boolean };

/** Redis cannot take the write now; nothing was stored. */
export class QueueUnavailableError extends Error {
  constructor(cause?: unknown) {
    super("queue storage is unavailable", { cause });
  }
}

// BullMQ waits for a connection rather than failing; the API must not hang on it.
const ADD_TIMEOUT_MS = 5_000;

class InvalidPayloadError extends Error {
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

type ProducerDeps = {
  redis: RedisClient;
  queues: Queues;
  prefix: string;
  /** Whether a job is known anywhere (Redis or the durable ledger). */
  jobExists: (jobId: string) => Promise<boolean>;
  /** When replicas > 0, a write is accepted only once it reached that many Redis replicas. */
  replicas?: ReplicaWait;
  /** How writes are gathered into carrier jobs (defaults: CARRIER_DEFAULTS). */
  carriers?: Partial<CarrierLimits>;
  /** Each carrier stored, with its queue and number of writes. */
  onCarrier?: (queue: WriteQueueName, writes: number) => void;
};

type CarrierLimits = { maxWrites: number; maxBytes: number; lingerMs: number; minWrites: number };

// Under load a turn of the event loop brings a carrier's writes; far from saturation a
// carrier waits up to 10 ms for 8 of them, so that each write does not pay a job's fixed
// cost alone (a 202 waits that much longer).
const CARRIER_DEFAULTS: CarrierLimits = { maxWrites: 500, maxBytes: 1024 * 1024, lingerMs: 10, minWrites: 8 };

export function hashKey(value: string): string {
  return createHash("sha256").update(value).digest("base64url");
}

export class Producer {
  private readonly redis: ScriptedRedis;
  private readonly carriers = new Map<WriteQueueName, CarrierAdder>();
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
      if (!tracingEnabled()) return await this.store(name, checked.value, opts);
      // The enqueue as a span of the request's trace; the write carries its context to the worker.
      const span = tracer.startSpan(`${def.queue} publish`, {
        kind: SpanKind.PRODUCER,
        attributes: { "messaging.system": "bullmq", "messaging.operation.type": "publish", "messaging.destination.name": def.queue, "ingest.job_name": name },
      });
      const accepted = await inSpan(span, () => this.store(name, checked.value, opts).then((a) => (span.setAttribute("messaging.message.id", a.jobId), a)));
      return accepted;
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
    const ordered = batch.lines.filter((l) => orderKeyOf(l) !== undefined);
    const seqKeys = ordered.map((l) => this.sequenceKey(orderKeyOf(l)!));
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
      if (idemKey && record && certainlyNotStored(err)) this.releaseIfAbsent(idemKey, record, jobId);
      throw err;
    }
    return { jobId, replayed: false };
  }

  private sequenceKey(productId: number) {
    return `${this.deps.prefix}:seq:product:${productId}`;
  }

  private async store<N extends JobName>(name: N, payload: PayloadOf<N>, opts: EnqueueOptions): Promise<Accepted> {
    const def = JOBS[name];
    // The write's place (and so its id) is taken first: the idempotency record and the
    // product's sequence name it before the write joins its carrier.
    const slot = this.carrier(def.queue).reserve(opts.sizeHint);
    const write: Write<N> = { id: slot.id, name, payload };
    if (opts.requestId) write.requestId = opts.requestId;
    const traceContext = activeTraceCarrier();
    if (traceContext) write.trace = traceContext;
    const idem = opts.idempotency;
    const idemKey = idem ? `${this.deps.prefix}:idem:${hashKey(idem.scope)}:${hashKey(idem.key)}` : undefined;
    const productId = orderKeyOf(write);
    const seqKey = productId === undefined ? undefined : this.sequenceKey(productId);
    let record: string | undefined;

    if (idemKey || seqKey) {
      const keys = [idemKey, seqKey].filter((k): k is string => k !== undefined);
      if (idem) record = JSON.stringify({ f: idem.fingerprint, j: slot.id, t: Date.now() } satisfies IdempotencyRecord);
      let reply: ReserveReply;
      try {
        reply = await this.redis.ingestReserve(
          keys.length,
          ...keys,
          idemKey ? "1" : "0",
          record ?? "",
          IDEMPOTENCY_TTL_S,
          SEQUENCE_TTL_S,
          ...(seqKey ? [slot.id] : []),
        );
      } catch (err) {
        slot.cancel();
        throw err;
      }
      if (reply[0] === "existing") {
        slot.cancel();
        return this.replay(opts, idemKey!, reply[1], () => this.store(name, payload, opts));
      }
      if (seqKey) {
        write.seq = Number(reply[1]);
        write.prevSeq = reply[2] ? Number(reply[2]) : null;
        if (reply[3]) write.prevJobId = reply[3];
      }
    }

    try {
      await slot.fill(write as Write);
    } catch (err) {
      // An add that timed out or lost its connection may still land, later than any
      // check now could see it: the key stays taken, and a retry waits out the pending
      // window (409) and then finds the write or takes the key over. Only an add Redis
      // refused, or one never sent, frees it.
      if (idemKey && record && certainlyNotStored(err)) this.releaseIfAbsent(idemKey, record, slot.id);
      throw err;
    }
    return { jobId: slot.id, replayed: false };
  }

  /** The writes a queue accepts close together go to Redis in one carrier job. */
  private carrier(queue: WriteQueueName): CarrierAdder {
    let adder = this.carriers.get(queue);
    if (!adder) {
      adder = createCarrierAdder(this.deps.queues[queue], {
        ...CARRIER_DEFAULTS,
        ...this.deps.carriers,
        idPrefix: JOB_ID_PREFIX[queue],
        timeoutMs: ADD_TIMEOUT_MS,
        ...(this.replicated ? { afterAdd: this.replicated } : {}),
        ...(this.deps.onCarrier ? { onAdded: (n: number) => this.deps.onCarrier!(queue, n) } : {}),
      });
      this.carriers.set(queue, adder);
    }
    return adder;
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
