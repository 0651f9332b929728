import { poolVectors } from '../store/index.js';
import type { Pooling, SliceHit, Store, VolumeFilter, VolumeVectors } from '../store/types.js';
import { aggregateSliceHits } from './aggregate.js';
import { SearchError, checkPositiveInteger } from './errors.js';
import { DEFAULT_FUSION_TOP, interleave, reciprocalRankFusion } from './fusion.js';
import { checkQuery, lateInteractionScores, rerank, type LateInteractionOptions, type MaxSimKernel } from './late-interaction.js';
import type { LocalizationOptions } from './localize.js';
import type { SimilarityKernel } from './similarity.js';
import {
  SEARCH_METHODS,
  type FirstStageMethod,
  type FusionMethod,
  type QueryVectors,
  type SearchMethod,
  type SearchResult,
  type SliceAggregation,
  type SliceMethod,
  type VolumeMethod,
} from './types.js';
import { volumeHitsToResults } from './volume.js';

export const DEFAULT_SLICE_K = 20;
export const DEFAULT_CANDIDATES = 50;
export const DEFAULT_TOP = DEFAULT_FUSION_TOP;
export const DEFAULT_FIRST_STAGE: FirstStageMethod = 'slice-count';

export interface FuseWith {
  /** The second list's method (its own first stage, for 'rerank', is `SearchOptions.firstStage`). */
  method: SearchMethod;
  fusion: FusionMethod;
  /** RRF constant; default 60. */
  k0?: number;
}

export interface SearchOptions {
  method: SearchMethod;
  /** First stage of 'rerank'; default 'slice-count' (C-MIR). */
  firstStage?: FirstStageMethod;
  /** Nearest slices per query slice for the slice methods; default 20 (3D-MIR). */
  k?: number;
  /** Candidates the first stage hands to the re-ranking, and the depth of each list that is fused;
   * default 50 (C-MIR). */
  candidates?: number;
  /** Results returned; default 10. */
  top?: number;
  /** Slice kNN: 'exact' (default, what the papers measured with a flat index) or 'approximate' (HNSW). */
  mode?: 'exact' | 'approximate';
  filter?: VolumeFilter;
  excludeVolumeIds?: readonly string[];
  /** Let the query's own volume (`query.volumeId`) appear in the results; default false. */
  includeQueryVolume?: boolean;
  fuseWith?: FuseWith;
  /** Similarity kernel for the late interaction and for localization (the plain-TS one is exported as
   * defaultSimilarityKernel); used only when `maxSim` is not given. */
  similarity?: SimilarityKernel;
  /** A MaxSim kernel of your own; takes precedence over `similarity`. Default: src/compute's MaxSim on ONNX Runtime. */
  maxSim?: MaxSimKernel;
  localization?: LocalizationOptions;
  /** Give results without a region (volume methods) one by aligning the query to them; default true. */
  localize?: boolean;
}

const FUSIONS: readonly FusionMethod[] = ['interleave', 'rrf'];

const POOLING_OF: Record<VolumeMethod, Pooling> = {
  'volume-mean': 'mean',
  'volume-median': 'median',
  'volume-max': 'max',
  'volume-std': 'std',
};

const AGGREGATION_OF: Record<SliceMethod, SliceAggregation> = {
  'slice-count': 'count',
  'slice-sum': 'sum',
  'slice-max': 'max',
};

/**
 * Runs one retrieval method (DESIGN.md "Retrieval methods") for an embedded query against the store,
 * optionally fused with a second method, and returns the top results, ranked from 1.
 *
 * Excluded volumes (the query's own unless `includeQueryVolume`, plus `excludeVolumeIds`) are passed to
 * the store in the filter, so they take none of the k nearest slices of a query slice: a query volume's
 * own slices would otherwise fill every slot. This matches the papers, whose query volumes are not in the
 * searched database.
 */
