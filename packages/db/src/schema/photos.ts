// The photos table: a style's photo and thumbnail URLs.
import { index, integer, pgTable, text } from "drizzle-orm/pg-core";
import { styles } from "./styles.js";

export const photos = pgTable(
  "photos",
  {
    id: integer("id").primaryKey().generatedByDefaultAsIdentity(),
    styleId: integer("style_id")
      .notNull()
      .references(() => styles.id, { onDelete: "cascade" }),
    url: text("url"),
    thumbnailUrl: text("thumbnail_url"),
  },
  (t) => [index("photos_style_id_idx").on(t.styleId)],
);
