// A TCP proxy for fault tests: forwards to an upstream and, switched at run time, adds
// latency, stalls, resets every connection or turns into a black hole.
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";

export type Upstream = { host: string; port: number };

/**
 * pass: forward at once. latency: hold each chunk `ms` in each direction. stall: hold
 * every byte, close nothing, until the mode changes (then what was held flows).
 * blackhole: accept connections, never forward or answer a byte, never close one; the
 * connections open at that moment and those accepted during it stay dead for good, as
 * behind a crashed host or a dropped NAT entry (the peer never hears of them again).
 */
export type FaultMode = { kind: "pass" } | { kind: "latency"; ms: number } | { kind: "stall" } | { kind: "blackhole" };

/** One direction of a connection: chunks in arrival order, each released at its due time. */
class Flow {
  private queue: { chunk: Buffer; due: number }[] = [];
  private timer: NodeJS.Timeout | undefined;
  // How the source side ended, to pass on once everything before it is delivered.
  private ending: "end" | "destroy" | undefined;

  constructor(
    private readonly proxy: FaultProxy,
    private readonly pair: Pair,
    private readonly to: Socket,
  ) {}

  push(chunk: Buffer): void {
    if (this.pair.dead) return;
    this.queue.push({ chunk, due: Date.now() + this.proxy.latencyMs() });
    this.pump();
  }

  finish(how: "end" | "destroy"): void {
    if (this.pair.dead) return;
    this.ending ??= how;
    this.pump();
  }

  pump(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pair.dead || this.proxy.stalled()) return;
    while (this.queue.length) {
      const wait = this.queue[0]!.due - Date.now();
      if (wait > 0) {
        this.timer = setTimeout(() => this.pump(), wait);
        return;
      }
      if (!this.to.destroyed) this.to.write(this.queue.shift()!.chunk);
      else this.queue.shift();
    }
    if (this.ending === "end") this.to.end();
    else if (this.ending === "destroy") this.to.destroy();
  }

  drop(): void {
    clearTimeout(this.timer);
    this.queue = [];
  }
}

/** A client connection and its upstream connection. */
class Pair {
  dead = false;
  readonly up: Flow;
  readonly down: Flow;

  constructor(
    proxy: FaultProxy,
    readonly client: Socket,
    readonly upstream: Socket | undefined,
  ) {
    // A connection accepted into the black hole has no upstream: nothing can reach it.
    this.down = new Flow(proxy, this, client);
    this.up = new Flow(proxy, this, upstream ?? client);
  }

  kill(): void {
    this.dead = true;
    this.up.drop();
    this.down.drop();
  }

  reset(): void {
    this.kill();
    for (const s of [this.client, this.upstream]) if (s && !s.destroyed) s.resetAndDestroy();
  }
}

export class FaultProxy {
  private mode: FaultMode = { kind: "pass" };
  private readonly pairs = new Set<Pair>();
  private constructor(
    private readonly server: Server,
    private upstream: Upstream,
  ) {}

  /** A proxy on an ephemeral port of 127.0.0.1, forwarding to `upstream`. */
  static async start(upstream: Upstream): Promise<FaultProxy> {
    // allowHalfOpen: a FIN from one side is passed on in order, not answered by the proxy.
    const server = createServer({ allowHalfOpen: true, noDelay: true });
    const proxy = new FaultProxy(server, upstream);
    server.on("connection", (client) => proxy.accept(client));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return proxy;
  }

  /** `redis://host:port` of an upstream given by URL, with the proxy in its place. */
  static upstreamOf(url: string): Upstream {
    const u = new URL(url);
    return { host: u.hostname, port: Number(u.port || 6379) };
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The upstream's URL with the proxy's address in it (credentials and path kept). */
  urlFor(upstreamUrl: string): string {
    const u = new URL(upstreamUrl);
    u.hostname = "127.0.0.1";
    u.port = String(this.port);
    return u.toString();
  }

  /** Connections accepted from now on go to this upstream; open ones stay where they are. */
  setUpstream(upstream: Upstream): void {
    this.upstream = upstream;
  }

  get current(): FaultMode {
    return this.mode;
  }

  /** Connections open now, dead ones included. */
  get connections(): number {
    return this.pairs.size;
  }

  set(mode: FaultMode): void {
    const wasStalled = this.stalled();
    this.mode = mode;
    if (mode.kind === "blackhole") for (const p of this.pairs) p.kill();
    if (wasStalled && !this.stalled()) for (const p of this.pairs) (p.up.pump(), p.down.pump());
  }

  pass(): void {
    this.set({ kind: "pass" });
  }

  /** Destroys every open connection with a TCP RST, on both sides; the mode stays. */
  resetAll(): void {
    for (const p of this.pairs) p.reset();
    this.pairs.clear();
  }

  async close(): Promise<void> {
    this.resetAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  latencyMs(): number {
    return this.mode.kind === "latency" ? this.mode.ms : 0;
  }

  stalled(): boolean {
    return this.mode.kind === "stall";
  }

  private accept(client: Socket): void {
    client.on("error", () => undefined);
    if (this.mode.kind === "blackhole") {
      const pair = new Pair(this, client, undefined);
      pair.kill();
      this.track(pair);
      return;
    }
    const upstream = connect({ ...this.upstream, allowHalfOpen: true, noDelay: true });
    upstream.on("error", () => undefined);
    const pair = new Pair(this, client, upstream);
    this.track(pair);
    // Bytes sent before the upstream answers the connect are buffered by the socket.
    client.on("data", (chunk: Buffer) => pair.up.push(chunk));
    upstream.on("data", (chunk: Buffer) => pair.down.push(chunk));
    client.on("end", () => pair.up.finish("end"));
    upstream.on("end", () => pair.down.finish("end"));
    // A side that closes without a FIN (reset, error, refused upstream) closes the other too.
    client.on("close", () => pair.up.finish("destroy"));
    upstream.on("close", () => pair.down.finish("destroy"));
  }

  private track(pair: Pair): void {
    this.pairs.add(pair);
    // A dead pair is forgotten only when the proxy closes: the black hole never lets go.
    pair.client.on("close", () => {
      if (!pair.dead) this.pairs.delete(pair);
    });
  }
}
