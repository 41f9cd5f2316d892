import type { Static, TSchema } from "@sinclair/typebox";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import { MAX_PRICE } from "./payloads.js";

export type FieldError = { path: string; message: string };
export type Checked<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

// ajv-formats is CommonJS with a default export; under ESM interop it may arrive wrapped.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ??
  addFormatsModule) as unknown as (ajv: Ajv, formats: string[]) => Ajv;

const ajv = new Ajv({ allErrors: true, strict: false, coerceTypes: false, useDefaults: false });
addFormats(ajv, ["email"]);

const compiled = new WeakMap<TSchema, ValidateFunction>();

function compile(schema: TSchema): ValidateFunction {
  let fn = compiled.get(schema);
  if (!fn) {
    // $id would register the schema globally in ajv; compile a copy without it.
    const { $id: _id, ...rest } = schema as TSchema & { $id?: string };
    fn = ajv.compile(rest);
    compiled.set(schema, fn);
  }
  return fn;
}

function describe(e: ErrorObject, schemaDescription?: string): FieldError {
  const path = e.instancePath || "/";
  switch (e.keyword) {
    case "additionalProperties":
      return { path: joinPath(e.instancePath, String(e.params.additionalProperty)), message: "is not a known field" };
    case "required":
      return { path: joinPath(e.instancePath, String(e.params.missingProperty)), message: "is required" };
    case "anyOf":
      return { path, message: `must be ${schemaDescription ?? "one of the allowed types"}` };
    case "pattern":
      return { path, message: e.schemaPath.includes("default_price") ? "must be a decimal" : "must not be blank" };
    case "minProperties":
      return { path, message: "must have at least one field" };
    default:
      return { path, message: e.message ?? "is invalid" };
  }
}

const joinPath = (base: string, key: string) => `${base}/${key.replaceAll("~", "~0").replaceAll("/", "~1")}`;

function formatErrors(errors: ErrorObject[]): FieldError[] {
  // A union reports one error per branch plus the anyOf; keep the anyOf alone.
  const unionPaths = new Set(errors.filter((e) => e.keyword === "anyOf").map((e) => e.instancePath));
  const out: FieldError[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    if (e.keyword !== "anyOf" && unionPaths.has(e.instancePath)) continue;
    const described = describe(e, (e.parentSchema as { description?: string } | undefined)?.description);
    const key = `${described.path}\u0000${described.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push(described);
    }
  }
  return out;
}

/** Prices travel as decimal strings with two decimals; numbers are accepted and normalised. */
export function normalisePrice(value: string | number): string | undefined {
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value < 0 || value > MAX_PRICE) return undefined;
    const cents = Math.round(value * 100);
    if (Math.abs(cents - value * 100) > 1e-6 * Math.max(1, Math.abs(value))) return undefined;
    return (cents / 100).toFixed(2);
  }
  const [whole = "0", frac = ""] = value.split(".");
  return `${whole}.${frac.padEnd(2, "0")}`;
}

function normalisePrices(value: unknown, path: string, errors: FieldError[]): void {
  if (!value || typeof value !== "object") return;
  for (const [key, v] of Object.entries(value)) {
    if (key === "default_price" && (typeof v === "string" || typeof v === "number")) {
      const price = normalisePrice(v);
      if (price === undefined) errors.push({ path: `${path}/${key}`, message: "must have at most 2 decimals" });
      else (value as Record<string, unknown>)[key] = price;
    } else if (v && typeof v === "object" && !Array.isArray(v)) {
      normalisePrices(v, `${path}/${key}`, errors);
    }
  }
}

/** Validates against a schema and normalises prices in place; the input must be a fresh parse. */
export function check<S extends TSchema>(schema: S, input: unknown): Checked<Static<S>> {
  const fn = compile(schema);
  if (!fn(input)) return { ok: false, errors: formatErrors(fn.errors ?? []) };
  const errors: FieldError[] = [];
  normalisePrices(input, "", errors);
  if (errors.length) return { ok: false, errors };
  return { ok: true, value: input as Static<S> };
}
