// One span per email of a batch job, in the trace of the write that owes it (linked to
// the batch's process span), with its SMTP exchange as a child span.
import { WELCOME_EMAIL_JOB, type WelcomeEmail } from "@ingest/jobs";
import { context, endSpan, inSpan, SpanKind, startItemSpan, trace, tracer, tracingEnabled, type Span } from "@ingest/telemetry";
import { welcomeMessageId, type Mailer } from "./mailer.js";
import type { SendOutcome } from "./welcome.js";

type EmailSpans = {
  /** The mailer whose sends are SMTP spans under their email's span. */
  mailer: Mailer;
  /** Runs the job's statements in the lone email's span (many emails: in the batch's). */
  inJob<T>(fn: () => Promise<T>): Promise<T>;
  /** Ends the emails' spans with their outcomes (an error for the ones without one). */
  end(outcomes: SendOutcome[] | undefined, err?: unknown): void;
};

export function traceEmails(jobId: string | undefined, emails: WelcomeEmail[], mailer: Mailer, domain: string): EmailSpans | undefined {
  if (!tracingEnabled()) return undefined;
  const spans = emails.map((email) =>
    startItemSpan(`${WELCOME_EMAIL_JOB} process`, email.trace, {
      "messaging.system": "bullmq",
      "messaging.operation.type": "process",
      "messaging.destination.name": "emails",
      ...(jobId ? { "messaging.message.id": jobId } : {}),
      "ingest.registration_id": email.registrationId,
      ...(email.requestId ? { "ingest.request_id": email.requestId } : {}),
    }),
  );
  const byMessageId = new Map<string, Span>(emails.map((e, k) => [welcomeMessageId(e.registrationId, domain), spans[k]!]));
  return {
    mailer: {
      ...mailer,
      kind: mailer.kind,
      send(email) {
        const parent = byMessageId.get(email.messageId);
        const span = tracer.startSpan(
          mailer.kind === "smtp" ? "smtp send" : "email log",
          { kind: SpanKind.CLIENT, attributes: { "network.protocol.name": "smtp", "ingest.message_id": email.messageId } },
          parent ? trace.setSpan(context.active(), parent) : context.active(),
        );
        return inSpan(span, () => mailer.send(email));
      },
    },
    inJob(fn) {
      return spans.length === 1 ? context.with(trace.setSpan(context.active(), spans[0]!), fn) : fn();
    },
    end(outcomes, err) {
      spans.forEach((span, k) => {
        const o = outcomes?.[k];
        if (o && "sent" in o) endSpan(span.setAttribute("ingest.sent_before", !o.sent));
        else endSpan(span, o ? o.reason : err instanceof Error ? err : String(err ?? "not sent"));
      });
    },
  };
}
