// Connections whose peer went silent (a black hole: accepted, never answered, never
// closed) must not take the pool with them.
import { sql } from "drizzle-orm";
import { describe, expect, inject, it } from "vitest";
import { FaultProxy } from "../../../test/support/fault-proxy.js";
import { createDb, QUERY_TIMEOUT_MARGIN_MS } from "../src/client.js";

const STATEMENT_TIMEOUT_MS = 1_000;

async function behindProxy() {
  const url = new URL(inject("databaseUrl"));
  const proxy = await FaultProxy.start({ host: url.hostname, port: Number(url.port || 5432) });
  // One connection: a single leaked or stuck client is enough to stall everything.
  const handle = createDb(proxy.urlFor(url.toString()), { max: 1, statementTimeoutMs: STATEMENT_TIMEOUT_MS });
  await handle.db.execute(sql`select 1`);
  return { proxy, ...handle };
}

describe("a pool whose connection falls into a black hole", () => {
  it("gives up the silent statement and serves the next one once the path is back", async () => {
    const { proxy, db, pool } = await behindProxy();
    try {
      proxy.set({ kind: "blackhole" });
      const started = Date.now();
      await expect(db.execute(sql`select 2`)).rejects.toThrow();
      expect(Date.now() - started).toBeLessThan(STATEMENT_TIMEOUT_MS + QUERY_TIMEOUT_MARGIN_MS + 3_000);
      proxy.pass();
      expect((await db.execute<{ x: number }>(sql`select 3 as x`)).rows).toEqual([{ x: 3 }]);
    } finally {
      proxy.pass();
      await proxy.close();
      pool.end().catch(() => {});
    }
  }, 30_000);

  it("a transaction whose BEGIN goes unanswered gives its client back (drizzle's own would keep it for good)", async () => {
    const { proxy, db, pool } = await behindProxy();
    try {
      proxy.set({ kind: "blackhole" });
      await expect(db.transaction(async (tx) => tx.execute(sql`select 4`))).rejects.toThrow();
      proxy.pass();
      const rows = await db.transaction(async (tx) => (await tx.execute<{ x: number }>(sql`select 5 as x`)).rows);
      expect(rows).toEqual([{ x: 5 }]);
    } finally {
      proxy.pass();
      await proxy.close();
      pool.end().catch(() => {});
    }
  }, 30_000);
});
