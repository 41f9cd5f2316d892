// Entry point of every root npm script. Before doing anything it makes sure the
// dependencies match the lockfile and the apps are built, so a fresh clone needs
// nothing but `npm start` or `npm test`. Plain Node, no dependencies: it runs first.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { prepare, PrepareError } from "./prepare.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

function run(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, { cwd: ROOT, stdio: "inherit", ...opts });
  if (res.status !== 0) process.exit(res.status ?? 1);
}

async function services() {
  const { ensureServices } = await import("./services.mjs");
  try {
    return await ensureServices({ root: ROOT });
  } catch (err) {
    console.error(`\n${err.message}\n`);
    process.exit(1);
  }
}

/** Runs children until one exits or a signal comes; forwards SIGTERM/SIGINT to all. */
function supervise(children, onExit) {
  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    for (const c of children) if (c.exitCode === null) c.kill(signal);
  };
  process.on("SIGINT", () => stop("SIGTERM"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  // Started through a shell that does not hand the signal on (npm's `sh -c` when the
  // script does not exec), this process is orphaned instead of signalled: its parent
  // changing is the signal then.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) stop("SIGTERM");
  }, 500).unref();
  let left = children.length;
  let failed = 0;
  for (const c of children) {
    c.on("exit", (code, signal) => {
      if (!stopping) {
        console.error(`> ${c.spawnargs.slice(1).join(" ")} exited (${signal ?? code}); stopping the rest`);
        failed = code || 1;
        stop("SIGTERM");
      }
      if (--left === 0) void onExit(failed);
    });
  }
}

/** Why `port` cannot be listened on (one line naming its variable), or undefined when it can. */
function cannotListen(port, host, variable) {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once("error", (err) =>
      resolve(err.code === "EADDRINUSE"
        ? `port ${port} is already in use: stop what listens there, or set ${variable} to a free port`
        : `cannot listen on port ${port} (${variable}): ${err.message}`),
    );
    probe.listen(port, host, () => probe.close(() => resolve(undefined)));
  });
}

const node = (script, env) => spawn(process.execPath, [join(ROOT, script)], { cwd: ROOT, stdio: "inherit", env });

