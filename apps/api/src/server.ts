// The API's HTTP server, which answers requests Node's parser refuses as problem+json.
import { createServer, STATUS_CODES, type RequestListener, type Server } from "node:http";
import type { Duplex } from "node:stream";
import { AppError, problemOf } from "./errors.js";

/** The API's HTTP server, without a port: index.ts listens (in every cluster process), tests too. */
export function createApiServer(app: RequestListener): Server {
  const server = createServer(app);
  server.on("clientError", answerClientError);
  // Longer than a load balancer's (or a client's) idle timeout, so it never reuses a
  // socket we closed: a POST sent on one as it closes fails with ECONNRESET.
  server.keepAliveTimeout = 65_000;
  return server;
}

function problemFor(code: string | undefined): AppError {
  switch (code) {
    case "HPE_HEADER_OVERFLOW":
      return new AppError("headers_too_large", "The request's headers are larger than allowed.");
    case "HPE_CHUNK_EXTENSIONS_OVERFLOW":
      return new AppError("payload_too_large", "The request's chunk extensions are larger than allowed.");
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return new AppError("request_timeout", "The request was not received in time.");
    default:
      return new AppError(
        "bad_request",
        "The request is not valid HTTP/1.1: a malformed request line or header (header values may not contain control characters).",
      );
  }
}

/**
 * Node's parser refuses some requests before Express sees them (a control character in
 * a header, headers too large, a request too slow) and would answer with a bare status
 * line. Answer with the same status as problem+json, then close: the parser cannot go
 * on after such an error. As Node does, nothing is written to a socket that has gone,
 * or in the middle of a response already started on it.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (err.code !== "ECONNRESET" && socket.writable && !inFlight?.headersSent) {
    const { status, body } = problemOf(problemFor(err.code));
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
        "Content-Type: application/problem+json\r\n" +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        "Connection: close\r\n\r\n" +
        body,
    );
  }
  socket.destroy();
}
