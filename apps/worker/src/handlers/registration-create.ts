// The registration.create handler, and the batch insert of many registrations with their welcome emails.
import { sql } from "drizzle-orm";
import type { PayloadOf, ResultOf } from "@ingest/jobs";
import type { ApplyContext, Handler, Tx } from "./types.js";

// The unique index on lower(email) decides; a concurrent twin waits on it and then sees ours.
export const createRegistration: Handler<"registration.create"> = async (tx, payload, ctx) =>
  (await createRegistrations(tx, [{ payload, ctx }]))[0]!;

type RegistrationPayload = PayloadOf<"registration.create">;

/**
 * Registrations, one or many: one multi-row insert for all of them, then one lookup
 * for those whose email was taken (earlier, or by another of the same batch).
 * Rows go in email order, so two batches racing on the same emails wait on each
 * other in one order instead of deadlocking. Results come back in the input's order.
 * The same statement writes each created registration's welcome email to the outbox
 * (email_sends, "pending"), so the email is owed exactly when the registration commits;
 * a duplicate inserts nothing and so is owed nothing.
 */
export async function createRegistrations(
  tx: Tx,
  items: { payload: RegistrationPayload; ctx: ApplyContext }[],
): Promise<ResultOf<"registration.create">[]> {
  const rows = items
    .map(({ payload: { registration: r }, ctx: { jobId, requestId, trace } }) => ({
      email: r.email,
      name: r.name,
      plan: r.plan ?? "free",
      marketing_opt_in: r.marketingOptIn ?? false,
      job_id: jobId,
      request_id: requestId ?? null,
      trace_context: trace ?? null,
    }))
    .sort((a, b) => (a.email.toLowerCase() < b.email.toLowerCase() ? -1 : 1));
  const inserted = await tx.execute<{ id: number; job_id: string }>(sql`
    with input as (
      select * from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
        as t(email text, name text, plan text, marketing_opt_in boolean, job_id text, request_id text, trace_context jsonb)
    ), ins as (
      insert into registrations (email, name, plan, marketing_opt_in, job_id)
      select email, name, plan, marketing_opt_in, job_id from input
      on conflict ((lower(email))) do nothing
      returning id, email, job_id
    ), outbox as (
      insert into email_sends (registration_id, kind, recipient, status, request_id, trace_context)
      select ins.id, 'welcome', ins.email, 'pending', input.request_id, input.trace_context
      from ins join input using (job_id)
    )
    select id, job_id from ins`);
  const created = new Map(inserted.rows.map((r) => [r.job_id, r.id]));
  const taken = items.filter((i) => !created.has(i.ctx.jobId)).map((i) => i.payload.registration.email);
  const existing = new Map<string, number>();
  if (taken.length) {
    // Keyed by the email as given: PostgreSQL's lower() decides what matches, not JavaScript's.
    const found = await tx.execute<{ id: number; email: string }>(sql`
      select r.id, e.email
      from jsonb_array_elements_text(${JSON.stringify(taken)}::jsonb) as e(email)
      join registrations r on lower(r.email) = lower(e.email)`);
    for (const r of found.rows) existing.set(r.email, r.id);
  }
  return items.map(({ payload, ctx }) => {
    const id = created.get(ctx.jobId);
    if (id !== undefined) return { registrationId: id, outcome: "created" as const };
    const dup = existing.get(payload.registration.email);
    if (dup === undefined) throw new Error("registration conflict without an existing row");
    return { registrationId: dup, outcome: "duplicate" as const };
  });
}
