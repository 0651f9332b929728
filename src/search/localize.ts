import { SearchError } from './errors.js';
import type { LocalizedRegion } from './types.js';

/** One query slice and the target slice it was matched to (its argmax, or its best kNN hit). */
export interface AlignedPair {
  /** Canonical slice index in the query volume. */
  querySlice: number;
  /** Patient z (mm) of the query slice, when known. */
  queryZMm?: number;
  /** Canonical slice index in the target volume. */
  targetSlice: number;
  /** Patient z (mm) of the target slice. */
  targetZMm: number;
  similarity: number;
}

/**
 * How the aligned target slices become a region:
 * - `extent`: min..max of all aligned target slices (the literal C-MIR definition). One query slice
 *   that matches a look-alike far away stretches the region to it.
 * - `consistent` (default): min..max of the largest subset of the alignment that could be one coherent
 *   mapping of the query slab onto the target: in query order, target z never goes back by more than
 *   the tolerance, and between two kept query slices the target advances at most `maxScale` times as
 *   far as the query does (plus the tolerance). Stray matches break this and are left out; an alignment
 *   without strays is kept whole, so then both variants give the same region.
 */
export type LocalizationMethod = 'extent' | 'consistent';
export const LOCALIZATION_METHODS: readonly LocalizationMethod[] = ['extent', 'consistent'];

export interface LocalizationOptions {
  /** Default 'consistent'. */
  method?: LocalizationMethod;
  /**
   * Largest ratio of target to query z distance between two kept query slices. Patients differ in
   * size and slabs in how they are framed, but the same anatomy rarely spans twice the length in one
   * adult body as in another. Default 2.
   */
  maxScale?: number;
  /**
   * Slack in target slices for each step of the mapping, both ways. The argmax of neighbouring query
   * slices jitters by a slice or so (adjacent slices look alike) and slice centres quantize positions by
   * up to half a slice at each end. Default 2.
   */
  toleranceSlices?: number;
}

export const DEFAULT_LOCALIZATION: Required<LocalizationOptions> = {
  method: 'consistent',
  maxScale: 2,
  toleranceSlices: 2,
};

/** The region covered by the aligned target slices, per `options.method`; undefined without pairs. */
export function localizeRegion(
  pairs: readonly AlignedPair[],
  options: LocalizationOptions = {},
): LocalizedRegion | undefined {
  if (pairs.length === 0) return undefined;
  const method = options.method ?? DEFAULT_LOCALIZATION.method;
  if (method === 'extent') return regionOf(pairs);
  if (method === 'consistent') return regionOf(consistentAlignment(pairs, options));
  throw new SearchError('BAD_OPTION', `unknown localization method '${String(method)}' (use ${LOCALIZATION_METHODS.join(', ')})`);
}

/** min..max of the target slices (inclusive) and their z. */
export function regionOf(pairs: readonly AlignedPair[]): LocalizedRegion | undefined {
  if (pairs.length === 0) return undefined;
  let firstSlice = Infinity;
  let lastSlice = -Infinity;
  let zStartMm = Infinity;
  let zEndMm = -Infinity;
  for (const p of pairs) {
    if (p.targetSlice < firstSlice) firstSlice = p.targetSlice;
    if (p.targetSlice > lastSlice) lastSlice = p.targetSlice;
    if (p.targetZMm < zStartMm) zStartMm = p.targetZMm;
    if (p.targetZMm > zEndMm) zEndMm = p.targetZMm;
  }
  return { zStartMm, zEndMm, firstSlice, lastSlice };
}

/**
 * The largest subset of `pairs` consistent with one monotonic mapping of the query onto the target
 * (see `LocalizationMethod`), in query-slice order. Among subsets of equal size the one with the higher
 * summed similarity wins, so a tie between a true run and a look-alike run goes to the better match.
 *
 * Without query z positions only the ordering constraint applies: slice indices alone do not say how
 * far apart two query slices are in mm.
 *
 * Dynamic programme over the pairs sorted by query slice, O(n²) for n query slices (a few ms for the
 * few hundred slices of a CT; it runs once per candidate volume).
 */
export function consistentAlignment(pairs: readonly AlignedPair[], options: LocalizationOptions = {}): AlignedPair[] {
  const maxScale = options.maxScale ?? DEFAULT_LOCALIZATION.maxScale;
  const toleranceSlices = options.toleranceSlices ?? DEFAULT_LOCALIZATION.toleranceSlices;
  if (!(maxScale > 0) || !Number.isFinite(maxScale)) throw new SearchError('BAD_OPTION', `maxScale must be a positive number, got ${maxScale}`);
  if (!(toleranceSlices >= 0) || !Number.isFinite(toleranceSlices)) {
    throw new SearchError('BAD_OPTION', `toleranceSlices must be a non-negative number, got ${toleranceSlices}`);
  }
  const n = pairs.length;
  if (n <= 1) return pairs.slice();
  const sorted = pairs.slice().sort((a, b) => a.querySlice - b.querySlice || a.targetSlice - b.targetSlice);
  const toleranceMm = toleranceSlices * targetSpacingMm(sorted);
  const hasQueryZ = sorted.every((p) => p.queryZMm !== undefined && Number.isFinite(p.queryZMm));

  const length = new Int32Array(n);
  const similaritySum = new Float64Array(n);
  const previous = new Int32Array(n).fill(-1);
  let best = 0;
  for (let j = 0; j < n; j++) {
    const pj = sorted[j];
    length[j] = 1;
    similaritySum[j] = pj.similarity;
    for (let i = 0; i < j; i++) {
      const pi = sorted[i];
      const advanceMm = pj.targetZMm - pi.targetZMm;
      if (advanceMm < -toleranceMm) continue;
      if (hasQueryZ && advanceMm > maxScale * Math.abs((pj.queryZMm as number) - (pi.queryZMm as number)) + toleranceMm) continue;
      const candidateLength = length[i] + 1;
      const candidateSum = similaritySum[i] + pj.similarity;
      if (candidateLength > length[j] || (candidateLength === length[j] && candidateSum > similaritySum[j])) {
        length[j] = candidateLength;
        similaritySum[j] = candidateSum;
        previous[j] = i;
      }
    }
    if (length[j] > length[best] || (length[j] === length[best] && similaritySum[j] > similaritySum[best])) best = j;
  }
  const chain: AlignedPair[] = [];
  for (let j = best; j !== -1; j = previous[j]) chain.push(sorted[j]);
  return chain.reverse();
}

/**
 * mm between adjacent target slices. Canonical grids are regular (readers resample uneven series), so
 * z is linear in the slice index and any two distinct slices give the spacing exactly. 0 when all pairs
 * hit one slice, which then needs no tolerance.
 */
function targetSpacingMm(pairs: readonly AlignedPair[]): number {
  let lo = pairs[0];
  let hi = pairs[0];
  for (const p of pairs) {
    if (p.targetSlice < lo.targetSlice) lo = p;
    if (p.targetSlice > hi.targetSlice) hi = p;
  }
  if (hi.targetSlice === lo.targetSlice) return 0;
  return Math.abs((hi.targetZMm - lo.targetZMm) / (hi.targetSlice - lo.targetSlice));
}
