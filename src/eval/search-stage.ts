import type { Encoder } from '../encode/encoder.js';
import type { SliceFeeder } from '../encode/slice-feeder.js';
import { searchRequestOf } from '../query/request.js';
import { resolveQuery, type QuerySource, type ResolvedQuery } from '../query/sources.js';
import { isSearchError } from '../search/errors.js';
import { search } from '../search/search.js';
import type { QueryVectors, SearchResult } from '../search/types.js';
import type { SpaceStore } from '../space/space-store.js';
import type { SliceHit, SliceSearchOptions, Store } from '../store/types.js';
import type { Case, ZExtent } from './datasets/types.js';
import type { IndexedDatabase } from './index-stage.js';
import type { EvalMethod } from './methods.js';
import type { EvalSettings } from './results.js';
import { type RankedCase, regionQueryKey } from './scoring.js';
import type { EvalProgress, EvalTask } from './tasks.js';

/** task → method label → query key → ranked database cases. */
export type EvalRankings = Map<string, Map<string, Map<string, RankedCase[]>>>;

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

/** How many searches one query case stands for (each of its task queries times each method). */
function searchesOfQuery(tasks: readonly EvalTask[], caseId: string, methodCount: number): number {
  return tasks.reduce((n, t) => n + (t.kind === 'tumour' ? (t.dataset.queries.some((q) => q.caseId === caseId) ? 1 : 0) : t.queries.filter((q) => q.queryId === caseId).length), 0) * methodCount;
}

/** The searches one embedded query case makes in one task: the whole volume for a tumour task, the slab
 * of each structure's extent for a region task (embedded once; a slab is a subset of its rows). */
async function jobsOfTask(
  task: EvalTask,
  queryCase: Case,
  resolved: ResolvedQuery,
  context: { store: Store; problems: string[]; skipped: (searches: number) => void; methodCount: number },
): Promise<{ key: string; query: QueryVectors; source: QuerySource }[]> {
  const embedded: QuerySource = { kind: 'vectors', rows: resolved.query, geometry: resolved.volume! };
  if (task.kind === 'tumour') {
    return task.dataset.queries.some((q) => q.caseId === queryCase.caseId) ? [{ key: queryCase.caseId, query: resolved.query, source: embedded }] : [];
  }
  const jobs: { key: string; query: QueryVectors; source: QuerySource }[] = [];
  for (const rq of task.queries.filter((q) => q.queryId === queryCase.caseId)) {
    const extent = queryCase.regions?.[rq.region] ?? task.dataset.queries.find((c) => c.caseId === rq.queryId)?.regions?.[rq.region];
    const slab = extent ? await regionSlab(embedded, extent, context) : undefined;
    if (slab) jobs.push({ key: regionQueryKey(rq), query: slab, source: embedded });
    else {
      context.problems.push(`region query ${regionQueryKey(rq)}: no embedded slice in the structure's extent; skipped`);
      context.skipped(context.methodCount);
    }
  }
  return jobs;
}

/**
 * Embeds each query case once (queries are never indexed) and runs every method of every task on it,
 * each task searching only its own database (an include filter), so 3D-MIR's four per-organ databases,
 * which share volumes, are one index. Adds embedding and search timings to `database.info`. A method
 * with a `space` searches the index seen through that space (`spaces`), its query rows projected by the
 * same kernel (SpaceStore.project), as `mir3d search --space` does; its time includes the projection.
 */
