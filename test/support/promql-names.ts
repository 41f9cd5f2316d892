// The metric names and label names a PromQL expression refers to, read from its text:
// enough of PromQL's grammar for the dashboards' and alerts' queries (selectors, label
// matchers, by/without/on/ignoring/group_left/group_right lists), not a full parser.
const KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset", "inf", "nan"]);
const LABEL_LISTS = /\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g;

type PromqlNames = {
  metrics: string[];
  /** Label names in matchers and grouping lists. */
  labels: string[];
  /** label="value" matchers (exact ones only), by metric. */
  exact: { metric: string; label: string; value: string }[];
};

export function promqlNames(expr: string): PromqlNames {
  // Grafana's interval variables stand for a duration.
  let text = expr.replace(/\$__(rate_)?interval|\$__range/g, "5m");
  const labels = new Set<string>();
  for (const m of text.matchAll(LABEL_LISTS)) for (const l of m[1]!.split(",")) if (l.trim()) labels.add(l.trim());
  // Range and subquery durations ([5m], [1h:1m]) are not names.
  text = text.replace(LABEL_LISTS, " ").replace(/\[[^\]]*\]/g, "");
  const metrics = new Set<string>();
  const exact: PromqlNames["exact"] = [];
  // An identifier, then optionally its matchers; identifiers followed by "(" are functions or aggregations.
  for (const m of text.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(\{[^}]*\})|([a-zA-Z_:][a-zA-Z0-9_:]*)(?!\s*[({a-zA-Z0-9_:])/g)) {
    const name = m[1] ?? m[3];
    const matchers = m[2];
    if (name && (KEYWORDS.has(name.toLowerCase()) || /^\d/.test(name))) continue;
    if (name) metrics.add(name);
    for (const mm of (matchers ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|!~|=)\s*"([^"]*)"/g)) {
      labels.add(mm[1]!);
      if (mm[2] === "=" && name) exact.push({ metric: name, label: mm[1]!, value: mm[3]! });
    }
  }
  return { metrics: [...metrics], labels: [...labels], exact };
}
