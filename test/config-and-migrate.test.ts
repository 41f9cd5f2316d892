import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { migrateDatabase } from "@ingest/db";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import type { HandlerMap } from "../apps/worker/src/handlers/index.js";
import { HANDLERS } from "../apps/worker/src/handlers/index.js";
import { ROOT, testEnv } from "./support/harness.js";

const { databaseUrl } = testEnv("config");

describe("configuration is validated once at start", () => {
  const start = (app: string, env: Record<string, string>) =>
    spawnSync(process.execPath, [join(ROOT, `apps/${app}/dist/index.js`)], {
      env: { PATH: process.env.PATH, ...env },
      encoding: "utf8",
      timeout: 10_000,
    });

  it.each([
    ["api", { PORT: "eighty" }, "PORT"],
    ["api", { DATABASE_URL: "mysql://x@y/z" }, "DATABASE_URL"],
    ["api", { LOG_LEVEL: "loud" }, "LOG_LEVEL"],
    ["worker", { WORKER_CONCURRENCY: "-3" }, "WORKER_CONCURRENCY"],
    ["api", { NODE_ENV: "production" }, "ADMIN_USER and ADMIN_PASSWORD are required in production"],
    ["api", { JWT_SECRET: "x".repeat(40), JWKS_URL: "https://example.invalid/jwks.json" }, "JWT_SECRET or JWKS_URL"],
    ["api", { NODE_ENV: "production", ADMIN_USER: "ops", ADMIN_PASSWORD: "x" }, "ADMIN_PASSWORD must be at least 8 characters"],
    ["api", { NODE_ENV: "production", ADMIN_USER: "ops", ADMIN_PASSWORD: "long-enough", JWT_SECRET: "" }, "JWT_SECRET is set but empty"],
    ["api", { SHED_LAG_MS: "-1" }, "SHED_LAG_MS"],
    ["api", { CORS_ORIGINS: "https://shop.example/" }, "CORS_ORIGINS"],
    ["worker", { REDIS_URL: "not a url" }, "REDIS_URL"],
    ["api", { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318", OTEL_EXPORTER_OTLP_PROTOCOL: "http/xml" }, "OTEL_EXPORTER_OTLP_PROTOCOL"],
    ["worker", { OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }, "OTEL_EXPORTER_OTLP_ENDPOINT"],
    ["worker", { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://127.0.0.1:4318/v1/traces", OTEL_TRACES_SAMPLER: "sometimes" }, "OTEL_TRACES_SAMPLER"],
    ["api", { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318", OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "10%" }, "OTEL_TRACES_SAMPLER_ARG"],
  ])("%s with a bad %j stops with a message naming the variable", (app, env, name) => {
    const res = start(app, env);
    expect(res.status).toBe(1);
    expect(res.stderr).toContain(name);
    expect(res.stderr).not.toMatch(/\n\s+at /);
  });
});

describe("migrations", () => {
  const scratch = new URL(databaseUrl);
  scratch.pathname = `${scratch.pathname}_migrate`;
  afterAll(async () => {
    const admin = new URL(databaseUrl);
    admin.pathname = "/postgres";
    const client = new pg.Client({ connectionString: admin.toString() });
    await client.connect();
    await client.query(`drop database if exists "${scratch.pathname.slice(1)}" with (force)`);
    await client.end();
  });

  it("several processes migrating one new database at once all succeed, and the schema is there once", async () => {
    const folder = join(ROOT, "migrations");
    await Promise.all(Array.from({ length: 4 }, () => migrateDatabase(scratch.toString(), folder)));
    const client = new pg.Client({ connectionString: scratch.toString() });
    await client.connect();
    const applied = await client.query("select count(*)::int as n from drizzle.__drizzle_migrations");
    const tables = await client.query(
      "select table_name from information_schema.tables where table_schema = 'public' order by table_name",
    );
    await client.end();
    expect(applied.rows[0].n).toBeGreaterThanOrEqual(1);
    expect(tables.rows.map((r) => r.table_name)).toEqual(
      expect.arrayContaining(["features", "job_ledger", "photos", "product_versions", "products", "registrations", "related", "skus", "styles"]),
    );
  });
});

describe("job definitions", () => {
  it("every job name has a handler, and leaving one out does not compile", () => {
    // @ts-expect-error a HandlerMap without "product.delete" is a type error
    const incomplete: HandlerMap = { ...HANDLERS, "product.delete": undefined };
    expect(incomplete).toBeDefined();
    expect(Object.keys(HANDLERS).sort()).toEqual(["product.create", "product.delete", "product.patch", "product.replace", "registration.create"]);
  });
});
