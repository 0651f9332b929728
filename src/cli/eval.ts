import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { GROUP_RULES, isTumourOrgan, type GroupRule, type TumourOrgan } from '../labels/tumours.js';
import { evaluateAndReport, rewriteEvalReports } from '../eval/report.js';
import { DEFAULT_EVAL_ENCODERS, DEFAULT_EVAL_METHODS, parseEvalMethod, type EvalDatasetSpec, type EvalProgress, type EvalResults } from '../eval/run.js';
import { SEARCH_METHODS, type FirstStageMethod } from '../search/types.js';
import { EVAL_HEAD_TARGETS, isEvalHeadTarget, type EvalHeadOptions } from '../eval/head-stage.js';
import { HEAD_METHODS, type HeadMethod } from '../space/train-head.js';
import { collect, nonNegativeInteger, positiveInteger } from './options.js';
import { parseSliceTarget } from '../labels/slice-targets.js';
import { runCvEval } from './eval-cv.js';
import { runTaskTextEval, runTextEval } from './eval-text.js';
import { displayPath, formatTable } from './format.js';
import { startProgress, type Progress } from './progress.js';

interface EvalCommandOptions {
  out: string;
  methods: string;
  encoders: string;
  labelsDir?: string;
  organ: string;
  protocol: string;
  kind?: string;
  level: string;
  regions?: string;
  skipRegions?: boolean;
  maxQueries?: number;
  sharedData?: string;
  profile: string;
  count?: number;
  groupRule?: GroupRule;
  k?: number;
  candidates?: number;
  firstStage?: string;
  localizationDepth?: number;
  examples: number;
  json?: boolean;
  reportOnly?: boolean;
  progress: boolean;
}

const list = (text: string): string[] => text.split(',').map((s) => s.trim()).filter(Boolean);

function groupRule(value: string): GroupRule {
  const rule = GROUP_RULES.find((r) => r === value);
  if (!rule) throw new InvalidArgumentError(`--group-rule: ${GROUP_RULES.join(' or ')}`);
  return rule;
}

function detectKind(path: string): 'decathlon' | 'totalseg' {
  if (!existsSync(path)) throw new InvalidArgumentError(`${path}: no such folder (give a Decathlon or TotalSegmentator folder, "demo" or "devbench")`);
  if (!statSync(path).isDirectory()) throw new InvalidArgumentError(`${path}: not a folder (give a Decathlon or TotalSegmentator folder, "demo", "devbench", or a labels .csv)`);
  if (existsSync(join(path, 'dataset.json'))) return 'decathlon';
  const entries = readdirSync(path, { withFileTypes: true }).filter((e) => e.isDirectory() && !e.name.startsWith('.'));
  if (entries.some((e) => existsSync(join(path, e.name, 'dataset.json')))) return 'decathlon';
  if (entries.some((e) => existsSync(join(path, e.name, 'ct.nii.gz')))) return 'totalseg';
  throw new InvalidArgumentError(`${path}: neither a Decathlon folder (dataset.json, Task*/dataset.json) nor a TotalSegmentator folder (<subject>/ct.nii.gz); say which with --kind`);
}

function datasetSpec(dataset: string, options: EvalCommandOptions): EvalDatasetSpec {
  if (dataset === 'demo') {
    return { kind: 'demo', regions: !options.skipRegions, ...(options.count ? { count: options.count } : {}), ...(options.groupRule ? { groupRule: options.groupRule } : {}) };
  }
  if (dataset === 'devbench') {
    const shared = resolve(options.sharedData ?? process.env.MIR3D_SHARED_DATA ?? '../shared/data');
    // Checked before anything is built or printed.
    if (!existsSync(join(shared, 'ircad17'))) throw new InvalidArgumentError(`devbench needs the shared CT data, and ${shared} does not hold it (no ircad17/); give --shared-data DIR or set MIR3D_SHARED_DATA (or try "mir3d eval demo", which runs anywhere)`);
    if (options.profile !== 'full' && options.profile !== 'small') throw new InvalidArgumentError('--profile: full or small');
    return { kind: 'devbench', sharedDataDir: shared, profile: options.profile, regions: !options.skipRegions, ...(options.groupRule ? { groupRule: options.groupRule } : {}) };
  }
  const kind = options.kind ?? detectKind(dataset);
  if (kind === 'totalseg') {
    if (options.level !== 'coarse' && options.level !== 'fine') throw new InvalidArgumentError('--level: coarse or fine');
    return {
      kind: 'totalseg',
      root: dataset,
      level: options.level,
      ...(options.regions ? { regions: list(options.regions) } : {}),
      ...(options.maxQueries !== undefined ? { maxQueries: options.maxQueries } : {}),
    };
  }
  if (kind !== 'decathlon') throw new InvalidArgumentError('--kind: decathlon or totalseg');
  if (options.organ !== 'all' && !isTumourOrgan(options.organ)) throw new InvalidArgumentError('--organ: liver, colon, pancreas, lung or all');
  if (options.protocol !== '3dmir' && options.protocol !== 'cmir') throw new InvalidArgumentError('--protocol: 3dmir or cmir');
  return {
    kind: 'decathlon',
    root: dataset,
    ...(options.labelsDir ? { labelsDir: options.labelsDir } : {}),
    organ: options.organ as TumourOrgan | 'all',
    protocol: options.protocol,
    regions: !options.skipRegions,
    ...(options.groupRule ? { groupRule: options.groupRule } : {}),
  };
}

