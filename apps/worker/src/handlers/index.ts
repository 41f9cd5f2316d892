import { createProduct } from "./product-create.js";
import { deleteProduct } from "./product-delete.js";
import { patchProduct } from "./product-patch.js";
import { replaceProduct } from "./product-replace.js";
import { createRegistration } from "./registration-create.js";
import type { HandlerMap } from "./types.js";

export const HANDLERS: HandlerMap = {
  "registration.create": createRegistration,
  "product.create": createProduct,
  "product.replace": replaceProduct,
  "product.patch": patchProduct,
  "product.delete": deleteProduct,
};

export { createRegistrations } from "./registration-create.js";
export type { ApplyContext, Handler, HandlerMap, Tx } from "./types.js";
