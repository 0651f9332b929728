/**
 * report.md, report.html (with an SVG chart) and results.json for a grouped k-fold evaluation of spaces,
 * with the reading generated from the numbers: the gain of the fine-tuned space over raw is called a gain
 * only when it exceeds two standard errors of the paired per-query difference.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/nifti-writer.js';
import { CV_KS, CV_SPACES, type CvResults } from './grouped-cv.js';
import { barChartSvg, escapeXml } from './report-svg.js';

const f3 = (v: number): string => (Number.isFinite(v) ? v.toFixed(3) : '–');
const pm = (mean: number, se: number): string => `${f3(mean)} ± ${f3(se)}`;
const METRICS = [...CV_KS.map((k) => `P@${k}`), 'AP@10'];
/** A paired difference read at two standard errors. */
const verdictOf = (d: { mean: number; se: number }): string =>
  d.mean > 2 * d.se ? 'a gain beyond two standard errors' : d.mean < -2 * d.se ? 'a loss beyond two standard errors' : 'within two standard errors of no change';

export function cvTableRows(results: CvResults, target: string): string[][] {
  return CV_SPACES.map((space) => [space, ...METRICS.map((m) => {
    const v = results.metrics[space][target][m];
    return `${pm(v.mean, v.se)} (random ${f3(v.random)})`;
  })]);
}

export function cvReading(results: CvResults, target: string): string {
  const raw = results.metrics.raw[target]['P@5'];
  const normalized = results.metrics.normalized[target]['P@5'];
  const tuned = results.metrics['fine-tuned'][target]['P@5'];
  const gain = results.gains[target]['P@5'];
  const nGain = results.normalizedGains?.[target]?.['P@5'];
  const verdict = verdictOf(gain);
  const groups = results.dataset.groups;
  return [
    `On ${results.queries.length} queries from ${groups} ${results.dataset.groupBy} groups in ${results.settings.folds} grouped folds, P@5 for "${target}" is ${f3(raw.mean)} raw, ` +
      `${f3(normalized.mean)} normalized (${results.settings.normalization}) and ${f3(tuned.mean)} fine-tuned, against ${f3(raw.random)} at random. ` +
      `Fine-tuned minus raw: ${pm(gain.mean, gain.se)} (paired over queries), ${verdict}` +
      (nGain ? `; normalized minus raw: ${pm(nGain.mean, nGain.se)}${nGain.mean > 2 * nGain.se ? ', beyond two standard errors' : ', within two standard errors of no change'}.` : '.'),
    `Every query's ${results.dataset.groupBy} was outside the data its fold's normalization and head were fitted on; the head's settings were chosen on a validation split of whole groups inside the training folds.`,
    'What this does not show: how the space does on another collection (another hospital, scanner or figure style); the standard errors treat queries as independent, while images of one group are not.',
  ].join(' ');
}

/** Per-slice targets: P@k of each query slice among its fold's database slices, per space. */
export function cvSliceRows(results: CvResults, target: string): string[][] {
  const m = results.sliceMetrics![target];
  return [...CV_SPACES.map((space) => [space, pm(m.spaces[space].mean, m.spaces[space].se)]), ['random (exact)', f3(m.random)]];
}

export function cvSliceReading(results: CvResults, target: string): string {
  const m = results.sliceMetrics![target];
  const g = m.gains['fine-tuned'];
  const verdict = verdictOf(g);
  return (
    `Each of ${m.slices} query slices, labelled from its own mask, retrieves its ${m.k} nearest slices of its fold's database: P@${m.k} ${f3(m.spaces.raw.mean)} raw, ${f3(m.spaces['fine-tuned'].mean)} fine-tuned, ${f3(m.random)} at random; ` +
    `fine-tuned minus raw ${pm(g.mean, g.se)} (paired over slices), ${verdict}. The standard errors treat slices as independent; slices of one volume are not.`
  );
}

