// A real SMTP server on loopback that collects the messages it accepts.
import { SMTPServer, type SMTPServerSession } from "smtp-server";

export type SinkMessage = { messageId: string; from: string; to: string[]; subject: string; raw: string };

export type SmtpSink = {
  port: number;
  url: string;
  /** Messages the sink accepted: their DATA arrived in full and was answered 250. */
  messages: SinkMessage[];
  count(messageId: string): number;
  /** Messages received in full whose answer is being held back (see hold). */
  readonly held: number;
  /** While on, the sink keeps a received message's 250 until release() or the client leaves. */
  hold(on: boolean): void;
  /** Recipients matching this are refused for good (550 to RCPT TO). */
  refuse(recipients: RegExp | undefined): void;
  release(): void;
  listen(): Promise<void>;
  close(): Promise<void>;
};

/**
 * A real SMTP server on loopback collecting what it accepts. As a real server does, it
 * takes responsibility for a message only when it answers the end of DATA: a message
 * whose client went away before that answer (held back, or cut short) is dropped.
 */
export function createSmtpSink(port: number): SmtpSink {
  const messages: SinkMessage[] = [];
  const closed = new Set<string>();
  const waiting = new Set<() => void>();
  let holding = false;
  let refused: RegExp | undefined;
  let server: SMTPServer | undefined;

  const onData = (stream: NodeJS.ReadableStream, session: SMTPServerSession, callback: (err?: Error | null) => void) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", () => callback(new Error("message cut short")));
    stream.on("end", async () => {
      if (holding) await new Promise<void>((resolve) => waiting.add(resolve));
      if (closed.has(session.id)) return callback(new Error("client left before the answer"));
      const raw = Buffer.concat(chunks).toString("utf8");
      messages.push({
        messageId: header(raw, "message-id"),
        from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
        to: session.envelope.rcptTo.map((r) => r.address),
        subject: header(raw, "subject"),
        raw,
      });
      callback();
    });
  };

  const sink: SmtpSink = {
    port,
    url: `smtp://127.0.0.1:${port}`,
    messages,
    count: (messageId) => messages.filter((m) => m.messageId === messageId).length,
    get held() {
      return waiting.size;
    },
    hold(on) {
      holding = on;
      if (!on) sink.release();
    },
    refuse(recipients) {
      refused = recipients;
    },
    release() {
      for (const resolve of waiting) resolve();
      waiting.clear();
    },
    listen() {
      server = new SMTPServer({
        disabledCommands: ["STARTTLS", "AUTH"],
        logger: false,
        closeTimeout: 100,
        onData,
        onRcptTo: (address, _session, callback) => {
          if (refused?.test(address.address)) return callback(Object.assign(new Error("no such user here"), { responseCode: 550 }));
          callback();
        },
        onClose: (session) => {
          closed.add(session.id);
          // A held message whose client died is answered (into the void) at once.
          if (waiting.size) sink.release();
        },
      });
      const s = server;
      return new Promise((resolve, reject) => {
        s.once("error", reject);
        s.listen(port, "127.0.0.1", () => resolve());
      });
    },
    close() {
      sink.release();
      const s = server;
      server = undefined;
      return new Promise((resolve) => (s ? s.close(() => resolve()) : resolve()));
    },
  };
  return sink;
}

/** One header's value, unfolded. */
function header(raw: string, name: string): string {
  const head = raw.split(/\r?\n\r?\n/, 1)[0] ?? "";
  const unfolded = head.replace(/\r?\n[ \t]+/g, " ");
  const line = unfolded.split(/\r?\n/).find((l) => l.toLowerCase().startsWith(`${name}:`));
  return line ? line.slice(name.length + 1).trim() : "";
}
