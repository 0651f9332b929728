import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { evaluateTextRetrieval, textEvalMarkdown, TEXT_EVAL_LISTS } from '../eval/text-eval.js';
import { discoverVolumes } from '../ingest/discover.js';
import { indexVolumes } from '../ingest/indexer.js';
import { matchLabelsCsv } from '../ingest/labels-csv.js';
import { openIndex } from '../ingest/open-index.js';
import { parse as parseCsv } from 'csv-parse/sync';
import { readFileSync } from 'node:fs';
import { displayPath, formatTable } from './format.js';
import { startProgress } from './progress.js';

export interface EvalTextOptions {
  out: string;
  captions: string;
  target?: string;
  groupBy?: string;
  folds?: number;
  encoder?: string;
  steps?: number;
  progress: boolean;
  json?: boolean;
}

/**
 * `mir3d eval <labels.csv> --captions COLUMN --target COLUMN --group-by COLUMN --out DIR`: indexes the
 * files the CSV lists (its `path` column, relative to the CSV; reused when unchanged), then runs the
 * grouped k-fold text evaluation (src/eval/text-eval.ts) and writes text-report.md and text-results.json.
 */
export async function runTextEval(csvPath: string, options: EvalTextOptions): Promise<void> {
  if (!options.target) throw new InvalidArgumentError('--target COLUMN: the label a retrieved image must share with the described one (e.g. covid, cancer_flag)');
  if (!options.groupBy) throw new InvalidArgumentError('--group-by COLUMN: the label that keeps a patient on one side of each fold (e.g. patient)');
  const rows = parseCsv(readFileSync(csvPath, 'utf8'), { columns: true, skip_empty_lines: true, trim: true }) as Record<string, string>[];
  if (rows.length === 0 || !('path' in rows[0])) throw new InvalidArgumentError(`${csvPath}: needs a "path" column (files relative to the CSV)`);
  for (const column of [options.captions, options.target, options.groupBy]) {
    if (!(column in rows[0])) throw new InvalidArgumentError(`${csvPath}: no column "${column}" (columns: ${Object.keys(rows[0]).join(', ')})`);
  }
  const out = resolve(options.out);
  const encoderName = options.encoder ?? 'mobilenet_v2';
  const db = join(out, `index-${encoderName.replace(/[^\w.-]+/g, '_')}`);
  await mkdir(out, { recursive: true });
  const discovery = await discoverVolumes(rows.map((r) => resolve(dirname(csvPath), r.path)));
  const index = await openIndex(db, { spec: { encoder: encoderName }, onStatus: (m) => process.stderr.write(`${m}\n`) });
  const { store } = index;
  const encoder = await index.encoder();
  try {
    const bar = startProgress('indexing', discovery.sources.length, 'volumes', options.progress);
    const summary = await indexVolumes(discovery.sources, { store, encoder, labelsFor: matchLabelsCsv(csvPath, [], discovery.sources).labelsFor, onProgress: (p) => bar.update(p.volumesDone) });
    bar.stop();
    if (summary.failed > 0) process.stderr.write(`${summary.failed} file(s) could not be indexed and are left out\n`);
    const folds = options.folds ?? 5;
    const progress = startProgress('text eval', folds, 'folds', options.progress);
    const report = await evaluateTextRetrieval(store, {
      captionColumn: options.captions,
      targetColumn: options.target,
      groupBy: options.groupBy,
      folds,
      ...(options.steps ? { steps: options.steps } : {}),
      onFold: (fold, _total, detail) => progress.update(fold - 1, detail),
    });
    progress.update(folds);
    progress.stop();
    const command = `mir3d eval ${displayPath(csvPath)} --captions ${options.captions} --target ${options.target} --group-by ${options.groupBy} --folds ${folds} --encoders ${encoderName} --out ${displayPath(out)}`;
    const markdown = textEvalMarkdown(report, { dataset: displayPath(csvPath), encoder: encoderName, target: options.target, groupBy: options.groupBy, command });
    await writeFile(join(out, 'text-report.md'), markdown);
    await writeFile(join(out, 'text-results.json'), `${JSON.stringify({ encoder: encoderName, encoderId: store.encoderId, ...report }, null, 2)}\n`);
    if (options.json) {
      process.stdout.write(`${JSON.stringify({ report: join(out, 'text-report.md'), results: join(out, 'text-results.json'), ...report }, null, 2)}\n`);
      return;
    }
    const f = (m: { mean: number; standardError: number }): string => `${m.mean.toFixed(3)} ± ${m.standardError.toFixed(3)}`;
    const table = formatTable(
      ['list', ...report.ks.map((k) => `P@${k}`), 'AP@10'],
      [
        ...TEXT_EVAL_LISTS.map((l) => [l, ...report.ks.map((k) => f(report.precision[l].pAtK[`${k}`])), f(report.precision[l].ap10)]),
        ['random', ...report.ks.map((k) => report.randomPrecision.pAtK[`${k}`].toFixed(3)), report.randomPrecision.ap10.toFixed(3)],
      ],
    );
    process.stdout.write(`${report.queries} caption queries, ${folds} folds by ${options.groupBy}, ${options.target} precision:\n\n${table}\n\n`);
    process.stdout.write(`recall of the described image: ${report.ks.map((k) => `@${k} ${f(report.recall.text[`${k}`])} (random ${report.recall.random[`${k}`].toFixed(4)})`).join(', ')}\n`);
    process.stdout.write(`${markdown.split('## Reading\n\n')[1] ?? ''}\nreport: ${displayPath(join(out, 'text-report.md'))}\n`);
  } finally {
    await index.close();
  }
}
