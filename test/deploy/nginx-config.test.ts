import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { loadEnv as loadApiEnv } from "../../apps/api/src/env.js";
import { ROOT, spawnApi, testEnv, waitFor, type ApiProcess } from "../support/harness.js";
import { findNginx } from "../support/nginx.js";
import { freePort } from "../support/private-redis.js";
import { rawHttp } from "../support/raw-http.js";

const CONF = readFileSync(join(ROOT, "deploy/nginx/nginx.conf"), "utf8");
const COMPOSE = parseYaml(readFileSync(join(ROOT, "docker-compose.yml"), "utf8"), { merge: true }) as {
  services: Record<string, any>;
};
const UPSTREAM_SERVER = /^(\s*)server api:(\d+)( [^;]*)?;$/m;

/** The block that follows `head {`, up to its matching brace. */
function block(text: string, head: string): string {
  const start = text.indexOf(`${head} {`);
  if (start < 0) throw new Error(`no "${head} {" block`);
  let depth = 0;
  for (let i = text.indexOf("{", start); i < text.length; i++) {
    if (text[i] === "{") depth++;
    else if (text[i] === "}" && --depth === 0) return text.slice(start, i + 1);
  }
  throw new Error(`unclosed "${head}" block`);
}

/**
 * The shipped config with only what ties it to Docker replaced: the upstream server
 * (the compose service name) by the given local ports, the listen port, and the log
 * and temp paths by a scratch directory. Each replacement must match exactly once, so
 * a changed config cannot leave the test checking something else.
 */
function testCopy(dir: string, listenPort: number, upstreamPorts: number[], tweaks: Array<[RegExp, string]> = []): string {
  const replace = (text: string, pattern: RegExp, by: (...groups: string[]) => string): string => {
    const count = text.match(new RegExp(pattern.source, `${pattern.flags}g`))?.length ?? 0;
    if (count !== 1) throw new Error(`expected one match of ${pattern} in nginx.conf, found ${count}`);
    return text.replace(pattern, (...args) => by(...(args as string[])));
  };
  let conf = CONF;
  conf = replace(conf, UPSTREAM_SERVER, (_, indent, _port, params) => upstreamPorts.map((p) => `${indent}server 127.0.0.1:${p}${params ?? ""};`).join("\n"));
  conf = replace(conf, /^(\s*)listen 80;$/m, (_, indent) => `${indent}listen 127.0.0.1:${listenPort};`);
  conf = replace(conf, /^error_log \S+/m, () => `error_log ${dir}/error.log`);
  conf = replace(conf, /^(\s*)access_log \/var\S+/m, (_, indent) => `${indent}access_log ${dir}/access.log`);
  for (const [pattern, by] of tweaks) conf = replace(conf, pattern, () => by);
  conf = replace(conf, /^http \{$/m, () =>
    ["http {", ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `    ${t}_temp_path ${dir}/${t};`)].join("\n"),
  );
  return conf;
}

