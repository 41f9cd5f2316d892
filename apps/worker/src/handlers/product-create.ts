import { products } from "@ingest/db";
import type { Handler } from "./types.js";
import { productColumns, replaceFeatures } from "./product-rows.js";

export const createProduct: Handler<"product.create"> = async (tx, { product }) => {
  // An id taken by an earlier PUT makes the insert conflict; draw the next one.
  for (let attempt = 0; attempt < 5; attempt++) {
    const rows = await tx
      .insert(products)
      .values(productColumns(product))
      .onConflictDoNothing({ target: products.id })
      .returning({ id: products.id });
    const row = rows[0];
    if (row) {
      await replaceFeatures(tx, row.id, product.features ?? []);
      return { productId: row.id };
    }
  }
  throw new Error("could not draw a free product id");
};
