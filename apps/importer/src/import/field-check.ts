// Checks and normalises one CSV field for its column, or says why it is bad.
import type { Column } from "./tables.js";

// Checks and normalises one CSV field for its column, producing the COPY text the
// typed staging table accepts without error: a row that passes here can never make
// COPY fail. Doing it while the row is parsed costs a fraction of the same checks
// in SQL (regular expressions there cost about 1 µs per field).

const MAX_INT = 2_147_483_647;

/** Why a field is unusable. A good field comes back as its text (null for SQL NULL), without allocating. */
export class BadField {
  constructor(readonly reason: string) {}
}
type FieldCheck = string | null | BadField;

const ok = (value: string): FieldCheck => value;
const bad = (reason: string): FieldCheck => new BadField(reason);

const isDigits = (s: string, from = 0, to = s.length): boolean => {
  if (to <= from) return false;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
};

const trim = (s: string): string => {
  const first = s.charCodeAt(0);
  const last = s.charCodeAt(s.length - 1);
  return first === 32 || first === 9 || last === 32 || last === 9 ? s.trim() : s;
};

const isNullWord = (s: string) => s === "null" || s === "NULL";

/** Code points, not UTF-16 units: varchar(n) counts characters. */
function tooLong(s: string, max: number): boolean {
  if (s.length <= max) return false;
  let n = 0;
  for (const _ of s) if (++n > max) return true;
  return false;
}

function integer(raw: string, name: string, min: number): FieldCheck {
  const s = trim(raw);
  if (s.length > 10 || !isDigits(s)) return bad(`bad number in ${name}`);
  const n = Number(s);
  if (n < min || n > MAX_INT) return bad(`${name} out of range`);
  return ok(s);
}

/** numeric(12,2): at most 10 digits before the point and 2 after; no sign, no exponent. */
function price(raw: string, name: string): FieldCheck {
  const s = trim(raw);
  const dot = s.indexOf(".");
  const whole = dot < 0 ? s.length : dot;
  if (whole > 10) return bad(`bad number in ${name}`);
  if (dot < 0) return isDigits(s) ? ok(s) : bad(`bad number in ${name}`);
  const decimals = s.length - dot - 1;
  if (decimals > 2) return bad(`bad number in ${name}`);
  if (whole === 0 && decimals === 0) return bad(`bad number in ${name}`);
  if ((whole > 0 && !isDigits(s, 0, dot)) || (decimals > 0 && !isDigits(s, dot + 1))) return bad(`bad number in ${name}`);
  return ok(s);
}

/** The field's value for COPY (text still to be escaped by the caller), null for none, or why the row is bad. */
export function checkField(column: Column, raw: string): FieldCheck {
  switch (column.kind) {
    case "id":
    case "ref":
      return integer(raw, column.name, 1);
    case "count":
      return integer(raw, column.name, 0);
    case "price":
      return price(raw, column.name);
    case "price?": {
      const s = trim(raw);
      return s === "" || isNullWord(s) ? null : price(s, column.name);
    }
    case "text":
      if (isNullWord(raw) || raw.length === 0 || trim(raw).length === 0) return bad(`missing ${column.name}`);
      if (column.max && tooLong(raw, column.max)) return bad(`${column.name} longer than ${column.max} characters`);
      return ok(raw);
    case "text?":
      if (isNullWord(raw)) return null;
      if (column.max && tooLong(raw, column.max)) return bad(`${column.name} longer than ${column.max} characters`);
      return ok(raw);
    case "bool": {
      const s = trim(raw).toLowerCase();
      if (s === "1" || s === "true" || s === "t") return ok("t");
      if (s === "0" || s === "false" || s === "f") return ok("f");
      return bad(`bad boolean in ${column.name}`);
    }
  }
}

/** The staging column type that COPY casts into. */
export function stageType(column: Column): string {
  switch (column.kind) {
    case "id":
    case "ref":
    case "count":
      return "integer";
    case "price":
    case "price?":
      return "numeric(12, 2)";
    case "bool":
      return "boolean";
    case "text":
    case "text?":
      return "text";
  }
}
