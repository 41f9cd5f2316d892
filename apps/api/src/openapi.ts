import { ZBulkLine, ZProduct, ZProductPatch, ZRegistration } from "@ingest/jobs";
import { Type, type TSchema } from "@sinclair/typebox";

// Request bodies are the very schemas the API validates with (TypeBox is JSON Schema,
// which OpenAPI 3.1 takes as is); response shapes are declared here for readers.

const strip = (schema: TSchema): object => JSON.parse(JSON.stringify(schema)) as object;

const Problem = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  detail: Type.String(),
  errors: Type.Optional(Type.Array(Type.Object({ path: Type.String(), message: Type.String() }))),
});
const Accepted = Type.Object({ jobId: Type.String(), status: Type.Literal("queued"), statusUrl: Type.String() });
const JobStatus = Type.Object({
  id: Type.String(),
  type: Type.String(),
  state: Type.Union([Type.Literal("queued"), Type.Literal("active"), Type.Literal("completed"), Type.Literal("failed")]),
  attempts: Type.Integer(),
  result: Type.Optional(Type.Unknown()),
  progress: Type.Optional(Type.Unknown({ description: "a bulk batch's counts so far (accepted, applied, failed, invalid, failures)" })),
  error: Type.Optional(Type.String()),
  acceptedAt: Type.String({ format: "date-time" }),
  finishedAt: Type.Optional(Type.String({ format: "date-time" })),
});
const Feature = Type.Object({ feature: Type.String(), value: Type.Union([Type.String(), Type.Null()]) });
const ProductSummary = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  slogan: Type.Union([Type.String(), Type.Null()]),
  description: Type.Union([Type.String(), Type.Null()]),
  category: Type.String(),
  default_price: Type.String({ examples: ["140.00"] }),
});
const ProductDetail = Type.Composite([ProductSummary, Type.Object({ features: Type.Array(Feature) })]);
const Styles = Type.Object({
  product_id: Type.String(),
  results: Type.Array(
    Type.Object({
      style_id: Type.Integer(),
      name: Type.String(),
      original_price: Type.String(),
      sale_price: Type.Union([Type.String(), Type.Null()]),
      "default?": Type.Boolean(),
      photos: Type.Array(Type.Object({ thumbnail_url: Type.Union([Type.String(), Type.Null()]), url: Type.Union([Type.String(), Type.Null()]) }), {
        minItems: 1,
        description: 'Never empty: a style without photos has one with null urls, `[{"thumbnail_url":null,"url":null}]`, as the original Product API answered.',
      }),
      skus: Type.Record(
        Type.String(),
        Type.Object({ quantity: Type.Union([Type.Integer(), Type.Null()]), size: Type.Union([Type.String(), Type.Null()]) }),
        {
          minProperties: 1,
          description: 'By sku id. Never empty: a style without skus has one under the key "null", `{"null":{"quantity":null,"size":null}}`, as the original Product API answered.',
        },
      ),
    }),
  ),
});

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const problem = (description: string) => ({ description, content: { "application/problem+json": { schema: ref("Problem") } } });
const json = (schema: object, description = "OK") => ({ description, content: { "application/json": { schema } } });
const productId = { name: "id", in: "path", required: true, schema: { type: "integer", minimum: 1, maximum: 2_147_483_647 } };
const idempotencyKey = {
  name: "Idempotency-Key",
  in: "header",
  required: false,
  description: "1–255 printable ASCII characters; a repeat with the same body within 24 h answers the first 202",
  schema: { type: "string", minLength: 1, maxLength: 255 },
};

function write(summary: string, body: string | undefined, scope: string, params: object[] = []) {
  return {
    summary,
    security: [{}, { bearer: [scope] }],
    parameters: [idempotencyKey, ...params],
    ...(body ? { requestBody: { required: true, content: { "application/json": { schema: ref(body) } } } } : {}),
    responses: {
      "202": { ...json(ref("Accepted"), "Stored as a job"), headers: { Location: { schema: { type: "string" } } } },
      "400": problem("Invalid body, id or header: fields that break the schema (listed in `errors`), a body that is not JSON or not UTF-8"),
      "401": problem("Bearer token missing or invalid (when auth is on)"),
      "403": problem("Token lacks the scope"),
      "409": problem("The first request with this Idempotency-Key is still being accepted"),
      "413": problem("Body too large"),
      "415": problem("Not application/json"),
      "422": problem("Idempotency-Key reused with a different body"),
      "429": problem("Rate limit; see Retry-After"),
      "503": problem("Not stored (Redis unavailable or overloaded); see Retry-After"),
    },
  };
}

function read(summary: string, schema: object, params: object[]) {
  return {
    summary,
    parameters: params,
    responses: {
      "200": { ...json(schema), headers: { "X-Cache": { schema: { enum: ["HIT", "STALE", "MISS", "BYPASS"] } }, ETag: { schema: { type: "string" } } } },
      "304": { description: "Not modified (If-None-Match)" },
      "400": problem("Malformed id or query"),
      "404": problem("Unknown product"),
      "503": problem("Neither cache nor database can answer"),
    },
  };
}

