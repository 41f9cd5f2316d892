// The drizzle database over a pg pool whose clients drop a connection that stopped answering.
import { drizzle, NodePgSession, type NodePgDatabase } from "drizzle-orm/node-postgres";
import pg from "pg";
import * as schema from "./schema/index.js";

// $client: the pool itself, for the few statements that are prepared by name.
export type Db = NodePgDatabase<typeof schema> & { $client: pg.Pool };
export type DbHandle = { db: Db; pool: pg.Pool; close: () => Promise<void> };

// numeric comes back as a string by default, which is what prices should be;
// int8 (bigint) columns hold sequence numbers that fit in a double.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

/** Settings every session of the pool starts with (libpq's `options`). */
function sessionOptions(opts: { lockTimeoutMs?: number; genericPlans?: boolean }) {
  const settings = [
    // A lock held by something stuck fails the statement (and its job retries) instead of holding it for good.
    ...(opts.lockTimeoutMs ? [`-c lock_timeout=${opts.lockTimeoutMs}`] : []),
    // Statements prepared by name keep one plan: the hot ones take longer to plan than to run.
    ...(opts.genericPlans ? ["-c plan_cache_mode=force_generic_plan"] : []),
  ];
  return settings.length ? { options: settings.join(" ") } : {};
}

/** How much longer than the server's statement timeout the client waits for any answer. */
export const QUERY_TIMEOUT_MARGIN_MS = 5_000;
const QUERY_TIMEOUT = "Query read timeout"; // pg's message when `query_timeout` elapses

/**
 * A client that closes its connection when a statement got no answer in time. pg's own
 * `query_timeout` fails the statement but keeps the connection, whose next statements
 * then queue behind the one that never ends: behind a peer that vanished without FIN or
 * RST (a crashed host, a dropped NAT entry, a hung proxy), the pool would hand out dead
 * clients for good. Closed, the client errors out and the pool replaces it.
 */
class GuardedClient extends pg.Client {
  /** Set once the client closed its connection: released, it leaves the pool at once. */
  closed = false;

  override query(...args: any[]): any {
    const [config, values, callback] = args;
    const close = (err: unknown) => {
      if (!(err instanceof Error && err.message === QUERY_TIMEOUT)) return;
      this.closed = true;
      (this as any).connection?.stream?.destroy();
    };
    // Streams (COPY, cursors) are submittables with their own life: left alone.
    if (typeof config?.submit === "function") return (super.query as any)(...args);
    const cb = typeof values === "function" ? values : typeof callback === "function" ? callback : undefined;
    if (cb) {
      const wrapped = (err: unknown, res: unknown) => {
        close(err);
        cb(err, res);
      };
      return typeof values === "function" ? (super.query as any)(config, wrapped) : (super.query as any)(config, values, wrapped);
    }
    return ((super.query as any)(...args) as Promise<unknown>).catch((err: unknown) => {
      close(err);
      throw err;
    });
  }
}

/**
 * drizzle's transaction on a pool sends BEGIN before its try/finally: a BEGIN that fails
 * (a connection cut, or closed by the guard above after it went silent) never releases
 * its client, and a few such failures exhaust the pool for good — every later statement
 * then waits for a connection that never frees. Here the pool client is taken and
 * released around drizzle's own transaction, which then runs on that one client.
 */
const poolTransaction = NodePgSession.prototype.transaction;
NodePgSession.prototype.transaction = async function transaction(this: NodePgSession<any, any>, fn, config) {
  const owner = this as unknown as { client: unknown; dialect: never; schema: never; options: never };
  if (!(owner.client instanceof pg.Pool)) return poolTransaction.call(this, fn, config);
  const client = await owner.client.connect();
  try {
    return await poolTransaction.call(new NodePgSession(client, owner.dialect, owner.schema, owner.options), fn, config);
  } finally {
    // A client that closed its connection is dropped, not handed out again (it learns
    // that its socket is gone only on a later turn).
    client.release((client as unknown as Partial<GuardedClient>).closed ? new Error("connection closed") : undefined);
  }
} as typeof poolTransaction;

export function createDb(
  url: string,
  opts: { max?: number; applicationName?: string; statementTimeoutMs?: number; lockTimeoutMs?: number; genericPlans?: boolean } = {},
): DbHandle {
  const statementTimeoutMs = opts.statementTimeoutMs ?? 30_000;
  const pool = new pg.Pool({
    Client: GuardedClient,
    connectionString: url,
    max: opts.max ?? 10,
    application_name: opts.applicationName ?? "ingest",
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    statement_timeout: statementTimeoutMs,
    // The server ends a statement after statement_timeout; no answer a while after that
    // means the connection is dead, whatever TCP says.
    query_timeout: statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS,
    // The other side of it: a transaction whose client went silent (a partition, a hung
    // proxy) would keep its locks — a product's edits wait on them — until the server's
    // TCP keepalive noticed, hours later. The server ends it once it has sat idle as
    // long as the client would have waited for an answer.
    idle_in_transaction_session_timeout: statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS,
    // Idle connections to a host that is gone are noticed by the kernel's probes.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    ...sessionOptions(opts),
  });
  // A client losing its server (restart, pg_terminate_backend) emits "error": idle
  // ones through the pool, checked-out ones on themselves. Without listeners the
  // process would crash; the query in flight fails (and its job retries), and the
  // pool replaces the client.
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  const db = drizzle(pool, { schema });
  let closing: Promise<void> | undefined;
  return { db, pool, close: () => (closing ??= pool.end()) };
}
