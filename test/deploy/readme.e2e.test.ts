import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, spawnWorker, startApi, testEnv, waitForJob, type Api, type WorkerProcess } from "../support/harness.js";
import { createScratchDb, type ScratchDb } from "../support/scratch-db.js";

const README = readFileSync(join(ROOT, "README.md"), "utf8");

/** The first ```sh block after `heading`, as a reader would copy it. */
function shellBlockAfter(heading: string): string {
  const at = README.indexOf(heading);
  if (at < 0) throw new Error(`README.md has no "${heading}"`);
  const block = /```sh\n([\s\S]*?)```/.exec(README.slice(at));
  if (!block) throw new Error(`no sh block after "${heading}"`);
  return block[1]!;
}

describe("the README's quick start", () => {
  const { prefix } = testEnv("readme");
  let api: Api;
  let worker: WorkerProcess;
  // A database of its own: the block registers a fixed email, which other files' writes
  // to the shared database may have taken already.
  let scratch: ScratchDb;
  beforeAll(async () => {
    scratch = await createScratchDb("readme");
    api = await startApi(prefix, { DATABASE_URL: scratch.url });
    worker = await spawnWorker(prefix, { DATABASE_URL: scratch.url });
  }, 60_000);
  afterAll(async () => {
    await worker?.stop();
    await api?.close();
    await scratch?.drop();
  });

  it("runs as pasted: the write is accepted and its job followed through the captured jobId", async () => {
    const script = shellBlockAfter("Try it once `npm start` is up");
    expect(script).toContain("localhost:3000");
    const pasted = script.replaceAll("localhost:3000", api.url.replace("http://", ""));
    // Asynchronously: the API under test runs in this process.
    const { stdout: out } = await promisify(execFile)("sh", ["-euc", `${pasted}\nprintf '\\nJOB=%s\\n' "$JOB"`], { encoding: "utf8", timeout: 30_000 });
    const job = /^JOB=(\S+)$/m.exec(out)?.[1];
    expect(out).toMatch(/^JOB=reg-/m);
    const status = JSON.parse(out.split("\n").find((l) => l.startsWith("{"))!);
    expect(status).toMatchObject({ id: job, type: "registration.create" });
    expect((await waitForJob(api.url, job!)).result).toMatchObject({ outcome: "created" });
  });
});
