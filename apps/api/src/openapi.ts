// The OpenAPI 3.1 document that GET /openapi.json serves and /docs shows.
import { ZBulkLine, ZProduct, ZProductPatch, ZRegistration } from "@ingest/jobs";
import { Type } from "@sinclair/typebox";
import { componentSchemas } from "./openapi-components.js";
import { html, jobId, json, operational, PARSER_REFUSALS, problem, productId, PUBLIC, read, ref, retryAfter, shed, write } from "./openapi-operations.js";

// Request bodies are the very schemas the API validates with (TypeBox is JSON Schema,
// which OpenAPI 3.1 takes as is); response shapes are declared here for readers.

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

// What Swagger UI's "Try it out" pre-fills: each is accepted as it stands (202).
const EXAMPLES = {
  registration: { email: "ada@example.com", name: "Ada Lovelace", plan: "pro", marketingOptIn: false },
  product: {
    name: "Camo Onesie",
    slogan: "Blend in to your crowd",
    description: "The So Fatigues will wake you up and fit you in.",
    category: "Jackets",
    default_price: "140.00",
    features: [{ feature: "Fabric", value: "Canvas" }],
  },
  productPatch: { default_price: "120.00", slogan: "Now on sale" },
  bulk: [
    { op: "create", product: { name: "Morning Joggers", category: "Pants", default_price: "40.00" } },
    { op: "patch", id: 1, changes: { default_price: "135.00" } },
  ]
    .map((line) => `${JSON.stringify(line)}\n`)
    .join(""),
};

// The body is text, one JSON document a line; what its lines hold is the contentSchema
// (a sequence of lines read as an array, as OpenAPI 3.2 reads sequential media types).
const NDJSON_BULK_LINES = {
  type: "string",
  contentMediaType: "application/x-ndjson",
  contentSchema: { type: "array", items: ref("BulkLine") },
};

const jsonBody = (schema: string, example: object) => ({ type: "application/json" as const, schema: ref(schema), example });

