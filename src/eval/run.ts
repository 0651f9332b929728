import { mkdir, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { SliceFeeder } from '../encode/slice-feeder.js';
import { indexVolumes, type IndexSummary } from '../ingest/indexer.js';
import { openIndex, type OpenedIndex } from '../ingest/open-index.js';
import { searchRequestOf } from '../query/request.js';
import { resolveQuery, type QuerySource, type ResolvedQuery } from '../query/sources.js';
import { isSearchError } from '../search/errors.js';
import { DEFAULT_CANDIDATES, DEFAULT_FIRST_STAGE, DEFAULT_SLICE_K, search } from '../search/search.js';
import { type QueryVectors, type SearchResult } from '../search/types.js';
import type { SliceHit, SliceSearchOptions, Store } from '../store/types.js';
import type { Case, ZExtent } from './datasets/types.js';
import { DEFAULT_PRECISION_KS, DEFAULT_RECALL_KS } from './metrics.js';
import { DEFAULT_EVAL_METHODS, DEFAULT_EVAL_ENCODERS, parseEvalMethod } from './methods.js';
import { type EvalTask, type PreparedDataset, prepareEvalDataset } from './tasks.js';
import { DEFAULT_LOCALIZATION_DEPTH, type RankedCase, type CaseGeometry, geometryOfRecord, scoreTumourRankings, regionQueryKey, scoreRegionRankings, scoreSameScan } from './scoring.js';
import { type EvalEncoderInfo, type EvalScore, type EvalSettings, type EvalResults, type EvalOptions } from './results.js';

export * from './methods.js';
export * from './tasks.js';
export * from './scoring.js';
export * from './results.js';

/**
 * `mir3d eval` as a library function: the papers' protocols end to end. Load a dataset (3D-MIR per-organ
 * databases, C-MIR's mixed archive, TotalSegmentator regions, or the development benchmark), index its
 * database once per encoder, embed every query (queries are never indexed), run every method, and score
 * the rankings with metrics.ts — each number next to its random-retrieval expectation.
 *
 * One index per encoder holds the union of every task's database; a task searches only its own database
 * (an include filter), so 3D-MIR's four per-organ databases, which share volumes, are indexed once.
 * Store volume ids map back to dataset case ids through the indexer's outcomes (source path → volume id),
 * which stay right when the index is reused; each volume also carries a `case=<caseId>` label so a person
 * querying the index with `mir3d search` sees which case a hit is.
 */

// ---------------------------------------------------------------------------------------------------
// Orchestration
// ---------------------------------------------------------------------------------------------------

/** A store whose exact slice kNN is computed once per (query vectors, options): every slice method, the
 * re-ranking's first stage and the fusions of one query share it, so ten methods cost one kNN, not five. */
function sharingSliceSearch(store: Store): Store {
  const cache = new WeakMap<Float32Array, Map<string, Promise<SliceHit[][]>>>();
  return {
    get encoderId() {
      return store.encoderId;
    },
    get dim() {
      return store.dim;
    },
    artifacts: store.artifacts,
    state: store.state,
    stats: () => store.stats(),
    findByContent: (sha) => store.findByContent(sha),
    findBySource: (path, seriesKey) => store.findBySource(path, seriesKey),
    getVolume: (id) => store.getVolume(id),
    listVolumes: (filter) => store.listVolumes(filter),
    addVolume: (record, vectors, encoderId, options) => store.addVolume(record, vectors, encoderId, options),
    removeVolume: (id) => store.removeVolume(id),
    getVectors: (ids) => store.getVectors(ids),
    searchSlices: (queries: Float32Array, options: SliceSearchOptions) => {
      let byOptions = cache.get(queries);
      if (!byOptions) cache.set(queries, (byOptions = new Map()));
      const key = JSON.stringify(options);
      let hits = byOptions.get(key);
      if (!hits) byOptions.set(key, (hits = store.searchSlices(queries, options)));
      return hits;
    },
    searchVolumes: (query, pooling, k, filter) => store.searchVolumes(query, pooling, k, filter),
    pooledVector: (id, pooling) => store.pooledVector(id, pooling),
    prepareForSearch: (options) => store.prepareForSearch(options),
    close: () => store.close(),
  };
}

function safeName(name: string): string {
  const base = basename(name).replace(/\.onnx$/i, '');
  return base.replace(/[^A-Za-z0-9_.-]+/g, '_') || 'encoder';
}

/** The rows of an embedded whole-volume query in a structure's slice extent: a slab query without
 * embedding the query volume again; undefined when no embedded slice lies in it. */
async function regionSlab(whole: QuerySource, extent: ZExtent, context: { store: Store }): Promise<QueryVectors | undefined> {
  try {
    const slab = await resolveQuery(whole, { kind: 'slices', firstSlice: extent.firstSlice, lastSlice: extent.lastSlice }, context);
    return slab.query;
  } catch (error) {
    if (isSearchError(error) && error.code === 'SLICE_OUT_OF_RANGE') return undefined;
    throw error;
  }
}

function rankedOf(results: readonly SearchResult[], caseOfVolume: ReadonlyMap<string, string>): RankedCase[] {
  return results.map((r) => {
    const caseId = caseOfVolume.get(r.volumeId);
    if (caseId === undefined) throw new Error(`search returned volume ${r.volumeId}, which is not a database volume of this run`);
    return {
      caseId,
      volumeId: r.volumeId,
      score: r.score,
      ...(r.region ? { region: { firstSlice: r.region.firstSlice, lastSlice: r.region.lastSlice, zStartMm: r.region.zStartMm, zEndMm: r.region.zEndMm } } : {}),
    };
  });
}

const sourceKind = async (path: string): Promise<'nifti' | 'dicom'> => ((await stat(path)).isDirectory() ? 'dicom' : 'nifti');

/**
 * Runs the evaluation and returns every number (results.json's content). Writes the indexes under
 * `<outDir>/index/<encoder>/`; the caller writes the reports (report.ts) so that a library user can
 * score without them.
 */
export async function runEval(options: EvalOptions): Promise<{ results: EvalResults; prepared: PreparedDataset }> {
  const started = performance.now();
  const outDir = resolve(options.outDir);
  await mkdir(outDir, { recursive: true });
  const methods = (options.methods ?? DEFAULT_EVAL_METHODS).map((m) => (typeof m === 'string' ? parseEvalMethod(m) : m));
  if (methods.length === 0) throw new RangeError('no method to evaluate');
  if (new Set(methods.map((m) => m.label)).size !== methods.length) throw new RangeError('a method is listed twice');
  const encoderNames = [...(options.encoders ?? DEFAULT_EVAL_ENCODERS)];
  if (encoderNames.length === 0) throw new RangeError('no encoder to evaluate');
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
  const progress = options.onProgress ?? ((): void => undefined);
  const message = options.onMessage ?? ((): void => undefined);

  const prepared = await prepareEvalDataset(options.dataset, outDir, { onMessage: message, onProgress: progress, cacheDir: join(outDir, 'cache') });
  const prepareSeconds = (performance.now() - started) / 1000;
  const { tasks } = prepared;

  // Every database case of every task (indexed), and every query case (embedded, never indexed).
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
    try {
      const encoder = await index.encoder();
      // ---- index the databases
      const sources = await Promise.all([...databaseCases.values()].map(async (c) => ({ path: c.imagePath, kind: await sourceKind(c.imagePath) })));
      const caseOfPath = new Map([...databaseCases.values()].map((c) => [c.imagePath, c]));
      const label = `indexing (${encoder.name})`;
      const summary: IndexSummary = await indexVolumes(sources, {
        store,
        encoder,
        labelsFor: (source) => {
          const c = caseOfPath.get(source.path);
          return c ? { case: c.caseId, ...(c.organ ? { organ: c.organ } : {}) } : {};
        },
        onProgress: (p) => progress({ phase: 'index', label, done: p.volumesDone, total: p.volumesTotal, detail: `${p.slicesDone} slices embedded` }),
      });
      progress({ phase: 'index', label, done: sources.length, total: sources.length });
      const caseOfVolume = new Map<string, string>();
      const volumeOfCase = new Map<string, string>();
      const problems: string[] = [];
      for (const outcome of summary.outcomes) {
        const c = caseOfPath.get(outcome.source.path);
        if (!c) continue;
        if (outcome.status === 'failed') {
          problems.push(`${c.caseId}: ${outcome.reason}`);
          continue;
        }
        volumeOfCase.set(c.caseId, outcome.volumeId);
        if (caseOfVolume.has(outcome.volumeId)) {
          problems.push(`${c.caseId} has the same voxels as ${caseOfVolume.get(outcome.volumeId)}; both are one volume in the index, ranked as the latter`);
        } else caseOfVolume.set(outcome.volumeId, c.caseId);
      }
      if (volumeOfCase.size === 0) throw new Error(`${encoderName}: no database volume could be indexed (${problems.slice(0, 3).join('; ')})`);
      const stats = store.stats();
      const geometry = new Map<string, CaseGeometry>();
      for (const [caseId, volumeId] of volumeOfCase) {
        const record = store.getVolume(volumeId);
        if (record) geometry.set(caseId, geometryOfRecord(record));
      }
      const info: EvalEncoderInfo = {
        name: encoderName,
        id: encoder.id,
        dim: encoder.dim,
        indexDir,
        index: { volumes: stats.volumes, slices: stats.slices, added: summary.added, unchanged: summary.unchanged, failed: summary.failed, problems, seconds: summary.seconds },
        queryEmbedSeconds: 0,
        querySlices: 0,
        searchSeconds: Object.fromEntries(methods.map((m) => [m.label, 0])),
      };
      encoders.push(info);

      // ---- search: each query volume is embedded once; its tasks and region slabs reuse the vectors
      const shared = sharingSliceSearch(store);
      const allVolumeIds = new Set(store.listVolumes().map((r) => r.volumeId));
      const scopeOf = new Map<string, string[] | undefined>();
      for (const task of tasks) {
        const ids = task.dataset.database.map((c) => volumeOfCase.get(c.caseId)).filter((id): id is string => id !== undefined);
        const everything = ids.length === allVolumeIds.size && ids.every((id) => allVolumeIds.has(id));
        scopeOf.set(task.name, everything ? undefined : ids);
      }
      const rankings = new Map<string, Map<string, Map<string, RankedCase[]>>>(); // task → method → query key → list
      for (const task of tasks) rankings.set(task.name, new Map(methods.map((m) => [m.label, new Map()])));
      const work = tasks.reduce((n, t) => n + (t.kind === 'tumour' ? t.dataset.queries.length : t.queries.length), 0) * methods.length;
      const searchLabel = `searching (${encoder.name})`;
      let searchesDone = 0;
      progress({ phase: 'search', label: searchLabel, done: 0, total: work });
      for (const queryCase of queryCases.values()) {
        const embedStarted = performance.now();
        let resolved: ResolvedQuery;
        try {
          resolved = await resolveQuery({ kind: 'path', path: queryCase.imagePath }, { kind: 'volume' }, { store, encoder, feeder });
        } catch (error) {
          // One unreadable query is left out (and said so), as the indexer leaves out an unreadable volume.
          problems.push(`query ${queryCase.caseId} left out: ${(error as Error).message}`);
          searchesDone += tasks.reduce((n, t) => n + (t.kind === 'tumour' ? (t.dataset.queries.some((q) => q.caseId === queryCase.caseId) ? 1 : 0) : t.queries.filter((q) => q.queryId === queryCase.caseId).length), 0) * methods.length;
          continue;
        }
        info.queryEmbedSeconds += (performance.now() - embedStarted) / 1000;
        info.querySlices += resolved.sliceIndices.length;
        if (resolved.record) {
          const twin = caseOfVolume.get(resolved.record.volumeId);
          if (twin) problems.push(`query ${queryCase.caseId} has the same voxels as database volume ${twin}, which is therefore left out of its results`);
        }
        for (const task of tasks) {
          const jobs: { key: string; query: QueryVectors; source: QuerySource }[] = [];
          // The query volume is embedded once; a region query is the rows of its structure's extent.
          const embedded: QuerySource = { kind: 'vectors', rows: resolved.query, geometry: resolved.volume! };
          if (task.kind === 'tumour') {
            if (task.dataset.queries.some((q) => q.caseId === queryCase.caseId)) jobs.push({ key: queryCase.caseId, query: resolved.query, source: embedded });
          } else {
            for (const rq of task.queries.filter((q) => q.queryId === queryCase.caseId)) {
              const extent = queryCase.regions?.[rq.region] ?? task.dataset.queries.find((c) => c.caseId === rq.queryId)?.regions?.[rq.region];
              const slab = extent ? await regionSlab(embedded, extent, { store }) : undefined;
              if (slab) jobs.push({ key: regionQueryKey(rq), query: slab, source: embedded });
              else {
                problems.push(`region query ${regionQueryKey(rq)}: no embedded slice in the structure's extent; skipped`);
                searchesDone += methods.length;
              }
            }
          }
          for (const job of jobs) {
            for (const method of methods) {
              const scope = scopeOf.get(task.name);
              const { options: searchOptions } = searchRequestOf(job.source, {
                method: method.method,
                firstStage: settings.firstStage,
                k: settings.sliceK,
                candidates: settings.candidates,
                top: settings.top,
                mode: 'exact',
                ...(scope ? { includeVolumeIds: scope } : {}),
                ...(method.fuseWith ? { fuse: method.fuseWith.method, fusion: method.fuseWith.fusion } : {}),
                localization: settings.localization,
                // Only region tasks score localization; whole-volume tumour queries skip the extra alignment.
                localize: task.kind === 'region',
              });
              const t0 = performance.now();
              // One resolved query per job, so every method shares its slice kNN (sharingSliceSearch).
              const results = await search(shared, job.query, searchOptions);
              info.searchSeconds[method.label] += (performance.now() - t0) / 1000;
              rankings.get(task.name)!.get(method.label)!.set(job.key, rankedOf(results, caseOfVolume));
              progress({ phase: 'search', label: searchLabel, done: ++searchesDone, total: work, detail: queryCase.caseId });
            }
          }
        }
      }
      progress({ phase: 'search', label: searchLabel, done: work, total: work });

      // ---- scores, over the database volumes this index holds: one that could not be read can neither
      // be retrieved nor count in the chance level.
      const scoringStarted = performance.now();
      for (const fullTask of tasks) {
        const missing = fullTask.dataset.database.filter((c) => !volumeOfCase.has(c.caseId));
        if (missing.length > 0) problems.push(`${fullTask.name}: ${missing.length} database volume(s) not indexed and left out of its scores (${missing.slice(0, 3).map((c) => c.caseId).join(', ')})`);
        const task: EvalTask = missing.length === 0 ? fullTask : { ...fullTask, dataset: { ...fullTask.dataset, database: fullTask.dataset.database.filter((c) => volumeOfCase.has(c.caseId)) } };
        for (const method of methods) {
          const lists = rankings.get(task.name)!.get(method.label)!;
          const lengths = [...lists.values()].map((l) => l.length);
          const score: EvalScore = { task: task.name, encoder: encoderName, method: method.label, meanResults: lengths.reduce((a, b) => a + b, 0) / Math.max(1, lengths.length) };
          if (task.kind === 'tumour') {
            score.tumour = scoreTumourRankings(task.dataset, lists, settings.precisionKs);
          } else {
            const r = scoreRegionRankings(task.dataset, task.queries, lists, geometry, { ks: settings.recallKs, localizationDepth: settings.localizationDepth });
            score.region = r.region;
            score.localization = r.localization;
            score.partialLocalization = r.partialLocalization;
            score.iousByRegion = r.iousByRegion;
          }
          if (prepared.scanOf) score.sameScan = scoreSameScan(task.dataset, lists, prepared.scanOf);
          scores.push(score);
          rankingsOut.push({ task: task.name, encoder: encoderName, method: method.label, queries: [...lists].map(([queryKey, results]) => ({ queryKey, results })) });
        }
      }
      scoringSeconds += (performance.now() - scoringStarted) / 1000;
    } finally {
      await feeder.close();
      await index.close();
    }
  }

  const cases: EvalResults['cases'] = {};
  for (const task of tasks) {
    for (const c of [...task.dataset.database, ...task.dataset.queries]) {
      const entry = (cases[c.caseId] ??= {
        organ: c.organ,
        cancerFlag: c.labels.cancerFlag,
        lesionGroup: c.labels.lesionGroup,
        imagePath: c.imagePath,
        ...(c.maskPath ? { maskPath: c.maskPath } : {}),
        ...(prepared.scanOf?.get(c.caseId) ? { scan: prepared.scanOf.get(c.caseId) } : {}),
      });
      if (c.regions && Object.keys(c.regions).length > 0) entry.regions = { ...(entry.regions ?? {}), ...c.regions };
    }
  }

  const results: EvalResults = {
    schema: 'mir3d-eval/1',
    createdAt: new Date().toISOString(),
    outDir,
    dataset: { ...prepared.description, notes: prepared.notes },
    settings,
    methods,
    encoders,
    tasks: tasks.map((t) => ({
      name: t.name,
      kind: t.kind,
      ...(t.kind === 'region' && t.region ? { region: t.region } : {}),
      databaseSize: t.dataset.database.length,
      queryCount: t.kind === 'tumour' ? t.dataset.queries.length : t.queries.length,
      strata:
        t.kind === 'tumour'
          ? [...new Set(t.dataset.queries.map((q) => q.labelOrgan ?? q.organ ?? 'all'))].sort()
          : [...new Set(t.queries.map((q) => q.region))].sort(),
      databaseIds: t.dataset.database.map((c) => c.caseId),
      queryKeys: t.kind === 'tumour' ? t.dataset.queries.map((c) => c.caseId) : t.queries.map(regionQueryKey),
      notes: t.dataset.notes,
    })),
    scores,
    rankings: rankingsOut,
    cases,
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