describe("deploy/nginx/nginx.conf as written", () => {
  it("pools keep-alive connections to the API and speaks HTTP/1.1 to it without forwarding Connection", () => {
    const upstream = block(CONF, "upstream api");
    expect(upstream).toMatch(UPSTREAM_SERVER);
    expect(upstream).toMatch(/^\s*keepalive \d+;$/m);
    expect(upstream).toMatch(/max_fails=\d+ fail_timeout=\d+s/);
    // Below the API's server.keepAliveTimeout (65 s): nginx drops idle sockets first.
    const idle = Number(/keepalive_timeout (\d+)s;/.exec(upstream)?.[1]);
    expect(idle).toBeLessThan(65);
    const server = block(CONF, "server");
    expect(server).toMatch(/^\s*proxy_http_version 1\.1;$/m);
    expect(server).toMatch(/^\s*proxy_set_header Connection "";$/m);
    expect(server).toMatch(/^\s*proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;$/m);
    expect(server).toMatch(/^\s*proxy_set_header X-Forwarded-Proto \$scheme;$/m);
    expect(server).toMatch(/proxy_connect_timeout \d+s;/);
    expect(server).toMatch(/proxy_read_timeout \d+s;/);
    expect(block(CONF, "location = /nginx-health")).toMatch(/return 200/);
  });

  it("answers its own errors as problem+json, leaving the API's answers alone", () => {
    const server = block(CONF, "server");
    for (const status of [400, 404, 413, 414, 494, 500, 502, 504]) expect(server).toMatch(new RegExp(`^\\s*error_page ${status} (=\\d+ )?/\\S+;$`, "m"));
    expect(server).not.toMatch(/proxy_intercept_errors on/);
    for (const [, uri] of server.matchAll(/error_page \d+ (?:=\d+ )?(\S+);/g)) {
      const location = block(server, `location = ${uri}`);
      expect(location).toMatch(/^\s*internal;$/m);
      expect(location).toMatch(/default_type application\/problem\+json;/);
    }
  });

  it("accepts bodies up to BULK_MAX_BYTES and streams /products/bulk unbuffered", () => {
    const { BULK_MAX_BYTES } = loadApiEnv({});
    const [, size, unit] = /client_max_body_size (\d+)([km]?);/.exec(CONF) ?? [];
    expect(Number(size) * (unit === "m" ? 1024 ** 2 : unit === "k" ? 1024 : 1)).toBe(BULK_MAX_BYTES);
    const bulk = block(CONF, "location = /products/bulk");
    expect(bulk).toMatch(/proxy_request_buffering off;/);
    expect(bulk).toMatch(/proxy_pass http:\/\/api;/);
  });

  it("sits in front of the compose api replicas, which trust exactly one proxy", () => {
    const { nginx, api } = COMPOSE.services;
    expect(nginx.image).toMatch(/^nginx:/);
    expect(nginx.volumes).toContain("./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro");
    expect(nginx.ports).toEqual(["3000:80"]);
    expect(nginx.depends_on.api.condition).toBe("service_healthy");
    // The upstream names the compose service and the port the API listens on.
    expect(Number(UPSTREAM_SERVER.exec(CONF)?.[2])).toBe(Number(api.environment.PORT));
    expect(api.environment.TRUST_PROXY).toBe("1");
    expect(api.ports).toBeUndefined();
    expect(api.deploy.replicas).toBeGreaterThanOrEqual(2);
    // The merged anchor still gives the API its connection settings.
    expect(api.environment.REDIS_URL).toBe("redis://redis:6379");
  });
});

const NGINX = findNginx();
if (!NGINX) console.warn("nginx-config.test: nginx is not installed and cannot be installed here (not root or no apt-get): skipping nginx -t and the live run");

type Reply = { status: number; headers: Record<string, string | string[] | undefined>; body: string };

/** node:http rather than fetch: the client's own source address is chosen (localAddress). */
function call(port: number, method: string, path: string, opts: { headers?: Record<string, string>; body?: string; localAddress?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, method, path, headers: opts.headers, localAddress: opts.localAddress, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

/** ESTABLISHED TCP connections to the given local ports, from /proc (no ss or netstat needed). */
function establishedTo(ports: number[]): number {
  const hex = new Set(ports.map((p) => p.toString(16).toUpperCase().padStart(4, "0")));
  return readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length > 3 && f[3] === "01" && hex.has(f[2]!.split(":")[1]!)).length;
}

/** nginx from `conf`, until it answers its own health check. */
async function startNginx(dir: string, conf: string): Promise<ChildProcess> {
  const confPath = join(dir, "nginx.conf");
  writeFileSync(confPath, conf);
  const child = spawn(NGINX!, ["-p", dir, "-c", confPath, "-e", join(dir, "error.log"), "-g", `daemon off; pid ${dir}/nginx.pid;`], { stdio: "ignore" });
  const port = Number(/listen 127\.0\.0\.1:(\d+);/.exec(conf)![1]);
  await waitFor(async () => (await call(port, "GET", "/nginx-health").catch(() => undefined))?.status === 200, 10_000, "nginx to listen");
  return child;
}

async function stopNginx(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGQUIT");
  const stuck = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(stuck);
}

function scratchDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "nginx-test-"));
  chmodSync(dir, 0o755); // nginx's workers run as an unprivileged user when the test runs as root
  for (const t of ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]) {
    mkdirSync(join(dir, t));
    chmodSync(join(dir, t), 0o777);
  }
  return dir;
}

