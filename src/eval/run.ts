import { mkdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { SliceFeeder } from '../encode/slice-feeder.js';
import { openIndex, type OpenedIndex } from '../ingest/open-index.js';
import { DEFAULT_CANDIDATES, DEFAULT_FIRST_STAGE, DEFAULT_SLICE_K } from '../search/search.js';
import type { Case } from './datasets/types.js';
import { DatasetError } from './errors.js';
import { SpaceStore } from '../space/space-store.js';
import { EVAL_HEAD_SPACE, evalHeadNotes, fitEvalHeads, methodsInSpace, type EvalHeads } from './head-stage.js';
import { indexDatabase } from './index-stage.js';
import { scoreSliceRetrieval, sliceRetrievalNote, type QueryRows } from './slice-retrieval.js';
import type { ResolvedQuery } from '../query/sources.js';
import { DEFAULT_PRECISION_KS, DEFAULT_RECALL_KS } from './metrics.js';
import { DEFAULT_EVAL_METHODS, DEFAULT_EVAL_ENCODERS, parseEvalMethod, type EvalMethod } from './methods.js';
import { type EvalEncoderInfo, type EvalScore, type EvalSettings, type EvalResults, type EvalOptions } from './results.js';
import { scoreRankings } from './score-stage.js';
import { DEFAULT_LOCALIZATION_DEPTH, regionQueryKey } from './scoring.js';
import { searchQueries } from './search-stage.js';
import { type EvalTask, type PreparedDataset, prepareEvalDataset } from './tasks.js';

export * from './methods.js';
export * from './tasks.js';
export * from './scoring.js';
export * from './results.js';

/*
 * `mir3d eval` as a library function: the papers' protocols end to end, in stages. Load a dataset (3D-MIR
 * per-organ databases, C-MIR's mixed archive, TotalSegmentator regions, or the development benchmark;
 * tasks.ts), then per encoder: index the union of the tasks' databases once (index-stage.ts), embed every
 * query and run every method (search-stage.ts; queries are never indexed), and score the rankings
 * (score-stage.ts, metrics.ts), each number next to its random-retrieval expectation.
 */

function safeName(name: string): string {
  const base = basename(name).replace(/\.onnx$/i, '');
  return base.replace(/[^A-Za-z0-9_.-]+/g, '_') || 'encoder';
}

function methodsOf(options: EvalOptions): EvalMethod[] {
  const methods = (options.methods ?? DEFAULT_EVAL_METHODS).map((m) => (typeof m === 'string' ? parseEvalMethod(m) : m));
  if (methods.length === 0) throw new RangeError('no method to evaluate');
  if (new Set(methods.map((m) => m.label)).size !== methods.length) throw new RangeError('a method is listed twice');
  return methods;
}

function settingsOf(options: EvalOptions): EvalSettings {
  const settings: EvalSettings = {
    sliceK: options.sliceK ?? DEFAULT_SLICE_K,
    candidates: options.candidates ?? DEFAULT_CANDIDATES,
    firstStage: options.firstStage ?? DEFAULT_FIRST_STAGE,
    top: options.top ?? 10,
    precisionKs: [...DEFAULT_PRECISION_KS],
    recallKs: [...DEFAULT_RECALL_KS],
    localizationDepth: options.localizationDepth ?? DEFAULT_LOCALIZATION_DEPTH,
    localization: 'consistent',
    knn: 'exact',
  };
  if (settings.top < 10) throw new RangeError(`top ${settings.top}: P@10 and AP@10 need at least 10 results per query`);
  return settings;
}

/** Every database case of every task (indexed) and every query case (embedded, never indexed); a query
 * that is also in its task's database would be a leak, so it stops the run. */
function casesOf(tasks: readonly EvalTask[]): { databaseCases: Map<string, Case>; queryCases: Map<string, Case> } {
  const databaseCases = new Map<string, Case>();
  const queryCases = new Map<string, Case>();
  for (const task of tasks) {
    for (const c of task.dataset.database) if (!databaseCases.has(c.caseId)) databaseCases.set(c.caseId, c);
    for (const c of task.dataset.queries) if (!queryCases.has(c.caseId)) queryCases.set(c.caseId, c);
  }
  for (const task of tasks) {
    const db = new Set(task.dataset.database.map((c) => c.caseId));
    const clash = task.dataset.queries.filter((q) => db.has(q.caseId));
    if (clash.length > 0) throw new Error(`${task.name}: ${clash.length} queries are also in its database (${clash.slice(0, 3).map((c) => c.caseId).join(', ')})`);
  }
  return { databaseCases, queryCases };
}

/** The case labels the report needs (query and database), merged over tasks. */
function caseLabelsOf(tasks: readonly EvalTask[], scanOf: PreparedDataset['scanOf']): EvalResults['cases'] {
  const cases: EvalResults['cases'] = {};
  for (const task of tasks) {
    for (const c of [...task.dataset.database, ...task.dataset.queries]) {
      const entry = (cases[c.caseId] ??= {
        organ: c.organ,
        cancerFlag: c.labels.cancerFlag,
        lesionGroup: c.labels.lesionGroup,
        imagePath: c.imagePath,
        ...(c.maskPath ? { maskPath: c.maskPath } : {}),
        ...(scanOf?.get(c.caseId) ? { scan: scanOf.get(c.caseId) } : {}),
      });
      if (c.regions && Object.keys(c.regions).length > 0) entry.regions = { ...(entry.regions ?? {}), ...c.regions };
    }
  }
  return cases;
}

function taskInfoOf(t: EvalTask): EvalResults['tasks'][number] {
  return {
    name: t.name,
    kind: t.kind,
    ...(t.kind === 'region' && t.region ? { region: t.region } : {}),
    databaseSize: t.dataset.database.length,
    queryCount: t.kind === 'tumour' ? t.dataset.queries.length : t.queries.length,
    strata: t.kind === 'tumour' ? [...new Set(t.dataset.queries.map((q) => q.labelOrgan ?? q.organ ?? 'all'))].sort() : [...new Set(t.queries.map((q) => q.region))].sort(),
    databaseIds: t.dataset.database.map((c) => c.caseId),
    queryKeys: t.kind === 'tumour' ? t.dataset.queries.map((c) => c.caseId) : t.queries.map(regionQueryKey),
    notes: t.dataset.notes,
  };
}

/**
 * Runs the evaluation and returns every number (results.json's content). Writes the indexes under
 * `<outDir>/index/<encoder>/`; the caller writes the reports (report.ts) so that a library user can
 * score without them.
 */
export async function runEval(options: EvalOptions): Promise<{ results: EvalResults; prepared: PreparedDataset }> {
  const started = performance.now();
  const outDir = resolve(options.outDir);
  await mkdir(outDir, { recursive: true });
  const rawMethods = methodsOf(options);
  // With a head, every method runs twice: raw, then in the fine-tuned space (`<method>@fine-tuned`).
  const methods = options.head ? [...rawMethods, ...methodsInSpace(rawMethods)] : rawMethods;
  const headNotes: string[] = [];
  const encoderNames = [...(options.encoders ?? DEFAULT_EVAL_ENCODERS)];
  if (encoderNames.length === 0) throw new RangeError('no encoder to evaluate');
  const settings = settingsOf(options);
  const progress = options.onProgress ?? ((): void => undefined);
  const message = options.onMessage ?? ((): void => undefined);

  const prepared = await prepareEvalDataset(options.dataset, outDir, { onMessage: message, onProgress: progress, cacheDir: join(outDir, 'cache') });
  const prepareSeconds = (performance.now() - started) / 1000;
  const { tasks } = prepared;
  const { databaseCases, queryCases } = casesOf(tasks);
  const tumourTasks = tasks.filter((t) => t.kind === 'tumour').length;
  if (options.head && tumourTasks !== 1) {
    // One head learns from one database: 3D-MIR's per-organ databases label the same volume differently.
    throw new DatasetError(tumourTasks === 0 ? 'a fine-tuned head (--target) needs a tumour task with 3D-MIR labels (devbench, demo or a Decathlon folder)' : `a fine-tuned head (--target) is fitted on one database, and this run has ${tumourTasks} (one per organ): give --organ liver, colon, pancreas or lung, or --protocol cmir`);
  }

  const encoders: EvalEncoderInfo[] = [];
  const scores: EvalScore[] = [];
  const rankingsOut: EvalResults['rankings'] = [];
  let scoringSeconds = 0;
  for (const encoderName of encoderNames) {
    const indexDir = join(outDir, 'index', safeName(encoderName));
    const openOwn = options.openEncoder;
    // The spec written beside the index lets `mir3d search --db <dir>` embed queries with this encoder.
    const index: OpenedIndex = await openIndex(indexDir, { spec: { encoder: encoderName }, onStatus: message, ...(openOwn ? { openEncoder: () => openOwn(encoderName) } : {}) });
    const { store } = index;
    const feeder = new SliceFeeder();
    const spaces = new Map<string, SpaceStore>();
    let heads: EvalHeads | undefined;
    try {
      const encoder = await index.encoder();
      const problems: string[] = [];
      const database = await indexDatabase(databaseCases, { store, encoder, encoderName, indexDir, methodLabels: methods.map((m) => m.label), problems, progress });
      encoders.push(database.info);
      if (options.head) {
        // Devbench's variants of one real scan are one patient; a Decathlon volume is its own.
        const patientOf = (caseId: string): string => prepared.scanOf?.get(caseId) ?? caseId;
        heads = await fitEvalHeads(store, database, { database: databaseCases, queries: queryCases }, { ...options.head, patientOf, onStatus: message });
        database.info.heads = heads.infos;
        headNotes.push(...evalHeadNotes(encoderName, heads.infos, prepared.scanOf ? 'real scan of origin' : 'volume'));
        for (const h of heads.infos) spaces.set(h.space, await SpaceStore.open(store, h.space));
      }
      const spaceOfQuery = heads?.spaceOfQuery;
      const viewOf = (queryCase: Case): SpaceStore => spaces.get(spaceOfQuery!.get(queryCase.caseId)!)!;
      const spaceFor = (space: string, queryCase: Case): SpaceStore => {
        if (space !== EVAL_HEAD_SPACE) throw new Error(`unknown eval space ${space}`);
        return viewOf(queryCase);
      };
      const sliceTargets = options.head?.sliceTargets ?? [];
      const queryRows: QueryRows[] = [];
      const onQueryRows = sliceTargets.length > 0 ? (queryCase: Case, resolved: ResolvedQuery): void => void (resolved.volume && queryRows.push({ queryCase, rows: resolved.query, geometry: { dims: resolved.volume.dims, affineRas: resolved.volume.affineRas } })) : undefined;
      const rankings = await searchQueries(tasks, queryCases, database, { store, encoder, feeder, methods, settings, problems, progress, ...(heads ? { spaceFor } : {}), ...(onQueryRows ? { onQueryRows } : {}) });
      if (heads && sliceTargets.length > 0) {
        database.info.sliceRetrieval = await scoreSliceRetrieval(store, viewOf, queryRows, sliceTargets, heads.databaseSliceLabels);
        headNotes.push(...sliceRetrievalNote(encoderName, database.info.sliceRetrieval));
      }
      const scoringStarted = performance.now();
      const scored = scoreRankings(tasks, rankings, database, { encoderName, methods, settings, scanOf: prepared.scanOf, problems });
      scores.push(...scored.scores);
      rankingsOut.push(...scored.rankings);
      scoringSeconds += (performance.now() - scoringStarted) / 1000;
    } finally {
      for (const view of spaces.values()) view.close();
      await feeder.close();
      await index.close();
    }
  }

  const results: EvalResults = {
    schema: 'mir3d-eval/1',
    createdAt: new Date().toISOString(),
    outDir,
    dataset: { ...prepared.description, notes: [...prepared.notes, ...headNotes] },
    settings,
    methods,
    encoders,
    tasks: tasks.map(taskInfoOf),
    scores,
    rankings: rankingsOut,
    cases: caseLabelsOf(tasks, prepared.scanOf),
    timings: {
      totalSeconds: (performance.now() - started) / 1000,
      ...(prepared.buildSeconds !== undefined ? { buildSeconds: prepared.buildSeconds } : {}),
      prepareSeconds,
      scoringSeconds,
    },
    machine: { cpus: availableParallelism(), node: process.version, platform: `${process.platform}-${process.arch}` },
  };
  return { results, prepared };
}