async function main(command) {
  try {
    // Under `npm test` it is done already: the tests' own `npm start`s must not rebuild
    // apps/*/dist (turbo rewrites it even on a cache hit) while other tests start from it.
    if (process.env.INGEST_PREPARED !== "1") prepare({ root: ROOT });
  } catch (err) {
    if (!(err instanceof PrepareError)) throw err;
    console.error(`> ${err.message}`);
    process.exit(1);
  }
  switch (command) {
    case "start": {
      const workers = Number(process.env.WORKERS ?? 2);
      const port = Number(process.env.PORT || 3000);
      // Each worker serves /metrics and /healthz on its own port, from 9101 up.
      const metricsBase = Number(process.env.WORKER_METRICS_PORT || 9101);
      const listenHost = process.env.HOST || "0.0.0.0";
      const ports = [[port, "PORT"], ...Array.from({ length: workers }, (_, i) => [metricsBase + i, "WORKER_METRICS_PORT"])];
      for (const [p, variable] of ports) {
        const problem = await cannotListen(p, listenHost, variable);
        if (problem) {
          console.error(`> ${problem}${variable === "WORKER_METRICS_PORT" && workers > 1 ? ` (the ${workers} workers use ${metricsBase}-${metricsBase + workers - 1})` : ""}`);
          process.exit(1);
        }
      }
      const svc = await services();
      // The API echoes INSTANCE_ID on /healthz: the banner waits for this start's API, not
      // for whatever else answers on the port. Bull Board gets a login made for this start
      // unless one is configured (production requires one: the API says so).
      const login = !process.env.ADMIN_USER && !process.env.ADMIN_PASSWORD && process.env.NODE_ENV !== "production"
        ? { ADMIN_USER: "admin", ADMIN_PASSWORD: randomBytes(12).toString("base64url") }
        : {};
      const instance = randomUUID();
      const env = { ...process.env, ...svc.env, ...login, INSTANCE_ID: instance };
      for (const line of svc.describe) console.log(`> ${line}`);
      run(process.execPath, ["packages/db/dist/migrate.js"], { env });
      const children = [node("apps/api/dist/index.js", env)];
      // On one machine the workers yield the CPU to the API: applying can wait, an answer cannot.
      for (let i = 0; i < workers; i++) {
        children.push(node("apps/worker/dist/index.js", { WORKER_NICE: "10", ...env, WORKER_METRICS_PORT: String(metricsBase + i) }));
      }
      let stopped = false;
      supervise(children, async (code) => {
        stopped = true;
        await svc.stop();
        process.exit(code);
      });
      // Where to look, once our API answers (a process that fails at start says why instead).
      console.log(`> starting the API and ${workers} worker process(es)…`);
      const host = !["0.0.0.0", "::"].includes(listenHost) ? listenHost : "127.0.0.1";
      const ours = () =>
        fetch(`http://${host}:${port}/healthz`).then(
          (r) => (r.ok ? r.json().then((body) => body?.instance === instance, () => false) : false),
          () => false,
        );
      const started = Date.now();
      let up = false;
      while (!stopped && !(up = await ours()) && Date.now() - started < 60_000) await new Promise((r) => setTimeout(r, 200));
      if (stopped) return;
      if (!up) {
        console.error(`> the API has not answered on http://${host}:${port}/healthz within 60 s; its log above says why`);
        return;
      }
      const board = login.ADMIN_PASSWORD ? `user admin, password ${login.ADMIN_PASSWORD} (made for this start; set ADMIN_USER/ADMIN_PASSWORD to choose)` : "ADMIN_USER/ADMIN_PASSWORD";
      console.log(`> API:        http://localhost:${port}`);
      console.log(`> Bull Board: http://localhost:${port}/admin/queues (${board})`);
      console.log(`> API docs:   http://localhost:${port}/docs`);
      console.log(`> Metrics:    http://localhost:${port}/metrics, workers on :${metricsBase}-${metricsBase + workers - 1}`);
      console.log(`> Job status: http://localhost:${port}/jobs/<jobId>`);
      console.log(`> ${workers} worker process(es); Ctrl-C stops everything`);
      return;
    }
    case "test": {
      const svc = await services();
      const env = { ...process.env, ...svc.env };
      const typecheck = spawnSync(join(ROOT, "node_modules", ".bin", "tsc"), ["-p", "tsconfig.json"], { cwd: ROOT, stdio: "inherit" });
      let code = typecheck.status ?? 1;
      if (code === 0) {
        const vitest = spawnSync(join(ROOT, "node_modules", ".bin", "vitest"), ["run", ...process.argv.slice(3)], {
          cwd: ROOT,
          stdio: "inherit",
          env: { ...env, INGEST_PREPARED: "1" },
        });
        code = vitest.status ?? 1;
      }
      await svc.stop();
      process.exit(code);
    }
    case "test:unit": {
      // The tests that need no PostgreSQL, Redis or build: seconds, for the edit-test loop.
      const vitest = spawnSync(join(ROOT, "node_modules", ".bin", "vitest"), ["run", "--project", "unit", ...process.argv.slice(3)], {
        cwd: ROOT,
        stdio: "inherit",
      });
      process.exit(vitest.status ?? 1);
    }
    case "test:chaos": {
      // The long form of the fault and fuzz tests: minutes of faults, 10,000 fuzz cases.
      const svc = await services();
      const env = { CHAOS_DURATION_MS: "120000", CHAOS_FAULTS: "all", FUZZ_RUNS: "3400", ...process.env, ...svc.env };
      const vitest = spawnSync(
        join(ROOT, "node_modules", ".bin", "vitest"),
        ["run", "test/chaos.e2e.test.ts", "test/fuzz.test.ts", ...process.argv.slice(3)],
        { cwd: ROOT, stdio: "inherit", env },
      );
      await svc.stop();
      process.exit(vitest.status ?? 1);
    }
    case "migrate": {
      const svc = await services();
      const res = spawnSync(process.execPath, ["packages/db/dist/migrate.js"], {
        cwd: ROOT,
        stdio: "inherit",
        env: { ...process.env, ...svc.env },
      });
      await svc.stop();
      process.exit(res.status ?? 1);
    }
    case "import": {
      // `npm run import -- DIR`: migrate, then bulk-load the catalog CSV files in DIR
      // (relative paths from where npm was run). Ctrl-C ends the import (its open file
      // rolls back); embedded services are stopped after it has exited.
      const svc = await services();
      const env = { ...process.env, ...svc.env };
      let code = spawnSync(process.execPath, [join(ROOT, "packages/db/dist/migrate.js")], { cwd: ROOT, stdio: "inherit", env }).status ?? 1;
      if (code === 0) {
        const child = spawn(process.execPath, [join(ROOT, "apps/importer/dist/cli/import.js"), ...process.argv.slice(3)], {
          cwd: process.env.INIT_CWD || ROOT,
          stdio: "inherit",
          env,
        });
        process.on("SIGINT", () => {}); // the terminal sends it to the import as well
        process.on("SIGTERM", () => child.kill("SIGTERM"));
        code = await new Promise((resolve) => child.on("exit", (c, signal) => resolve(c ?? (signal ? 130 : 1))));
      }
      await svc.stop();
      process.exit(code);
    }
    case "bench":
    case "soak": {
      // `npm run bench [-- --quick]`: the throughput report (bench/run.mjs); `npm run soak`:
      // minutes at a steady rate (bench/soak.mjs). Each makes its own database, prefixes
      // and processes and removes them; embedded services stop afterwards.
      const svc = await services();
      const child = spawn(process.execPath, [join(ROOT, `bench/${command === "bench" ? "run" : "soak"}.mjs`), ...process.argv.slice(3)], {
        cwd: ROOT,
        stdio: "inherit",
        env: { ...process.env, ...svc.env },
      });
      process.on("SIGINT", () => {}); // the terminal sends it to the bench as well, which cleans up
      process.on("SIGTERM", () => child.kill("SIGTERM"));
      const code = await new Promise((resolve) => child.on("exit", (c, signal) => resolve(c ?? (signal ? 130 : 1))));
      await svc.stop();
      process.exit(code);
    }
    case "seed": {
      // `npm run seed -- --products N [--out DIR]`: writes a deterministic catalog; no services needed.
      const res = spawnSync(process.execPath, [join(ROOT, "apps/importer/dist/cli/seed.js"), ...process.argv.slice(3)], {
        cwd: process.env.INIT_CWD || ROOT,
        stdio: "inherit",
      });
      process.exit(res.status ?? 1);
    }
    case "start:api":
    case "start:worker": {
      // One tier alone, for scaling: it uses the configured (or default) services as they are.
      const child = node(`apps/${command.slice(6)}/dist/index.js`, process.env);
      supervise([child], (code) => process.exit(code));
      return;
    }
    default:
      console.error(`unknown command ${command}`);
      process.exit(2);
  }
}

await main(process.argv[2]);
