import type { PrecisionSet, RecallMetrics, TumourMetrics } from './metrics.js';
import type { EvalResults, EvalScore, EvalTaskInfo } from './run.js';

/**
 * The report's tables as data, rendered by report-md.ts and report-html.ts alike, so both files always
 * show the same numbers. Every metric table ends with a `random` row: the exact expectation under random
 * retrieval of the same pool (metrics.ts), which is the level a method must clear.
 */

export interface TableRow {
  cells: string[];
  /** 'random' rows are the chance level; 'group' rows head a block. */
  kind?: 'random';
  /** Per cell: the best value of its column among method rows (shown bold). */
  best?: boolean[];
}

export interface ReportTable {
  title: string;
  header: string[];
  rows: TableRow[];
  /** Columns (from the left) that hold names, not numbers. */
  nameColumns: number;
  note?: string;
}

export const f3 = (v: number | undefined | null): string => (v === undefined || v === null || !Number.isFinite(v) ? '–' : v.toFixed(3));
export const seconds = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '–' : v < 10 ? `${v.toFixed(1)} s` : `${v.toFixed(0)} s`);

function markBest(rows: TableRow[], nameColumns: number): void {
  const methodRows = rows.filter((r) => r.kind !== 'random');
  const columns = methodRows[0]?.cells.length ?? 0;
  for (const row of methodRows) row.best = row.cells.map(() => false);
  for (let c = nameColumns; c < columns; c++) {
    const values = methodRows.map((r) => Number(r.cells[c]));
    const max = Math.max(...values.filter(Number.isFinite));
    if (!Number.isFinite(max)) continue;
    methodRows.forEach((r, n) => {
      if (values[n] === max) r.best![c] = true;
    });
  }
}

export function scoreOf(results: EvalResults, task: string, encoder: string, method: string): EvalScore | undefined {
  return results.scores.find((s) => s.task === task && s.encoder === encoder && s.method === method);
}

/** Strata shown for a tumour task: overall, and per stratum plus the macro mean when there are several. */
export function tumourViews(task: EvalTaskInfo): { key: string; title: string }[] {
  const views = [{ key: 'overall', title: 'all queries' }];
  if (task.strata.length > 1) {
    views.push(...task.strata.map((s) => ({ key: s, title: `${s} queries` })));
    views.push({ key: 'macro', title: 'macro mean over organs' });
  }
  return views;
}

function tumourMetricsOf(score: EvalScore, view: string, random: boolean): TumourMetrics | undefined {
  const t = score.tumour;
  if (!t) return undefined;
  const side = random ? t.random : t;
  if (view === 'overall') return side.overall;
  if (view === 'macro') return side.macro;
  return side.byStratum[view];
}

const precisionCells = (p: PrecisionSet, ks: readonly number[]): string[] => [...ks.map((k) => f3(p.precisionAtK[k])), f3(p.ap10)];

export function tumourTable(results: EvalResults, task: EvalTaskInfo, view: { key: string; title: string }): ReportTable {
  const ks = results.settings.precisionKs;
  const header = ['method', 'encoder', ...ks.map((k) => `flag P@${k}`), 'flag AP@10', ...ks.map((k) => `group P@${k}`), 'group AP@10', 'results/query'];
  const rows: TableRow[] = [];
  let random: TumourMetrics | undefined;
  let queries = 0;
  for (const encoder of results.encoders) {
    for (const method of results.methods) {
      const score = scoreOf(results, task.name, encoder.name, method.label);
      const m = score && tumourMetricsOf(score, view.key, false);
      if (!m) continue;
      random ??= tumourMetricsOf(score, view.key, true);
      queries = m.queryCount;
      rows.push({ cells: [method.label, encoder.name, ...precisionCells(m.flag, ks), ...precisionCells(m.group, ks), score.meanResults.toFixed(1)] });
    }
  }
  markBest(rows, 2);
  for (const row of rows) if (row.best) row.best[header.length - 1] = false;
  if (random) rows.push({ kind: 'random', cells: ['random', '(expected)', ...precisionCells(random.flag, ks), ...precisionCells(random.group, ks), ''] });
  return {
    title: `${task.name} — ${view.title} (${queries} queries, ${task.databaseSize} database volumes)`,
    header,
    rows,
    nameColumns: 2,
    note: 'results/query: volumes a method returned per query (at most 10); P@k counts missing ranks as misses.',
  };
}

const recallCells = (r: RecallMetrics, ks: readonly number[]): string[] => ks.map((k) => f3(r.recallAtK[k]));