export async function search(store: Store, query: QueryVectors, options: SearchOptions): Promise<SearchResult[]> {
  checkQuery(query);
  if (query.dim !== store.dim) {
    throw new SearchError('DIM_MISMATCH', `query vectors are ${query.dim}-d, the index holds ${store.dim}-d vectors (${store.encoderId})`);
  }
  checkMethod(options.method, 'method');
  if (options.fuseWith) {
    checkMethod(options.fuseWith.method, 'fuseWith.method');
    if (!FUSIONS.includes(options.fuseWith.fusion)) {
      throw new SearchError('BAD_OPTION', `unknown fusion '${String(options.fuseWith.fusion)}' (use ${FUSIONS.join(', ')})`);
    }
  }
  const firstStage = options.firstStage ?? DEFAULT_FIRST_STAGE;
  if (firstStage === ('rerank' as SearchMethod)) throw new SearchError('BAD_OPTION', "the first stage of 'rerank' cannot be 'rerank'");
  checkMethod(firstStage, 'firstStage');
  const k = options.k ?? DEFAULT_SLICE_K;
  const candidates = options.candidates ?? DEFAULT_CANDIDATES;
  const top = options.top ?? DEFAULT_TOP;
  checkPositiveInteger(k, 'k');
  checkPositiveInteger(candidates, 'candidates');
  checkPositiveInteger(top, 'top');

  const excluded = new Set(options.excludeVolumeIds ?? []);
  if (query.volumeId !== undefined && !options.includeQueryVolume) excluded.add(query.volumeId);
  const excludeAlso = [...new Set([...(options.filter?.excludeVolumeIds ?? []), ...excluded])];
  const filter: VolumeFilter | undefined =
    options.filter || excludeAlso.length > 0
      ? { ...options.filter, ...(excludeAlso.length > 0 ? { excludeVolumeIds: excludeAlso } : {}) }
      : undefined;

  // Two fused slice methods share one kNN search.
  let sliceHits: Promise<SliceHit[][]> | undefined;
  const searchSlices = (): Promise<SliceHit[][]> =>
    (sliceHits ??= store.searchSlices(query.vectors, { k, mode: options.mode ?? 'exact', ...(filter ? { filter } : {}) }));

  // ONNX Runtime's matrix product unless the caller chose a kernel: the plain-TS one is ~20× slower on
  // full-size re-ranking (50 candidates × 300 slices × 1280 dims).
  const kernels: LateInteractionOptions = {
    backend: 'onnx',
    ...(options.similarity ? { similarity: options.similarity } : {}),
    ...(options.maxSim ? { maxSim: options.maxSim } : {}),
    localization: options.localization,
  };

  const run = async (method: SearchMethod, depth: number): Promise<SearchResult[]> => {
    if (method === 'rerank') {
      const first = await run(firstStage, candidates);
      const vectors = store.getVectors(first.map((r) => r.volumeId));
      const found = first.map((r) => vectors.get(r.volumeId)).filter((v): v is VolumeVectors => v !== undefined);
      return rerank(query, found, { ...kernels, top: depth });
    }
    if (isSliceMethod(method)) {
      const hits = await searchSlices();
      return aggregateSliceHits(hits, AGGREGATION_OF[method], {
        querySliceIndices: query.sliceIndices,
        queryZMm: query.zMm,
        excludeVolumeIds: excludeAlso,
        top: depth,
        localization: options.localization,
      });
    }
    const pooling = POOLING_OF[method];
    const pooled = poolVectors(query.vectors, query.dim, pooling);
    // Asking for the excluded ones on top keeps `depth` results even from a store that ignores the filter.
    const hits = await store.searchVolumes(pooled, pooling, depth + excludeAlso.length, filter);
    return volumeHitsToResults(hits, { excludeVolumeIds: excludeAlso, top: depth });
  };

  let results: SearchResult[];
  if (options.fuseWith) {
    const depth = Math.max(top, candidates);
    const [a, b] = await Promise.all([run(options.method, depth), run(options.fuseWith.method, depth)]);
    results =
      options.fuseWith.fusion === 'interleave'
        ? interleave(a, b, top)
        : reciprocalRankFusion([a, b], { top, k0: options.fuseWith.k0 });
  } else {
    results = await run(options.method, top);
  }
  if (options.localize ?? true) await localizeMissing(store, query, results, kernels);
  return results;
}

/** Aligns the query to results that lack a region (pooled-vector hits) to give them matches and one. */
async function localizeMissing(store: Store, query: QueryVectors, results: SearchResult[], kernels: LateInteractionOptions): Promise<void> {
  const missing = results.filter((r) => !r.region);
  if (missing.length === 0) return;
  const vectors = store.getVectors(missing.map((r) => r.volumeId));
  const found = missing.map((r) => vectors.get(r.volumeId)).filter((v): v is VolumeVectors => v !== undefined);
  const scores = await lateInteractionScores(query, found, kernels);
  const byId = new Map(scores.map((s) => [s.volumeId, s]));
  for (const result of missing) {
    const s = byId.get(result.volumeId);
    if (!s?.region) continue;
    result.matches = s.matches;
    result.region = s.region;
  }
}

function checkMethod(method: string, what: string): void {
  if (!(SEARCH_METHODS as readonly string[]).includes(method)) {
    throw new SearchError('BAD_OPTION', `unknown ${what} '${method}' (use ${SEARCH_METHODS.join(', ')})`);
  }
}

function isSliceMethod(method: FirstStageMethod): method is SliceMethod {
  return method in AGGREGATION_OF;
}
