// Entry point of every root npm script. Before doing anything it makes sure the
// dependencies match the lockfile and the apps are built, so a fresh clone needs
// nothing but `npm start` or `npm test`. Plain Node, no dependencies: it runs first.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const STAMP = join(ROOT, "node_modules", ".ingest-lock-hash");
const NPM = process.platform === "win32" ? "npm.cmd" : "npm";

function run(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, { cwd: ROOT, stdio: "inherit", ...opts });
  if (res.status !== 0) process.exit(res.status ?? 1);
}

function ensureInstalled() {
  const lock = readFileSync(join(ROOT, "package-lock.json"));
  const manifests = ["package.json", "apps/api/package.json", "apps/worker/package.json"]
    .map((f) => readFileSync(join(ROOT, f)))
    .concat(lock);
  const hash = createHash("sha256").update(Buffer.concat(manifests)).digest("hex");
  if (existsSync(STAMP) && readFileSync(STAMP, "utf8") === hash) return;
  console.log("> installing dependencies from package-lock.json");
  // `npm ci` rejects lockfiles written without other platforms' optional packages
  // (npm/cli#4828); `npm install` honours the lock and fills them in.
  run(NPM, ["install", "--no-audit", "--no-fund"]);
  writeFileSync(STAMP, hash);
}

function build() {
  run(join(ROOT, "node_modules", ".bin", "turbo"), ["run", "build", "--output-logs=errors-only"], {
    env: { ...process.env, TURBO_TELEMETRY_DISABLED: "1", TURBO_NO_UPDATE_NOTIFIER: "1" },
  });
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

const node = (script, env) => spawn(process.execPath, [join(ROOT, script)], { cwd: ROOT, stdio: "inherit", env });

async function main(command) {
  ensureInstalled();
  build();
  switch (command) {
    case "start": {
      const svc = await services();
      const env = { ...process.env, ...svc.env };
      for (const line of svc.describe) console.log(`> ${line}`);
      run(process.execPath, ["apps/worker/dist/migrate.js"], { env });
      const workers = Number(process.env.WORKERS ?? 2);
      const port = env.PORT ?? "3000";
      const children = [node("apps/api/dist/index.js", env)];
      // Each worker serves /metrics and /healthz on its own port, from 9101 up. On one
      // machine the workers yield the CPU to the API: applying can wait, an answer cannot.
      const metricsBase = Number(env.WORKER_METRICS_PORT || 9101);
      for (let i = 0; i < workers; i++) {
        children.push(node("apps/worker/dist/index.js", { WORKER_NICE: "10", ...env, WORKER_METRICS_PORT: String(metricsBase + i) }));
      }
      let stopped = false;
      supervise(children, async (code) => {
        stopped = true;
        await svc.stop();
        process.exit(code);
      });
      // Where to look, once the API answers (a process that fails at start says why instead).
      console.log(`> starting the API and ${workers} worker process(es)…`);
      const host = env.HOST && !["0.0.0.0", "::"].includes(env.HOST) ? env.HOST : "127.0.0.1";
      const started = Date.now();
      while (!stopped && Date.now() - started < 60_000) {
        const up = await fetch(`http://${host}:${port}/healthz`).then((r) => r.ok, () => false);
        if (up) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      if (stopped) return;
      console.log(`> API:        http://localhost:${port}`);
      console.log(`> Bull Board: http://localhost:${port}/admin/queues (ADMIN_USER/ADMIN_PASSWORD)`);
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
          env,
        });
        code = vitest.status ?? 1;
      }
      await svc.stop();
      process.exit(code);
    }
    case "test:chaos": {
      // The long form of the fault and fuzz tests: minutes of faults, 10,000 fuzz cases.
      const svc = await services();
      const env = { CHAOS_DURATION_MS: "120000", FUZZ_RUNS: "3400", ...process.env, ...svc.env };
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
      const res = spawnSync(process.execPath, ["apps/worker/dist/migrate.js"], {
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
      let code = spawnSync(process.execPath, [join(ROOT, "apps/worker/dist/migrate.js")], { cwd: ROOT, stdio: "inherit", env }).status ?? 1;
      if (code === 0) {
        const child = spawn(process.execPath, [join(ROOT, "apps/worker/dist/cli/import.js"), ...process.argv.slice(3)], {
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
      const res = spawnSync(process.execPath, [join(ROOT, "apps/worker/dist/cli/seed.js"), ...process.argv.slice(3)], {
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