export function regionTable(results: EvalResults, task: EvalTaskInfo): ReportTable {
  const ks = results.settings.recallKs;
  const header = ['method', 'encoder', ...ks.map((k) => `recall@${k}`), 'IoU mean', 'IoU partial', 'pairs', 'IoU random', 'partial random', 'partial pairs', 'without truth'];
  const rows: TableRow[] = [];
  let random: RecallMetrics | undefined;
  for (const encoder of results.encoders) {
    for (const method of results.methods) {
      const score = scoreOf(results, task.name, encoder.name, method.label);
      if (!score?.region || !score.localization) continue;
      random ??= score.region.random.overall;
      const loc = score.localization.overall;
      const partial = score.partialLocalization?.overall;
      rows.push({
        cells: [
          method.label,
          encoder.name,
          ...recallCells(score.region.overall, ks),
          f3(loc.meanIoU),
          f3(partial?.meanIoU),
          String(loc.scoredCount),
          f3(loc.randomMeanIoU),
          f3(partial?.randomMeanIoU),
          String(partial?.scoredCount ?? 0),
          String(loc.withoutTruthCount),
        ],
      });
    }
  }
  markBest(rows, 2);
  // Random IoU and pair counts are facts of each row, not something to win.
  for (const row of rows) if (row.best) for (let c = header.length - 5; c < header.length; c++) row.best[c] = false;
  if (random) rows.push({ kind: 'random', cells: ['random', '(expected)', ...recallCells(random, ks), '(per row →)', '', '', '', '', '', ''] });
  return {
    title: `${task.name} — region recall and localization (${task.queryCount} queries, ${task.databaseSize} database volumes)`,
    header,
    rows,
    nameColumns: 2,
    note:
      `IoU: z-overlap of the returned region with the queried structure's true extent, over the top ${results.settings.localizationDepth} results of each query that contain the structure (pairs); ` +
      `"partial": only the pairs where the structure covers less than 90 % of the retrieved scan, the ones where a localization can miss at all. ` +
      '"IoU random": a window of the true length placed uniformly in each of those volumes (it differs per row because each method retrieves other volumes).',
  };
}

/** Per region (when there are several): recall@5 of every method, one table per encoder. */
export function perRegionTables(results: EvalResults, task: EvalTaskInfo, k = 5): ReportTable[] {
  if (task.strata.length <= 1) return [];
  return results.encoders.map((encoder) => {
    const header = ['region', 'queries', ...results.methods.map((m) => m.label), 'random'];
    const rows: TableRow[] = task.strata.map((region) => {
      const cells = [region, ''];
      let random = NaN;
      for (const method of results.methods) {
        const score = scoreOf(results, task.name, encoder.name, method.label);
        const r = score?.region?.byRegion[region];
        cells[1] = String(r?.queryCount ?? cells[1]);
        random = score?.region?.random.byRegion[region]?.recallAtK[k] ?? random;
        cells.push(f3(r?.recallAtK[k]));
      }
      cells.push(f3(random));
      const values = cells.slice(2, -1).map(Number);
      const max = Math.max(...values.filter(Number.isFinite));
      return { cells, best: cells.map((_, c) => c >= 2 && c < cells.length - 1 && Number(cells[c]) === max) };
    });
    return { title: `${task.name} — recall@${k} per region, ${encoder.name}`, header, rows, nameColumns: 2 };
  });
}

export function sameScanTable(results: EvalResults): ReportTable | undefined {
  const tasks = results.tasks.filter((t) => results.scores.some((s) => s.task === t.name && s.sameScan && Number.isFinite(s.sameScan.share)));
  if (tasks.length === 0) return undefined;
  const k = results.scores.find((s) => s.sameScan)!.sameScan!.k;
  const rows: TableRow[] = [];
  for (const encoder of results.encoders) {
    for (const method of results.methods) {
      rows.push({ cells: [method.label, encoder.name, ...tasks.map((t) => f3(scoreOf(results, t.name, encoder.name, method.label)?.sameScan?.share))] });
    }
  }
  rows.push({ kind: 'random', cells: ['random', '(expected)', ...tasks.map((t) => f3(results.scores.find((s) => s.task === t.name && s.sameScan)?.sameScan?.randomShare))] });
  return {
    title: `Near-duplicates: share of the top ${k} that are variants of the query's own scan (lower means less driven by scan identity)`,
    header: ['method', 'encoder', ...tasks.map((t) => t.name)],
    rows,
    nameColumns: 2,
  };
}

export function setupTables(results: EvalResults): ReportTable[] {
  const tasks: ReportTable = {
    title: 'Tasks',
    header: ['task', 'kind', 'database volumes', 'queries', 'strata / regions'],
    rows: results.tasks.map((t) => ({ cells: [t.name, t.kind, String(t.databaseSize), String(t.queryCount), t.strata.join(', ')] })),
    nameColumns: 5,
  };
  const encoders: ReportTable = {
    title: 'Encoders and indexes',
    header: ['encoder', 'id', 'dim', 'volumes', 'slices', 'indexing', 'query slices', 'query embedding'],
    rows: results.encoders.map((e) => ({
      cells: [e.name, e.id, String(e.dim), String(e.index.volumes), String(e.index.slices), `${seconds(e.index.seconds)} (${e.index.added} added, ${e.index.unchanged} reused${e.index.failed ? `, ${e.index.failed} failed` : ''})`, String(e.querySlices), seconds(e.queryEmbedSeconds)],
    })),
    nameColumns: 8,
  };
  const timing: ReportTable = {
    title: 'Search time per method (all queries of all tasks)',
    header: ['method', ...results.encoders.map((e) => e.name)],
    rows: results.methods.map((m) => ({ cells: [m.label, ...results.encoders.map((e) => seconds(e.searchSeconds[m.label]))] })),
    nameColumns: 1 + results.encoders.length,
  };
  return [tasks, encoders, timing];
}
