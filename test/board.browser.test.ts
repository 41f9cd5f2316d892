import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM_ARGS, findChromium } from "./support/chromium.js";
import { request, spawnWorker, startApi, testEnv, waitForJob, type Api, type WorkerProcess } from "./support/harness.js";

const { prefix } = testEnv("board");
const CREDENTIALS = { username: "operator", password: "night-shift-password" };
let api: Api;
let worker: WorkerProcess;
let browser: Browser;
let failedJobId: string;

beforeAll(async () => {
  const executablePath = findChromium();
  api = await startApi(prefix, { ADMIN_USER: CREDENTIALS.username, ADMIN_PASSWORD: CREDENTIALS.password });
  worker = await spawnWorker(prefix);
  const patch = await request(api.url, "PATCH", "/products/424242", { json: { name: "nobody home" } });
  failedJobId = (await waitForJob(api.url, patch.body.jobId)).id;
  browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
}, 900_000);

afterAll(async () => {
  await browser?.close();
  await worker?.stop();
  await api?.close();
});

describe("Bull Board in a real browser", () => {
  it("an operator without credentials is refused", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    // Headless Chromium cannot show the login prompt: it fails the navigation instead.
    await expect(page.goto(`${api.url}/admin/queues`)).rejects.toThrow(/ERR_INVALID_AUTH_CREDENTIALS/);
    const res = await context.request.get(`${api.url}/admin/queues/api/queues`);
    expect(res.status()).toBe(401);
    await context.close();
  });

  it("an operator logs in, sees every queue and the failed job with its reason", async () => {
    const context = await browser.newContext({ httpCredentials: CREDENTIALS });
    const page = await context.newPage();
    await page.goto(`${api.url}/admin/queues`);
    for (const name of ["registrations", "products", "maintenance", "emails"]) {
      await page.getByText(name, { exact: true }).first().waitFor({ timeout: 15_000 });
    }
    await page.goto(`${api.url}/admin/queues/queue/products?status=failed`);
    await page.getByText(failedJobId).first().waitFor({ timeout: 15_000 });
    await page.getByText(/PRODUCT_NOT_FOUND/).first().waitFor({ timeout: 15_000 });
    const shot = join(mkdtempSync(join(tmpdir(), "board-")), "failed.png");
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`Bull Board screenshot: ${shot}`);
    await context.close();
  });
});