export function openApiDocument(): object {
  return {
    openapi: "3.1.0",
    info: {
      title: "ingest",
      version: "1.0.0",
      description:
        "Writes are validated, stored as jobs and answered 202; GET /jobs/{id} follows them to PostgreSQL. Browsers may call from the origins in CORS_ORIGINS: preflights are answered 204 before rate limits and auth, and every answer, errors included, exposes Location, ETag, X-Cache, Retry-After and X-Request-Id.",
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" }, basic: { type: "http", scheme: "basic" } },
      schemas: {
        Registration: strip(ZRegistration),
        Product: strip(ZProduct),
        ProductPatch: strip(ZProductPatch),
        Accepted: strip(Accepted),
        JobStatus: strip(JobStatus),
        Problem: strip(Problem),
        ProductSummary: strip(ProductSummary),
        ProductDetail: strip(ProductDetail),
        Styles: strip(Styles),
        BulkLine: strip(ZBulkLine),
      },
    },
    paths: {
      "/registrations": {
        post: {
          ...write("Register a user", "Registration", "registrations:write"),
          description:
            "The job's result says whether the email was new (`created`) or already registered (`duplicate`, case-insensitively). A created registration is sent one welcome email shortly after; a duplicate gets none.",
        },
      },
      "/products": {
        post: write("Create a product", "Product", "products:write"),
        get: read("List products by id", { type: "array", items: ref("ProductSummary") }, [
          { name: "page", in: "query", schema: { type: "integer", minimum: 1, default: 1 } },
          { name: "count", in: "query", schema: { type: "integer", minimum: 1, maximum: 100, default: 5 } },
        ]),
      },
      "/products/bulk": {
        post: {
          ...write("Many product operations in one request", undefined, "products:write"),
          description:
            "`application/x-ndjson`: one operation per line (a `BulkLine`: create, replace, patch or delete), read as it arrives, up to BULK_MAX_LINES lines (default 10 000). Each line is validated on its own: the valid ones are stored as one batch job in the bulk lane (which never delays interactive writes), the invalid ones are listed in `errors` by line (`/lines/<n>/...`). GET /jobs/{id} reports the batch's counts — accepted, applied, failed (with line numbers), invalid. Edits of one product keep their acceptance order within and across batches and interactive writes. With no valid line: 400.",
          requestBody: { required: true, description: "one BulkLine per line", content: { "application/x-ndjson": { schema: ref("BulkLine") } } },
        },
      },
      "/products/{id}": {
        put: write("Replace (or create) a product", "Product", "products:write", [productId]),
        patch: write("Change some fields of a product", "ProductPatch", "products:write", [productId]),
        delete: write("Delete a product", undefined, "products:write", [productId]),
        get: read("One product with its features", ref("ProductDetail"), [productId]),
      },
      "/products/{id}/styles": { get: read("Styles of a product", ref("Styles"), [productId]) },
      "/products/{id}/related": { get: read("Related product ids", { type: "array", items: { type: "integer" } }, [productId]) },
      "/jobs/{id}": {
        get: {
          summary: "Status of an accepted write",
          parameters: [
            { name: "id", in: "path", required: true, schema: { type: "string" } },
            { name: "waitMs", in: "query", schema: { type: "integer", minimum: 0, maximum: 10_000 }, description: "hold the answer until the job finishes" },
          ],
          responses: { "200": json(ref("JobStatus")), "404": problem("Unknown job"), "503": problem("Status unavailable") },
        },
      },
      "/healthz": {
        get: { summary: "Liveness: 200 while the process lives", responses: { "200": json({ type: "object", properties: { status: { const: "ok" } } }, "alive") } },
      },
      "/readyz": {
        get: {
          summary: "Readiness: Redis and PostgreSQL answer and the process is not draining",
          responses: {
            "200": json({ type: "object", properties: { status: { const: "ready" }, draining: { type: "boolean" } }, additionalProperties: { enum: ["up", "down"] } }, "ready"),
            "503": {
              ...problem("Not ready: the problem's `checks` member says which dependency is `down`, `draining` whether the process is shutting down"),
              headers: { "Retry-After": { schema: { type: "integer" } } },
            },
          },
        },
      },
      "/metrics": {
        get: { summary: "Prometheus metrics", responses: { "200": { description: "text exposition format", content: { "text/plain": { schema: { type: "string" } } } } } },
      },
      "/openapi.json": { get: { summary: "This document", responses: { "200": json({ type: "object" }, "OpenAPI 3.1") } } },
      "/docs": { get: { summary: "A page to read this document (Swagger UI)", responses: { "200": { description: "HTML", content: { "text/html": { schema: { type: "string" } } } } } } },
      "/admin/queues": {
        get: {
          summary: "Bull Board over every queue, for operators",
          description: "Served when ADMIN_USER and ADMIN_PASSWORD are set, behind HTTP Basic auth.",
          security: [{ basic: [] }],
          responses: { "200": { description: "HTML", content: { "text/html": { schema: { type: "string" } } } }, "401": problem("Credentials missing or wrong") },
        },
      },
    },
  };
}
