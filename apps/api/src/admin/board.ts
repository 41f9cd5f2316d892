// Bull Board at /admin/queues: every queue's jobs for operators, behind Basic auth.
import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { ExpressAdapter } from "@bull-board/express";
import type { Queues } from "@ingest/jobs";
import { Router, type Express } from "express";
import { basicAuth } from "./basic-auth.js";

const BOARD_PATH = "/admin/queues";

export type BoardConfig = { user: string; password: string; readOnly: boolean };

/** Bull Board over every queue; its pages and its API routes alike sit behind Basic auth. */
export function boardRoutes(queues: Queues, config: BoardConfig): Router {
  const adapter = new ExpressAdapter();
  adapter.setBasePath(BOARD_PATH);
  createBullBoard({
    queues: Object.values(queues).map((q) => new BullMQAdapter(q, { readOnlyMode: config.readOnly })),
    serverAdapter: adapter,
    options: { uiConfig: { boardTitle: "ingest queues" } },
  });
  // The adapter's router is an Express app of its own, which would send X-Powered-By.
  const board = (adapter.getRouter() as Express).disable("x-powered-by");
  const router = Router();
  router.use(BOARD_PATH, basicAuth(config.user, config.password, "ingest operators"), board);
  return router;
}
