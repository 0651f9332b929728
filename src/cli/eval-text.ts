import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { evaluateTextRetrieval, textEvalMarkdown, TEXT_EVAL_LISTS, type TextEvalReport } from '../eval/text-eval.js';
import { evaluateTextOnTask } from '../eval/text-task.js';
import { hasThreeDMirFiles } from '../labels/threedmir-csv.js';
import { buildDevBenchmark, DEVBENCH_TASK_FOLDER, type DevBenchManifest } from '../synth/devbench.js';
import { discoverVolumes } from '../ingest/discover.js';
import { IngestError } from '../ingest/errors.js';
import { displayImageSpec, readEncoderSpec, type EncoderSpec } from '../ingest/encoder-spec.js';
import { keyImageGivesDisplay } from '../io/key-image.js';
import { indexVolumes } from '../ingest/indexer.js';
import { matchLabelsCsv } from '../ingest/labels-csv.js';
import { openIndex } from '../ingest/open-index.js';
import { parse as parseCsv } from 'csv-parse/sync';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
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
 * grouped k-fold text evaluation (src/eval/text-eval.ts) and writes report.md and results.json, as every
 * eval does. Without --target, the one label column with a few values (2–10) is the target, and it says so.
 */
export async function runTextEval(csvPath: string, options: EvalTextOptions): Promise<void> {
  if (!options.groupBy) throw new InvalidArgumentError('--group-by COLUMN: the label that keeps a patient on one side of each fold (e.g. patient)');
  const rows = parseCsv(readFileSync(csvPath, 'utf8'), { columns: true, skip_empty_lines: true, trim: true }) as Record<string, string>[];
  if (rows.length === 0 || !('path' in rows[0])) throw new InvalidArgumentError(`${csvPath}: needs a "path" column (files relative to the CSV)`);
  const target = options.target ?? inferTarget(csvPath, rows, [options.captions, options.groupBy]);
  for (const column of [options.captions, target, options.groupBy]) {
    if (!(column in rows[0])) throw new InvalidArgumentError(`${csvPath}: no column "${column}" (columns: ${Object.keys(rows[0]).join(', ')})`);
  }
  if (!rows.some((r) => (r[options.captions] ?? '').trim() !== '')) throw new InvalidArgumentError(`${csvPath}: column "${options.captions}" holds no caption`);
  const out = resolve(options.out);
  const encoderName = options.encoder ?? 'mobilenet_v2';
  const db = join(out, `index-${encoderName.replace(/[^\w.-]+/g, '_')}`);
  await mkdir(out, { recursive: true });
  const discovery = await discoverVolumes(rows.map((r) => resolve(dirname(csvPath), r.path)));
  if (discovery.sources.length === 0) {
    const first = discovery.problems[0];
    throw new IngestError('NOTHING_TO_INDEX', `${displayPath(csvPath)}: none of the ${rows.length} files it lists is a readable volume or image${first ? ` (first: ${displayPath(first.path)}: ${first.reason})` : ''}`);
  }
  // 8-bit key images of unknown window (COVID-CT's figures) are embedded as grey levels, as mir3d index does.
  const spec: EncoderSpec = readEncoderSpec(db) ?? ((await keyImageGivesDisplay(discovery.sources[0].path)) ? displayImageSpec({ encoder: encoderName }) : { encoder: encoderName });
  const index = await openIndex(db, { spec, onStatus: (m) => process.stderr.write(`${m}\n`) });
  const { store } = index;
  const encoder = await index.encoder();
  try {
    const bar = startProgress('indexing', discovery.sources.length, 'volumes', options.progress);
    const summary = await indexVolumes(discovery.sources, { store, encoder, labelsFor: matchLabelsCsv(csvPath, [], discovery.sources).labelsFor, onProgress: (p) => bar.update(p.volumesDone) });
    bar.stop();
    const indexed = summary.outcomes.flatMap((o) => (o.status === 'failed' ? [] : [o.volumeId]));
    // Scores over nothing would print as zeros: an eval with no volume is an error, not a result.
    if (indexed.length === 0) {
      const failed = summary.outcomes.find((o) => o.status === 'failed');
      throw new IngestError('NOTHING_TO_INDEX', `${displayPath(csvPath)}: none of the ${discovery.sources.length} files it lists could be indexed${failed && failed.status === 'failed' ? ` (first: ${displayPath(failed.source.path)}: ${failed.reason})` : ''}`);
    }
    if (summary.failed > 0) process.stderr.write(`${summary.failed} file(s) could not be indexed and are left out\n`);
    const folds = options.folds ?? 5;
    const progress = startProgress('text eval', folds, 'folds', options.progress);
    const report = await evaluateTextRetrieval(store, {
      captionColumn: options.captions,
      targetColumn: target,
      groupBy: options.groupBy,
      folds,
      volumeIds: indexed,
      ...(options.steps ? { steps: options.steps } : {}),
      onFold: (fold, _total, detail) => progress.update(fold - 1, detail),
    });
    progress.update(folds);
    progress.stop();
    if (report.queries === 0) throw new IngestError('BAD_LABELS', `${displayPath(csvPath)}: no indexed volume carries a caption in "${options.captions}" and a "${options.groupBy}" group: nothing to query with`);
    const command = `mir3d eval ${displayPath(csvPath)} --captions ${options.captions} --target ${target} --group-by ${options.groupBy} --folds ${folds} --encoders ${encoderName} --out ${displayPath(out)}`;
    const markdown = textEvalMarkdown(report, { dataset: displayPath(csvPath), encoder: encoderName, target: target, groupBy: options.groupBy, command });
    const files = { markdown: join(out, 'report.md'), json: join(out, 'results.json') };
    await writeFile(files.markdown, markdown);
    await writeFile(files.json, `${JSON.stringify({ kind: 'text', command, dataset: displayPath(csvPath), encoder: encoderName, encoderId: store.encoderId, target, groupBy: options.groupBy, captionColumn: options.captions, ...report }, null, 2)}\n`);
    if (options.json) {
      process.stdout.write(`${JSON.stringify({ report: files.markdown, results: files.json, ...report }, null, 2)}\n`);
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
    process.stdout.write(`${report.queries} caption queries, ${folds} folds by ${options.groupBy}, ${target} precision:\n\n${table}\n\n`);
    process.stdout.write(`recall of the described image: ${report.ks.map((k) => `@${k} ${f(report.recall.text[`${k}`])} (random ${report.recall.random[`${k}`].toFixed(4)})`).join(', ')}\n`);
    process.stdout.write(`${markdown.split('## Reading\n\n')[1] ?? ''}\nreport: ${displayPath(files.markdown)}; numbers: ${displayPath(files.json)}\n`);
  } finally {
    await index.close();
  }
}

/** The target when none is named: the one label column (not path, caption or group) with 2–10 values. */
function inferTarget(csvPath: string, rows: Record<string, string>[], taken: string[]): string {
  const columns = Object.keys(rows[0]).filter((c) => c !== 'path' && c !== 'name' && !taken.includes(c));
  const few = columns.filter((c) => {
    const values = new Set(rows.map((r) => (r[c] ?? '').trim()).filter(Boolean));
    return values.size >= 2 && values.size <= 10;
  });
  if (few.length !== 1) {
    throw new InvalidArgumentError(`--target COLUMN: the label a retrieved image must share with the described one${few.length ? ` (${displayPath(csvPath)} has several candidates: ${few.join(', ')})` : ` (columns of ${displayPath(csvPath)}: ${columns.join(', ')})`}`);
  }
  process.stderr.write(`target: ${few[0]} (the one label with a few values; --target COLUMN to choose another)\n`);
  return few[0];
}

export interface TaskTextEvalOptions {
  out: string;
  /** CaptionV1, CaptionV2 or CaptionV3. */
  captions: string;
  labelsDir?: string;
  organ: string;
  sharedData?: string;
  profile: string;
  encoder: string;
  steps?: number;
  json?: boolean;
}

const TEXT_TARGETS = ['cancer_flag', 'lesion_group'] as const;

/**
 * `mir3d eval devbench|<Decathlon root> --captions CaptionV1 --out DIR`: text-to-image search on 3D-MIR's
 * protocol (database and query splits; the text space learns from the database's captions only), per
 * organ, with flag and group P@k beside their exact random levels. Organs whose images are absent are
 * skipped, saying why.
 */
export async function runTaskTextEval(dataset: string, options: TaskTextEvalOptions): Promise<void> {
  const version = /^CaptionV([1-9])$/.exec(options.captions);
  if (!version) throw new InvalidArgumentError(`--captions: on ${dataset}, one of 3D-MIR's caption versions CaptionV1, CaptionV2, CaptionV3`);
  const out = resolve(options.out);
  await mkdir(out, { recursive: true });
  const tasks: Array<{ organ: string; taskDir: string; csvDir: string; patientOf?: (name: string) => string } | { organ: string; skipped: string }> = [];
  if (dataset === 'devbench') {
    const shared = resolve(options.sharedData ?? process.env.MIR3D_SHARED_DATA ?? '../shared/data');
    if (!existsSync(shared)) throw new InvalidArgumentError(`devbench: no shared CT folder at ${displayPath(shared)} (--shared-data DIR)`);
    const benchDir = join(out, 'devbench');
    const manifestPath = join(benchDir, 'manifest.json');
    const manifest: DevBenchManifest = existsSync(manifestPath)
      ? (JSON.parse(readFileSync(manifestPath, 'utf8')) as DevBenchManifest)
      : await buildDevBenchmark(shared, benchDir, { profile: options.profile === 'small' ? 'small' : 'full', overwrite: true, onProgress: (m) => process.stderr.write(`devbench: ${m}\n`) });
    // Variants of one real scan are one patient: never on both sides of a query.
    const sourceOf = new Map(manifest.cases.map((c) => [c.name, c.source]));
    tasks.push({ organ: 'liver', taskDir: join(benchDir, DEVBENCH_TASK_FOLDER), csvDir: join(benchDir, '3dmir'), patientOf: (name) => sourceOf.get(name) ?? name });
  } else {
    if (!options.labelsDir) throw new InvalidArgumentError(`--labels-dir DIR: 3D-MIR's CSV folder (labels, captions and splits), e.g. ../shared/data/3dmir`);
    const organs = options.organ === 'all' ? ['liver', 'colon', 'pancreas', 'lung'] : [options.organ];
    const folders = existsSync(dataset) ? readdirSync(dataset, { withFileTypes: true }).filter((e) => e.isDirectory()) : [];
    for (const organ of organs) {
      if (!hasThreeDMirFiles(options.labelsDir, organ)) {
        tasks.push({ organ, skipped: `${organ}: no 3D-MIR files for it in ${displayPath(options.labelsDir)}` });
        continue;
      }
      const folder = existsSync(join(dataset, 'imagesTr')) ? dataset : folders.find((e) => new RegExp(`^Task\\d+_${organ}$`, 'i').test(e.name)) ? join(dataset, folders.find((e) => new RegExp(`^Task\\d+_${organ}$`, 'i').test(e.name))!.name) : undefined;
      if (!folder) tasks.push({ organ, skipped: `${organ}: no Decathlon task folder (Task…_${organ[0].toUpperCase()}${organ.slice(1)}) in ${displayPath(dataset)}; the images are the Decathlon's and are not part of the 3D-MIR files` });
      else tasks.push({ organ, taskDir: folder, csvDir: options.labelsDir });
    }
  }
  const sections: string[] = [`# Text-to-image retrieval on the 3D-MIR protocol: ${dataset}, ${options.captions}`, ''];
  const results: Record<string, unknown> = {};
  for (const task of tasks) {
    if ('skipped' in task) {
      process.stderr.write(`skipped ${task.skipped}\n`);
      sections.push(`- skipped ${task.skipped}`, '');
      results[task.organ] = { status: 'skipped', reason: task.skipped };
      continue;
    }
    const db = join(out, `index-text-${task.organ}-${options.encoder.replace(/[^\w.-]+/g, '_')}`);
    const index = await openIndex(db, { spec: { encoder: options.encoder }, onStatus: (m) => process.stderr.write(`${m}\n`) });
    try {
      const outcome = await evaluateTextOnTask({
        taskDir: task.taskDir,
        csvDir: task.csvDir,
        organ: task.organ,
        captionVersion: Number(version[1]),
        targets: TEXT_TARGETS,
        ...(task.patientOf ? { patientOf: task.patientOf } : {}),
        store: index.store,
        encoder: await index.encoder(),
        ...(options.steps ? { steps: options.steps } : {}),
        onStatus: (line) => process.stderr.write(`${line}\n`),
      });
      results[task.organ] = outcome;
      if (outcome.status === 'skipped') {
        process.stderr.write(`skipped ${outcome.reason}\n`);
        sections.push(`- skipped ${outcome.reason}`, '');
        continue;
      }
      for (const target of TEXT_TARGETS) {
        const report = outcome.reports[target];
        const command = `mir3d eval ${dataset}${options.labelsDir ? ` --labels-dir ${displayPath(options.labelsDir)}` : ''} --captions ${options.captions} --encoders ${options.encoder} --out ${displayPath(out)}`;
        const markdown = textEvalMarkdown(report, { dataset: `${task.organ} (${outcome.database} database, ${outcome.queries} queries)`, encoder: options.encoder, target, groupBy: 'patient', command });
        sections.push(markdown.replace(/^# /, `## ${target}: `).replace(/\n## Reading/, '\n### Reading'));
        if (!options.json) process.stdout.write(`${task.organ}, ${target}: ${report.queries} caption queries against ${outcome.database} database volumes\n\n${headlineTable(report)}\n\n`);
      }
    } finally {
      await index.close();
    }
  }
  const files = { markdown: join(out, 'report.md'), json: join(out, 'results.json') };
  await writeFile(files.markdown, `${sections.join('\n')}\n`);
  await writeFile(files.json, `${JSON.stringify({ kind: 'text-3dmir', dataset, captions: options.captions, encoder: options.encoder, organs: results }, null, 2)}\n`);
  if (options.json) process.stdout.write(`${JSON.stringify({ report: files.markdown, results: files.json, organs: results }, null, 2)}\n`);
  else process.stdout.write(`report: ${displayPath(files.markdown)}; numbers: ${displayPath(files.json)}\n`);
}

function headlineTable(report: TextEvalReport): string {
  const f = (m: { mean: number; standardError: number }): string => `${m.mean.toFixed(3)} ± ${m.standardError.toFixed(3)}`;
  return formatTable(
    ['list', ...report.ks.map((k) => `P@${k}`), 'AP@10'],
    [
      ...TEXT_EVAL_LISTS.map((l) => [l, ...report.ks.map((k) => f(report.precision[l].pAtK[`${k}`])), f(report.precision[l].ap10)]),
      ['random', ...report.ks.map((k) => report.randomPrecision.pAtK[`${k}`].toFixed(3)), report.randomPrecision.ap10.toFixed(3)],
    ],
  );
}
