// The test projects: unit (no services), integration (real PostgreSQL and Redis in process),
// e2e (the apps as processes) and deploy (what ships around the code: manifests, configs,
// docs, install and start). `npm test` runs them all; `npm run test:unit` the first alone.
import { defineConfig } from "vitest/config";

const E2E = ["test/**/*.e2e.test.ts", "test/**/*.browser.test.ts"];
const DEPLOY = ["test/deploy/**/*.test.ts"];
const UNIT = ["**/*.unit.test.ts"];
const ALL = ["apps/*/test/**/*.test.ts", "packages/*/test/**/*.test.ts", "test/**/*.test.ts"];
// One database, queue prefix and build per run, whichever projects run (global-setup.ts).
const SERVICES = ["test/support/global-setup.ts"];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Files share one database and Redis prefix per run; keep them from starving
    // each other on a 2-core machine.
    maxWorkers: 2,
    reporters: ["default"],
    projects: [
      { extends: true, test: { name: "unit", include: UNIT } },
      { extends: true, test: { name: "integration", include: ALL, exclude: [...UNIT, ...E2E, ...DEPLOY], globalSetup: SERVICES } },
      { extends: true, test: { name: "e2e", include: E2E, exclude: DEPLOY, globalSetup: SERVICES } },
      { extends: true, test: { name: "deploy", include: DEPLOY, exclude: UNIT, globalSetup: SERVICES } },
    ],
  },
});
