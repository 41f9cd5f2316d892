// The six CSV exports of the seed Product API and the tables they load into.
// Column kinds decide how each field is checked and typed (field-check.ts).

export type ColumnKind =
  | "id" //        required positive int4
  | "ref" //       required positive int4 that must exist in the parent table
  | "count" //     required int4 >= 0
  | "price" //     required numeric(12,2) >= 0, at most 2 decimals
  | "price?" //    same, or `null` / empty for none
  | "text" //      required, not blank, not `null`
  | "text?" //     `null` for none
  | "bool"; //     true/false, t/f, 1/0

export type Column = {
  /** Column name in the table (and in the staging table). */
  name: string;
  /** Header names accepted in the CSV, first the export's own. */
  headers: readonly string[];
  kind: ColumnKind;
  /** Longest accepted text (varchar limit). */
  max?: number;
};

export type TableSpec = {
  table: "products" | "features" | "styles" | "photos" | "skus" | "related";
  file: string;
  columns: readonly Column[];
  /** The parent every row must point at; rows pointing elsewhere are skipped. */
  parent?: { column: string; table: "products" | "styles"; label: string };
  /** Tables whose rows must be in place before this one loads. */
  after: readonly TableSpec["table"][];
};

const id: Column = { name: "id", headers: ["id"], kind: "id" };

/** In load order: parents before children. */
export const TABLES: readonly TableSpec[] = [
  {
    table: "products",
    file: "product.csv",
    columns: [
      id,
      { name: "name", headers: ["name"], kind: "text", max: 255 },
      { name: "slogan", headers: ["slogan"], kind: "text?" },
      { name: "description", headers: ["description"], kind: "text?" },
      { name: "category", headers: ["category"], kind: "text", max: 255 },
      { name: "default_price", headers: ["default_price"], kind: "price" },
    ],
    after: [],
  },
  {
    table: "features",
    file: "features.csv",
    columns: [
      id,
      { name: "product_id", headers: ["product_id", "productId"], kind: "ref" },
      { name: "feature", headers: ["feature"], kind: "text", max: 255 },
      { name: "value", headers: ["value"], kind: "text?", max: 255 },
    ],
    parent: { column: "product_id", table: "products", label: "product" },
    after: ["products"],
  },
  {
    table: "styles",
    file: "styles.csv",
    columns: [
      id,
      { name: "product_id", headers: ["productId", "product_id"], kind: "ref" },
      { name: "name", headers: ["name"], kind: "text", max: 255 },
      { name: "sale_price", headers: ["sale_price"], kind: "price?" },
      { name: "original_price", headers: ["original_price"], kind: "price" },
      { name: "default_style", headers: ["default_style", "default"], kind: "bool" },
    ],
    parent: { column: "product_id", table: "products", label: "product" },
    after: ["products"],
  },
  {
    table: "photos",
    file: "photos.csv",
    columns: [
      id,
      { name: "style_id", headers: ["styleId", "style_id"], kind: "ref" },
      { name: "url", headers: ["url"], kind: "text?" },
      { name: "thumbnail_url", headers: ["thumbnail_url"], kind: "text?" },
    ],
    parent: { column: "style_id", table: "styles", label: "style" },
    after: ["styles"],
  },
  {
    table: "skus",
    file: "skus.csv",
    columns: [
      id,
      { name: "style_id", headers: ["styleId", "style_id"], kind: "ref" },
      { name: "size", headers: ["size"], kind: "text", max: 32 },
      { name: "quantity", headers: ["quantity"], kind: "count" },
    ],
    parent: { column: "style_id", table: "styles", label: "style" },
    after: ["styles"],
  },
  {
    table: "related",
    file: "related.csv",
    columns: [
      id,
      { name: "product_id", headers: ["current_product_id", "product_id"], kind: "ref" },
      // No parent check: exports name related products that are not in the catalog.
      { name: "related_product_id", headers: ["related_product_id"], kind: "id" },
    ],
    parent: { column: "product_id", table: "products", label: "product" },
    after: ["products"],
  },
];
