// The OpenAPI document as its readers' tools take it: valid OpenAPI 3.1, every schema compiled
// by Ajv in strict mode, redocly's lint, examples the API accepts, and the statuses it answers.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ZRegistration } from "@ingest/jobs";
import { request, ROOT, startApi, testEnv, type Api } from "../../../test/support/harness.js";

const { prefix } = testEnv("openapi");
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv2020) => Ajv2020;
const WRITE_METHODS = ["post", "put", "patch", "delete"] as const;
const METHODS = ["get", ...WRITE_METHODS] as const;

type Operation = { operationId?: string; summary?: string; parameters?: any[]; requestBody?: any; responses: Record<string, any>; security?: unknown[] };
type Doc = { paths: Record<string, Partial<Record<(typeof METHODS)[number], Operation>>>; components: { schemas: Record<string, object> }; [k: string]: any };

const operationsOf = (doc: Doc) =>
  Object.entries(doc.paths).flatMap(([path, item]) => METHODS.flatMap((method) => (item[method] ? [{ path, method, op: item[method]! }] : [])));

const escape = (k: string) => k.replaceAll("~", "~0").replaceAll("/", "~1");
const pointerTo = (...keys: string[]) => keys.map((k) => `/${escape(k)}`).join("");

/** JSON pointers to every schema in the document: the components and those of the operations. */
function schemaPointers(doc: Doc): string[] {
  const found: string[] = [];
  const walk = (node: unknown, pointer: string) => {
    if (!node || typeof node !== "object") return;
    for (const [key, value] of Object.entries(node)) {
      if (key === "schema") found.push(`${pointer}/schema`);
      else if (key !== "example" && key !== "examples") walk(value, `${pointer}/${escape(key)}`);
    }
  };
  walk(doc.paths, "/paths");
  return [...Object.keys(doc.components.schemas).map((name) => `/components/schemas/${name}`), ...found];
}

