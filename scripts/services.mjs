// Finds (or starts) PostgreSQL and Redis for `npm start` / `npm test`.
// It runs before `npm install`, so it may only use node: built-ins.
//   node scripts/services.mjs up    prints DATABASE_URL=... / REDIS_URL=... (embedded servers keep running)
//   node scripts/services.mjs down  stops the embedded servers under .data/ if they are running
import { execFile, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { connect } from "node:net";
import { delimiter, dirname, join, relative, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const DEFAULTS = { postgres: "127.0.0.1:5432", redis: "127.0.0.1:6379" };
const EMBEDDED_PORTS = { postgres: 54329, redis: 63799 };
const OR_ELSE = "or run `docker compose up -d postgres redis`, or set";

/** `defaults` and `ports` exist so tests can exercise the embedded path without touching real servers. */
export async function ensureServices({ root, env = process.env, log = console.log, defaults = {}, ports = {} }) {
  if (!root) throw new Error("ensureServices: `root` is required");
  const paths = dataPaths(root);
  const probe = { ...DEFAULTS, ...defaults };
  const port = { ...EMBEDDED_PORTS, ...ports };
  const results = await Promise.allSettled([
    resolvePostgres({ env, probe: probe.postgres, port: port.postgres, paths, log }),
    resolveRedis({ env, probe: probe.redis, port: port.redis, paths, log }),
  ]);
  const found = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const stop = async () => {
    const failures = (await Promise.allSettled(found.map((s) => s.stop?.()))).filter((r) => r.status === "rejected");
    if (failures.length) throw failures[0].reason;
  };
  const failed = results.find((r) => r.status === "rejected");
  if (failed) {
    await stop().catch(() => {}); // don't leave half an environment running behind an exception
    throw failed.reason;
  }
  const [pg, redis] = found;
  return {
    env: { DATABASE_URL: pg.url, REDIS_URL: redis.url },
    started: found.filter((s) => s.stop).map((s) => s.name),
    stop,
    describe: found.map((s) => s.line),
  };
}

/** Stops whatever embedded servers run under <root>/.data; returns the names of those it stopped. */
export async function stopEmbedded({ root, log = console.log }) {
  const paths = dataPaths(root);
  const stopped = [];
  const bin = fs.existsSync(join(paths.pgData, "PG_VERSION")) && pickPgBin(paths.pgData);
  if (bin && (await stopPostgres(bin, pgExec(paths), paths))) stopped.push("PostgreSQL");
  if (await stopRedis(paths)) stopped.push("Redis");
  for (const name of stopped) log(`${name}: stopped the embedded server`);
  return stopped.map((name) => name.toLowerCase());
}

async function resolvePostgres({ env, probe, port, paths, log }) {
  const name = "postgres";
  if (env.DATABASE_URL) return { name, url: env.DATABASE_URL, line: "PostgreSQL: DATABASE_URL from environment" };
  if (await answers(probe)) return { name, url: `postgres://postgres@${probe}/ingest`, line: `PostgreSQL: existing server at ${probe}` };
  const url = `postgres://postgres@127.0.0.1:${port}/ingest`;
  const where = `PostgreSQL: embedded at 127.0.0.1:${port} (${relative(paths.root, paths.pgData)})`;
  if (await answers(`127.0.0.1:${port}`)) return { name, url, line: `${where}, already running` };

  const bin = pickPgBin(paths.pgData);
  if (!bin) {
    throw new Error(`PostgreSQL is not reachable at ${probe} and no PostgreSQL server binaries were found. Install PostgreSQL ` +
      `(Debian/Ubuntu: sudo apt-get install postgresql; macOS: brew install postgresql@16), ${OR_ELSE} DATABASE_URL.`);
  }
  for (const dir of [paths.pgData, paths.run]) fs.mkdirSync(dir, { recursive: true });
  fs.closeSync(fs.openSync(paths.pgLog, "a")); // the server user appends to it, so it must exist to be chowned
  const exec = pgExec(paths, { prepare: true });
  if (process.getuid?.() === 0) {
    // chown is not enough when a parent directory (a 0700 home or mkdtemp dir) locks the postgres user out.
    await exec("test", ["-w", paths.pgData]).catch(() => {
      throw new Error(`The postgres OS user cannot write ${paths.pgData}: a parent directory is closed to it. ` +
        `Make the parents traversable (chmod o+x), run as a normal user, ${OR_ELSE} DATABASE_URL.`);
    });
  }
  if (!fs.existsSync(join(paths.pgData, "PG_VERSION"))) {
    log(`PostgreSQL: initialising ${paths.pgData} (first run)`);
    await exec(join(bin, "initdb"), ["-D", paths.pgData, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"]);
  }
  // Socket paths are capped at ~104 bytes; the URL uses TCP anyway, so a very deep root just goes without one.
  const socketDir = join(paths.run, `.s.PGSQL.${port}`).length < 100 ? paths.run : "";
  const serverOpts = `-p ${port} -c listen_addresses=127.0.0.1 -k ${shq(socketDir)}`; // pg_ctl passes -o through /bin/sh
  log(`PostgreSQL: starting the embedded server on 127.0.0.1:${port}`);
  try {
    await exec(join(bin, "pg_ctl"), ["start", "-w", "-D", paths.pgData, "-l", paths.pgLog, "-o", serverOpts]);
  } catch (e) {
    throw new Error(`PostgreSQL failed to start: ${e.message.trim()}\n--- ${paths.pgLog} ---\n${tail(paths.pgLog)}`);
  }
  return { name, url, line: `${where}, started`, stop: () => stopPostgres(bin, exec, paths) };
}

async function stopPostgres(bin, exec, paths) {
  // `status` first: a postmaster.pid left behind by a crash would make `stop` fail although nothing runs.
  const running = await exec(join(bin, "pg_ctl"), ["status", "-D", paths.pgData]).then(() => true, () => false);
  if (running) await exec(join(bin, "pg_ctl"), ["stop", "-w", "-m", "fast", "-D", paths.pgData]);
  return running;
}

// PostgreSQL refuses to run as root, so as root the cluster belongs to the "postgres" OS user.
function pgExec(paths, { prepare = false } = {}) {
  const opts = { cwd: paths.data, maxBuffer: 16 << 20 };
  if (process.getuid?.() !== 0) return (file, args) => run(file, args, opts);
  const id = (flag) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }));
  let uid, gid;
  try {
    [uid, gid] = [id("-u"), id("-g")];
  } catch {
    throw new Error("Running as root, but PostgreSQL refuses to run as root and there is no `postgres` OS user to run it as. " +
      `Create one (sudo useradd --system --user-group postgres), run as a normal user, ${OR_ELSE} DATABASE_URL.`);
  }
  if (prepare) for (const file of [paths.pgData, paths.run, paths.pgLog]) fs.chownSync(file, uid, gid);
  const runuser = findBin("runuser", ["/usr/sbin", "/sbin", ...pathDirs()]);
  return (file, args) => runuser
    ? run(runuser, ["-u", "postgres", "--", file, ...args], opts)
    : run("su", ["postgres", "-s", "/bin/sh", "-c", [file, ...args].map(shq).join(" ")], opts);
}

/** First directory with initdb + pg_ctl; for an existing cluster, the first of the cluster's major version. */
function pickPgBin(pgData) {
  const newestFirst = (base, prefix) => {
    const version = (n) => Number(n.match(/\d+(\.\d+)?/)?.[0] ?? 0);
    if (!fs.existsSync(base)) return [];
    return fs.readdirSync(base).filter((n) => n.startsWith(prefix)).sort((a, b) => version(b) - version(a)).map((n) => join(base, n, "bin"));
  };
  const dirs = [
    ...pathDirs(), output("pg_config", ["--bindir"]),
    ...newestFirst("/usr/lib/postgresql", ""), "/usr/local/pgsql/bin",
    ...newestFirst("/opt/homebrew/opt", "postgresql"), ...newestFirst("/usr/local/opt", "postgresql"),
  ].filter((dir) => dir && fs.existsSync(join(dir, "initdb")) && fs.existsSync(join(dir, "pg_ctl")));
  const versionFile = join(pgData, "PG_VERSION");
  if (!fs.existsSync(versionFile) || dirs.length === 0) return dirs[0];
  // A cluster only starts with the major version that created it, which need not be the newest one installed.
  const want = fs.readFileSync(versionFile, "utf8").trim();
  const major = (dir) => output(join(dir, "pg_ctl"), ["--version"]).match(/\)\s+(\d+)/)?.[1];
  const match = dirs.find((dir) => major(dir) === want);
  if (match) return match;
  throw new Error(`${pgData} was created by PostgreSQL ${want}, but only other versions were found (${dirs.join(", ")}). ` +
    `Install PostgreSQL ${want}, or delete ${pgData} to re-create it (its data is lost).`);
}