/** One bar per phase label: a new label closes the previous bar. */
function progressRouter(enabled: boolean): { onProgress: (event: EvalProgress) => void; onMessage: (line: string) => void; stop: () => void } {
  let current: { label: string; bar: Progress } | undefined;
  const stop = (): void => {
    current?.bar.stop();
    current = undefined;
  };
  return {
    onProgress(event) {
      if (event.total === 0) {
        // Messages without a count (the benchmark build) go out as lines.
        if (enabled && event.detail) process.stderr.write(`${event.label}: ${event.detail}\n`);
        return;
      }
      if (current?.label !== event.label) {
        stop();
        current = { label: event.label, bar: startProgress(event.label, event.total, event.phase === 'index' ? 'volumes' : event.phase === 'search' ? 'searches' : 'items', enabled) };
      }
      current.bar.setTotal(event.total);
      current.bar.update(event.done, event.detail ?? '');
    },
    onMessage(line) {
      stop();
      process.stderr.write(`${line}\n`);
    },
    stop,
  };
}

/** The headline numbers on the terminal; the full tables are in the report. */
function summaryText(results: EvalResults): string {
  const lines: string[] = [];
  for (const task of results.tasks) {
    const rows: string[][] = [];
    const f = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(3));
    let randomRow: string[] | undefined;
    for (const encoder of results.encoders) {
      for (const method of results.methods) {
        const s = results.scores.find((x) => x.task === task.name && x.encoder === encoder.name && x.method === method.label);
        if (s?.tumour) {
          const o = s.tumour.overall;
          rows.push([method.label, encoder.name, f(o.flag.precisionAtK[10]), f(o.group.precisionAtK[10]), f(o.group.ap10)]);
          const r = s.tumour.random.overall;
          randomRow ??= ['random', '', f(r.flag.precisionAtK[10]), f(r.group.precisionAtK[10]), f(r.group.ap10)];
        } else if (s?.region && s.localization) {
          rows.push([method.label, encoder.name, f(s.region.overall.recallAtK[1]), f(s.region.overall.recallAtK[5]), f(s.localization.overall.meanIoU)]);
          randomRow ??= ['random', '', f(s.region.random.overall.recallAtK[1]), f(s.region.random.overall.recallAtK[5]), f(s.localization.overall.randomMeanIoU)];
        }
      }
    }
    if (randomRow) rows.push(randomRow);
    const header = task.kind === 'tumour' ? ['method', 'encoder', 'flag P@10', 'group P@10', 'group AP@10'] : ['method', 'encoder', 'recall@1', 'recall@5', 'IoU'];
    lines.push(`${task.name}: ${task.queryCount} queries, ${task.databaseSize} database volumes`, formatTable(header, rows, [2, 3, 4]), '');
  }
  return lines.join('\n');
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description("Evaluate retrieval methods with the papers' protocols (3D-MIR, C-MIR, region retrieval) and write report.md, report.html and results.json")
    .argument('<dataset>', 'a Decathlon folder, a TotalSegmentator folder, "demo" (generated phantoms: runs anywhere) "devbench" (the development benchmark built from the shared CTs), or a labels.csv with a path column (grouped k-fold of raw, normalized and fine-tuned spaces; with --captions: text search)')
    .requiredOption('--out <dir>', 'output folder: indexes, reports (reused: unchanged volumes are not embedded again)')
    .option('--methods <list>', `comma-separated methods, or "all": ${DEFAULT_EVAL_METHODS.join(', ')}`, 'all')
    .option('--encoders <list>', 'comma-separated encoder names or model paths', DEFAULT_EVAL_ENCODERS.join(','))
    .option('--labels-dir <dir>', "3D-MIR's CSV folder (labels and splits); without it labels come from the masks")
    .option('--organ <organ>', 'Decathlon: liver, colon, pancreas, lung or all', 'all')
    .option('--protocol <p>', 'Decathlon: 3dmir (one database per organ) or cmir (one mixed archive)', '3dmir')
    .option('--kind <kind>', 'decathlon or totalseg (default: detected from the folder)')
    .option('--level <level>', 'TotalSegmentator regions: coarse or fine', 'coarse')
    .option('--regions <list>', 'TotalSegmentator: only these regions')
    .option('--skip-regions', 'Decathlon/demo/devbench: no organ-region queries (no mask reading, no localization scores)')
    .option('--max-queries <n>', 'TotalSegmentator: at most this many query subjects', positiveInteger('--max-queries'))
    .option('--shared-data <dir>', 'devbench: the shared CT folder (default $MIR3D_SHARED_DATA or ../shared/data)')
    .option('--profile <p>', 'devbench: full (39 volumes) or small (11, quick)', 'full')
    .option('--count <n>', 'demo: phantoms generated (default 24; every 4th is a query)', positiveInteger('--count'))
    .option(
      '--group-rule <rule>',
      `lesion-group table for labels computed from masks: ${GROUP_RULES.join(' or ')} (default design: DESIGN.md's table; 3dmir-csv: the rule the published CSVs follow)`,
      groupRule,
    )
    .option('--k <n>', 'nearest slices per query slice (default 20)', positiveInteger('--k'))
    .option('--candidates <n>', 'candidates re-ranked, N (default 50)', positiveInteger('--candidates'))
    .option('--first-stage <m>', 'first stage of rerank (default slice-count)')
    .option('--localization-depth <n>', 'results per region query whose localization is scored (default 5)', positiveInteger('--localization-depth'))
    .option('--examples <n>', 'example queries with pictures per task (0: none)', nonNegativeInteger('--examples'), 3)
    .option('--captions <column>', '<labels.csv>: evaluate text-to-image search with this caption column (grouped k-fold; --group-by); devbench or a Decathlon root with --labels-dir: CaptionV1|V2|V3 on 3D-MIR\'s splits')
    .option('--target <column>', `<labels.csv>: the label a retrieved image must share with the query (several: a,b); devbench or a Decathlon folder: also fine-tune a head for ${EVAL_HEAD_TARGETS.join(' / ')} on the database split and score every method in it too (<method>@fine-tuned)`)
    .option('--group-by <column>', '<labels.csv>: the label that keeps each patient on one side of every fold')
    .option('--folds <n>', '<labels.csv>: folds (default 5)', positiveInteger('--folds'))
    .option('--whiten <dim>', '<labels.csv>: the normalized space PCA-whitens to this dimension (default: mean-centring)', positiveInteger('--whiten'))
    .option('--slice-target <name=values>', "the head also learns per-slice labels from masks, and query slices are scored per slice (e.g. tumour=2; repeatable): devbench or a Decathlon folder: each database case's label file; <labels.csv>: its mask column", collect, [])
    .option('--head <method>', 'with --target: the fine-tuned space\'s head, lda (default) or mlp (supervised contrastive)')
    .option('--seed <n>', 'with --target: seed of the folds and the validation splits (default 1)', positiveInteger('--seed'))
    .option('--json', 'print the report file paths and headline numbers as JSON')
    .option('--report-only', "write the reports again from --out's results.json (no indexing, no search; <dataset> is not read)")
    .option('--no-progress', 'no progress display')
    .action(async (dataset: string, options: EvalCommandOptions & { captions?: string; target?: string; sliceTarget: string[]; groupBy?: string; folds?: number; whiten?: number; seed?: number; head?: string }) => {
      if (dataset.toLowerCase().endsWith('.csv')) {
        const encoders = list(options.encoders);
        const encoder = encoders.length === 1 ? encoders[0] : DEFAULT_EVAL_ENCODERS[0];
        if (options.captions !== undefined) {
          await runTextEval(dataset, { out: options.out, captions: options.captions, target: options.target, groupBy: options.groupBy, folds: options.folds, encoder, progress: options.progress, json: options.json });
        } else {
          await runCvEval(dataset, { out: options.out, target: options.target, groupBy: options.groupBy, folds: options.folds, whiten: options.whiten, seed: options.seed, head: options.head, sliceTargets: options.sliceTarget.map(parseSliceTarget), encoder, progress: options.progress, json: options.json });
        }
        return;
      }
      if (options.captions !== undefined) {
        // Text-to-image on 3D-MIR's protocol: devbench, or a Decathlon root with --labels-dir.
        const encoders = list(options.encoders);
        await runTaskTextEval(dataset, {
          out: options.out,
          captions: options.captions,
          organ: options.organ,
          profile: options.profile,
          encoder: encoders.length === 1 ? encoders[0] : DEFAULT_EVAL_ENCODERS[0],
          ...(options.labelsDir ? { labelsDir: options.labelsDir } : {}),
          ...(options.sharedData ? { sharedData: options.sharedData } : {}),
          ...(options.json ? { json: true } : {}),
        });
        return;
      }
      const methods = options.methods === 'all' ? [...DEFAULT_EVAL_METHODS] : list(options.methods);
      for (const m of methods) {
        try {
          parseEvalMethod(m);
        } catch (error) {
          throw new InvalidArgumentError(`--methods: ${(error as Error).message}`);
        }
      }
      if (options.firstStage !== undefined && (options.firstStage === 'rerank' || !(SEARCH_METHODS as readonly string[]).includes(options.firstStage))) {
        throw new InvalidArgumentError(`--first-stage: one of ${SEARCH_METHODS.filter((m) => m !== 'rerank').join(', ')}`);
      }
      let head: EvalHeadOptions | undefined;
      if ((options.target !== undefined || options.sliceTarget.length > 0) && !options.reportOnly) {
        const targets = options.target === undefined ? [] : list(options.target);
        const unknown = targets.filter((t) => !isEvalHeadTarget(t));
        if ((targets.length === 0 && options.target !== undefined) || unknown.length > 0) throw new InvalidArgumentError(`--target: ${EVAL_HEAD_TARGETS.join(', ')} (the 3D-MIR labels a case carries; got ${unknown.join(', ') || 'nothing'})`);
        if (options.head !== undefined && !HEAD_METHODS.includes(options.head as HeadMethod)) throw new InvalidArgumentError(`--head: ${HEAD_METHODS.join(' or ')}`);
        head = { targets: targets.filter(isEvalHeadTarget), ...(options.sliceTarget.length > 0 ? { sliceTargets: options.sliceTarget.map(parseSliceTarget) } : {}), ...(options.head ? { method: options.head as HeadMethod } : {}), ...(options.seed ? { seed: options.seed } : {}) };
      }
      const router = progressRouter(options.progress);
      let outcome: Awaited<ReturnType<typeof evaluateAndReport>>;
      try {
        outcome = options.reportOnly ? await rewriteEvalReports(options.out, { examplesPerTask: options.examples }) : await evaluateAndReport({
          dataset: datasetSpec(dataset, options),
          outDir: options.out,
          methods,
          encoders: list(options.encoders),
          ...(options.k ? { sliceK: options.k } : {}),
          ...(options.candidates ? { candidates: options.candidates } : {}),
          ...(options.firstStage ? { firstStage: options.firstStage as FirstStageMethod } : {}),
          ...(options.localizationDepth ? { localizationDepth: options.localizationDepth } : {}),
          examplesPerTask: options.examples,
          ...(head ? { head } : {}),
          onProgress: router.onProgress,
          onMessage: router.onMessage,
        });
      } finally {
        router.stop();
      }
      const { results, files } = outcome;
      if (options.json) {
        const headline = results.scores.map((s) => ({
          task: s.task,
          encoder: s.encoder,
          method: s.method,
          ...(s.tumour ? { flagP10: s.tumour.overall.flag.precisionAtK[10], groupP10: s.tumour.overall.group.precisionAtK[10], groupAp10: s.tumour.overall.group.ap10 } : {}),
          ...(s.region ? { recallAt1: s.region.overall.recallAtK[1], recallAt5: s.region.overall.recallAtK[5] } : {}),
          ...(s.localization ? { meanIoU: s.localization.overall.meanIoU } : {}),
        }));
        process.stdout.write(`${JSON.stringify({ files, totalSeconds: results.timings.totalSeconds, scores: headline }, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
        return;
      }
      process.stdout.write(`${summaryText(results)}\n`);
      process.stdout.write(
        `report: ${displayPath(files.markdown)}, ${displayPath(files.html)}; numbers: ${displayPath(files.json)}\n` +
          `${results.encoders.map((e) => `${e.name}: ${e.index.volumes} volumes indexed in ${displayPath(e.indexDir)}`).join('; ')}\n` +
          `total ${results.timings.totalSeconds.toFixed(1)} s\n`,
      );
      const problems = results.encoders.reduce((n, e) => n + e.index.problems.length, 0);
      if (problems > 0) process.stderr.write(`${problems} problem(s) noted in the report\n`);
    });
}
