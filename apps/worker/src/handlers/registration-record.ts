// Registrations applied and recorded in ONE statement: the rows, their welcome emails'
// outbox rows and their ledger rows, with no transaction around it (a statement is one).
// The fast path of apply-writes.ts for first deliveries; registration-create.ts is the
// general form, inside the caller's transaction.
import type { Db } from "@ingest/db";
import type { PayloadOf, ResultOf } from "@ingest/jobs";
import type { RecordItem } from "./types.js";

// Prepared once per connection: the plan of this statement costs more than running it
// for a few rows.
const STATEMENT = "ingest_record_registrations";
const TEXT = `
with input as (
  select * from jsonb_to_recordset($1::jsonb)
    as t(email text, name text, plan text, marketing_opt_in boolean, job_id text, request_id text, trace_context jsonb, queue text, attempts int, accepted_at timestamptz)
), ins as (
  insert into registrations (email, name, plan, marketing_opt_in, job_id)
  select email, name, plan, marketing_opt_in, job_id from input order by lower(email)
  on conflict ((lower(email))) do nothing
  returning id, email, job_id
), outbox as (
  insert into email_sends (registration_id, kind, recipient, status, request_id, trace_context)
  select ins.id, 'welcome', ins.email, 'pending', input.request_id, input.trace_context from ins join input using (job_id)
), outcome as (
  select input.job_id, input.queue, input.attempts, input.accepted_at, ins.id is not null as created,
         coalesce(ins.id, twin.id, old.id) as id
  from input
  left join ins using (job_id)
  left join lateral (select t.id from ins t where ins.id is null and lower(t.email) = lower(input.email) limit 1) twin on true
  left join lateral (select r.id from registrations r where ins.id is null and twin.id is null and lower(r.email) = lower(input.email)) old on true
), ledger as (
  insert into job_ledger (job_id, queue, name, status, result, attempts, accepted_at, finished_at)
  select job_id, queue, 'registration.create', 'completed',
         jsonb_build_object('registrationId', id, 'outcome', case when created then 'created' else 'duplicate' end),
         attempts, accepted_at, clock_timestamp()
  from outcome where id is not null
)
select job_id, id, created from outcome`;

/**
 * Inserts the registrations (email order, so racing statements wait on each other in one
 * order instead of deadlocking), the outbox rows of those created, and every write's
 * ledger row, atomically. A ledger row another delivery recorded first fails the whole
 * statement (unique violation): nothing is kept, and the caller applies the writes one by
 * one, which answers from the ledger. A write whose email a concurrent transaction took
 * after this statement's snapshot gets no answer (undefined) and no ledger row: the
 * caller applies it on its own, where it finds the row.
 */
export async function recordRegistrations(
  db: Db,
  items: RecordItem<PayloadOf<"registration.create">>[],
): Promise<(ResultOf<"registration.create"> | undefined)[]> {
  const rows = items.map(({ payload: { registration: r }, ctx, ledger }) => ({
    email: r.email,
    name: r.name,
    plan: r.plan ?? "free",
    marketing_opt_in: r.marketingOptIn ?? false,
    job_id: ctx.jobId,
    request_id: ctx.requestId ?? null,
    trace_context: ctx.trace ?? null,
    queue: ledger.queue,
    attempts: ledger.attempts,
    accepted_at: new Date(ledger.acceptedAt).toISOString(),
  }));
  const { rows: out } = await db.$client.query<{ job_id: string; id: number | null; created: boolean }>({ name: STATEMENT, text: TEXT, values: [JSON.stringify(rows)] });
  const byJob = new Map(out.map((r) => [r.job_id, r]));
  return items.map(({ ctx }) => {
    const r = byJob.get(ctx.jobId);
    return r?.id == null ? undefined : { registrationId: Number(r.id), outcome: r.created ? "created" : "duplicate" };
  });
}