async function resolveRedis({ env, probe, port, paths, log }) {
  const name = "redis";
  if (env.REDIS_URL) return { name, url: env.REDIS_URL, line: "Redis: REDIS_URL from environment" };
  if (await answers(probe, "PING\r\n")) return { name, url: `redis://${probe}`, line: `Redis: existing server at ${probe}` };
  const url = `redis://127.0.0.1:${port}`;
  const where = `Redis: embedded at 127.0.0.1:${port} (${relative(paths.root, paths.redisDir)})`;
  if (await answers(`127.0.0.1:${port}`, "PING\r\n")) return { name, url, line: `${where}, already running` };

  const bin = findBin("redis-server", [...pathDirs(), "/usr/bin", "/usr/local/bin", "/opt/homebrew/bin"]);
  if (!bin) {
    throw new Error(`Redis is not reachable at ${probe} and no redis-server binary was found. Install Redis ` +
      `(Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis), ${OR_ELSE} REDIS_URL.`);
  }
  fs.mkdirSync(paths.redisDir, { recursive: true });
  // A config file rather than argv: redis re-parses argv as config text, which breaks on paths with spaces.
  const q = JSON.stringify; // redis config understands the same double-quoted escapes
  fs.writeFileSync(paths.redisConf, [
    "# Written by scripts/services.mjs on every start; edit the script, not this file.",
    `port ${port}`, "bind 127.0.0.1", `dir ${q(paths.redisDir)}`,
    "appendonly yes", "appendfsync everysec", 'save ""', // the AOF is the persistence; RDB snapshots would only add I/O
    "maxmemory-policy noeviction", // a job queue must fail loudly rather than silently lose keys
    "daemonize yes", `pidfile ${q(paths.redisPid)}`, `logfile ${q(paths.redisLog)}`, "",
  ].join("\n"));
  log(`Redis: starting the embedded server on 127.0.0.1:${port}`);
  try {
    await run(bin, [paths.redisConf], { cwd: paths.data });
  } catch (e) {
    throw new Error(`redis-server failed to start: ${e.message.trim()}\n--- ${paths.redisLog} ---\n${tail(paths.redisLog)}`);
  }
  // The daemonised child only listens after the launcher has exited, so wait until it answers.
  if (!(await waitFor(() => answers(`127.0.0.1:${port}`, "PING\r\n"), 15_000))) {
    await stopRedis(paths).catch(() => {});
    throw new Error(`redis-server did not answer on 127.0.0.1:${port} within 15 s\n--- ${paths.redisLog} ---\n${tail(paths.redisLog)}`);
  }
  return { name, url, line: `${where}, started`, stop: () => stopRedis(paths) };
}

