import { readingOf } from './report-reading.js';
import { perRegionTables, regionTable, sameScanTable, seconds, setupTables, tumourTable, tumourViews, type ReportTable } from './report-tables.js';
import type { EvalResults } from './run.js';

/** report.md: the whole evaluation in Markdown — setup, every metric table with its random row, the
 * reading. The pictures and charts are in report.html. */

const cell = (text: string): string => text.replace(/\|/g, '\\|');

export function markdownTable(table: ReportTable): string {
  const lines = [`**${table.title}**`, '', `| ${table.header.map(cell).join(' | ')} |`, `|${table.header.map((_, c) => (c < table.nameColumns ? '---' : '---:')).join('|')}|`];
  for (const row of table.rows) {
    const cells = row.cells.map((text, c) => {
      if (row.kind === 'random') return text ? `*${cell(text)}*` : '';
      return row.best?.[c] ? `**${cell(text)}**` : cell(text);
    });
    lines.push(`| ${cells.join(' | ')} |`);
  }
  if (table.note) lines.push('', table.note);
  return lines.join('\n');
}

export function datasetLine(results: EvalResults): string {
  const d = results.dataset;
  const parts = [`${d.kind} at \`${d.path}\``];
  if (d.protocol) parts.push(`protocol ${d.protocol === 'cmir' ? 'C-MIR (one mixed archive)' : '3D-MIR (one database per organ)'}`);
  if (d.organ) parts.push(`organ ${d.organ}`);
  if (d.labelsDir) parts.push(`labels \`${d.labelsDir}\``);
  if (d.level) parts.push(`${d.level} regions`);
  return parts.join(', ');
}

export function settingsLines(results: EvalResults): string[] {
  const s = results.settings;
  return [
    `Methods: ${results.methods.map((m) => `\`${m.label}\``).join(', ')}.`,
    `Slice methods take the k = ${s.sliceK} nearest database slices per query slice (exact search); \`rerank\` re-scores the top N = ${s.candidates} volumes of \`${s.firstStage}\` by late interaction; fusions fuse the top max(${s.top}, N) of each list; ${s.top} results kept per query.`,
    `Metrics: flag and group P@k (k = ${s.precisionKs.join(', ')}) and AP@10 for tumour tasks; recall@k (k = ${s.recallKs.join(', ')}) and z-IoU of the localized region (\`${s.localization}\` localization, top ${s.localizationDepth} results) for region tasks. Every random row is the exact expectation under random retrieval from the same pool.`,
  ];
}

export function timingLine(results: EvalResults): string {
  const t = results.timings;
  const index = results.encoders.map((e) => `${e.name} indexing ${seconds(e.index.seconds)}, query embedding ${seconds(e.queryEmbedSeconds)}, search ${seconds(Object.values(e.searchSeconds).reduce((a, b) => a + b, 0))}`);
  return `Total ${seconds(t.totalSeconds)}${t.buildSeconds !== undefined ? ` (benchmark build ${seconds(t.buildSeconds)})` : ''}; dataset preparation ${seconds(t.prepareSeconds)}; ${index.join('; ')}; scoring ${seconds(t.scoringSeconds)}${t.reportSeconds !== undefined ? `; report ${seconds(t.reportSeconds)}` : ''}. Machine: ${results.machine.cpus} CPU cores, Node ${results.machine.node}, ${results.machine.platform}.`;
}

export function renderMarkdown(results: EvalResults): string {
  const out: string[] = [];
  out.push(`# mir3d evaluation — ${results.dataset.kind}`, '');
  out.push(`Generated ${results.createdAt} by \`mir3d eval\`. Every number is also in \`results.json\`; charts and example pictures are in \`report.html\`.`, '');
  out.push('## Setup', '');
  out.push(`Dataset: ${datasetLine(results)}.`, '');
  for (const note of results.dataset.notes) out.push(`- ${note}`);
  out.push('');
  for (const line of settingsLines(results)) out.push(line, '');
  for (const table of setupTables(results)) out.push(markdownTable(table), '');
  out.push(`Timings: ${timingLine(results)}`, '');
  const problems = results.encoders.flatMap((e) => e.index.problems.map((p) => `${e.name}: ${p}`));
  if (problems.length > 0) {
    out.push('Problems:', '');
    for (const p of problems) out.push(`- ${p}`);
    out.push('');
  }

  out.push('## Results', '');
  for (const task of results.tasks) {
    out.push(`### ${task.name}`, '');
    if (task.kind === 'tumour') {
      for (const view of tumourViews(task)) out.push(markdownTable(tumourTable(results, task, view)), '');
    } else {
      out.push(markdownTable(regionTable(results, task)), '');
      for (const table of perRegionTables(results, task)) out.push(markdownTable(table), '');
    }
  }
  const same = sameScanTable(results);
  if (same) out.push('### Near-duplicates', '', markdownTable(same), '');

  out.push('## Reading the results', '');
  for (const paragraph of readingOf(results)) out.push(`- ${paragraph}`);
  out.push('');
  return out.join('\n');
}
