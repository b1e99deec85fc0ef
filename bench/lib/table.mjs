// Medians and the markdown tables every bench prints: a cell is a median with the (min–max) of its samples.

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** { median, min, max } of the samples. */
export function summarize(samples) {
  return { median: median(samples), min: Math.min(...samples), max: Math.max(...samples) };
}

export function format(value, unit) {
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${unit}`;
}

/** Table cell: the median, with the spread of the samples it was taken from. */
export function cell(stat, unit) {
  if (stat.error) return `error (see below)`;
  return `${format(stat.median, unit)} (${format(stat.min, "").trim()}–${format(stat.max, unit)})`;
}

/** `b`'s median over `a`'s: with times, how many times faster `a` is. */
export function ratio(a, b) {
  if (a.error || b.error) return "—";
  const r = b.median / a.median;
  return `${r >= 10 ? r.toFixed(0) : r.toFixed(1)}×`;
}

/** The goal `≤ limit unit` (or `≥` with `atLeast`), and whether the median met it. */
export function goalCell(stat, limit, unit, atLeast = false) {
  if (limit === undefined) return "—";
  const text = `${atLeast ? "≥" : "≤"} ${limit.toLocaleString("en-US")} ${unit}`;
  if (stat.error) return text;
  const met = atLeast ? stat.median >= limit : stat.median <= limit;
  return `${text} ${met ? "met" : "not met"}`;
}

export function printTable(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  console.log(line(header));
  console.log(`| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`);
  for (const row of rows) console.log(line(row));
}
