/**
 * Hand-written SVG charts for report.html: grouped bars with chance levels drawn as dashed lines, and
 * strip plots of a distribution (IoU). Inline SVG in HTML needs no namespace attribute, so the markup
 * carries no URL at all and the report stays readable offline. Values are fractions in [0, 1]; NaN
 * (nothing to score) draws no bar and says so in its tooltip.
 */

export const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#637939'];

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const fmt = (v: number): string => (Number.isFinite(v) ? v.toFixed(3) : 'n/a');
const px = (v: number): string => (Math.round(v * 10) / 10).toString();

export interface BarSeries {
  name: string;
  color: string;
  /** One value per group. */
  values: readonly number[];
}

export interface BarChart {
  title: string;
  groups: readonly string[];
  series: readonly BarSeries[];
  /** Chance levels: lines across the whole chart (each with a label, e.g. one per k), or one value per
   * group (drawn across that group). */
  random?: { lines: readonly { value: number; label: string }[] } | { perGroup: readonly number[] };
  yLabel?: string;
}

const MARGIN = { left: 48, right: 128, top: 30, bottom: 150 };
const PLOT_HEIGHT_PX = 220;
const LEGEND_ITEM_PX = 190;

function yAxis(width: number, yLabel: string | undefined): string[] {
  const parts: string[] = [];
  for (let t = 0; t <= 5; t++) {
    const v = t / 5;
    const y = MARGIN.top + PLOT_HEIGHT_PX * (1 - v);
    parts.push(`<line x1="${MARGIN.left}" x2="${px(width - MARGIN.right)}" y1="${px(y)}" y2="${px(y)}" stroke="#e3e3e3"/>`);
    parts.push(`<text x="${MARGIN.left - 6}" y="${px(y + 4)}" text-anchor="end" class="tick">${v.toFixed(1)}</text>`);
  }
  if (yLabel) parts.push(`<text transform="translate(12 ${px(MARGIN.top + PLOT_HEIGHT_PX / 2)}) rotate(-90)" text-anchor="middle" class="axis">${escapeXml(yLabel)}</text>`);
  return parts;
}

/** Grouped vertical bars, y from 0 to 1, a legend on top, group names slanted below. */
export function barChartSvg(chart: BarChart): string {
  const barPx = chart.series.length > 6 ? 9 : 13;
  const groupPx = chart.series.length * barPx + 14;
  const width = Math.max(420, MARGIN.left + MARGIN.right + chart.groups.length * groupPx);
  const perRow = Math.max(1, Math.floor((width - MARGIN.left) / LEGEND_ITEM_PX));
  const legendRows = Math.ceil(chart.series.length / perRow);
  const top = 18 + legendRows * 14;
  const height = top + MARGIN.top + PLOT_HEIGHT_PX + MARGIN.bottom - 18;
  // Long method names (fusions) would run off the bottom at −35°: cut them, the full name is the tooltip.
  const short = (name: string): string => (name.length > 40 ? `${name.slice(0, 39)}…` : name);
  const parts: string[] = [];
  parts.push(`<svg class="chart" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeXml(chart.title)}">`);
  parts.push(`<title>${escapeXml(chart.title)}</title>`);
  parts.push(`<text x="${MARGIN.left}" y="14" class="title">${escapeXml(chart.title)}</text>`);
  chart.series.forEach((s, n) => {
    const x = MARGIN.left + (n % perRow) * LEGEND_ITEM_PX;
    const y = 22 + Math.floor(n / perRow) * 14;
    parts.push(`<rect x="${x}" y="${y}" width="10" height="10" fill="${s.color}"/><text x="${x + 14}" y="${y + 9}" class="legend">${escapeXml(s.name)}</text>`);
  });
  parts.push(`<g transform="translate(0 ${top - 18})">`);
  parts.push(...yAxis(width, chart.yLabel));
  const yOf = (v: number): number => MARGIN.top + PLOT_HEIGHT_PX * (1 - Math.max(0, Math.min(1, v)));
  chart.groups.forEach((group, g) => {
    const x0 = MARGIN.left + g * groupPx + 7;
    chart.series.forEach((s, n) => {
      const v = s.values[g];
      if (!Number.isFinite(v)) return;
      const y = yOf(v);
      parts.push(`<rect x="${px(x0 + n * barPx)}" y="${px(y)}" width="${barPx - 1}" height="${px(MARGIN.top + PLOT_HEIGHT_PX - y)}" fill="${s.color}"><title>${escapeXml(`${group} · ${s.name}: ${fmt(v)}`)}</title></rect>`);
    });
    const cx = x0 + (chart.series.length * barPx) / 2;
    const ly = MARGIN.top + PLOT_HEIGHT_PX + 10;
    parts.push(`<text transform="translate(${px(cx)} ${px(ly)}) rotate(-35)" text-anchor="end" class="tick"><title>${escapeXml(group)}</title>${escapeXml(short(group))}</text>`);
    if (chart.random && 'perGroup' in chart.random) {
      const r = chart.random.perGroup[g];
      if (Number.isFinite(r)) {
        parts.push(`<line x1="${px(x0 - 3)}" x2="${px(x0 + chart.series.length * barPx + 2)}" y1="${px(yOf(r))}" y2="${px(yOf(r))}" class="random"><title>random: ${fmt(r)}</title></line>`);
      }
    }
  });
  if (chart.random && 'lines' in chart.random) {
    // Labels sit in the right margin, nudged apart when two levels are close.
    let lastLabelY = -Infinity;
    for (const line of [...chart.random.lines].filter((l) => Number.isFinite(l.value)).sort((a, b) => b.value - a.value)) {
      const y = yOf(line.value);
      parts.push(`<line x1="${MARGIN.left}" x2="${px(width - MARGIN.right)}" y1="${px(y)}" y2="${px(y)}" class="random"><title>${escapeXml(line.label)}: ${fmt(line.value)}</title></line>`);
      const labelY = Math.max(y + 4, lastLabelY + 12);
      lastLabelY = labelY;
      parts.push(`<text x="${px(width - MARGIN.right + 4)}" y="${px(labelY)}" class="random-label">${escapeXml(line.label)} ${line.value.toFixed(2)}</text>`);
    }
  }
  parts.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${MARGIN.top + PLOT_HEIGHT_PX}" stroke="#444"/>`);
  parts.push('</g></svg>');
  return parts.join('');
}

