import { resolve } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { CV_KS, CV_SPACES, runGroupedCv } from '../eval/grouped-cv.js';
import { cvReading, cvSliceReading, cvSliceRows, writeCvReports } from '../eval/report-cv.js';
import type { SliceTarget } from '../labels/slice-targets.js';
import { displayPath, formatTable } from './format.js';
import { startProgress, type Progress } from './progress.js';

export interface EvalCvOptions {
  out: string;
  target?: string;
  groupBy?: string;
  folds?: number;
  seed?: number;
  whiten?: number;
  head?: string;
  sliceTargets?: SliceTarget[];
  encoder: string;
  progress: boolean;
  json?: boolean;
}

/**
 * `mir3d eval <labels.csv> --target COLUMN --group-by COLUMN [--folds 5]`: grouped k-fold evaluation of
 * the raw backbone, the archive normalization and the fine-tuned head (src/eval/grouped-cv.ts), written
 * as report.md, report.html and results.json, with the headline table on the terminal.
 */
export async function runCvEval(csvPath: string, options: EvalCvOptions): Promise<void> {
  const sliceTargets = options.sliceTargets ?? [];
  if (!options.target && sliceTargets.length === 0) throw new InvalidArgumentError('--target COLUMN: the label retrieved images must share with the query (e.g. covid); several: a,b (or --slice-target NAME=VALUES with a mask column)');
  if (!options.groupBy) throw new InvalidArgumentError('--group-by COLUMN: the label that keeps each patient on one side of every fold (e.g. patient)');
  if (options.head !== undefined && options.head !== 'lda' && options.head !== 'mlp') throw new InvalidArgumentError('--head: lda or mlp');
  const targets = (options.target ?? '').split(',').map((t) => t.trim()).filter(Boolean);
  const out = resolve(options.out);
  let bar: { stage: string; progress: Progress } | undefined;
  const stop = (): void => {
    bar?.progress.stop();
    bar = undefined;
  };
  let results;
  try {
    results = await runGroupedCv({
      csvPath,
      targets,
      groupBy: options.groupBy,
      outDir: out,
      encoder: options.encoder,
      ...(options.folds ? { folds: options.folds } : {}),
      ...(options.seed ? { seed: options.seed } : {}),
      ...(options.whiten ? { whitenDim: options.whiten } : {}),
      ...(options.head ? { head: options.head as 'lda' | 'mlp' } : {}),
      ...(sliceTargets.length > 0 ? { sliceTargets } : {}),
      onStatus: (line) => {
        stop();
        process.stderr.write(`${line}\n`);
      },
      onProgress: (stage, done, total, detail) => {
        const label = stage === 'embedding' ? 'embedding' : 'folds';
        if (bar?.stage !== label) {
          stop();
          bar = { stage: label, progress: startProgress(label === 'embedding' ? 'indexing' : 'grouped k-fold', total, label === 'embedding' ? 'volumes' : 'folds', options.progress) };
        }
        bar.progress.setTotal(total);
        bar.progress.update(done, detail ?? '');
      },
    });
  } finally {
    stop();
  }
  const files = await writeCvReports(out, results);
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ files, metrics: results.metrics, gains: results.gains, ...(results.sliceMetrics ? { sliceMetrics: results.sliceMetrics } : {}), seconds: results.seconds }, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
    return;
  }
  const f = (v: number): string => (Number.isFinite(v) ? v.toFixed(3) : '–');
  const metrics = [...CV_KS.map((k) => `P@${k}`), 'AP@10'];
  for (const target of targets) {
    const rows = CV_SPACES.map((space) => [space, ...metrics.map((m) => `${f(results.metrics[space][target][m].mean)} ± ${f(results.metrics[space][target][m].se)}`)]);
    rows.push(['random (exact)', ...metrics.map((m) => f(results.metrics.raw[target][m].random))]);
    process.stdout.write(`${target}: ${results.queries.length} queries, ${results.settings.folds} folds by ${results.dataset.groupBy} (${results.dataset.groups} groups)\n\n${formatTable(['space', ...metrics], rows, [1, 2, 3, 4])}\n\n${cvReading(results, target)}\n\n`);
  }
  for (const target of Object.keys(results.sliceMetrics ?? {})) {
    process.stdout.write(`${target}, per slice:\n\n${formatTable(['space', `P@${results.sliceMetrics![target].k}`], cvSliceRows(results, target), [1])}\n\n${cvSliceReading(results, target)}\n\n`);
  }
  process.stdout.write(`report: ${displayPath(files.markdown)}, ${displayPath(files.html)}; numbers: ${displayPath(files.json)}; ${results.seconds.toFixed(0)} s\n`);
}