export async function searchQueries(
  tasks: readonly EvalTask[],
  queryCases: ReadonlyMap<string, Case>,
  database: IndexedDatabase,
  context: {
    store: Store;
    encoder: Encoder;
    feeder: SliceFeeder;
    methods: readonly EvalMethod[];
    settings: EvalSettings;
    problems: string[];
    progress: (event: EvalProgress) => void;
    /** The index seen through a method's space for one query (its head may depend on the query's patient). */
    spaceFor?: (space: string, queryCase: Case) => SpaceStore;
    /** Each query case's rows once resolved (embedded), e.g. for the per-slice scores of a head. */
    onQueryRows?: (queryCase: Case, resolved: ResolvedQuery) => void;
  },
): Promise<EvalRankings> {
  const { store, encoder, feeder, methods, settings, problems, progress } = context;
  const { info, caseOfVolume, volumeOfCase } = database;
  const shared = sharingSliceSearch(store);
  const sharedIn = new Map<SpaceStore, Store>();
  const inSpaceOf = (space: string, queryCase: Case): { view: SpaceStore; shared: Store } => {
    const view = context.spaceFor?.(space, queryCase);
    if (!view) throw new Error(`space ${space} is not open for query ${queryCase.caseId}`);
    let viewShared = sharedIn.get(view);
    if (!viewShared) sharedIn.set(view, (viewShared = sharingSliceSearch(view)));
    return { view, shared: viewShared };
  };
  const allVolumeIds = new Set(store.listVolumes().map((r) => r.volumeId));
  const scopeOf = new Map<string, string[] | undefined>();
  for (const task of tasks) {
    const ids = task.dataset.database.map((c) => volumeOfCase.get(c.caseId)).filter((id): id is string => id !== undefined);
    const everything = ids.length === allVolumeIds.size && ids.every((id) => allVolumeIds.has(id));
    scopeOf.set(task.name, everything ? undefined : ids);
  }
  const rankings: EvalRankings = new Map();
  for (const task of tasks) rankings.set(task.name, new Map(methods.map((m) => [m.label, new Map()])));
  const work = tasks.reduce((n, t) => n + (t.kind === 'tumour' ? t.dataset.queries.length : t.queries.length), 0) * methods.length;
  const label = `searching (${encoder.name})`;
  let done = 0;
  progress({ phase: 'search', label, done: 0, total: work });
  for (const queryCase of queryCases.values()) {
    const embedStarted = performance.now();
    let resolved: ResolvedQuery;
    try {
      resolved = await resolveQuery({ kind: 'path', path: queryCase.imagePath }, { kind: 'volume' }, { store, encoder, feeder });
    } catch (error) {
      // One unreadable query is left out (and said so), as the indexer leaves out an unreadable volume.
      problems.push(`query ${queryCase.caseId} left out: ${(error as Error).message}`);
      done += searchesOfQuery(tasks, queryCase.caseId, methods.length);
      continue;
    }
    info.queryEmbedSeconds += (performance.now() - embedStarted) / 1000;
    context.onQueryRows?.(queryCase, resolved);
    info.querySlices += resolved.sliceIndices.length;
    if (resolved.record) {
      const twin = caseOfVolume.get(resolved.record.volumeId);
      if (twin) problems.push(`query ${queryCase.caseId} has the same voxels as database volume ${twin}, which is therefore left out of its results`);
    }
    for (const task of tasks) {
      const jobs = await jobsOfTask(task, queryCase, resolved, { store, problems, skipped: (n) => (done += n), methodCount: methods.length });
      const scope = scopeOf.get(task.name);
      for (const job of jobs) {
        // Projected once per job and space, so the space's methods share their kNN as raw's do.
        const projected = new Map<string, Promise<QueryVectors>>();
        for (const method of methods) {
          const { options } = searchRequestOf(job.source, {
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
          const inSpace = method.space ? inSpaceOf(method.space, queryCase) : undefined;
          let query = job.query;
          if (inSpace) {
            let rows = projected.get(method.space!);
            if (!rows) projected.set(method.space!, (rows = inSpace.view.project(job.query.vectors).then((vectors) => ({ ...job.query, vectors, dim: inSpace.view.dim }))));
            query = await rows;
          }
          // One resolved query per job, so every method shares its slice kNN (sharingSliceSearch).
          const results = await search(inSpace?.shared ?? shared, query, options);
          info.searchSeconds[method.label] += (performance.now() - t0) / 1000;
          rankings.get(task.name)!.get(method.label)!.set(job.key, rankedOf(results, caseOfVolume));
          progress({ phase: 'search', label, done: ++done, total: work, detail: queryCase.caseId });
        }
      }
    }
  }
  progress({ phase: 'search', label, done: work, total: work });
  return rankings;
}
