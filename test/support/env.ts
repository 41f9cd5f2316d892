// What every test file may use without loading an app: the run's services, its own prefix, and polling.
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { inject } from "vitest";

export const ROOT = join(import.meta.dirname, "..", "..");

/** Connection settings of this run, with a queue prefix of the file's own. */
export function testEnv(name: string) {
  return {
    databaseUrl: inject("databaseUrl"),
    redisUrl: inject("redisUrl"),
    prefix: `{ingest-test-${inject("runId")}-${name}}`,
  };
}

/** The file's catalog cache prefix: its queue prefix without the hash tag, as in production. */
export const cachePrefixFor = (queuePrefix: string) => `${queuePrefix.replace(/^\{|\}$/g, "")}:cache`;

/** Polls until the condition holds; fails with the label after the timeout. */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  timeoutMs = 10_000,
  label = "condition",
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let pause = 10;
  for (;;) {
    const value = await fn();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${label}`);
    await sleep(pause);
    pause = Math.min(pause * 2, 100);
  }
}
