// Throwaway PostgreSQL clusters of our own, from the machine's server binaries: a primary
// and a streaming replica to shut down, restart and promote under the service.
import { execFile, execFileSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { waitFor } from "./harness.js";

const exec = promisify(execFile);

/** The newest installed server's bin directory (Debian keeps them under /usr/lib/postgresql). */
function serverBin(): string | undefined {
  const fromConfig = (() => {
    try {
      return execFileSync("pg_config", ["--bindir"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    } catch {
      return undefined;
    }
  })();
  const debian = existsSync("/usr/lib/postgresql")
    ? readdirSync("/usr/lib/postgresql")
        .sort((a, b) => Number(b) - Number(a))
        .map((v) => join("/usr/lib/postgresql", v, "bin"))
    : [];
  return [fromConfig, ...debian].find((dir) => dir && existsSync(join(dir, "initdb")) && existsSync(join(dir, "pg_ctl")));
}

// PostgreSQL refuses to run as root: as root, its files and processes belong to the postgres OS user.
const asRoot = process.getuid?.() === 0;

async function run(file: string, args: string[]): Promise<string> {
  const [cmd, argv] = asRoot ? ["runuser", ["-u", "postgres", "--", file, ...args]] : [file, args];
  try {
    const { stdout } = await exec(cmd, argv, { maxBuffer: 16 << 20 });
    return stdout;
  } catch (err: any) {
    throw new Error(`${file} ${args.join(" ")} failed: ${err.stderr || err.message}`);
  }
}

/** A directory the server user can own (mkdtemp's 0700 would lock it out of its parents). */
function ownDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "ingest-pg-"));
  chmodSync(dir, 0o755);
  if (asRoot) {
    const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }));
    chownSync(dir, id("-u"), id("-g"));
  }
  return dir;
}

export class PrivatePostgres {
  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly bin: string,
  ) {}

  private get data(): string {
    return join(this.dir, "data");
  }

  private get log(): string {
    return join(this.dir, "server.log");
  }

  /** postgres://postgres@127.0.0.1:<port>/<database> */
  url(database = "postgres"): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  /** A new cluster that streaming replicas may follow, started. */
  static async primary(port: number): Promise<PrivatePostgres> {
    const bin = serverBin();
    if (!bin) throw new Error("no PostgreSQL server binaries (initdb, pg_ctl) found");
    const server = new PrivatePostgres(port, ownDir(), bin);
    await run(join(bin, "initdb"), ["-D", server.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"]);
    await server.start();
    return server;
  }

  /** A streaming replica of `primary` (a base backup, then recovery that follows it), started. */
  static async replicaOf(primary: PrivatePostgres, port: number): Promise<PrivatePostgres> {
    const server = new PrivatePostgres(port, ownDir(), primary.bin);
    await run(join(primary.bin, "pg_basebackup"), [
      "-h", "127.0.0.1", "-p", String(primary.port), "-U", "postgres", "-D", server.data, "-R", "-X", "stream", "--no-sync", "--checkpoint=fast",
    ]);
    await server.start();
    await waitFor(
      async () => {
        const { rows } = await primary.query<{ n: number }>("select count(*)::int as n from pg_stat_replication where state = 'streaming'");
        return rows[0]!.n > 0;
      },
      20_000,
      "replica streaming",
    );
    return server;
  }

  async start(): Promise<void> {
    const opts = [
      `-p ${this.port}`,
      "-c listen_addresses=127.0.0.1",
      `-c unix_socket_directories=${this.dir}`,
      "-c wal_level=replica",
      "-c max_wal_senders=5",
      "-c hot_standby=on",
      "-c fsync=off",
      "-c max_connections=100",
    ].join(" ");
    await run(join(this.bin, "pg_ctl"), ["start", "-w", "-t", "60", "-D", this.data, "-l", this.log, "-o", opts]);
  }

  /** `pg_ctl stop -m fast`: open transactions are rolled back, clients are disconnected. */
  async stop(mode: "fast" | "immediate" = "fast"): Promise<void> {
    await run(join(this.bin, "pg_ctl"), ["stop", "-w", "-t", "60", "-m", mode, "-D", this.data]);
  }

  /** Ends recovery: the replica becomes a primary that takes writes. */
  async promote(): Promise<void> {
    await run(join(this.bin, "pg_ctl"), ["promote", "-w", "-t", "60", "-D", this.data]);
  }

  async query<R extends pg.QueryResultRow>(text: string, database = "postgres"): Promise<pg.QueryResult<R>> {
    const client = new pg.Client({ connectionString: this.url(database) });
    await client.connect();
    try {
      return await client.query<R>(text);
    } finally {
      await client.end();
    }
  }

  /** Stops the server if it runs and removes its files. */
  async remove(): Promise<void> {
    await this.stop("immediate").catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
  }
}