describe("the OpenAPI document", () => {
  let api: Api;
  let doc: Doc;
  beforeAll(async () => {
    api = await startApi(prefix, { ADMIN_USER: "ops", ADMIN_PASSWORD: "s3cret-pass" });
    doc = (await request(api.url, "GET", "/openapi.json")).body;
  });
  afterAll(() => api.close());

  it("serves an OpenAPI 3.1 document built from the validating schemas, and a page to read it", async () => {
    expect(doc.openapi).toBe("3.1.0");
    const { $id: _id, ...registration } = JSON.parse(JSON.stringify(ZRegistration));
    expect(doc.components.schemas.Registration).toEqual(registration);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/registrations", "/products", "/products/{id}", "/jobs/{id}"]));
    const page = await request(api.url, "GET", "/docs");
    expect(page.status).toBe(200);
    expect(page.text).toContain("swagger-ui-bundle.js");
    expect((await request(api.url, "GET", "/docs/assets/swagger-ui-bundle.js")).status).toBe(200);
  });

  it("is valid OpenAPI 3.1 and describes the operational routes", () => {
    // The OpenAPI Initiative's own schema of 3.1 documents (spec.openapis.org/oas/3.1/schema/2022-10-07).
    // Ajv resolves its "$dynamicRef": "#meta" to the document's root rather than to the one
    // "$dynamicAnchor": "meta" ($defs/schema); with no other dialect they are the same $ref.
    const text = readFileSync(new URL("./fixtures/openapi-3.1.schema.json", import.meta.url), "utf8");
    const oas = JSON.parse(text.replaceAll('"$dynamicRef": "#meta"', '"$ref": "#/$defs/schema"')) as object;
    const validate = new Ajv2020({ allErrors: true, strict: false, validateFormats: false }).compile(oas);
    expect(validate(doc), JSON.stringify(validate.errors, null, 1)).toBe(true);
    // What that schema leaves to the spec's prose: a Media Type Object has no description.
    for (const { path, method, op } of operationsOf(doc)) {
      for (const [type, media] of Object.entries({ ...op.requestBody?.content })) {
        expect(Object.keys(media as object).filter((k) => !["schema", "example", "examples"].includes(k)), `${method} ${path} ${type}`).toEqual([]);
      }
    }
    expect(doc.paths["/products/bulk"]!.post!.requestBody.description).toBe("one BulkLine per line");
    for (const path of ["/healthz", "/readyz", "/metrics", "/jobs/{id}", "/openapi.json", "/docs", "/admin/queues"]) {
      expect(doc.paths[path]?.get?.summary, path).toEqual(expect.any(String));
    }
    expect(doc.paths["/readyz"]!.get!.responses["503"].content["application/problem+json"]).toBeDefined();
    expect((doc.components.schemas.Product as any).properties.slogan.anyOf[0].pattern).toBe("^[^\\u0000\\uD800-\\uDFFF]*$");
  });

  it("every schema in it compiles in Ajv strict mode, each component given once and $ref'd elsewhere", () => {
    const ajv = new Ajv2020({ strict: true, allErrors: true });
    addFormats(ajv);
    // The document's own fields are no JSON Schema keywords: known to Ajv, they check nothing.
    ajv.addVocabulary(Object.keys(doc));
    ajv.addSchema(doc, "openapi.json");
    const pointers = schemaPointers(doc);
    expect(pointers.length).toBeGreaterThan(50);
    for (const pointer of pointers) expect(ajv.getSchema(`openapi.json#${pointer}`), pointer).toBeTypeOf("function");
    expect(JSON.stringify(doc)).not.toContain('"$id"');
    expect(JSON.stringify(doc.components.schemas.BulkLine)).toContain('"$ref":"#/components/schemas/Product"');
  });

  it("names every operation, sets servers, and documents each kind of route's statuses", () => {
    expect(doc.servers).toEqual([{ url: "/", description: expect.any(String) }]);
    const ids = operationsOf(doc).map(({ op }) => op.operationId);
    expect(ids.every((id) => typeof id === "string" && /^[a-z][A-Za-z]+$/.test(id)), ids.join()).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    const statuses = (op: Operation) => Object.keys(op.responses);
    for (const { path, method, op } of operationsOf(doc)) {
      const where = `${method.toUpperCase()} ${path}`;
      // Node's parser refuses malformed requests, slow ones, huge headers before any route.
      expect(statuses(op), where).toContain("4XX");
      // Load shedding spares only the probes and /metrics, which answers 503 itself in cluster mode.
      if (!["/healthz"].includes(path)) expect(statuses(op), where).toContain("503");
      if (WRITE_METHODS.includes(method as never)) {
        expect(statuses(op), where).toEqual(expect.arrayContaining(["202", "400", "401", "403", "409", "422", "429", "503"]));
        if (op.requestBody) expect(statuses(op), where).toEqual(expect.arrayContaining(["413", "415"]));
        const key = op.parameters!.find((p) => p.name === "Idempotency-Key");
        expect(key.schema, where).toMatchObject({ minLength: 1, maxLength: 255, pattern: expect.any(String) });
        const pattern = new RegExp(key.schema.pattern as string);
        expect(pattern.test("order-42 ~!")).toBe(true);
        expect(pattern.test("caf\u00e9")).toBe(false);
      } else if (path.startsWith("/products")) {
        expect(statuses(op), where).toEqual(expect.arrayContaining(["200", "304", "400"]));
        expect(op.parameters!.map((p) => p.name), where).toContain("If-None-Match");
      }
    }
    const job = doc.paths["/jobs/{id}"]!.get!;
    expect(statuses(job)).toEqual(expect.arrayContaining(["200", "400", "404", "503"]));
    const id = new RegExp(job.parameters!.find((p) => p.name === "id").schema.pattern);
    const uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
    for (const ok of [`reg-${uuid}`, `reg-${uuid}.0`, `prd-${uuid}.17`, `blk-${uuid}`]) expect(id.test(ok), ok).toBe(true);
    for (const no of [`blk-${uuid}.1`, `mnt-${uuid}`, `reg-${uuid}.`, "reg-1"]) expect(id.test(no), no).toBe(false);
  });

  it("passes `redocly lint` with the committed rules", () => {
    const dir = mkdtempSync(join(tmpdir(), "ingest-openapi-"));
    try {
      const file = join(dir, "openapi.json");
      writeFileSync(file, JSON.stringify(doc));
      const lint = spawnSync("npx", ["--no-install", "redocly", "lint", file, "--config", join(ROOT, "redocly.yaml"), "--format", "json"], {
        cwd: ROOT,
        encoding: "utf8",
        env: { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" },
        timeout: 120_000,
      });
      expect(lint.error).toBeUndefined();
      const report = JSON.parse(lint.stdout.slice(lint.stdout.indexOf("{"))) as { totals: Record<string, number>; problems: unknown[] };
      expect(report.problems, lint.stderr).toEqual([]);
      expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
      expect(lint.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 130_000);

  it("each write's example, sent as Swagger UI's Try it out pre-fills it, is accepted (202)", async () => {
    const ajv = new Ajv2020({ strict: true });
    addFormats(ajv);
    ajv.addVocabulary(Object.keys(doc));
    ajv.addSchema(doc, "openapi.json");
    const writes = operationsOf(doc).filter(({ method }) => WRITE_METHODS.includes(method as never));
    expect(writes.map(({ op }) => op.operationId).sort()).toEqual(["bulkProducts", "createProduct", "createRegistration", "deleteProduct", "patchProduct", "replaceProduct"]);
    for (const { path, method, op } of writes) {
      const where = `${op.operationId}`;
      // Path parameters and required headers carry an example; optional headers are left empty.
      const url = path.replace(/\{(\w+)\}/g, (_m, name: string) => {
        const param = op.parameters!.find((p) => p.in === "path" && p.name === name);
        expect(param?.example, `${where}: example of ${name}`).toBeDefined();
        return encodeURIComponent(String(param.example));
      });
      const headers: Record<string, string> = {};
      for (const p of op.parameters ?? []) if (p.in === "header" && p.required) headers[p.name] = String(p.example);
      let body: string | undefined;
      if (op.requestBody) {
        const [type, media] = Object.entries(op.requestBody.content as Record<string, { schema: object; example?: unknown }>)[0]!;
        expect(media.example, `${where}: example body`).toBeDefined();
        const valid = ajv.getSchema(`openapi.json#${pointerTo("paths", path, method, "requestBody", "content", type, "schema")}`)!;
        expect(valid(media.example), `${where}: ${JSON.stringify(valid.errors)}`).toBe(true);
        headers["content-type"] = type;
        body = typeof media.example === "string" ? media.example : JSON.stringify(media.example);
      }
      const r = await request(api.url, method.toUpperCase(), url, { body, headers });
      expect(r.status, `${where}: ${r.text}`).toBe(202);
      // A batch answers 202 with its invalid lines listed: the example has none.
      if (op.operationId === "bulkProducts") expect(r.body).toMatchObject({ accepted: 2, invalid: 0 });
      expect(r.body.jobId).toMatch(new RegExp(doc.paths["/jobs/{id}"]!.get!.parameters![0].schema.pattern));
    }
  });
});

describe("the statuses the API answers are the documented ones", () => {
  const SECRET = "a-test-secret-that-is-long-enough-for-hs256";
  let open: Api;
  let guarded: Api;
  let doc: Doc;
  beforeAll(async () => {
    open = await startApi(`${prefix.slice(0, -1)}-open}`, { ADMIN_USER: "ops", ADMIN_PASSWORD: "s3cret-pass", BODY_LIMIT_BYTES: "1024" });
    guarded = await startApi(`${prefix.slice(0, -1)}-guarded}`, { JWT_SECRET: SECRET, RATE_LIMIT_PER_MIN: "2" });
    doc = (await request(open.url, "GET", "/openapi.json")).body;
  });
  afterAll(async () => {
    await open.close();
    await guarded.close();
  });

  it("each refusal and answer provoked here is among its operation's responses", async () => {
    const token = (scope: string) =>
      new SignJWT({ sub: "docs", scope }).setProtectedHeader({ alg: "HS256" }).setExpirationTime("5m").sign(new TextEncoder().encode(SECRET));
    const product = { name: "Doc", category: "c", default_price: "1.00" };
    const big = { ...product, description: "x".repeat(2_000) };
    const etag = (await request(open.url, "GET", "/products?count=1")).headers.get("etag")!;
    const products = await token("products:write");
    const cases: [string, string, string, Promise<{ status: number }>][] = [
      ["get", "/jobs/{id}", "bad waitMs", request(open.url, "GET", "/jobs/reg-0f8fad5b-d9cb-469f-a165-70867728950e?waitMs=soon")],
      ["get", "/jobs/{id}", "bad percent-encoding", request(open.url, "GET", "/jobs/%E0%A4%A")],
      ["get", "/jobs/{id}", "unknown", request(open.url, "GET", "/jobs/reg-0f8fad5b-d9cb-469f-a165-70867728950e")],
      ["get", "/products", "bad count", request(open.url, "GET", "/products?count=0")],
      ["get", "/products", "If-None-Match", request(open.url, "GET", "/products?count=1", { headers: { "if-none-match": etag } })],
      ["get", "/products/{id}", "bad id", request(open.url, "GET", "/products/%E0%A4%A")],
      ["get", "/products/{id}", "unknown", request(open.url, "GET", "/products/999999999")],
      ["get", "/products/{id}/styles", "bad id", request(open.url, "GET", "/products/0/styles")],
      ["get", "/admin/queues", "no credentials", request(open.url, "GET", "/admin/queues")],
      ["post", "/registrations", "invalid", request(open.url, "POST", "/registrations", { json: { email: "nobody" } })],
      ["post", "/registrations", "not JSON", request(open.url, "POST", "/registrations", { body: "{", headers: { "content-type": "application/json" } })],
      ["post", "/products", "too large", request(open.url, "POST", "/products", { json: big })],
      ["post", "/products", "wrong type", request(open.url, "POST", "/products", { body: "x", headers: { "content-type": "text/plain" } })],
      ["put", "/products/{id}", "bad id", request(open.url, "PUT", "/products/%E0%A4%A", { json: product })],
      ["delete", "/products/{id}", "bad Idempotency-Key", request(open.url, "DELETE", "/products/1", { headers: { "idempotency-key": "" } })],
      ["post", "/products/bulk", "wrong type", request(open.url, "POST", "/products/bulk", { json: product })],
      ["post", "/products/bulk", "no valid line", request(open.url, "POST", "/products/bulk", { body: "{}\n", headers: { "content-type": "application/x-ndjson" } })],
      ["post", "/products", "no token", request(guarded.url, "POST", "/products", { json: product })],
      ["post", "/products", "wrong scope", request(guarded.url, "POST", "/products", { json: product, headers: { authorization: `Bearer ${await token("registrations:write")}` } })],
    ];
    const answered: { where: string; status: number }[] = [];
    for (const [method, path, what, reply] of cases) answered.push({ where: `${method.toUpperCase()} ${path} (${what})`, status: (await reply).status });
    // Sequential: the Idempotency-Key's second use, and the rate limit's third write.
    const key = { "idempotency-key": "docs-key" };
    const auth = { authorization: `Bearer ${products}` };
    await request(guarded.url, "PATCH", "/products/1", { json: { name: "a" }, headers: { ...key, ...auth } });
    const mismatch = await request(guarded.url, "PATCH", "/products/1", { json: { name: "b" }, headers: { ...key, ...auth } });
    answered.push({ where: "PATCH /products/{id} (key reused)", status: mismatch.status });
    const limited = await request(guarded.url, "PATCH", "/products/1", { json: { name: "c" }, headers: auth });
    answered.push({ where: "PATCH /products/{id} (rate limited)", status: limited.status });

    const expected = [400, 400, 404, 400, 304, 400, 404, 400, 401, 400, 400, 413, 415, 400, 400, 415, 400, 401, 403, 422, 429];
    expect(answered.map((a) => a.status), JSON.stringify(answered)).toEqual(expected);
    for (const { where, status } of answered) {
      const [method, path] = where.split(" ") as [string, string];
      const responses = doc.paths[path]![method.toLowerCase() as "get"]!.responses;
      expect(Object.keys(responses), `${where} answered ${status}`).toContain(String(status));
    }
  });
});