export function openApiDocument(): object {
  return {
    openapi: "3.1.0",
    info: {
      title: "ingest",
      version: "1.0.0",
      description:
        "Writes are validated, stored as jobs and answered 202; GET /jobs/{id} follows them to PostgreSQL. Every error is `application/problem+json`. A path answers a method it does not list with 405 and `Allow`. Browsers may call from the origins in CORS_ORIGINS: preflights are answered 204 before rate limits and auth, and every answer, errors included, exposes Location, ETag, X-Cache, Retry-After and X-Request-Id.",
    },
    servers: [{ url: "/", description: "the API that serves this document" }],
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" }, basic: { type: "http", scheme: "basic" } },
      schemas: componentSchemas({
        Registration: ZRegistration,
        Product: ZProduct,
        ProductPatch: ZProductPatch,
        BulkLine: ZBulkLine,
        Accepted,
        JobStatus,
        Problem,
        ProductSummary,
        ProductDetail,
        Styles,
      }),
    },
    paths: {
      "/registrations": {
        post: {
          ...write("createRegistration", "Register a user", "registrations:write", { body: jsonBody("Registration", EXAMPLES.registration) }),
          description:
            "The job's result says whether the email was new (`created`) or already registered (`duplicate`, case-insensitively). A created registration is sent one welcome email shortly after; a duplicate gets none.",
        },
      },
      "/products": {
        post: write("createProduct", "Create a product", "products:write", { body: jsonBody("Product", EXAMPLES.product) }),
        get: read(
          "listProducts",
          "List products by id",
          { type: "array", items: ref("ProductSummary") },
          {
            byId: false,
            params: [
              { name: "page", in: "query", schema: { type: "integer", minimum: 1, maximum: 10_000_000, default: 1 } },
              { name: "count", in: "query", schema: { type: "integer", minimum: 1, maximum: 100, default: 5 } },
            ],
          },
        ),
      },
      "/products/bulk": {
        post: {
          ...write("bulkProducts", "Many product operations in one request", "products:write", {
            body: { type: "application/x-ndjson", schema: NDJSON_BULK_LINES, example: EXAMPLES.bulk, description: "one BulkLine per line" },
          }),
          description:
            "`application/x-ndjson`: one operation per line (a `BulkLine`: create, replace, patch or delete), read as it arrives, up to BULK_MAX_LINES lines (default 10 000). Each line is validated on its own: the valid ones are stored as one batch job in the bulk lane (which never delays interactive writes), the invalid ones are listed in `errors` by line (`/lines/<n>/...`). GET /jobs/{id} reports the batch's counts — accepted, applied, failed (with line numbers), invalid. Edits of one product keep their acceptance order within and across batches and interactive writes. With no valid line: 400.",
        },
      },
      "/products/{id}": {
        put: write("replaceProduct", "Replace (or create) a product", "products:write", { body: jsonBody("Product", EXAMPLES.product), params: [productId] }),
        patch: write("patchProduct", "Change some fields of a product", "products:write", {
          body: jsonBody("ProductPatch", EXAMPLES.productPatch),
          params: [productId],
        }),
        delete: write("deleteProduct", "Delete a product", "products:write", { params: [productId] }),
        get: read("getProduct", "One product with its features", ref("ProductDetail"), { byId: true, params: [productId] }),
      },
      "/products/{id}/styles": { get: read("getProductStyles", "Styles of a product", ref("Styles"), { byId: true, params: [productId] }) },
      "/products/{id}/related": {
        get: read("getRelatedProducts", "Related product ids", { type: "array", items: { type: "integer" } }, { byId: true, params: [productId] }),
      },
      "/jobs/{id}": {
        get: {
          operationId: "getJob",
          summary: "Status of an accepted write",
          security: PUBLIC,
          parameters: [
            jobId,
            {
              name: "waitMs",
              in: "query",
              schema: { type: "integer", minimum: 0, maximum: 10_000 },
              description: "hold the answer until the job finishes or this many ms pass",
            },
          ],
          responses: {
            "200": json(ref("JobStatus")),
            "400": problem("A bad waitMs (not a whole number from 0 to 10000), or an id with bad percent-encoding"),
            "404": problem("Unknown job"),
            "503": problem("Status unavailable (Redis and PostgreSQL cannot answer), or the service is overloaded; see Retry-After", retryAfter),
            ...PARSER_REFUSALS,
          },
        },
      },
      "/healthz": {
        get: operational("getLiveness", "Liveness: 200 while the process lives", json({ type: "object", properties: { status: { const: "ok" }, instance: { type: "string", description: "INSTANCE_ID, when set" } } }, "alive")),
      },
      "/readyz": {
        get: operational(
          "getReadiness",
          "Readiness: Redis and PostgreSQL answer and the process is not draining",
          json({ type: "object", properties: { status: { const: "ready" }, draining: { type: "boolean" } }, additionalProperties: { enum: ["up", "down"] } }, "ready"),
          {
            "503": problem(
              "Not ready: the problem's `checks` member says which dependency is `down`, `draining` whether the process is shutting down",
              retryAfter,
            ),
          },
        ),
      },
      "/metrics": {
        get: operational(
          "getMetrics",
          "Prometheus metrics (with API_PROCESSES > 1, the sum over every process)",
          { description: "text exposition format", content: { "text/plain": { schema: { type: "string" } } } },
          { "503": problem("With API_PROCESSES > 1: an API process did not report its metrics in time; see Retry-After", retryAfter) },
        ),
      },
      "/openapi.json": { get: operational("getOpenApi", "This document", json({ type: "object" }, "OpenAPI 3.1"), { "503": shed() }) },
      "/docs": { get: operational("getDocs", "A page to read this document (Swagger UI)", html("HTML"), { "503": shed() }) },
      "/admin/queues": {
        get: {
          ...operational("getQueueBoard", "Bull Board over every queue, for operators", html("HTML"), {
            "401": problem("Credentials missing or wrong"),
            "503": shed(),
          }),
          description: "Behind HTTP Basic auth (ADMIN_USER, ADMIN_PASSWORD).",
          security: [{ basic: [] }],
        },
      },
    },
  };
}
