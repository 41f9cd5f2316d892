// A hand-written horizontal bar chart of the rows that carry a value; each group is
// scaled to its own largest bar (units differ between groups).
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
const fmt = (n) => Math.round(n).toLocaleString("en-US");

const WIDTH = 960;
const LABEL_W = 330;
const BAR_W = 470;
const ROW_H = 22;

export function renderSvg(rows, { title, subtitle }) {
  const bars = rows.filter((r) => typeof r.value === "number" && Number.isFinite(r.value));
  const groups = [...new Set(bars.map((r) => r.group))];
  const out = [];
  let y = 64;
  for (const group of groups) {
    const members = bars.filter((r) => r.group === group);
    const max = Math.max(...members.map((r) => r.value)) || 1;
    out.push(`<text x="16" y="${y + 14}" class="group">${esc(group)}</text>`);
    y += 22;
    for (const r of members) {
      const w = Math.max(1, (r.value / max) * BAR_W);
      const ratio = r.ratios.find((x) => typeof x.ratio === "number");
      const verdicts = r.ratios.filter((x) => x.met !== undefined && x.met !== null);
      const mark = verdicts.length ? (verdicts.every((x) => x.met) ? " ✓" : " ✗") : "";
      const tail = `${fmt(r.value)} ${r.unit}${ratio ? ` · ${ratio.ratio.toFixed(2)}× ${ratio.to}` : ""}${mark}`;
      out.push(
        `<text x="${LABEL_W - 8}" y="${y + 15}" class="label" text-anchor="end">${esc(r.label)}</text>`,
        `<rect x="${LABEL_W}" y="${y + 3}" width="${w.toFixed(1)}" height="${ROW_H - 6}" class="${r.product ? "product" : "baseline"}"/>`,
        `<text x="${LABEL_W + w + 6}" y="${y + 15}" class="value">${esc(tail)}</text>`,
      );
      y += ROW_H;
    }
    y += 10;
  }
  const height = y + 30;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH + 160}" height="${height}" viewBox="0 0 ${WIDTH + 160} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">
<style>
  .title { font-size: 16px; font-weight: 600; fill: #111; }
  .sub { fill: #555; }
  .group { font-weight: 600; fill: #111; }
  .label { fill: #333; }
  .value { fill: #111; }
  .product { fill: #2f6fdb; }
  .baseline { fill: #a8adb5; }
</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="16" y="26" class="title">${esc(title)}</text>
<text x="16" y="46" class="sub">${esc(subtitle)}</text>
${out.join("\n")}
<text x="16" y="${height - 12}" class="sub">blue: this product · grey: baselines measured in the same run · each group scaled to its largest bar · ✓/✗ targets</text>
</svg>
`;
}