async function stopRedis(paths) {
  const pid = Number(fs.existsSync(paths.redisPid) && fs.readFileSync(paths.redisPid, "utf8").trim());
  if (!pid || !alive(pid)) return false;
  // After a reboot a stale pidfile can name an unrelated process; on Linux, make sure it is redis.
  if (fs.existsSync(`/proc/${pid}/cmdline`) && !fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("redis")) return false;
  // Redis treats SIGTERM as SHUTDOWN (the AOF is flushed) and this needs neither redis-cli nor the port.
  process.kill(pid, "SIGTERM");
  if (!(await waitFor(() => !alive(pid), 15_000))) throw new Error(`redis-server (pid ${pid}) did not exit within 15 s`);
  return true;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return e.code === "EPERM";
  }
  // A daemon's exit leaves a zombie until init reaps it, which some container inits do only every second or two.
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ").pop()?.[0] !== "Z";
  } catch {
    return true; // no /proc (macOS): kill(0) is all we can know
  }
}

function dataPaths(root) {
  const data = join(resolve(root), ".data");
  const at = (name) => join(data, name);
  return { root: resolve(root), data, pgData: at("postgres"), run: at("run"), pgLog: at("postgres.log"),
    redisDir: at("redis"), redisConf: at("redis.conf"), redisPid: at("redis.pid"), redisLog: at("redis.log") };
}

/** Connects within 500 ms; with `send`, the first reply line must be +PONG (a Redis that wants AUTH does not count). */
function answers(hostPort, send) {
  const i = hostPort.lastIndexOf(":");
  const host = hostPort.slice(0, i).replace(/^\[|\]$/g, "");
  return new Promise((done) => {
    const socket = connect({ host, port: Number(hostPort.slice(i + 1)), timeout: 500 });
    let reply = "";
    const finish = (ok) => (socket.destroy(), done(ok));
    socket.on("timeout", () => finish(false)).on("error", () => finish(false)).on("close", () => finish(false));
    socket.on("connect", () => (send ? socket.write(send) : finish(true)));
    socket.on("data", (chunk) => {
      reply += chunk;
      if (reply.includes("\r\n")) finish(reply.startsWith("+PONG"));
    });
  });
}

async function waitFor(condition, ms) {
  for (const deadline = Date.now() + ms; ; await sleep(100)) {
    if (await condition()) return true;
    if (Date.now() > deadline) return false;
  }
}

const pathDirs = () => (process.env.PATH ?? "").split(delimiter).filter(Boolean);
const findBin = (name, dirs) => dirs.map((dir) => join(dir, name)).find((file) => fs.existsSync(file));
const output = (file, args) => {
  try {
    return execFileSync(file, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return ""; // missing or broken tool: treat as "not found"
  }
};
const shq = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;
const tail = (file) => (fs.existsSync(file) ? fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-20).join("\n") : "(no log)");

if (process.argv[1] && import.meta.url === pathToFileURL(fs.realpathSync(process.argv[1])).href) {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
  try {
    if (process.argv[2] === "up") {
      // Progress goes to stderr so that stdout is only KEY=value lines a caller can eval or append to a .env.
      const services = await ensureServices({ root, log: console.error });
      for (const line of services.describe) console.error(line);
      console.log(`DATABASE_URL=${services.env.DATABASE_URL}\nREDIS_URL=${services.env.REDIS_URL}`);
    } else if (process.argv[2] === "down") {
      if ((await stopEmbedded({ root, log: console.error })).length === 0) console.error("No embedded servers were running.");
    } else {
      console.error("usage: node scripts/services.mjs up|down");
      process.exitCode = 2;
    }
  } catch (e) {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 1;
  }
}
