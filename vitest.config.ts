import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["apps/*/test/**/*.test.ts", "packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Files share one database and Redis prefix per run; keep them from starving
    // each other on a 2-core machine.
    maxWorkers: 2,
    reporters: ["default"],
  },
});
