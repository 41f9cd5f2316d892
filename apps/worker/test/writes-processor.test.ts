import { createDb } from "@ingest/db";
import { BULK_JOB, BULK_QUEUE, closeQueues, createQueues, WRITES_JOB, writeIdOf, type Queues, type Write, type WriteQueueName } from "@ingest/jobs";
import { createWorkerConnection } from "@ingest/redis";
import { Worker, type Job } from "bullmq";
import { sql } from "drizzle-orm";
import { randomUUID } from "node:crypto";
import { afterAll, describe, expect, inject, it } from "vitest";
import { testEnv, waitFor } from "../../../test/support/harness.js";
import { freePort } from "../../../test/support/private-redis.js";
import { createLogger } from "../src/logger.js";
import { createWorkerMetrics } from "../src/metrics.js";
import { createTurnSignal } from "../src/ordering.js";
import { awaitPredecessors, listenForTurns, markAwaited, turnsChannel, wakeSuccessors } from "../src/successors.js";
import { createBulkProcessor } from "../src/bulk.js";
import { createWritesProcessor, type WritesProcessorDeps } from "../src/writes-processor.js";
import { createScratchDatabase } from "../../../test/support/scratch.js";

// A database of this file's own: its fixed product ids must not meet other files'.
const scratch = await createScratchDatabase("writes_processor");
const { db, close } = createDb(scratch.url, { max: 6, applicationName: "ingest-test" });
const { prefix, redisUrl } = testEnv("writes-processor");
const connection = createWorkerConnection(redisUrl);
const queues = createQueues(connection, prefix, () => {});
afterAll(async () => {
  await closeQueues(queues);
  await connection.quit();
  await close();
  await scratch.drop();
});

const metrics = createWorkerMetrics();
const depsFor = (extra: Partial<WritesProcessorDeps> = {}): WritesProcessorDeps => ({
  db,
  queues,
  orderWaitMaxMs: 60_000,
  turns: createTurnSignal(),
  chunkSize: 50,
  log: createLogger("silent", false),
  metrics,
  catalog: { afterCommit: async () => {}, close: async () => {} },
  ...extra,
});

type Draft = Omit<Write, "id">;
const registration = (email: string): Draft => ({ name: "registration.create", payload: { registration: { email, name: "N" } } });
const patch = (productId: number, name: string, seq: number, prevSeq: number | null, prevJobId?: string): Draft => ({
  name: "product.patch",
  payload: { productId, changes: { name } },
  seq,
  prevSeq,
  ...(prevJobId ? { prevJobId } : {}),
});

/**
 * A product's edits in acceptance order, each the only write of a carrier id of its own
 * (not stored): the first with no predecessor, each later one chained to the one before.
 */
function chainOf<const N extends readonly string[]>(productId: number, names: N): { ids: { [K in keyof N]: string }; writes: { [K in keyof N]: Write } } {
  const ids = names.map(() => `prd-${randomUUID()}`);
  const writes: Write[] = [];
  names.forEach((name, k) => writes.push({ ...patch(productId, name, k + 1, k === 0 ? null : k, writes[k - 1]?.id), id: writeIdOf(ids[k]!, 0) } as Write));
  return { ids, writes } as never;
}
/** A write as its processor sees it, taken from the products queue for the first time. */
const envelopeOf = (w: Write) => ({ ...w, queue: "products" as const, timestamp: Date.now(), attemptsMade: 0, redelivered: false });

/** A carrier job in Redis holding these writes, as the API stores it. */
async function carrier(queue: WriteQueueName, drafts: Draft[], opts: { attempts?: number } = {}) {
  const id = `${queue === "registrations" ? "reg" : "prd"}-${randomUUID()}`;
  const writes = drafts.map((d, n) => ({ ...d, id: writeIdOf(id, n) }) as Write);
  const job = (await queues[queue].add(WRITES_JOB, { writes }, { jobId: id, ...(opts.attempts ? { attempts: opts.attempts } : {}) })) as Job;
  return { job, writes };
}
/** A create riding in the same carrier as a waiting edit. */
const createOf = (n: number): Draft => ({ name: "product.create", payload: { product: { name: `create-${n}`, category: "c", default_price: "1.00" } } });
const nameOf = async (id: number) => (await db.execute<{ name: string }>(sql`select name from products where id = ${id}`)).rows[0]?.name;
const ledgerOf = async (ids: string[]) =>
  (await db.execute<{ job_id: string; status: string }>(sql`select job_id, status from job_ledger where job_id = any(string_to_array(${ids.join(",")}, ',')) order by job_id`)).rows;
