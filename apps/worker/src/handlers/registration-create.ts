import { sql } from "drizzle-orm";
import type { Handler } from "./types.js";

export const createRegistration: Handler<"registration.create"> = async (tx, { registration }, ctx) => {
  const { email, name, plan = "free", marketingOptIn = false } = registration;
  // The unique index on lower(email) decides; a concurrent twin waits on it and then sees ours.
  const inserted = await tx.execute<{ id: number }>(sql`
    insert into registrations (email, name, plan, marketing_opt_in, job_id)
    values (${email}, ${name}, ${plan}, ${marketingOptIn}, ${ctx.jobId})
    on conflict ((lower(email))) do nothing
    returning id`);
  const created = inserted.rows[0];
  if (created) return { registrationId: created.id, outcome: "created" };
  const existing = await tx.execute<{ id: number }>(
    sql`select id from registrations where lower(email) = lower(${email})`,
  );
  const row = existing.rows[0];
  if (!row) throw new Error("registration conflict without an existing row");
  return { registrationId: row.id, outcome: "duplicate" };
};
