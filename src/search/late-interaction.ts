import { maxSimFromSimilarity, maxSimilarityPerSegment, type MaxSimBackend, type MaxSimKernel, type MaxSimResult } from '../compute/index.js';
import type { VolumeVectors } from '../store/types.js';
import { SearchError, asSearchError, checkPositiveInteger } from './errors.js';
import { localizeRegion, type AlignedPair, type LocalizationOptions } from './localize.js';
import { checkQueryPositions, compareIds, rankAndCut } from './ranking.js';
import type { SimilarityKernel } from './similarity.js';
import type { LocalizedRegion, QueryVectors, SearchResult, SliceMatch } from './types.js';

/** The query side of late interaction: embedded query slices and where they lie in the query volume. */
export type LateInteractionQuery = Pick<QueryVectors, 'vectors' | 'dim' | 'sliceIndices' | 'zMm'>;

export type { MaxSimKernel, MaxSimResult };
export { maxSimFromSimilarity };

export interface LateInteractionOptions {
  /** Backend of src/compute's MaxSim; default 'typescript' here (exact, shape-independent), while `search`
   * asks for 'onnx'. */
  backend?: MaxSimBackend;
  /** Computes q × v similarity matrices for the TS backend; default the plain-TS blocked kernel. */
  similarity?: SimilarityKernel;
  /** A kernel of your own that does the max itself; takes precedence over `backend` and `similarity`. */
  maxSim?: MaxSimKernel;
  /** Rows per similarity-kernel call of the TS backend, see `maxSimFromSimilarity`. */
  maxRowsPerCall?: number;
  localization?: LocalizationOptions;
}

export interface LateInteractionScore {
  volumeId: string;
  /** S(Q, V) = (1/|Q|) Σ_q max_{s∈V} cos(q, s). */
  score: number;
  /** Per query row (input order): the row of V with the highest similarity (first one on ties). */
  argmaxRows: Int32Array;
  /** Per query row (input order): that highest similarity. */
  maxSimilarities: Float32Array;
  /** The alignment per query slice, sorted by query slice. */
  matches: SliceMatch[];
  region?: LocalizedRegion;
}

/**
 * C-MIR late interaction: scores every candidate volume V against the query Q by
 * S(Q, V) = (1/|Q|) Σ_{q∈Q} max_{s∈V} cos(q, s), keeping the argmax slice per query slice (the alignment)
 * and localizing it. Results are in candidate order. A candidate without slices has no score and is
 * left out (nothing in it can match).
 */
export async function lateInteractionScores(
  query: LateInteractionQuery,
  candidates: readonly VolumeVectors[],
  options: LateInteractionOptions = {},
): Promise<LateInteractionScore[]> {
  const { dim } = query;
  const qCount = checkQuery(query);
  for (const c of candidates) checkCandidate(c, dim);
  const scored = candidates.filter((c) => c.sliceIndices.length > 0);
  if (scored.length === 0) return [];
  if (options.maxRowsPerCall !== undefined) checkPositiveInteger(options.maxRowsPerCall, 'maxRowsPerCall');
  const segments = scored.map((c) => c.vectors);
  let result: MaxSimResult;
  try {
    result = options.maxSim
      ? await options.maxSim(query.vectors, dim, segments)
      : await maxSimilarityPerSegment(query.vectors, dim, segments, {
          backend: options.backend ?? 'typescript',
          ...(options.similarity ? { similarity: options.similarity } : {}),
          ...(options.maxRowsPerCall !== undefined ? { maxRowsPerCall: options.maxRowsPerCall } : {}),
        });
  } catch (error) {
    throw asSearchError(error);
  }
  const expected = qCount * scored.length;
  if (result.maxSimilarity.length !== expected || result.argmaxRow.length !== expected) {
    throw new SearchError(
      'KERNEL_OUTPUT',
      `MaxSim kernel returned ${result.maxSimilarity.length} maxima and ${result.argmaxRow.length} argmax rows, expected ${qCount} × ${scored.length}`,
    );
  }
  return scored.map((candidate, c) => scoreCandidate(query, qCount, candidate, c, scored.length, result, options.localization));
}

