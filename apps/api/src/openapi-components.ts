// The OpenAPI document's component schemas: each validating schema given once, and a $ref
// wherever another schema embeds it.

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * The validating schemas name themselves with `$id` (Product, ProductPatch, …) and are
 * embedded whole in others (BulkLine holds Product twice). Left so, the document holds
 * one `$id` several times, which JSON Schema tools such as Ajv refuse ("resolves to more
 * than one schema"), and an `$id` also moves the base that `#/components/...` references
 * resolve against. So: no `$id` anywhere, and an embedded component becomes its $ref.
 */
export function componentSchemas(named: Record<string, object>): Record<string, Json> {
  const convert = (node: Json, top: boolean): Json => {
    if (Array.isArray(node)) return node.map((n) => convert(n, false));
    if (node === null || typeof node !== "object") return node;
    const { $id, ...rest } = node;
    if (!top && typeof $id === "string") {
      if (!Object.hasOwn(named, $id)) throw new Error(`the schema "${$id}" is embedded in a component but is no component itself`);
      return { $ref: `#/components/schemas/${$id}` };
    }
    return Object.fromEntries(Object.entries(rest).map(([key, value]) => [key, convert(value, false)]));
  };
  // Through JSON first: TypeBox marks its schemas with symbols, which are no part of them.
  return Object.fromEntries(Object.entries(named).map(([name, schema]) => [name, convert(JSON.parse(JSON.stringify(schema)) as Json, true)]));
}
