// CPU time (user + system) from /proc, to split a drain's cost between the worker
// processes the bench started and the Redis and PostgreSQL servers, when they run on
// this machine (Linux). Anything unreadable counts as unknown, never as zero.
import { readdirSync, readFileSync } from "node:fs";

const TICKS_PER_S = 100; // USER_HZ on Linux

/** Seconds of CPU a process has used so far, or undefined when it cannot be read. */
export function cpuOf(pid) {
  try {
    // Fields after the command name (which may hold spaces) ")": utime is the 12th, stime the 13th.
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
  } catch {
    return undefined;
  }
}

/** Processes whose command name is `name` (redis-server, postgres). */
export function pidsNamed(name) {
  try {
    return readdirSync("/proc").filter((d) => /^\d+$/.test(d)).filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, "utf8").trim() === name;
      } catch {
        return false;
      }
    });
  } catch {
    return [];
  }
}

const sum = (values) => (values.length && values.every((v) => v !== undefined) ? values.reduce((a, b) => a + b, 0) : undefined);

/**
 * A snapshot of CPU seconds: the given worker pids, every local redis-server and every
 * local postgres process (server and backends). A backend that starts between two
 * snapshots counts from zero; one that exits between them is missed, so PostgreSQL's
 * figure is a floor.
 */
export function cpuSnapshot(workerPids, { postgres } = {}) {
  const byPid = (pids) => new Map(pids.map((pid) => [String(pid), cpuOf(pid)]));
  return { worker: byPid(workerPids), redis: byPid(pidsNamed("redis-server")), postgres: byPid(postgres ?? pidsNamed("postgres")) };
}

/**
 * PostgreSQL's processes that serve this database, and the ones that write its WAL and
 * pages (shared with every other database, so a busy neighbour shows there): what the
 * run's own PostgreSQL CPU is read from, rather than every postgres process.
 */
export async function postgresPidsOf(client, database) {
  const { rows } = await client.query(
    `select pid from pg_stat_activity
     where datname = $1 or backend_type in ('walwriter', 'checkpointer', 'background writer')`,
    [database],
  );
  return rows.map((r) => r.pid);
}

/** CPU seconds spent between two snapshots, per group; undefined where not measurable. */
export function cpuBetween(before, after) {
  const spent = (group) => {
    if (after[group].size === 0) return undefined;
    return sum([...after[group]].map(([pid, s]) => (s === undefined ? undefined : s - (before[group].get(pid) ?? 0))));
  };
  return { worker: spent("worker"), redis: spent("redis"), postgres: spent("postgres") };
}
