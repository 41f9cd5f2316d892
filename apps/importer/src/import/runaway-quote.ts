// A quote left open on its line: telling it from a quoted field that truly spans lines.

export const RUNAWAY_REASON = "unclosed quote";

/**
 * A quoted field that crosses a line break (the record spans lines because of it): the
 * index of the first such field in the record, and whether any of them ends in a way no
 * writer of CSV would end it. A field that opens a quote and forgets to close it runs on
 * until the next quote in the file, usually the OPENING quote of a field on a later line,
 * so its "closing" quote is followed by text instead of a comma or a line end (csv-parse,
 * relaxed, takes that as text and goes on). A field that truly spans lines closes with
 * `",` or `"` at a line end.
 */
type QuotedSpan = { field: number; broken: boolean };

export function quotedSpan(text: string): QuotedSpan | undefined {
  let span: QuotedSpan | undefined;
  let field = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    if (text[i] === '"') {
      let j = i + 1;
      let crosses = false;
      let broken = false;
      for (;;) {
        if (j >= n) {
          // Never closed before the end of the text.
          broken = crosses;
          i = n;
          break;
        }
        const c = text[j];
        if (c === "\n") crosses = true;
        if (c !== '"') {
          j++;
          continue;
        }
        if (text[j + 1] === '"') {
          j += 2;
          continue;
        }
        const next = text[j + 1];
        const ends = next === undefined || next === "," || next === "\n" || (next === "\r" && text[j + 2] === "\n");
        broken = crosses && !ends;
        i = j + 1;
        break;
      }
      if (crosses) {
        span ??= { field, broken };
        if (broken) return { field: span.field, broken };
      }
    }
    // The rest of the field (all of an unquoted one; what follows a bad closing quote).
    while (i < n && text[i] !== "," && text[i] !== "\n") i++;
    if (text[i] === ",") field++;
    else field = 0;
    i++;
  }
  return span;
}

/** The field of a line whose quote is still open at the line's end (0-based). */
export function openQuoteField(line: string): number | undefined {
  return quotedSpan(`${line}\n`)?.field;
}
