import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ensureServices, stopEmbedded, type Services } from "../../scripts/services.mjs";

const quiet = () => {};

function listening(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 500 });
    const done = (ok: boolean) => (socket.destroy(), resolve(ok));
    socket.on("connect", () => done(true)).on("error", () => done(false)).on("timeout", () => done(false));
  });
}

/** Ports nothing listens on right now: held open together so they are distinct, then released. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<Server>((resolve, reject) => {
      const server = createServer().on("error", reject);
      server.listen(0, "127.0.0.1", () => resolve(server));
    })),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

function tempRoot(): string {
  const root = mkdtempSync(join(tmpdir(), "services-test-"));
  // mkdtemp makes it 0700; as root, PostgreSQL runs as the postgres user, which must be able to get in.
  chmodSync(root, 0o755);
  return root;
}

describe("ensureServices: embedded servers", () => {
  const root = tempRoot();
  let first: Services | undefined;

  afterAll(async () => {
    try {
      await first?.stop().catch(() => {});
      await stopEmbedded({ root, log: quiet }); // also catches anything a failed call left behind
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }, 60_000);

  it("starts PostgreSQL and Redis under <root>/.data, reuses them, and stops only what it started", async () => {
    // The "defaults" are free ports, so the system servers on 5432/6379 are never seen or touched.
    const [pgProbe, redisProbe, pgPort, redisPort] = await freePorts(4) as [number, number, number, number];
    const options = {
      root,
      env: {},
      log: quiet,
      defaults: { postgres: `127.0.0.1:${pgProbe}`, redis: `127.0.0.1:${redisProbe}` },
      ports: { postgres: pgPort, redis: redisPort },
    };

    first = await ensureServices(options);
    expect([...first.started].sort()).toEqual(["postgres", "redis"]);
    expect(first.env).toEqual({
      DATABASE_URL: `postgres://postgres@127.0.0.1:${pgPort}/ingest`,
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    });
    expect(first.describe).toContain(`PostgreSQL: embedded at 127.0.0.1:${pgPort} (.data/postgres), started`);
    expect(existsSync(join(root, ".data", "postgres", "PG_VERSION"))).toBe(true);

    const psql = ["-h", "127.0.0.1", "-p", String(pgPort), "-U", "postgres", "-d", "postgres", "-tAc", "select 1"];
    expect(execFileSync("psql", psql, { encoding: "utf8" }).trim()).toBe("1");
    expect(execFileSync("redis-cli", ["-p", String(redisPort), "ping"], { encoding: "utf8" }).trim()).toBe("PONG");

    const second = await ensureServices(options);
    expect(second.started).toEqual([]);
    expect(second.env).toEqual(first.env);
    expect(second.describe.every((line) => line.endsWith("already running"))).toBe(true);
    await second.stop(); // it started nothing, so this must leave both running
    expect(await listening(pgPort)).toBe(true);
    expect(await listening(redisPort)).toBe(true);

    await first.stop();
    expect(await listening(pgPort)).toBe(false);
    expect(await listening(redisPort)).toBe(false);
    expect(existsSync(join(root, ".data", "postgres", "postmaster.pid"))).toBe(false);
    expect(existsSync(join(root, ".data", "redis.pid"))).toBe(false);
  }, 120_000);
});

// Only meaningful where a PostgreSQL and a Redis already run on the standard ports (as in development).
const systemServersUp = (await listening(5432)) && (await listening(6379));

describe("ensureServices: servers found elsewhere", () => {
  it("uses DATABASE_URL and REDIS_URL as given, without probing or starting anything", async () => {
    const env = { DATABASE_URL: "postgres://u:p@db.invalid:1/x", REDIS_URL: "redis://cache.invalid:2" };
    const services = await ensureServices({ root: "/nonexistent-root", env, log: quiet });
    expect(services.env).toEqual(env);
    expect(services.started).toEqual([]);
  });

  it.skipIf(!systemServersUp)("uses the servers already answering on 5432 / 6379 and starts nothing", async () => {
    const root = tempRoot();
    try {
      const services = await ensureServices({ root, env: {}, log: quiet });
      expect(services.started).toEqual([]);
      expect(services.env).toEqual({
        DATABASE_URL: "postgres://postgres@127.0.0.1:5432/ingest",
        REDIS_URL: "redis://127.0.0.1:6379",
      });
      expect(existsSync(join(root, ".data"))).toBe(false);
      await services.stop(); // a no-op: the system servers must survive it
      expect(await listening(5432)).toBe(true);
      expect(await listening(6379)).toBe(true);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
