import type { Example } from './report-pictures.js';
import { TRUTH_COLOR } from './report-pictures.js';
import { readingOf } from './report-reading.js';
import { barChartSvg, escapeXml, PALETTE, stripPlotSvg, type BarSeries } from './report-svg.js';
import { datasetLine, settingsLines, timingLine } from './report-md.js';
import { f3, perRegionTables, regionTable, sameScanTable, scoreOf, setupTables, tumourTable, tumourViews, type ReportTable } from './report-tables.js';
import type { EvalResults, EvalTaskInfo } from './run.js';
import { MATCH_COLOR, QUERY_COLOR } from '../io/sheet.js';

/**
 * report.html: one self-contained file — inline CSS, inline SVG charts, pictures as data: URIs. It
 * references nothing outside itself (no script, font, stylesheet or link), so it opens the same offline,
 * from a mail attachment or an archive years later.
 */

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;max-width:1200px;margin:24px auto;padding:0 16px}
h1{font-size:24px}h2{font-size:19px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}h3{font-size:16px;margin-top:24px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:12.5px}th,td{padding:3px 8px;border-bottom:1px solid #e5e5e5;text-align:right;white-space:nowrap}
th{background:#f5f5f7;position:sticky;top:0}td.name,th.name{text-align:left}tr.random td{font-style:italic;color:#8a1c1c;background:#fff6f6}
td.best{font-weight:700}td.name{white-space:normal;max-width:520px;overflow-wrap:anywhere;text-align:left}caption{caption-side:top;text-align:left;font-weight:600;padding:4px 0}
.note{color:#555;font-size:12.5px;max-width:900px}.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{background:#fff;border:1px solid #eee}svg .title{font-size:13px;font-weight:600}svg .tick{font-size:10.5px;fill:#444}
svg .legend{font-size:11px}svg .axis{font-size:11px;fill:#444}svg .random{stroke:#b00;stroke-width:1.5;stroke-dasharray:5 3}
svg .random-label{font-size:10.5px;fill:#b00}.examples figure{display:inline-block;margin:0 6px 8px 0;vertical-align:top;text-align:center}
.examples img{height:180px;image-rendering:auto;background:#000;border-radius:2px}.examples figcaption{font-size:11px;line-height:1.3;max-width:200px;overflow-wrap:anywhere}
.example{margin-bottom:18px}.swatch{display:inline-block;width:11px;height:11px;vertical-align:-1px;margin:0 3px 0 8px}
ul.reading li{margin-bottom:8px}code{background:#f2f2f4;padding:0 3px;border-radius:3px}details{margin:8px 0}
.wide{overflow-x:auto}
`;

const rgb = (c: readonly number[]): string => `rgb(${c.join(',')})`;

/** Markdown's **bold** and `code`, the only inline marks the reading uses, on escaped text. */
function inlineMarkdown(text: string): string {
  return escapeXml(text)
    .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>')
    .replace(/`([^`]+)`/g, '<code>$1</code>');
}

export function htmlTable(table: ReportTable): string {
  const head = table.header.map((h, c) => `<th${c < table.nameColumns ? ' class="name"' : ''}>${escapeXml(h)}</th>`).join('');
  const body = table.rows
    .map((row) => {
      const cells = row.cells.map((text, c) => {
        const classes = [c < table.nameColumns ? 'name' : '', row.best?.[c] ? 'best' : ''].filter(Boolean).join(' ');
        return `<td${classes ? ` class="${classes}"` : ''}>${escapeXml(text)}</td>`;
      });
      return `<tr${row.kind === 'random' ? ' class="random"' : ''}>${cells.join('')}</tr>`;
    })
    .join('');
  return `<div class="wide"><table><caption>${escapeXml(table.title)}</caption><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table></div>${table.note ? `<p class="note">${escapeXml(table.note)}</p>` : ''}`;
}

/** A lighter tint of a #rrggbb colour (0 = the colour, 1 = white). */
function tint(hex: string, amount: number): string {
  const n = Number.parseInt(hex.slice(1), 16);
  const channel = (shift: number): number => Math.round(((n >> shift) & 255) + (255 - ((n >> shift) & 255)) * amount);
  return `rgb(${channel(16)},${channel(8)},${channel(0)})`;
}

/** Chance lines for several k: one line when they coincide (P@k for k ≤ pool size), else one per k. */
function randomLines(values: readonly { k: number; value: number }[], metric: string): { value: number; label: string }[] {
  const finite = values.filter((v) => Number.isFinite(v.value));
  if (finite.length === 0) return [];
  if (finite.every((v) => Math.abs(v.value - finite[0].value) < 5e-4)) return [{ value: finite[0].value, label: 'random' }];
  return finite.map((v) => ({ value: v.value, label: `random ${metric}@${v.k}` }));
}

function tumourCharts(results: EvalResults, task: EvalTaskInfo): string {
  const ks = results.settings.precisionKs;
  const charts: string[] = [];
  for (const view of tumourViews(task).filter((v) => v.key !== 'macro')) {
    for (const side of ['flag', 'group'] as const) {
      const series: BarSeries[] = [];
      const random = new Map<number, number>();
      results.encoders.forEach((encoder, e) => {
        ks.forEach((k, n) => {
          series.push({
            name: `${encoder.name} P@${k}`,
            color: tint(PALETTE[e % PALETTE.length], n * 0.28),
            values: results.methods.map((m) => {
              const t = scoreOf(results, task.name, encoder.name, m.label)?.tumour;
              const metrics = view.key === 'overall' ? t?.overall : t?.byStratum[view.key];
              const randomMetrics = view.key === 'overall' ? t?.random.overall : t?.random.byStratum[view.key];
              if (randomMetrics && !random.has(k)) random.set(k, randomMetrics[side].precisionAtK[k]);
              return metrics?.[side].precisionAtK[k] ?? NaN;
            }),
          });
        });
      });
      const lines = randomLines([...random].map(([k, value]) => ({ k, value })), 'P');
      charts.push(barChartSvg({ title: `${task.name} · ${view.title} · ${side} P@k`, groups: results.methods.map((m) => m.label), series, random: { lines }, yLabel: `${side} P@k` }));
    }
  }
  return `<div class="charts">${charts.join('')}</div>`;
}

function regionCharts(results: EvalResults, task: EvalTaskInfo): string {
  const charts: string[] = [];
  const ks = [1, 5].filter((x) => results.settings.recallKs.includes(x));
  // Recall per method (all regions together), P@k-chart style: encoders × k as bars.
  const series: BarSeries[] = [];
  const random = new Map<number, number>();
  results.encoders.forEach((encoder, e) => {
    ks.forEach((k, n) => {
      series.push({
        name: `${encoder.name} recall@${k}`,
        color: tint(PALETTE[e % PALETTE.length], n * 0.4),
        values: results.methods.map((m) => {
          const r = scoreOf(results, task.name, encoder.name, m.label)?.region;
          if (r && !random.has(k)) random.set(k, r.random.overall.recallAtK[k]);
          return r?.overall.recallAtK[k] ?? NaN;
        }),
      });
    });
  });
  charts.push(barChartSvg({ title: `${task.name} · recall@k`, groups: results.methods.map((m) => m.label), series, random: { lines: randomLines([...random].map(([k, value]) => ({ k, value })), 'recall') }, yLabel: 'recall@k' }));
  // Per region, when there are several: methods as bars, that region's chance level across its group.
  if (task.strata.length > 1) {
    for (const encoder of results.encoders) {
      const k = ks[ks.length - 1];
      const perRegion: BarSeries[] = results.methods.map((m, n) => {
        const r = scoreOf(results, task.name, encoder.name, m.label)?.region;
        return { name: m.label, color: PALETTE[n % PALETTE.length], values: task.strata.map((g) => r?.byRegion[g]?.recallAtK[k] ?? NaN) };
      });
      const any = results.methods.map((m) => scoreOf(results, task.name, encoder.name, m.label)?.region).find((r) => r);
      charts.push(barChartSvg({ title: `${task.name} · ${encoder.name} · recall@${k} per region`, groups: task.strata, series: perRegion, random: { perGroup: task.strata.map((g) => any?.random.byRegion[g]?.recallAtK[k] ?? NaN) }, yLabel: `recall@${k}` }));
    }
  }
  for (const encoder of results.encoders) {
    const strips = results.methods.map((m, n) => {
      const s = scoreOf(results, task.name, encoder.name, m.label);
      return { name: m.label, values: Object.values(s?.iousByRegion ?? {}).flat(), random: s?.localization?.overall.randomMeanIoU ?? NaN, color: PALETTE[n % PALETTE.length] };
    });
    charts.push(stripPlotSvg(`${task.name} · ${encoder.name} · localization z-IoU (top ${results.settings.localizationDepth})`, strips));
  }
  return `<div class="charts">${charts.join('')}</div>`;
}

function perQueryDetails(results: EvalResults, task: EvalTaskInfo): string {
  const parts: string[] = [];
  for (const encoder of results.encoders) {
    const header = ['query', 'flag', 'group', ...results.methods.map((m) => m.label)];
    const rows = task.queryKeys.map((key) => {
      const c = results.cases[key];
      const cells = results.methods.map((m) => f3(scoreOf(results, task.name, encoder.name, m.label)?.tumour?.perQuery.find((q) => q.queryId === key)?.group.precisionAtK[10]));
      return { cells: [key, String(c?.cancerFlag ?? ''), String(c?.lesionGroup ?? ''), ...cells] };
    });
    parts.push(htmlTable({ title: `group P@10 per query, ${encoder.name}`, header, rows, nameColumns: 3 }));
  }
  return `<details><summary>Per-query group P@10</summary>${parts.join('')}</details>`;
}

function examplesHtml(examples: readonly Example[]): string {
  if (examples.length === 0) return '<p>No example pictures.</p>';
  const legend =
    `<p class="note">Coronal views, superior at the top. <span class="swatch" style="background:${rgb(QUERY_COLOR)}"></span>query slab ` +
    `<span class="swatch" style="background:${rgb(MATCH_COLOR)}"></span>localized region ` +
    `<span class="swatch" style="background:${rgb(TRUTH_COLOR)}"></span>true extent (edges) of the queried structure, or for a tumour query of its organ, from the masks</p>`;
  const blocks = examples.map((ex) => {
    const figures = ex.panels
      .map((p) => `<figure><img alt="${escapeXml(p.caption.join(' '))}" width="${p.widthPx}" height="${p.heightPx}" src="data:image/png;base64,${p.pngBase64}"><figcaption>${p.caption.filter(Boolean).map(escapeXml).join('<br>')}</figcaption></figure>`)
      .join('');
    const problems = ex.problems.length ? `<p class="note">${ex.problems.map(escapeXml).join('<br>')}</p>` : '';
    return `<div class="example"><h3>${escapeXml(ex.title)}</h3><div class="examples">${figures}</div>${problems}</div>`;
  });
  return legend + blocks.join('');
}

export function renderHtml(results: EvalResults, examples: readonly Example[]): string {
  const body: string[] = [];
  body.push(`<h1>mir3d evaluation — ${escapeXml(results.dataset.kind)}</h1>`);
  body.push(`<p class="note">Generated ${escapeXml(results.createdAt)} by <code>mir3d eval</code>. Every number is also in <code>results.json</code>, the same tables in <code>report.md</code>.</p>`);
  body.push('<h2>Setup</h2>');
  body.push(`<p>Dataset: ${inlineMarkdown(datasetLine(results))}.</p>`);
  body.push(`<ul>${results.dataset.notes.map((n) => `<li>${inlineMarkdown(n)}</li>`).join('')}</ul>`);
  for (const line of settingsLines(results)) body.push(`<p>${inlineMarkdown(line)}</p>`);
  for (const table of setupTables(results)) body.push(htmlTable(table));
  body.push(`<p>Timings: ${inlineMarkdown(timingLine(results))}</p>`);
  const problems = results.encoders.flatMap((e) => e.index.problems.map((p) => `${e.name}: ${p}`));
  if (problems.length) body.push(`<p>Problems:</p><ul>${problems.map((p) => `<li>${escapeXml(p)}</li>`).join('')}</ul>`);

  body.push('<h2>Reading the results</h2>');
  body.push(`<ul class="reading">${readingOf(results).map((p) => `<li>${inlineMarkdown(p)}</li>`).join('')}</ul>`);

  body.push('<h2>Results</h2>');
  for (const task of results.tasks) {
    body.push(`<h3>${escapeXml(task.name)}</h3>`);
    if (task.kind === 'tumour') {
      body.push(tumourCharts(results, task));
      body.push('<p class="note">Dashed red line: random retrieval (exact expectation). Bars: P@3, P@5, P@10 per encoder, lighter for larger k.</p>');
      for (const view of tumourViews(task)) body.push(htmlTable(tumourTable(results, task, view)));
      body.push(perQueryDetails(results, task));
    } else {
      body.push(regionCharts(results, task));
      body.push('<p class="note">Recall charts: dashed red line per region is random retrieval. IoU plot: one dot per (query, retrieved volume containing the structure); box = quartiles, bar = median, diamond = mean, dashed line = a random window of the true length.</p>');
      body.push(htmlTable(regionTable(results, task)));
      for (const table of perRegionTables(results, task)) body.push(htmlTable(table));
    }
  }
  const same = sameScanTable(results);
  if (same) body.push('<h3>Near-duplicates</h3>', htmlTable(same));

  body.push('<h2>Examples</h2>');
  body.push(examplesHtml(examples));
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>mir3d evaluation — ${escapeXml(results.dataset.kind)}</title><style>${CSS}</style></head><body>${body.join('\n')}</body></html>\n`;
}
