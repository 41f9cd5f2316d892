// Sends raw bytes as an HTTP request and reads back the whole response.
import { connect } from "node:net";

type RawReply = {
  status: number;
  headers: Record<string, string>;
  body: any;
  text: string;
  /** Milliseconds from the first byte sent to the whole response received. */
  ms: number;
  /** Resolves true once the server closes the connection, false if it is still open after 3 s. */
  closed: Promise<boolean>;
};

/**
 * Sends bytes exactly as given on a fresh connection (what fetch will not send: control
 * characters in headers, repeated headers, a Content-Length the body does not have) and
 * resolves once a whole response is back. The connection is left open for writing, as a
 * client still sending its body would, and is destroyed after 3 s at the latest.
 */
export function rawHttp(baseUrl: string, request: string | Buffer): Promise<RawReply> {
  const { hostname, port } = new URL(baseUrl);
  const socket = connect(Number(port), hostname);
  const started = performance.now();
  let buffered = Buffer.alloc(0);
  const closed = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      resolve(false);
      socket.destroy();
    }, 3_000);
    const done = () => {
      clearTimeout(timer);
      resolve(true);
    };
    socket.once("end", done);
    socket.once("close", done);
  });
  return new Promise<RawReply>((resolve, reject) => {
    const settle = () => {
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) return false;
      const [statusLine = "", ...lines] = buffered.subarray(0, end).toString("latin1").split("\r\n");
      const headers = Object.fromEntries(
        lines.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()] as const),
      );
      const length = Number(headers["content-length"] ?? 0);
      if (buffered.length < end + 4 + length) return false;
      const text = buffered.subarray(end + 4, end + 4 + length).toString("utf8");
      let body: unknown;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        body = undefined;
      }
      resolve({ status: Number(statusLine.split(" ")[1]), headers, body, text, ms: performance.now() - started, closed });
      return true;
    };
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      settle();
    });
    socket.on("error", () => {});
    void closed.then(() => {
      if (!settle()) reject(new Error(`no whole response before the connection ended: ${JSON.stringify(buffered.toString("latin1").slice(0, 200))}`));
    });
    socket.write(request);
  });
}