const seedProduct = (id: number) =>
  db.execute(sql`insert into products (id, name, category, default_price) values (${id}, 'seed', 'c', 1) on conflict (id) do nothing`);

/**
 * Queues of the test's own and a fetcher on one of them, so a fetch takes exactly the
 * test's jobs (its processors run on the jobs it takes); both closed after `fn`.
 */
async function withOwnQueues(name: string, queue: WriteQueueName, fn: (own: Queues, fetcher: Worker) => Promise<void>): Promise<void> {
  const ownPrefix = `${prefix.slice(0, -1)}-${name}}`;
  const own = createQueues(connection, ownPrefix, () => {});
  const fetcher = new Worker(queue, null, { connection, prefix: ownPrefix });
  try {
    await fn(own, fetcher);
  } finally {
    await fetcher.close();
    await closeQueues(own);
  }
}

describe("a carrier job", () => {
  it("applies each of its writes once and answers each write's own outcome", async () => {
    const process = createWritesProcessor("registrations", depsFor());
    const tag = randomUUID().slice(0, 8);
    const { job, writes } = await carrier("registrations", [registration(`a-${tag}@example.com`), registration(`b-${tag}@example.com`), registration(`A-${tag}@EXAMPLE.com`)]);
    const answer = (await process(job)) as { results: { state: string; result: { registrationId: number; outcome: string } }[] };
    expect(answer.results.map((r) => [r.state, r.result.outcome])).toEqual([
      ["completed", "created"],
      ["completed", "created"],
      ["completed", "duplicate"],
    ]);
    expect(answer.results[2]!.result.registrationId).toBe(answer.results[0]!.result.registrationId);
    expect(await ledgerOf(writes.map((w) => w.id))).toEqual(writes.map((w) => ({ job_id: w.id, status: "completed" })));
    // Delivered again (a worker died before reporting): the same answers, nothing applied twice.
    job.attemptsMade = 1;
    expect(await process(job)).toEqual(answer);
  });

  it("a write that fails for good fails alone and becomes a failed job of its own, with its reason", async () => {
    const process = createWritesProcessor("products", depsFor());
    await seedProduct(4_100);
    const { job, writes } = await carrier("products", [patch(4_100, "kept", 1, null), patch(4_199, "nowhere", 1, null)]);
    const answer = (await process(job)) as { results: unknown[] };
    expect(answer.results).toEqual([
      { state: "completed", result: { productId: 4_100 } },
      { state: "failed", error: "PRODUCT_NOT_FOUND: product 4199 does not exist" },
    ]);
    expect(await nameOf(4_100)).toBe("kept");
    const own = await queues.products.getJob(writes[1]!.id);
    expect(own).toMatchObject({ name: "product.patch", opts: { attempts: 1 }, data: { payload: writes[1]!.payload, spilledFrom: job.id, acceptedAt: job.timestamp } });
    // Run as a worker would: it answers the recorded failure, and applies nothing.
    await expect(process(own as Job)).rejects.toMatchObject({ name: "UnrecoverableError", message: "PRODUCT_NOT_FOUND: product 4199 does not exist" });
    expect(await ledgerOf([writes[1]!.id])).toEqual([{ job_id: writes[1]!.id, status: "failed" }]);
  });

  it("out of retries, every write not applied becomes a job of its own; before that the carrier retries", async () => {
    // A failure that is not the database being away (that parks the job instead): a database that does not exist.
    const missing = new URL(inject("databaseUrl"));
    missing.pathname = `/nowhere_${randomUUID().slice(0, 8)}`;
    const dead = createDb(missing.toString(), { max: 1 });
    try {
      const process = createWritesProcessor("registrations", depsFor({ db: dead.db }));
      const tag = randomUUID().slice(0, 8);
      const { job, writes } = await carrier("registrations", [registration(`x-${tag}@example.com`), registration(`y-${tag}@example.com`)], { attempts: 2 });
      await expect(process(job)).rejects.toThrow();
      expect(await queues.registrations.getJob(writes[0]!.id)).toBeUndefined();
      job.attemptsMade = 1;
      expect(await process(job)).toEqual({ results: [null, null] });
      for (const w of writes) expect(await queues.registrations.getJob(w.id)).toMatchObject({ name: "registration.create", opts: { attempts: 1 } });

      // Retried once the database is back (from Bull Board), each applies once.
      const live = createWritesProcessor("registrations", depsFor());
      const own = (await queues.registrations.getJob(writes[0]!.id)) as Job;
      expect(await live(own)).toMatchObject({ outcome: "created" });
      expect(await live(own)).toMatchObject({ outcome: "created" });
      expect((await db.execute(sql`select 1 from registrations where email = ${`x-${tag}@example.com`}`)).rows).toHaveLength(1);
    } finally {
      await dead.close();
    }
  });

  it("a single write's job (from an older producer) is applied as one write and answers its result", async () => {
    const process = createWritesProcessor("registrations", depsFor());
    const id = `reg-${randomUUID()}`;
    const job = (await queues.registrations.add("registration.create", { payload: { registration: { email: `single-${id.slice(4, 12)}@example.com`, name: "S" } } }, { jobId: id })) as Job;
    expect(await process(job)).toMatchObject({ registrationId: expect.any(Number), outcome: "created" });
    expect(await ledgerOf([id])).toEqual([{ job_id: id, status: "completed" }]);
  });

  it("an unknown job name fails at once", async () => {
    const process = createWritesProcessor("registrations", depsFor());
    await expect(process({ id: "reg-x", name: "registration.nope", data: {} } as Job)).rejects.toMatchObject({ name: "UnrecoverableError" });
  });
});

