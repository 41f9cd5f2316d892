// Sends email over an SMTP pool, or logs it when SMTP_URL is unset.
import nodemailer from "nodemailer";
import type { Logger } from "../logger.js";

export type OutgoingEmail = { to: string; subject: string; text: string; messageId: string };

export type Mailer = {
  /** "smtp": handed to the SMTP server; "log": written to the log only (no SMTP_URL). */
  readonly kind: "smtp" | "log";
  /** Resolves once the server accepted the message (250 after DATA); throws otherwise. */
  send(email: OutgoingEmail): Promise<void>;
  close(): void;
};

type MailerConfig = { smtpUrl: string | undefined; from: string; maxConnections: number; nodeEnv: string };

// Bounded so a hung server fails the attempt (and it is retried) instead of holding it.
const CONNECTION_TIMEOUT_MS = 10_000;
const GREETING_TIMEOUT_MS = 10_000;
const SOCKET_TIMEOUT_MS = 60_000;

/**
 * SMTP through a small pool of connections when SMTP_URL is set. Without it the message
 * is logged instead of sent: what development and tests want, and in production a
 * loud warning at start, since nobody receives anything.
 */
export function createMailer(config: MailerConfig, log: Logger): Mailer {
  if (!config.smtpUrl) {
    if (config.nodeEnv === "production") {
      log.warn("SMTP_URL is not set: welcome emails are written to the log, not sent to anyone");
    }
    return {
      kind: "log",
      async send(email) {
        log.info({ messageId: email.messageId, to: email.to, subject: email.subject }, "email logged, not sent (no SMTP_URL)");
      },
      close: () => {},
    };
  }
  const transport = nodemailer.createTransport({
    url: config.smtpUrl,
    pool: true,
    maxConnections: Math.max(1, config.maxConnections),
    connectionTimeout: CONNECTION_TIMEOUT_MS,
    greetingTimeout: GREETING_TIMEOUT_MS,
    socketTimeout: SOCKET_TIMEOUT_MS,
  });
  return {
    kind: "smtp",
    async send(email) {
      await transport.sendMail({ from: config.from, ...email });
    },
    close: () => transport.close(),
  };
}

/** The domain of the sender's address, which names the Message-IDs. */
export function domainOf(from: string): string {
  const address = /<([^>]+)>/.exec(from)?.[1] ?? from;
  return address.slice(address.lastIndexOf("@") + 1).trim();
}

/** The same for every run of a registration's job: a receiver can drop a second copy. */
export const welcomeMessageId = (registrationId: number, domain: string) => `<welcome-${registrationId}@${domain}>`;

/**
 * The job's failure reason (what Bull Board shows) and whether a retry can help. A
 * server that refuses the recipient or the message for good (5xx to RCPT or DATA)
 * gives the same answer next time; anything else (no connection, a timeout, 4xx, a
 * failed login that an operator can fix) is retried.
 */
export function describeSendError(err: unknown): { reason: string; permanent: boolean } {
  const e = err as { code?: string; responseCode?: number; message?: string };
  const message = (e?.message ?? String(err)).replace(/\s+/g, " ").trim();
  switch (e?.code) {
    case "ECONNECTION":
    case "ESOCKET":
    case "ETIMEDOUT":
    case "EDNS":
    case "EPROTOCOL":
    case "ETLS":
      return { reason: `SMTP_UNAVAILABLE: ${message}`, permanent: false };
    case "EAUTH":
      return { reason: `SMTP_AUTH_FAILED: ${message}`, permanent: false };
    case "EENVELOPE":
    case "EMESSAGE": {
      const permanent = (e.responseCode ?? 0) >= 500;
      return { reason: `${permanent ? "SMTP_REJECTED" : "SMTP_DEFERRED"}: ${message}`, permanent };
    }
    default:
      return { reason: `EMAIL_FAILED: ${message}`, permanent: false };
  }
}
