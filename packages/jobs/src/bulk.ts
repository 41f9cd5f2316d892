// The product.bulk job: its lines, its data and what GET /jobs/:id shows of it.
import { Type, type TSchema } from "@sinclair/typebox";
import type { JobName, PayloadOf } from "./definitions.js";
import { ZProduct, ZProductPatch } from "./payloads.js";
import { check, type FieldError } from "./validate.js";

// POST /products/bulk: one product operation per NDJSON line. The API validates every
// line, stores the valid ones as one job in the bulk lane (one atomic add, one id to
// follow), and the bulk worker applies them in micro-batches. Each line is applied
// exactly once under an id of its own (`<batch id>-L<line>`, its ledger key) and takes
// its place in the product's edit order like an interactive edit.

export const BULK_JOB = "product.bulk";
export const DEFAULT_BULK_MAX_LINES = 10_000;

const ZProductId = Type.Integer({ minimum: 1, maximum: 2_147_483_647 });

const BULK_OPS = {
  create: Type.Object({ op: Type.Literal("create"), product: ZProduct }, { additionalProperties: false }),
  replace: Type.Object({ op: Type.Literal("replace"), id: ZProductId, product: ZProduct }, { additionalProperties: false }),
  patch: Type.Object({ op: Type.Literal("patch"), id: ZProductId, changes: ZProductPatch }, { additionalProperties: false }),
  delete: Type.Object({ op: Type.Literal("delete"), id: ZProductId }, { additionalProperties: false }),
} satisfies Record<string, TSchema>;
type BulkOp = keyof typeof BULK_OPS;

/** For the OpenAPI document: what one line may be. */
export const ZBulkLine = Type.Union(Object.values(BULK_OPS), { $id: "BulkLine" });

export type ProductJobName = Extract<JobName, `product.${string}`>;

/** One valid line, as stored in the bulk job: the product job it stands for. */
export type BulkLine<N extends ProductJobName = ProductJobName> = {
  line: number;
  name: N;
  payload: PayloadOf<N>;
  /** The product's edit order, as for an interactive edit (ordered operations only). */
  seq?: number;
  prevSeq?: number | null;
  prevJobId?: string;
};

export type InvalidLine = { line: number; errors: FieldError[] };

export type BulkJobData = {
  lines: BulkLine[];
  /** Lines refused at acceptance: their count, and the first of them with their errors. */
  invalidCount: number;
  invalid: InvalidLine[];
  requestId?: string;
};

/** What GET /jobs/:id shows of a batch: while it runs (progress) and when done (result). */
export type BulkCounts = {
  accepted: number;
  applied: number;
  failed: number;
  invalid: number;
  failures: { line: number; code: string; message: string }[];
  invalidLines: InvalidLine[];
};

/** At most this many failed or invalid lines are listed; the counts cover them all. */
export const BULK_LISTED_MAX = 100;

/** Parses and validates one NDJSON line into the product job it stands for. */
export function parseBulkLine(text: string, line: number): { ok: true; value: BulkLine } | { ok: false; invalid: InvalidLine } {
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch {
    return { ok: false, invalid: { line, errors: [{ path: "", message: "is not valid JSON" }] } };
  }
  const op = (input as { op?: unknown } | null)?.op;
  if (typeof input !== "object" || input === null || Array.isArray(input) || typeof op !== "string" || !Object.hasOwn(BULK_OPS, op)) {
    return { ok: false, invalid: { line, errors: [{ path: "/op", message: `must be one of ${Object.keys(BULK_OPS).join(", ")}` }] } };
  }
  const checked = check(BULK_OPS[op as BulkOp], input);
  if (!checked.ok) return { ok: false, invalid: { line, errors: checked.errors } };
  const v = checked.value as { op: BulkOp; id?: number; product?: never; changes?: never };
  switch (v.op) {
    case "create":
      return { ok: true, value: { line, name: "product.create", payload: { product: v.product! } } };
    case "replace":
      return { ok: true, value: { line, name: "product.replace", payload: { productId: v.id!, product: v.product! } } };
    case "patch":
      return { ok: true, value: { line, name: "product.patch", payload: { productId: v.id!, changes: v.changes! } } };
    case "delete":
      return { ok: true, value: { line, name: "product.delete", payload: { productId: v.id! } } };
  }
}

/** The ledger key of one line of a batch. */
export const bulkLineId = (batchId: string, line: number) => `${batchId}-L${line}`;
