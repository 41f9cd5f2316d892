// The product.replace handler: writes a product whole under its id (an upsert) with its features.
import { products } from "@ingest/db";
import type { Handler } from "./types.js";
import { productColumns, replaceFeatures, touch } from "./product-rows.js";

export const replaceProduct: Handler<"product.replace"> = async (tx, { productId, product }) => {
  const columns = productColumns(product);
  await tx
    .insert(products)
    .values({ id: productId, ...columns })
    .onConflictDoUpdate({ target: products.id, set: { ...columns, ...touch } });
  await replaceFeatures(tx, productId, product.features ?? []);
  return { productId };
};