export interface RerankOptions extends LateInteractionOptions {
  /** Keep the best `top`; all candidates by default. */
  top?: number;
}

/**
 * Re-ranks candidates by S(Q, V); ties by volume id, so the order of `candidates` never matters.
 * Each result's matches are the alignment and its region the localized part of V.
 */
export async function rerank(
  query: LateInteractionQuery,
  candidates: readonly VolumeVectors[],
  options: RerankOptions = {},
): Promise<SearchResult[]> {
  const scores = await lateInteractionScores(query, candidates, options);
  const results = scores
    .sort((a, b) => b.score - a.score || compareIds(a.volumeId, b.volumeId))
    .map((s): SearchResult => {
      const result: SearchResult = { volumeId: s.volumeId, score: s.score, rank: 0, matches: s.matches };
      if (s.region) result.region = s.region;
      return result;
    });
  return rankAndCut(results, options.top);
}

function scoreCandidate(
  query: LateInteractionQuery,
  qCount: number,
  candidate: VolumeVectors,
  segment: number,
  segmentCount: number,
  result: MaxSimResult,
  localization: LocalizationOptions | undefined,
): LateInteractionScore {
  const rows = candidate.sliceIndices.length;
  const argmaxRows = new Int32Array(qCount);
  const maxSimilarities = new Float32Array(qCount);
  let total = 0;
  const pairs: AlignedPair[] = [];
  for (let i = 0; i < qCount; i++) {
    const row = result.argmaxRow[i * segmentCount + segment];
    const best = result.maxSimilarity[i * segmentCount + segment];
    if (!Number.isInteger(row) || row < 0 || row >= rows) {
      throw new SearchError('KERNEL_OUTPUT', `MaxSim kernel gave row ${row} for volume ${candidate.volumeId} of ${rows} rows`);
    }
    argmaxRows[i] = row;
    maxSimilarities[i] = best;
    total += best;
    pairs.push({
      querySlice: query.sliceIndices[i],
      queryZMm: query.zMm?.[i],
      targetSlice: candidate.sliceIndices[row],
      targetZMm: candidate.zMm[row],
      similarity: best,
    });
  }
  pairs.sort((a, b) => a.querySlice - b.querySlice || a.targetSlice - b.targetSlice);
  const score: LateInteractionScore = {
    volumeId: candidate.volumeId,
    score: total / qCount,
    argmaxRows,
    maxSimilarities,
    matches: pairs.map((p) => ({ querySlice: p.querySlice, targetSlice: p.targetSlice, similarity: p.similarity })),
  };
  const region = localizeRegion(pairs, localization);
  if (region) score.region = region;
  return score;
}

/** Returns the number of query rows after checking the query's shape. */
export function checkQuery(query: LateInteractionQuery): number {
  const { vectors, dim } = query;
  if (!Number.isInteger(dim) || dim < 1) throw new SearchError('BAD_QUERY', `query dimension must be a positive integer, got ${dim}`);
  if (vectors.length === 0) throw new SearchError('BAD_QUERY', 'query has no slices');
  if (vectors.length % dim !== 0) {
    throw new SearchError('BAD_QUERY', `query has ${vectors.length} floats, not a whole number of ${dim}-d rows`);
  }
  const rows = vectors.length / dim;
  checkQueryPositions(rows, query.sliceIndices, query.zMm);
  return rows;
}

function checkCandidate(c: VolumeVectors, dim: number): void {
  if (c.dim !== dim) throw new SearchError('DIM_MISMATCH', `volume ${c.volumeId} has ${c.dim}-d vectors, the query ${dim}-d`);
  const rows = c.sliceIndices.length;
  if (c.vectors.length !== rows * dim || c.zMm.length !== rows) {
    throw new SearchError(
      'BAD_QUERY',
      `volume ${c.volumeId}: ${rows} slice indices, ${c.zMm.length} z positions and ${c.vectors.length} floats do not agree`,
    );
  }
}
