// A throwaway redis-server of a test's own, on a port from the test worker's block.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:net";
import { Redis } from "ioredis";
import { waitFor } from "./harness.js";

// Ports the tests hand to their servers come from below the kernel's ephemeral range
// (32768 and up on Linux), a block of its own for each test worker process. A port asked
// of the kernel (listen on 0) was often handed out again right after a server that held
// it was killed — a Redis a test restarts on its port then found another file's server
// there. Files of one worker process run one after another; the block is theirs alone.
const BLOCK = 1_000;
const FIRST_PORT = 20_000;
const BLOCKS = 12;
const poolBlock = (Number(process.env.VITEST_POOL_ID ?? process.pid) % BLOCKS) * BLOCK;
let nextOffset = Math.floor(Math.random() * BLOCK);

const bindable = (port: number) =>
  new Promise<boolean>((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });

export async function freePort(): Promise<number> {
  for (let tries = 0; tries < BLOCK; tries++) {
    const port = FIRST_PORT + poolBlock + (nextOffset++ % BLOCK);
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port in ${FIRST_PORT + poolBlock}–${FIRST_PORT + poolBlock + BLOCK - 1}`);
}

/** A throwaway redis-server of our own, to kill and restart under the service. */
export class PrivateRedis {
  private proc: ChildProcess | undefined;
  private tempDir: string | undefined;
  /**
   * With `aofDir`, every write is fsynced to an append-only file there before Redis answers;
   * with `replicaOf`, the server replicates the one on that port.
   */
  // Set once a server of ours answered on the port: a restart keeps it (URLs were handed out).
  private started = false;

  constructor(
    private portNow: number,
    private readonly opts: { aofDir?: string; replicaOf?: number; maxmemory?: string; protectedConfigs?: boolean } = {},
  ) {}

  /** The port, once started: a port found taken at the first start is exchanged for another. */
  get port(): number {
    return this.portNow;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /**
   * Starts the server and makes sure the one answering is ours: a port handed out free
   * may be taken by another test's server in the meantime (its redis-server then exits,
   * and the other one would answer for it). At the first start another port is tried.
   */
  async start(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (await this.spawnServer()) {
        this.started = true;
        return;
      }
      await this.kill();
      if (this.started || attempt >= 5) throw new Error(`private redis-server: port ${this.portNow} is taken by another server`);
      this.portNow = await freePort();
    }
  }

  /** Whether the server spawned now is the one answering on the port. */
  private async spawnServer(): Promise<boolean> {
    // Its files (a replica's full sync writes an RDB) go to a directory of its own, never the repository.
    const persistence = this.opts.aofDir
      ? ["--appendonly", "yes", "--appendfsync", "always", "--dir", this.opts.aofDir, "--maxmemory-policy", "noeviction"]
      : ["--appendonly", "no", "--dir", (this.tempDir ??= mkdtempSync(join(tmpdir(), "ingest-redis-")))];
    const replica = this.opts.replicaOf ? ["--replicaof", "127.0.0.1", String(this.opts.replicaOf)] : [];
    const memory = this.opts.maxmemory ? ["--maxmemory", this.opts.maxmemory, "--maxmemory-policy", "noeviction"] : [];
    // CONFIG SET of dir and the like, for tests that break persistence on purpose.
    if (this.opts.protectedConfigs) memory.push("--enable-protected-configs", "yes");
    const proc = spawn("redis-server", ["--port", String(this.portNow), "--bind", "127.0.0.1", "--save", "", ...persistence, ...replica, ...memory], {
      stdio: "ignore",
    });
    this.proc = proc;
    // The process id of whichever server answers, or "exited" once ours is gone.
    const answering = await waitFor(async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return "exited";
      const probe = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on("error", () => {});
      try {
        await probe.connect();
        return /^process_id:(\d+)/m.exec(await probe.info("server"))?.[1];
      } catch {
        return undefined;
      } finally {
        probe.disconnect();
      }
    }, 10_000, "private redis-server");
    return answering === String(proc.pid);
  }

  /** Freezes the server (SIGSTOP): connections stay open and nothing answers, as with a hung Redis. */
  pause(): void {
    this.proc?.kill("SIGSTOP");
  }

  resume(): void {
    this.proc?.kill("SIGCONT");
  }

  async kill(): Promise<void> {
    const proc = this.proc;
    // A process killed by a signal has signalCode set and exitCode still null.
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once("exit", resolve));
    proc.kill("SIGKILL");
    await exited;
  }

  /** Kills the server for good and removes its directory. */
  async remove(): Promise<void> {
    await this.kill();
    if (this.tempDir) rmSync(this.tempDir, { recursive: true, force: true });
  }
}
