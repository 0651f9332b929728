import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/nifti-writer.js';
import { renderHtml } from './report-html.js';
import { renderMarkdown } from './report-md.js';
import { renderExamples, type Example } from './report-pictures.js';
import { runEval, type EvalOptions, type EvalResults } from './run.js';

/** The three files `mir3d eval` leaves in its out dir, and the function that runs and writes them. */

export interface EvalReportFiles {
  markdown: string;
  html: string;
  json: string;
  /** Composite example pictures (io/sheet.ts). */
  sheets: string[];
}

/** JSON has no NaN or Infinity: a metric with nothing to score is written as null. */
function replacer(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? null : value;
}

export async function writeEvalReports(results: EvalResults, outDir: string, options: { examplesPerTask?: number; onProgress?: EvalOptions['onProgress'] } = {}): Promise<EvalReportFiles> {
  const started = performance.now();
  const dir = resolve(outDir);
  await mkdir(dir, { recursive: true });
  let examples: Example[] = [];
  if ((options.examplesPerTask ?? 3) > 0) {
    options.onProgress?.({ phase: 'pictures', label: 'pictures', done: 0, total: 1 });
    examples = await renderExamples(results, dir, { perTask: options.examplesPerTask ?? 3 });
    options.onProgress?.({ phase: 'pictures', label: 'pictures', done: 1, total: 1 });
  }
  // The pictures are nearly all of the report's time; the text is rendered after, with the timing in.
  results.timings.reportSeconds = (performance.now() - started) / 1000;
  results.timings.totalSeconds += results.timings.reportSeconds;
  const files: EvalReportFiles = {
    markdown: join(dir, 'report.md'),
    html: join(dir, 'report.html'),
    json: join(dir, 'results.json'),
    sheets: examples.flatMap((e) => (e.sheet ? [join(dir, e.sheet)] : [])),
  };
  await writeFileAtomic(files.json, JSON.stringify(results, replacer, 1) + '\n');
  await writeFileAtomic(files.markdown, renderMarkdown(results));
  await writeFileAtomic(files.html, renderHtml(results, examples));
  return files;
}

/** Evaluate and write report.md, report.html and results.json into `options.outDir`. */
export async function evaluateAndReport(options: EvalOptions & { examplesPerTask?: number }): Promise<{ results: EvalResults; files: EvalReportFiles }> {
  const { results } = await runEval(options);
  const files = await writeEvalReports(results, options.outDir, { ...(options.examplesPerTask !== undefined ? { examplesPerTask: options.examplesPerTask } : {}), onProgress: options.onProgress });
  return { results, files };
}

/** results.json written by writeEvalReports, read back: its nulls were NaN (nothing to score). */
export async function readEvalResults(outDir: string): Promise<EvalResults> {
  const text = await readFile(join(resolve(outDir), 'results.json'), 'utf8');
  const results = JSON.parse(text, (_key, value: unknown) => (value === null ? NaN : value)) as EvalResults;
  if (results.schema !== 'mir3d-eval/1') throw new Error(`${outDir}/results.json is not a mir3d eval result (schema ${String(results.schema)})`);
  return results;
}

/** Writes the reports again from an earlier run's results.json (no indexing, no search). */
export async function rewriteEvalReports(outDir: string, options: { examplesPerTask?: number } = {}): Promise<{ results: EvalResults; files: EvalReportFiles }> {
  const results = await readEvalResults(outDir);
  // Keep the run's own timings: rendering again is not part of the evaluation.
  const { totalSeconds, reportSeconds } = results.timings;
  const again: EvalResults = { ...results, timings: { ...results.timings, totalSeconds: totalSeconds - (reportSeconds ?? 0) } };
  const files = await writeEvalReports(again, outDir, options);
  return { results: again, files };
}
