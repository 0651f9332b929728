import type { VolumeVectors } from '../store/types.js';
import { SearchError } from './errors.js';
import { localizeRegion, type AlignedPair, type LocalizationOptions } from './localize.js';
import { checkQueryPositions, compareIds, rankAndCut } from './ranking.js';
import { defaultSimilarityKernel, type SimilarityKernel } from './similarity.js';
import type { LocalizedRegion, QueryVectors, SearchResult, SliceMatch } from './types.js';

/** The query side of late interaction: embedded query slices and where they lie in the query volume. */
export type LateInteractionQuery = Pick<QueryVectors, 'vectors' | 'dim' | 'sliceIndices' | 'zMm'>;

/**
 * Per query row and candidate, the highest similarity to any of the candidate's rows and which row gave
 * it (first on ties), laid out queryCount × segmentCount (entry q · segmentCount + c). The same shape as
 * `maxSimilarityPerSegment` in src/compute, so that ONNX kernel plugs in as it is.
 */
export interface MaxSimResult {
  queryCount: number;
  segmentCount: number;
  maxSimilarity: Float32Array;
  argmaxRow: Int32Array;
}

/** MaxSim of `queries` (rows × dim) against each segment (rows × dim, row-major). */
export type MaxSimKernel = (queries: Float32Array, dim: number, segments: readonly Float32Array[]) => Promise<MaxSimResult>;

export interface LateInteractionOptions {
  /** Computes q × v similarity matrices; default the plain-TS blocked kernel. Used through
   * `maxSimFromSimilarity` unless `maxSim` is given. */
  similarity?: SimilarityKernel;
  /** A kernel that does the max itself (e.g. src/compute's ONNX one); takes precedence over `similarity`. */
  maxSim?: MaxSimKernel;
  /** Rows per similarity-kernel call, see `maxSimFromSimilarity`. */
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

const DEFAULT_MAX_ROWS_PER_CALL = 8192;

/**
 * A MaxSim kernel on top of a similarity-matrix kernel. Candidates are scored together in one kernel
 * call while their rows add up to at most `maxRowsPerCall` (default 8192; a larger candidate goes
 * alone, without a copy): fewer, larger calls suit an accelerator, and the bound keeps the q × v matrix
 * at tens of MB for a few hundred query slices.
 */
export function maxSimFromSimilarity(
  kernel: SimilarityKernel = defaultSimilarityKernel,
  maxRowsPerCall: number = DEFAULT_MAX_ROWS_PER_CALL,
): MaxSimKernel {
  if (!Number.isInteger(maxRowsPerCall) || maxRowsPerCall < 1) {
    throw new SearchError('BAD_OPTION', `maxRowsPerCall must be a positive integer, got ${maxRowsPerCall}`);
  }
  return async (queries, dim, segments) => {
    if (!Number.isInteger(dim) || dim < 1 || queries.length % dim !== 0) {
      throw new SearchError('BAD_QUERY', `queries hold ${queries.length} floats, not whole rows of dimension ${dim}`);
    }
    const queryCount = queries.length / dim;
    const segmentCount = segments.length;
    const maxSimilarity = new Float32Array(queryCount * segmentCount).fill(-Infinity);
    const argmaxRow = new Int32Array(queryCount * segmentCount).fill(-1);
    for (const chunk of chunkByRows(segments, dim, maxRowsPerCall)) {
      const vCount = chunk.rows;
      const v = chunk.segments.length === 1 ? segments[chunk.segments[0]] : concatRows(segments, chunk, dim);
      const matrix = await kernel(queries, queryCount, v, vCount, dim);
      if (!(matrix instanceof Float32Array) || matrix.length !== queryCount * vCount) {
        throw new SearchError(
          'KERNEL_OUTPUT',
          `similarity kernel returned ${describeLength(matrix)} values, expected ${queryCount} × ${vCount}`,
        );
      }
      for (let i = 0; i < queryCount; i++) {
        const rowBase = i * vCount;
        chunk.segments.forEach((s, n) => {
          const start = rowBase + chunk.offsets[n];
          const rows = segments[s].length / dim;
          let best = -Infinity;
          let arg = -1;
          for (let r = 0; r < rows; r++) {
            const value = matrix[start + r];
            if (value > best) {
              best = value;
              arg = r;
            }
          }
          maxSimilarity[i * segmentCount + s] = best;
          argmaxRow[i * segmentCount + s] = arg;
        });
      }
    }
    return { queryCount, segmentCount, maxSimilarity, argmaxRow };
  };
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
  const maxSim = options.maxSim ?? maxSimFromSimilarity(options.similarity, options.maxRowsPerCall);
  const result = await maxSim(
    query.vectors,
    dim,
    scored.map((c) => c.vectors),
  );
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

interface Chunk {
  /** Indices of the segments in this chunk, in order. */
  segments: number[];
  /** Row offset of each segment inside the chunk. */
  offsets: number[];
  rows: number;
}

function* chunkByRows(segments: readonly Float32Array[], dim: number, maxRows: number): Generator<Chunk> {
  let chunk: Chunk = { segments: [], offsets: [], rows: 0 };
  for (let s = 0; s < segments.length; s++) {
    const rows = segments[s].length / dim;
    if (rows === 0) continue;
    if (chunk.segments.length > 0 && chunk.rows + rows > maxRows) {
      yield chunk;
      chunk = { segments: [], offsets: [], rows: 0 };
    }
    chunk.segments.push(s);
    chunk.offsets.push(chunk.rows);
    chunk.rows += rows;
  }
  if (chunk.segments.length > 0) yield chunk;
}

function concatRows(segments: readonly Float32Array[], chunk: Chunk, dim: number): Float32Array {
  const out = new Float32Array(chunk.rows * dim);
  chunk.segments.forEach((s, n) => out.set(segments[s], chunk.offsets[n] * dim));
  return out;
}

function describeLength(value: unknown): string {
  return value instanceof Float32Array ? String(value.length) : `a non-Float32Array (${typeof value}) instead of`;
}