describe("order across carriers", () => {
  it("an edit whose predecessor is being applied waits for it, then applies after it", async () => {
    await withOwnQueues("turn", "products", async (own, fetcher) => {
      const process = createWritesProcessor("products", depsFor({ queues: own, turns: createTurnSignal(), waitBudgetMs: 10_000 }));
      await seedProduct(4_200);
      const { ids: [firstId, secondId], writes: [first, second] } = chainOf(4_200, ["first", "second"]);
      await own.products.add(WRITES_JOB, { writes: [first] }, { jobId: firstId });
      await own.products.add(WRITES_JOB, { writes: [second] }, { jobId: secondId });
      // Both taken: the first is active (being applied) while the second runs.
      const takenFirst = (await fetcher.getNextJob("token-1"))!;
      const takenSecond = (await fetcher.getNextJob("token-2"))!;
      expect([takenFirst.id, takenSecond.id]).toEqual([firstId, secondId]);
      let done = false;
      const later = process(takenSecond, "token-2").then((r) => ((done = true), r));
      await new Promise((r) => setTimeout(r, 100));
      expect(done).toBe(false);
      expect(await nameOf(4_200)).toBe("seed");
      await process(takenFirst, "token-1");
      expect(await later).toEqual({ results: [{ state: "completed", result: { productId: 4_200 } }] });
      expect(await nameOf(4_200)).toBe("second");
    });
  });

  it("an edit whose predecessor queues behind later jobs steps aside at once, and the predecessor goes to the head of its queue", async () => {
    await withOwnQueues("ahead", "products", async (own, fetcher) => {
      // However long it may wait, it does not hold its slot for a predecessor that is not running.
      const process = createWritesProcessor("products", depsFor({ queues: own, waitBudgetMs: 60_000 }));
      await seedProduct(4_220);
      const { ids: [firstId, secondId], writes: [first, second] } = chainOf(4_220, ["first", "second"]);
      const otherId = `prd-${randomUUID()}`;
      // The predecessor parked (delayed); the edit after it, and another job, waiting.
      await own.products.add(WRITES_JOB, { writes: [first] }, { jobId: firstId, delay: 60_000 });
      await own.products.add(WRITES_JOB, { writes: [second] }, { jobId: secondId });
      await own.products.add(WRITES_JOB, { writes: [{ ...createOf(4_220), id: writeIdOf(otherId, 0) } as Write] }, { jobId: otherId });

      const taken = (await fetcher.getNextJob("token-1"))!;
      expect(taken.id).toBe(secondId);
      await expect(process(taken, "token-1")).rejects.toMatchObject({ name: "DelayedError" });
      expect(await own.products.getJobState(secondId)).toBe("delayed");
      // Next out of the queue: the predecessor, ahead of the job that waited before it.
      const next = (await fetcher.getNextJob("token-2"))!;
      expect(next.id).toBe(firstId);
      expect(await process(next, "token-2")).toEqual({ results: [{ state: "completed", result: { productId: 4_220 } }] });
      expect(await nameOf(4_220)).toBe("first");
    });
  });

  it("a queued predecessor is brought forward with the queued edits it waits for, the earliest first", async () => {
    await withOwnQueues("chain", "products", async (own, fetcher) => {
      const process = createWritesProcessor("products", depsFor({ queues: own, waitBudgetMs: 60_000 }));
      await seedProduct(4_225);
      // Four edits in a chain, shuffled among other jobs: the fourth comes out first.
      const { ids, writes: edits } = chainOf(4_225, ["e0", "e1", "e2", "e3"]);
      const other = async () => {
        const id = `prd-${randomUUID()}`;
        await own.products.add(WRITES_JOB, { writes: [{ ...createOf(4_225), id: writeIdOf(id, 0) } as Write] }, { jobId: id });
      };
      await own.products.add(WRITES_JOB, { writes: [edits[3]!] }, { jobId: ids[3] });
      for (const k of [1, 0, 2]) {
        await other();
        await own.products.add(WRITES_JOB, { writes: [edits[k]!] }, { jobId: ids[k], ...(k === 2 ? { delay: 60_000 } : {}) });
      }
      await other();

      const fourth = (await fetcher.getNextJob("token-4"))!;
      expect(fourth.id).toBe(ids[3]);
      await expect(process(fourth, "token-4")).rejects.toMatchObject({ name: "DelayedError" });
      // One look brought the whole chain to the head, in order, ahead of the other jobs.
      for (const k of [0, 1, 2]) {
        const next = (await fetcher.getNextJob(`token-${k}`))!;
        expect(next.id).toBe(ids[k]);
        expect(await process(next, `token-${k}`)).toEqual({ results: [{ state: "completed", result: { productId: 4_225 } }] });
      }
      // And the third's worker called the fourth back.
      expect((await fetcher.getNextJob("token-5"))!.id).toBe(ids[3]);
    });
  });

  it("a parked edit is brought back the moment its predecessor is applied, ahead of jobs queued before it", async () => {
    await withOwnQueues("wake", "products", async (own, fetcher) => {
      const process = createWritesProcessor("products", depsFor({ queues: own, waitBudgetMs: 60_000 }));
      await seedProduct(4_230);
      const { ids: [firstId, secondId], writes: [first, second] } = chainOf(4_230, ["first", "second"]);
      const otherId = `prd-${randomUUID()}`;
      await own.products.add(WRITES_JOB, { writes: [first] }, { jobId: firstId, delay: 60_000 });
      await own.products.add(WRITES_JOB, { writes: [second] }, { jobId: secondId });
      const parkedSecond = (await fetcher.getNextJob("token-1"))!;
      await expect(process(parkedSecond, "token-1")).rejects.toMatchObject({ name: "DelayedError" });
      expect(await own.products.getJobState(secondId)).toBe("delayed");
      // Queued after the second parked: without a wake-up it would run first.
      await own.products.add(WRITES_JOB, { writes: [{ ...createOf(4_230), id: writeIdOf(otherId, 0) } as Write] }, { jobId: otherId });

      const next = (await fetcher.getNextJob("token-2"))!;
      expect(next.id).toBe(firstId);
      await process(next, "token-2");
      // No worker has promoted delayed jobs meanwhile (none runs here): the wake-up did.
      expect(await own.products.getJobState(secondId)).toBe("waiting");
      const back = (await fetcher.getNextJob("token-3"))!;
      expect(back.id).toBe(secondId);
      expect(await process(back, "token-3")).toEqual({ results: [{ state: "completed", result: { productId: 4_230 } }] });
      expect(await nameOf(4_230)).toBe("second");
    });
  });

  it("a job parking just after its predecessor was applied comes back at once (the predecessor found nothing to wake)", async () => {
    await withOwnQueues("late", "products", async (own) => {
      await seedProduct(4_240);
      const { ids: [firstId, secondId], writes: [, second] } = chainOf(4_240, ["first", "second"]);
      const envelope = envelopeOf(second);
      const job = (await own.products.add(WRITES_JOB, { writes: [second] }, { jobId: secondId, delay: 60_000 })) as Job;
      const deps = depsFor({ queues: own });

      // Its predecessor not applied: the job stays parked, its mark left for the predecessor.
      await awaitPredecessors(deps, job, [envelope]);
      expect(await own.products.getJobState(secondId)).toBe("delayed");
      expect(await connection.get(own.products.toKey(`next:${writeIdOf(firstId, 0)}`))).toBe(secondId);

      // Applied in the meantime (its worker looked for a mark before this one was set).
      await db.execute(sql`insert into product_versions (product_id, seq) values (4240, 1) on conflict (product_id) do update set seq = 1`);
      await awaitPredecessors(deps, job, [envelope]);
      expect(await own.products.getJobState(secondId)).toBe("waiting");
    });
  });

  it("a job waiting in another process for an edit is told on the turns channel when that edit is settled", async () => {
    await withOwnQueues("told", "products", async (own, fetcher) => {
      const ownPrefix = own.products.opts.prefix!;
      const subscriber = createWorkerConnection(redisUrl);
      const turns = createTurnSignal();
      try {
        listenForTurns(subscriber, ownPrefix, turns, (err) => {
          throw err;
        });
        const { ids: [firstId, secondId], writes: [first, second] } = chainOf(4_260, ["first", "second"]);
        await own.products.add(WRITES_JOB, { writes: [second] }, { jobId: secondId });
        // The second is running in "another process", waiting there for the first.
        expect((await fetcher.getNextJob("token-1"))!.id).toBe(secondId);
        await markAwaited({ queues: own, orderWaitMaxMs: 60_000 }, secondId, [envelopeOf(second)]);
        await waitFor(async () => (await connection.call("pubsub", "numsub", turnsChannel(ownPrefix)))?.toString().endsWith(",1"), 10_000, "the subscription");
        // It would look again only after ten minutes: only the announcement can wake it in time.
        let woken = false;
        const waiting = turns.wait(600_000, [first.id]).then(() => (woken = true));
        await wakeSuccessors(own, [envelopeOf(first)]);
        await waitFor(() => woken, 20_000, "the waiting job woken");
        await waiting;
        // The mark is used up: a second settlement announces nothing.
        expect(await connection.exists(own.products.toKey(`next:${first.id}`))).toBe(0);
      } finally {
        subscriber.disconnect();
      }
    });
  });

  it("a bulk line whose predecessor is queued waits for it: the batch completes only with the line applied", async () => {
    await withOwnQueues("bulk-wait", "products", async (own, fetcher) => {
      const bulkFetcher = new Worker(BULK_QUEUE, null, { connection, prefix: own.products.opts.prefix! });
      try {
        await seedProduct(4_270);
        const { ids: [firstId], writes: [first] } = chainOf(4_270, ["interactive"]);
        // The interactive edit before the line is parked: queued, not being applied.
        await own.products.add(WRITES_JOB, { writes: [first] }, { jobId: firstId, delay: 60_000 });
        const line = { line: 1, name: "product.patch" as const, payload: { productId: 4_270, changes: { name: "bulk" } }, seq: 2, prevSeq: 1, prevJobId: first.id };
        const batchId = `blk-${randomUUID()}`;
        await own.bulk.add(BULK_JOB, { lines: [line], invalidCount: 0, invalid: [] }, { jobId: batchId });
        const process = createBulkProcessor(depsFor({ queues: own }));

        let result: unknown;
        const batch = process((await bulkFetcher.getNextJob("token-b"))!, "token-b").then((r) => (result = r));
        // Its predecessor brought forward meanwhile; the batch still running, the line not lost.
        await waitFor(async () => (await own.products.getJobState(firstId)) === "waiting", 10_000, "the predecessor brought forward");
        expect(result).toBeUndefined();
        const predecessor = (await fetcher.getNextJob("token-p"))!;
        expect(predecessor.id).toBe(firstId);
        await createWritesProcessor("products", depsFor({ queues: own }))(predecessor, "token-p");
        await batch;
        expect(result).toMatchObject({ accepted: 1, applied: 1, failed: 0 });
        expect(await nameOf(4_270)).toBe("bulk");
      } finally {
        await bulkFetcher.close();
      }
    });
  });

  it("a carrier that finds PostgreSQL unreachable steps aside into the delayed set, spending no attempt, however often", async () => {
    await withOwnQueues("away", "registrations", async (own, fetcher) => {
      const dead = createDb(`postgres://postgres@127.0.0.1:${await freePort()}/nowhere`, { max: 1 });
      try {
        const process = createWritesProcessor("registrations", depsFor({ db: dead.db, queues: own }));
        const id = `reg-${randomUUID()}`;
        const writes = [registration(`away-${randomUUID().slice(0, 8)}@example.com`)].map((d, n) => ({ ...d, id: writeIdOf(id, n) }) as Write);
        await own.registrations.add(WRITES_JOB, { writes }, { jobId: id, attempts: 1 });
        for (let round = 1; round <= 2; round++) {
          const taken = (await fetcher.getNextJob(`token-${round}`))!;
          expect(taken.id).toBe(id);
          await expect(process(taken, `token-${round}`)).rejects.toMatchObject({ name: "DelayedError" });
          expect(await own.registrations.getJobState(id)).toBe("delayed");
          await (await own.registrations.getJob(id))!.promote();
        }
        const job = (await own.registrations.getJob(id))!;
        // One attempt allowed, none spent: no write spilled as failed.
        expect([job.attemptsMade, job.attemptsStarted]).toEqual([0, 2]);
        expect(await own.registrations.getJob(writes[0]!.id)).toBeUndefined();
      } finally {
        await dead.close();
      }
    });
  });

  it("a job whose edit waits for an earlier one steps aside into the delayed set, spending no attempt, and applies when back", async () => {
    await withOwnQueues("park", "products", async (own, fetcher) => {
      const process = createWritesProcessor("products", depsFor({ queues: own, waitBudgetMs: 50 }));
      await seedProduct(4_250);
      const { ids: [firstId], writes: [first] } = chainOf(4_250, ["first"]);
      // The earlier edit is parked for later: alive, not applied.
      await own.products.add(WRITES_JOB, { writes: [first] }, { jobId: firstId, delay: 60_000 });
      const secondId = `prd-${randomUUID()}`;
      const writes = [patch(4_250, "second", 2, 1, first.id), createOf(4_250)].map((d, n) => ({ ...d, id: writeIdOf(secondId, n) }) as Write);
      await own.products.add(WRITES_JOB, { writes }, { jobId: secondId });

      const taken = (await fetcher.getNextJob("token-1"))!;
      expect(taken.id).toBe(secondId);
      await expect(process(taken, "token-1")).rejects.toMatchObject({ name: "DelayedError" });
      expect(await own.products.getJobState(secondId)).toBe("delayed");
      expect(await nameOf(4_250)).toBe("seed");
      // What it could apply it did: the create beside the waiting edit.
      expect(await ledgerOf([writes[1]!.id])).toEqual([{ job_id: writes[1]!.id, status: "completed" }]);

      // The predecessor was brought forward from the delayed set: it is next.
      const predecessor = (await fetcher.getNextJob("token-2"))!;
      expect(predecessor.id).toBe(firstId);
      await process(predecessor, "token-2");
      // Brought back by the predecessor's worker once it was applied.
      expect(await own.products.getJobState(secondId)).toBe("waiting");
      const back = (await fetcher.getNextJob("token-3"))!;
      expect([back.id, back.attemptsMade, back.attemptsStarted]).toEqual([secondId, 0, 2]);
      expect(await process(back, "token-3")).toEqual({
        results: [
          { state: "completed", result: { productId: 4_250 } },
          { state: "completed", result: { productId: expect.any(Number) } },
        ],
      });
      expect(await nameOf(4_250)).toBe("second");
    });
  });

  it("an edit whose predecessor is gone for good (never stored, accepted long ago) applies without it", async () => {
    const process = createWritesProcessor("products", depsFor({ orderWaitMaxMs: 50 }));
    await seedProduct(4_300);
    const { job } = await carrier("products", [patch(4_300, "alone", 2, 1, `prd-${randomUUID()}.0`)]);
    await new Promise((r) => setTimeout(r, 80));
    expect(await process(job)).toEqual({ results: [{ state: "completed", result: { productId: 4_300 } }] });
    expect(await nameOf(4_300)).toBe("alone");
  });
});
