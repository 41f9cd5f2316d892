// The fault proxy the network-fault tests rely on: each mode does what it claims.
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FaultProxy } from "./support/fault-proxy.js";
import { waitFor } from "./support/harness.js";

/** An echo server that prefixes each reply with its name, to tell upstreams apart. */
async function echo(name: string): Promise<{ server: Server; port: number; open: Set<Socket> }> {
  const open = new Set<Socket>();
  const server = createServer((s) => {
    open.add(s);
    s.on("close", () => open.delete(s));
    s.on("error", () => undefined);
    s.on("data", (d) => s.write(`${name}:${d}`));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port, open };
}

/** A client that collects what it receives and how it ended. */
async function client(port: number) {
  const s = connect({ port, host: "127.0.0.1" });
  let got = "";
  let closed: "reset" | "closed" | undefined;
  s.on("data", (d) => (got += d));
  s.on("error", (err: NodeJS.ErrnoException) => void (closed = err.code === "ECONNRESET" ? "reset" : "closed"));
  s.on("close", () => void (closed ??= "closed"));
  await new Promise<void>((resolve) => s.once("connect", () => resolve()));
  return { s, got: () => got, closed: () => closed };
}

const quiet = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("fault proxy", () => {
  let a: Awaited<ReturnType<typeof echo>>;
  let b: Awaited<ReturnType<typeof echo>>;
  let proxy: FaultProxy;
  beforeAll(async () => {
    [a, b] = await Promise.all([echo("a"), echo("b")]);
    proxy = await FaultProxy.start({ host: "127.0.0.1", port: a.port });
  });
  afterAll(async () => {
    await proxy.close();
    a.server.close();
    b.server.close();
  });

  it("passes bytes both ways, and delays each direction by the latency it is given", async () => {
    proxy.pass();
    const c = await client(proxy.port);
    c.s.write("1");
    await waitFor(() => c.got() === "a:1", 2_000, "echo");
    proxy.set({ kind: "latency", ms: 150 });
    const started = performance.now();
    c.s.write("2");
    await waitFor(() => c.got() === "a:1a:2", 2_000, "delayed echo");
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    proxy.pass();
    c.s.destroy();
  });

  it("a stall holds bytes without closing anything, then delivers them in order", async () => {
    const c = await client(proxy.port);
    proxy.set({ kind: "stall" });
    c.s.write("x");
    c.s.write("y");
    await quiet(300);
    expect(c.got()).toBe("");
    expect(c.closed()).toBeUndefined();
    proxy.pass();
    await waitFor(() => c.got().replaceAll("a:", "") === "xy", 2_000, "held bytes");
    c.s.destroy();
  });

  it("a reset ends every open connection with RST on both sides", async () => {
    const c = await client(proxy.port);
    c.s.write("r");
    await waitFor(() => c.got() === "a:r" && a.open.size > 0, 2_000, "connected");
    proxy.resetAll();
    await waitFor(() => c.closed() === "reset", 2_000, "client reset");
    await waitFor(() => a.open.size === 0, 2_000, "upstream side closed");
  });

  it("a black hole answers nothing and closes nothing, for connections open then and accepted during it, even once it ends", async () => {
    const before = await client(proxy.port);
    proxy.set({ kind: "blackhole" });
    const during = await client(proxy.port);
    before.s.write("1");
    during.s.write("2");
    await quiet(300);
    proxy.pass();
    before.s.write("3");
    during.s.write("4");
    await quiet(300);
    for (const c of [before, during]) {
      expect(c.got()).toBe("");
      expect(c.closed()).toBeUndefined();
    }
    // Fresh connections work again.
    const after = await client(proxy.port);
    after.s.write("5");
    await waitFor(() => after.got() === "a:5", 2_000, "fresh connection");
    for (const c of [before, during, after]) c.s.destroy();
  });

  it("new connections go to a switched upstream while open ones stay where they were", async () => {
    const old = await client(proxy.port);
    proxy.setUpstream({ host: "127.0.0.1", port: b.port });
    const fresh = await client(proxy.port);
    old.s.write("o");
    fresh.s.write("f");
    await waitFor(() => old.got() === "a:o" && fresh.got() === "b:f", 2_000, "both upstreams");
    proxy.setUpstream({ host: "127.0.0.1", port: a.port });
    old.s.destroy();
    fresh.s.destroy();
  });
});