function markdown(results: CvResults): string {
  const out = [`# Grouped ${results.settings.folds}-fold evaluation: ${results.dataset.csv}`, ''];
  out.push(
    `${results.queries.length} rows (of ${results.dataset.rows} listed), ${results.dataset.groups} groups by "${results.dataset.groupBy}"; encoder ${results.settings.encoder} (${results.settings.encoderId}); ` +
      `method ${results.settings.method}; normalization ${results.settings.normalization}; head ${results.settings.head}; seed ${results.settings.seed}; ${results.seconds.toFixed(0)} s.`,
    '',
  );
  for (const target of results.dataset.targets) {
    const counts = Object.entries(results.dataset.labelCounts[target]).map(([k, v]) => `${k}: ${v}`).join(', ');
    out.push(`## ${target} (${counts})`, '', `| space | ${METRICS.join(' | ')} |`, `|---|${METRICS.map(() => '---:').join('|')}|`);
    for (const row of cvTableRows(results, target)) out.push(`| ${row.join(' | ')} |`);
    out.push('', `Mean ± standard error over queries; "random" is the exact expectation for each query's own database, averaged.`, '', cvReading(results, target), '');
  }
  for (const target of Object.keys(results.sliceMetrics ?? {})) {
    out.push(`## ${target}, per slice (P@${results.sliceMetrics![target].k})`, '', '| space | P@5 |', '|---|---:|');
    for (const row of cvSliceRows(results, target)) out.push(`| ${row.join(' | ')} |`);
    out.push('', cvSliceReading(results, target), '');
  }
  out.push('## Folds', '', '| fold | queries | database | query groups | head | validation P@5 (raw, random) |', '|---:|---:|---:|---:|---|---|');
  for (const f of results.folds) {
    out.push(`| ${f.fold} | ${f.queryRows} | ${f.databaseRows} | ${f.queryGroups.length} | ${f.head.description} | ${f3(f.head.validation.p5)} (${f3(f.head.validation.rawP5)}, ${f3(f.head.validation.randomP5)}) |`);
  }
  return `${out.join('\n')}\n`;
}

function html(results: CvResults): string {
  const sections = results.dataset.targets.map((target) => {
    const chart = barChartSvg({
      title: `${target}: precision by space (random dashed)`,
      groups: METRICS,
      series: CV_SPACES.map((space, n) => ({ name: space, color: ['#8c8c8c', '#4e79a7', '#e15759'][n], values: METRICS.map((m) => results.metrics[space][target][m].mean) })),
      random: { perGroup: METRICS.map((m) => results.metrics.raw[target][m].random) },
      yLabel: 'precision',
    });
    const rows = cvTableRows(results, target).map((row) => `<tr>${row.map((cell, i) => (i === 0 ? `<th>${escapeXml(cell)}</th>` : `<td>${escapeXml(cell)}</td>`)).join('')}</tr>`).join('');
    return `<h2>${escapeXml(target)}</h2>${chart}<table><tr><th>space</th>${METRICS.map((m) => `<th>${m}</th>`).join('')}</tr>${rows}</table><p>${escapeXml(cvReading(results, target))}</p>`;
  });
  for (const target of Object.keys(results.sliceMetrics ?? {})) {
    const rows = cvSliceRows(results, target).map((row) => `<tr><th>${escapeXml(row[0])}</th><td>${escapeXml(row[1])}</td></tr>`).join('');
    sections.push(`<h2>${escapeXml(target)}, per slice</h2><table><tr><th>space</th><th>P@${results.sliceMetrics![target].k}</th></tr>${rows}</table><p>${escapeXml(cvSliceReading(results, target))}</p>`);
  }
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>mir3d grouped evaluation</title><style>body{font:14px system-ui,sans-serif;max-width:960px;margin:2em auto}table{border-collapse:collapse}td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:right}th:first-child{text-align:left}.tick,.axis{font-size:11px}</style></head><body><h1>Grouped ${results.settings.folds}-fold evaluation</h1><p>${escapeXml(results.dataset.csv)}: ${results.queries.length} rows, ${results.dataset.groups} groups by ${escapeXml(results.dataset.groupBy)}; encoder ${escapeXml(results.settings.encoder)}.</p>${sections.join('')}</body></html>\n`;
}

export async function writeCvReports(outDir: string, results: CvResults): Promise<{ markdown: string; html: string; json: string }> {
  await mkdir(outDir, { recursive: true });
  const files = { markdown: join(outDir, 'report.md'), html: join(outDir, 'report.html'), json: join(outDir, 'results.json') };
  await writeFileAtomic(files.json, `${JSON.stringify(results, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
  await writeFileAtomic(files.markdown, markdown(results));
  await writeFileAtomic(files.html, html(results));
  return files;
}