export interface StripGroup {
  name: string;
  values: readonly number[];
  /** Chance level of this group's mean. */
  random?: number;
  color?: string;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}

/**
 * A distribution per group: every value as a dot (spread sideways by a fixed pattern, so the picture is
 * the same on every run), a box from the first to the third quartile with the median, a diamond at the
 * mean, and the group's chance level as a dashed line.
 */
export function stripPlotSvg(title: string, groups: readonly StripGroup[], yLabel = 'IoU'): string {
  const groupPx = 64;
  const width = Math.max(360, MARGIN.left + MARGIN.right + groups.length * groupPx);
  const height = MARGIN.top + PLOT_HEIGHT_PX + MARGIN.bottom;
  const yOf = (v: number): number => MARGIN.top + PLOT_HEIGHT_PX * (1 - Math.max(0, Math.min(1, v)));
  const parts: string[] = [];
  parts.push(`<svg class="chart" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeXml(title)}">`);
  parts.push(`<title>${escapeXml(title)}</title><text x="${MARGIN.left}" y="14" class="title">${escapeXml(title)}</text>`);
  parts.push(...yAxis(width, yLabel));
  groups.forEach((group, g) => {
    const cx = MARGIN.left + g * groupPx + groupPx / 2;
    const color = group.color ?? PALETTE[g % PALETTE.length];
    const sorted = [...group.values].filter(Number.isFinite).sort((a, b) => a - b);
    if (sorted.length > 0) {
      const [q1, median, q3] = [0.25, 0.5, 0.75].map((q) => quantile(sorted, q));
      parts.push(`<rect x="${px(cx - 14)}" y="${px(yOf(q3))}" width="28" height="${px(Math.max(1, yOf(q1) - yOf(q3)))}" fill="none" stroke="${color}" stroke-width="1.5"/>`);
      parts.push(`<line x1="${px(cx - 14)}" x2="${px(cx + 14)}" y1="${px(yOf(median))}" y2="${px(yOf(median))}" stroke="${color}" stroke-width="2"/>`);
      group.values.forEach((v, n) => {
        if (!Number.isFinite(v)) return;
        // Golden-ratio offsets: evenly spread, deterministic.
        const dx = (((n * 0.618034) % 1) - 0.5) * 36;
        parts.push(`<circle cx="${px(cx + dx)}" cy="${px(yOf(v))}" r="2.2" fill="${color}" fill-opacity="0.55"/>`);
      });
      const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
      const my = yOf(mean);
      parts.push(`<path d="M${px(cx)} ${px(my - 5)} L${px(cx + 5)} ${px(my)} L${px(cx)} ${px(my + 5)} L${px(cx - 5)} ${px(my)} Z" fill="#111"><title>${escapeXml(`${group.name}: mean ${fmt(mean)}, median ${fmt(median)}, n = ${sorted.length}`)}</title></path>`);
    } else {
      parts.push(`<text x="${px(cx)}" y="${px(yOf(0.5))}" text-anchor="middle" class="tick">none</text>`);
    }
    if (group.random !== undefined && Number.isFinite(group.random)) {
      parts.push(`<line x1="${px(cx - 24)}" x2="${px(cx + 24)}" y1="${px(yOf(group.random))}" y2="${px(yOf(group.random))}" class="random"><title>random: ${fmt(group.random)}</title></line>`);
    }
    parts.push(`<text transform="translate(${px(cx)} ${MARGIN.top + PLOT_HEIGHT_PX + 10}) rotate(-35)" text-anchor="end" class="tick">${escapeXml(group.name)}</text>`);
  });
  parts.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${MARGIN.top + PLOT_HEIGHT_PX}" stroke="#444"/>`);
  parts.push('</svg>');
  return parts.join('');
}
