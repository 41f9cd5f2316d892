// The parts the OpenAPI document's operations are made of: their parameters, the statuses
// each kind of route can answer, and the request examples Swagger UI pre-fills.
import { CLIENT_JOB_ID_PATTERN } from "@ingest/jobs";
import { IDEMPOTENCY_KEY_PATTERN } from "./idempotency.js";

export const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

export const retryAfter = { "Retry-After": { description: "seconds to wait before trying again", schema: { type: "integer", minimum: 0 } } };
export const problem = (description: string, headers?: object) => ({
  description,
  ...(headers ? { headers } : {}),
  content: { "application/problem+json": { schema: ref("Problem") } },
});
export const json = (schema: object, description = "OK") => ({ description, content: { "application/json": { schema } } });
export const html = (description: string) => ({ description, content: { "text/html": { schema: { type: "string" } } } });

// Node's HTTP parser answers these before any route, whatever the path.
export const PARSER_REFUSALS = {
  "4XX": problem("Refused by the HTTP parser before any route: a malformed request (400), one too slow to arrive (408), chunk extensions (413) or headers (431) too large"),
};
// Every route but the probes and /metrics, while the event loop lags over SHED_LAG_MS.
const SHED = "overloaded (event-loop delay over SHED_LAG_MS)";

// Public routes need no credentials: an empty list says so (a write's list makes a token optional).
export const PUBLIC: object[] = [];

export const productId = {
  name: "id",
  in: "path",
  required: true,
  description: "a product id",
  schema: { type: "integer", minimum: 1, maximum: 2_147_483_647 },
  example: 1,
};

export const jobId = {
  name: "id",
  in: "path",
  required: true,
  description:
    "the jobId of a 202: a write (`reg-<uuid>` or `prd-<uuid>`, and `reg-<uuid>.<n>` for the n-th write of a carrier job, the writes the API stored together) or a bulk batch (`blk-<uuid>`); an id of another shape is unknown (404)",
  schema: { type: "string", pattern: CLIENT_JOB_ID_PATTERN },
  example: "reg-0f8fad5b-d9cb-469f-a165-70867728950e.0",
};

// No example: Swagger UI would send it, and a second write with the same key and another
// body is refused (422).
const idempotencyKey = {
  name: "Idempotency-Key",
  in: "header",
  required: false,
  description: "1–255 printable ASCII characters; a repeat with the same body within 24 h answers the first 202 and has no second effect",
  schema: { type: "string", minLength: 1, maxLength: 255, pattern: IDEMPOTENCY_KEY_PATTERN },
};

const ifNoneMatch = {
  name: "If-None-Match",
  in: "header",
  required: false,
  description: "the ETag of a copy the client holds: 304 while it is current",
  schema: { type: "string" },
};

type Body = { type: "application/json" | "application/x-ndjson"; schema: object; example: unknown; description?: string };

/** A write: stored as a job and answered 202, or refused with one of these. */
export function write(operationId: string, summary: string, scope: string, opts: { body?: Body; params?: object[] } = {}) {
  const { body, params = [] } = opts;
  return {
    operationId,
    summary,
    // No token needed while auth is off (JWT_SECRET, JWKS_URL unset); a bearer with the scope when on.
    security: [{}, { bearer: [scope] }],
    parameters: [...params, idempotencyKey],
    ...(body
      ? {
          requestBody: {
            required: true,
            ...(body.description ? { description: body.description } : {}),
            content: { [body.type]: { schema: body.schema, example: body.example } },
          },
        }
      : {}),
    responses: {
      "202": {
        ...json(ref("Accepted"), "Stored as a job: follow it at Location"),
        headers: { Location: { description: "/jobs/{jobId}", schema: { type: "string" } } },
      },
      "400": problem(
        body
          ? "Invalid request: fields that break the schema (listed in `errors`), a body that is not JSON or not UTF-8, a bad id or Idempotency-Key"
          : "Invalid request: a bad id or Idempotency-Key",
      ),
      "401": problem("Bearer token missing or invalid (when auth is on)"),
      "403": problem("The token lacks the scope"),
      "409": problem("The first request with this Idempotency-Key is still being accepted; see Retry-After", retryAfter),
      ...(body
        ? {
            "413": problem("Body too large"),
            "415": problem(`Not ${body.type}`),
          }
        : {}),
      "422": problem("Idempotency-Key reused with a different request"),
      "429": problem("Over the per-client rate limit (RATE_LIMIT_PER_MIN); see Retry-After", retryAfter),
      "503": problem(`Not stored: Redis unavailable, the queue over QUEUE_HIGH_WATER, or ${SHED}; see Retry-After`, retryAfter),
      ...PARSER_REFUSALS,
    },
  };
}

/** A catalog read: cache first, with an ETag. */
export function read(operationId: string, summary: string, schema: object, opts: { params: object[]; byId: boolean }) {
  const etag = { ETag: { schema: { type: "string" } } };
  return {
    operationId,
    summary,
    security: PUBLIC,
    parameters: [...opts.params, ifNoneMatch],
    responses: {
      "200": {
        ...json(schema),
        headers: { "X-Cache": { description: "how the read was served", schema: { enum: ["HIT", "STALE", "MISS", "BYPASS"] } }, ...etag },
      },
      "304": { description: "Not modified: If-None-Match holds the current ETag", headers: etag },
      "400": problem(opts.byId ? "Malformed id (not a whole number from 1 to 2147483647, or bad percent-encoding)" : "Malformed page or count"),
      ...(opts.byId ? { "404": problem("Unknown product") } : {}),
      "503": problem(`Neither the cache nor the database can answer, or ${SHED}; see Retry-After`, retryAfter),
      ...PARSER_REFUSALS,
    },
  };
}

/** An operational GET: public, answered with `ok`, or with these problems. */
export function operational(operationId: string, summary: string, ok: object, others: Record<string, object> = {}) {
  return { operationId, summary, security: PUBLIC, responses: { "200": ok, ...others, ...PARSER_REFUSALS } };
}

export const shed = () => problem(`The service is ${SHED}; see Retry-After`, retryAfter);
