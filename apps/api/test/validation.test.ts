import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request, startApi, testEnv, type Api } from "../../../test/support/harness.js";

const { prefix } = testEnv("validation");
let api: Api;

beforeAll(async () => {
  api = await startApi(prefix);
});
afterAll(() => api.close());

async function enqueuedCount(): Promise<number> {
  const { registrations, products } = api.runtime.deps.producer["deps"].queues;
  const counts = await Promise.all([registrations.getJobCountByTypes(), products.getJobCountByTypes()]);
  return counts.reduce((a, b) => a + b, 0);
}

const product = { name: "Camo Onesie", category: "Jackets", default_price: "140.00" };
const long = (n: number) => "x".repeat(n);

function expectProblem(r: { status: number; headers: Headers; body: any }, status: number) {
  expect(r.status).toBe(status);
  expect(r.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect(r.body).toMatchObject({ status, type: expect.any(String), title: expect.any(String), detail: expect.any(String) });
  expect(JSON.stringify(r.body)).not.toMatch(/at .*\.(ts|js):\d+/);
}

describe("write validation: bad input gets a clear error and nothing is enqueued", () => {
  const cases: [string, string, string, unknown, string][] = [
    ["unknown field", "POST", "/registrations", { email: "a@b.co", name: "A", admin: true }, "/admin"],
    ["missing email", "POST", "/registrations", { name: "A" }, "/email"],
    ["bad email", "POST", "/registrations", { email: "not-an-email", name: "A" }, "/email"],
    ["email over 254", "POST", "/registrations", { email: `${long(250)}@b.co`, name: "A" }, "/email"],
    ["empty name", "POST", "/registrations", { email: "a@b.co", name: "" }, "/name"],
    ["blank name", "POST", "/registrations", { email: "a@b.co", name: "   " }, "/name"],
    ["name over 255", "POST", "/registrations", { email: "a@b.co", name: long(256) }, "/name"],
    ["unknown plan", "POST", "/registrations", { email: "a@b.co", name: "A", plan: "gold" }, "/plan"],
    ["marketingOptIn not boolean", "POST", "/registrations", { email: "a@b.co", name: "A", marketingOptIn: "yes" }, "/marketingOptIn"],
    ["body is an array", "POST", "/registrations", [{ email: "a@b.co", name: "A" }], "/"],
    ["product unknown field", "POST", "/products", { ...product, colour: "red" }, "/colour"],
    ["product missing category", "POST", "/products", { name: "A", default_price: "1.00" }, "/category"],
    ["product name wrong type", "POST", "/products", { ...product, name: 42 }, "/name"],
    ["product name over 255", "POST", "/products", { ...product, name: long(256) }, "/name"],
    ["description over 10000", "POST", "/products", { ...product, description: long(10_001) }, "/description"],
    ["negative price", "POST", "/products", { ...product, default_price: -1 }, "/default_price"],
    ["negative price string", "POST", "/products", { ...product, default_price: "-1.00" }, "/default_price"],
    ["non-numeric price", "POST", "/products", { ...product, default_price: "abc" }, "/default_price"],
    ["price with 3 decimals", "POST", "/products", { ...product, default_price: "1.234" }, "/default_price"],
    ["numeric price with 3 decimals", "POST", "/products", { ...product, default_price: 1.234 }, "/default_price"],
    [
      "more than 100 features",
      "POST",
      "/products",
      { ...product, features: Array.from({ length: 101 }, (_, i) => ({ feature: `f${i}`, value: "v" })) },
      "/features",
    ],
    ["feature with unknown field", "POST", "/products", { ...product, features: [{ feature: "a", value: "b", x: 1 }] }, "/features/0/x"],
    ["PUT missing fields", "PUT", "/products/5", { name: "only" }, "/category"],
    ["empty PATCH", "PATCH", "/products/5", {}, "/"],
    ["PATCH unknown field", "PATCH", "/products/5", { nope: 1 }, "/nope"],
    ["PATCH bad price", "PATCH", "/products/5", { default_price: "1,00" }, "/default_price"],
  ];

  it.each(cases)("%s → 400 with the field's path", async (_name, method, path, json, errorPath) => {
    const r = await request(api.url, method, path, { json });
    expectProblem(r, 400);
    expect(r.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ path: errorPath })]));
  });

  it("a body that is not JSON → 400", async () => {
    const r = await request(api.url, "POST", "/registrations", { body: "{not json", headers: { "content-type": "application/json" } });
    expectProblem(r, 400);
  });

  it("a wrong content type → 415", async () => {
    const r = await request(api.url, "POST", "/registrations", { body: "email=a@b.co", headers: { "content-type": "application/x-www-form-urlencoded" } });
    expectProblem(r, 415);
    const none = await request(api.url, "PUT", "/products/3", { body: JSON.stringify(product) });
    expectProblem(none, 415);
  });

  it("a body over the limit → 413", async () => {
    const r = await request(api.url, "POST", "/products", { json: { ...product, description: long(120_000) } });
    expectProblem(r, 413);
  });

  it("a malformed product id → 400, before the body is read", async () => {
    for (const id of ["abc", "0", "-1", "1.5", "99999999999", "1e3"]) {
      const r = await request(api.url, "PUT", `/products/${id}`, { body: "not even json", headers: { "content-type": "text/plain" } });
      expectProblem(r, 400);
    }
  });

  it("a malformed Idempotency-Key → 400", async () => {
    for (const key of [long(256), "caf\u00e9"]) {
      const r = await request(api.url, "POST", "/registrations", {
        json: { email: "a@b.co", name: "A" },
        headers: { "idempotency-key": key },
      });
      expectProblem(r, 400);
    }
  });

  it("unknown routes → 404 and wrong methods → 405 with Allow, as problem+json", async () => {
    expectProblem(await request(api.url, "GET", "/nope"), 404);
    const r = await request(api.url, "DELETE", "/registrations");
    expectProblem(r, 405);
    expect(r.headers.get("allow")).toContain("POST");
  });

  it("a malformed path escape → 400 problem+json, not a 500", async () => {
    expectProblem(await request(api.url, "GET", "/jobs/%E0%A4%A"), 400);
    expectProblem(await request(api.url, "PATCH", "/products/%zz", { json: { name: "x" } }), 400);
  });

  it("nothing was enqueued by any of the above", async () => {
    expect(await enqueuedCount()).toBe(0);
  });

  it("valid writes are accepted with 202, Location and the job id, prices normalised", async () => {
    const r = await request(api.url, "POST", "/products", { json: { ...product, default_price: 12.5 } });
    expect(r.status).toBe(202);
    expect(r.body).toEqual({ jobId: expect.stringMatching(/^prd-/), status: "queued", statusUrl: `/jobs/${r.body.jobId}` });
    expect(r.headers.get("location")).toBe(`/jobs/${r.body.jobId}`);
    expect(r.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(Number(r.headers.get("content-length"))).toBe(Buffer.byteLength(r.text));
    expect(r.headers.get("x-content-type-options")).toBe("nosniff");
    const job = await api.runtime.deps.producer["deps"].queues.products.getJob(r.body.jobId);
    expect(job?.data.payload).toEqual({ product: { ...product, default_price: "12.50" } });
    const status = await request(api.url, "GET", `/jobs/${r.body.jobId}`);
    expect(status.status).toBe(200);
    expect(status.body).toMatchObject({ id: r.body.jobId, type: "product.create", state: "queued", attempts: 0 });
  });

  it("GET /jobs/:id of an unknown id → 404; a bad waitMs → 400", async () => {
    expectProblem(await request(api.url, "GET", "/jobs/prd-00000000-0000-4000-8000-000000000000"), 404);
    expectProblem(await request(api.url, "GET", "/jobs/whatever"), 404);
    expectProblem(await request(api.url, "GET", "/jobs/prd-00000000-0000-4000-8000-000000000000?waitMs=20000"), 400);
  });
});
