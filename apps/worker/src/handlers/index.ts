// The handler of every write, by job name.
import { createProduct } from "./product-create.js";
import { deleteProduct } from "./product-delete.js";
import { patchProduct } from "./product-patch.js";
import { replaceProduct } from "./product-replace.js";
import { createRegistration, createRegistrations } from "./registration-create.js";
import { recordRegistrations } from "./registration-record.js";
import type { HandlerMap } from "./types.js";

const sameProduct = ({ productId }: { productId: number }) => ({ productId });

export const HANDLERS: HandlerMap = {
  "registration.create": { apply: createRegistration, applyMany: createRegistrations, recordMany: recordRegistrations },
  "product.create": { apply: createProduct },
  "product.replace": { apply: replaceProduct, superseded: sameProduct },
  "product.patch": { apply: patchProduct, superseded: sameProduct },
  // A delete skipped for a newer edit still answers as a delete.
  "product.delete": { apply: deleteProduct, superseded: ({ productId }) => ({ productId, deleted: true }) },
};

export { applyContextOf } from "./types.js";
export type { ApplyContext, HandlerMap, Tx, WriteHandler } from "./types.js";