describe.skipIf(!NGINX)("nginx in front of two API processes", () => {
  const { prefix } = testEnv("nginx");
  const dir = scratchDir();
  const apis: ApiProcess[] = [];
  let apiPorts: number[] = [];
  let port = 0;
  let nginx: ChildProcess | undefined;
  let confPath = "";

  beforeAll(async () => {
    apiPorts = [await freePort(), await freePort()];
    port = await freePort();
    confPath = join(dir, "nginx.conf");
    writeFileSync(confPath, testCopy(dir, port, apiPorts));
    // Three writes a minute per client: enough to tell clients apart by address.
    for (const p of apiPorts) apis.push(await spawnApi(prefix, p, { TRUST_PROXY: "1", RATE_LIMIT_PER_MIN: "3" }));
  }, 120_000);

  afterAll(async () => {
    await stopNginx(nginx);
    await Promise.all(apis.map((a) => a.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it("nginx -t accepts the config", () => {
    const run = spawnSync(NGINX!, ["-t", "-p", dir, "-c", confPath, "-e", join(dir, "error.log"), "-g", `pid ${dir}/nginx.pid;`], { encoding: "utf8" });
    expect(run.stderr).toMatch(/syntax is ok/);
    expect(run.stderr).toMatch(/test is successful/);
    expect(run.status, run.stderr).toBe(0);
  });

  it("nginx -t refuses a broken copy (the check is not vacuous)", () => {
    const broken = join(dir, "broken.conf");
    writeFileSync(broken, readFileSync(confPath, "utf8").replace("proxy_http_version 1.1;", "proxy_http_version 1.1"));
    const run = spawnSync(NGINX!, ["-t", "-p", dir, "-c", broken, "-e", join(dir, "error.log"), "-g", `pid ${dir}/broken.pid;`], { encoding: "utf8" });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toMatch(/test failed/);
  });

  it("balances requests over both replicas, keeps connections to them open, and passes X-Request-Id through", async () => {
    nginx = await startNginx(dir, readFileSync(confPath, "utf8"));

    for (let i = 0; i < 20; i++) {
      const r = await call(port, "GET", "/healthz", { headers: { "X-Request-Id": `lb-${i}` } });
      expect(r.status).toBe(200);
      expect(r.headers["x-request-id"]).toBe(`lb-${i}`);
    }
    // Without one, nginx makes the id and the API keeps it.
    const made = await call(port, "GET", "/healthz");
    expect(made.headers["x-request-id"]).toMatch(/^[0-9a-f]{32}$/);

    const log = await waitFor(() => {
      const text = readFileSync(join(dir, "access.log"), "utf8");
      return text.split("\n").filter((l) => l.includes("GET /healthz")).length >= 21 ? text : undefined;
    }, 5_000, "the access log");
    for (const p of apiPorts) expect(log).toContain(`upstream=127.0.0.1:${p}`);
    expect(log).toContain(`request_id=${made.headers["x-request-id"]}`);
    // Idle upstream connections stay open for reuse (without keepalive nginx closes each).
    expect(establishedTo(apiPorts)).toBeGreaterThan(0);
  });

  it("the API sees each client's own address (TRUST_PROXY=1): one client's rate limit leaves another's alone", async () => {
    const post = (localAddress: string, n: number) =>
      call(port, "POST", "/registrations", {
        localAddress,
        headers: { "content-type": "application/json", "X-Forwarded-For": "198.51.100.7" },
        body: JSON.stringify({ email: `lb-${localAddress}-${n}@example.com`, name: "LB" }),
      });
    const first: number[] = [];
    for (let n = 0; n < 4; n++) first.push((await post("127.0.0.3", n)).status);
    // A spoofed X-Forwarded-For from the client does not move it to another bucket.
    expect(first).toEqual([202, 202, 202, 429]);
    expect((await post("127.0.0.4", 0)).status).toBe(202);
  });

  it("streams a bulk body larger than nginx's 1 MB default to the API", async () => {
    const line = (i: number) =>
      JSON.stringify({ op: "create", product: { name: `lb product ${i}`, slogan: "s".repeat(60), category: "lb", default_price: "10.00" } });
    const body = Array.from({ length: 9_000 }, (_, i) => line(i)).join("\n") + "\n";
    expect(body.length).toBeGreaterThan(1024 * 1024);
    const r = await call(port, "POST", "/products/bulk", { localAddress: "127.0.0.5", headers: { "content-type": "application/x-ndjson" }, body });
    expect(r.status, r.body).toBe(202);
    expect(JSON.parse(r.body).jobId).toBeTruthy();
  });

  it("a replica that stops is passed over: requests keep succeeding on the other", async () => {
    await apis[1]!.stop();
    for (let i = 0; i < 10; i++) expect((await call(port, "GET", "/healthz")).status).toBe(200);
  });
});

const expectProblem = (r: { status: number; headers: Record<string, string | string[] | undefined>; body: string }, status: number) => {
  expect(r.status, r.body).toBe(status);
  expect(r.headers["content-type"]).toBe("application/problem+json");
  expect(JSON.parse(r.body)).toMatchObject({ type: expect.stringMatching(/^\/problems\//), title: expect.any(String), status, detail: expect.any(String) });
};

describe.skipIf(!NGINX)("nginx's own errors, with an API replica that hangs and then is gone", () => {
  const dir = scratchDir();
  let port = 0;
  let nginx: ChildProcess | undefined;
  // Takes connections and never answers, like a replica stuck in a long pause.
  const held = new Set<Socket>();
  const silent = createNetServer((socket) => held.add(socket));

  beforeAll(async () => {
    port = await freePort();
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const upstream = (silent.address() as AddressInfo).port;
    // A read timeout of 1 s instead of 30 s, so the test sees the gateway time out.
    nginx = await startNginx(dir, testCopy(dir, port, [upstream], [[/^(\s*)proxy_read_timeout 30s;$/m, "        proxy_read_timeout 1s;"]]));
  }, 30_000);

  afterAll(async () => {
    await stopNginx(nginx);
    for (const socket of held) socket.destroy();
    silent.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a body over client_max_body_size: 413 problem+json before any upstream is asked", async () => {
    const r = await rawHttp(`http://127.0.0.1:${port}`, "POST /registrations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 30000000\r\n\r\n{");
    expectProblem({ ...r, body: r.text }, 413);
  });

  it("headers over nginx's buffers: 400 problem+json", async () => {
    const r = await call(port, "GET", "/products/1", { headers: { "x-filler": "a".repeat(16 * 1024) } });
    expectProblem(r, 400);
    expect(JSON.parse(r.body).type).toBe("/problems/headers-too-large");
  });

  it("a request line nginx cannot parse: 400 problem+json", async () => {
    const r = await rawHttp(`http://127.0.0.1:${port}`, "GET /products 1 2 3\r\nHost: x\r\n\r\n");
    expectProblem({ ...r, body: r.text }, 400);
    expect(JSON.parse(r.text).type).toBe("/problems/bad-request");
  });

  it("its error pages are not reachable from outside", async () => {
    const r = await call(port, "GET", "/.nginx-errors/bad-gateway");
    expectProblem(r, 404);
  });

  it("a replica that does not answer in time: 504 problem+json with Retry-After", async () => {
    const r = await call(port, "GET", "/products/1");
    expectProblem(r, 504);
    expect(r.headers["retry-after"]).toBe("2");
  });

  it("no replica to connect to: 502 problem+json with Retry-After", async () => {
    const closed = new Promise<void>((resolve) => silent.close(() => resolve()));
    for (const socket of held) socket.destroy();
    await closed;
    const r = await call(port, "POST", "/registrations", { headers: { "content-type": "application/json" }, body: "{}" });
    expectProblem(r, 502);
    expect(r.headers["retry-after"]).toBe("2");
  });
});
