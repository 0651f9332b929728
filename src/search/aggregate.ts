import type { SliceHit } from '../store/types.js';
import { localizeRegion, type AlignedPair, type LocalizationOptions } from './localize.js';
import { checkQueryPositions, compareIds, rankAndCut, toIdSet } from './ranking.js';
import type { SearchResult, SliceAggregation, SliceMatch } from './types.js';
import { SearchError, checkPositiveInteger } from './errors.js';

export const SLICE_AGGREGATIONS: readonly SliceAggregation[] = ['count', 'sum', 'max'];

export interface SliceAggregationOptions {
  /** Canonical slice index of each query row, aligned with `hitsPerQuerySlice`. */
  querySliceIndices: ArrayLike<number>;
  /** Patient z (mm) of each query row; lets the robust localization check distances, not only order. */
  queryZMm?: ArrayLike<number>;
  /** Volumes to leave out (the query's own volume). */
  excludeVolumeIds?: Iterable<string>;
  /** Keep the best `top` volumes; all by default. */
  top?: number;
  localization?: LocalizationOptions;
}

interface VolumeTally {
  volumeId: string;
  count: number;
  sum: number;
  max: number;
  /** Best hit per query row in this volume. */
  bestPerRow: Map<number, SliceHit>;
  similarities: number[];
}

/**
 * Slice-based retrieval (3D-MIR method 1): every query slice's kNN hits vote for their volumes, and
 * volumes are ranked by
 * - `count`: number of hits; ties → higher summed similarity → volume id;
 * - `sum`: summed similarity of the hits; ties → more hits → volume id;
 * - `max`: highest single hit similarity; ties → higher summed similarity → more hits → volume id.
 * (The score is the method's quantity.) Tie-breaks use the other quantities first because an identical
 * count or maximum is common (k hits per slice, duplicated scans) while they still differ in support.
 *
 * Sums add each volume's similarities in descending order, so the result does not depend on the order
 * of the query slices, not even in the last bit.
 *
 * `matches` holds, per query slice with a hit in the volume, its best hit there (higher similarity,
 * then lower slice index), sorted by query slice; `region` localizes those matches.
 */
export function aggregateSliceHits(
  hitsPerQuerySlice: readonly (readonly SliceHit[])[],
  method: SliceAggregation,
  options: SliceAggregationOptions,
): SearchResult[] {
  if (!SLICE_AGGREGATIONS.includes(method)) {
    throw new SearchError('BAD_OPTION', `unknown slice aggregation '${String(method)}' (use ${SLICE_AGGREGATIONS.join(', ')})`);
  }
  const { querySliceIndices, queryZMm } = options;
  checkQueryPositions(hitsPerQuerySlice.length, querySliceIndices, queryZMm);
  const excluded = toIdSet(options.excludeVolumeIds);

  const tallies = new Map<string, VolumeTally>();
  hitsPerQuerySlice.forEach((hits, row) => {
    for (const hit of hits) {
      if (excluded.has(hit.volumeId)) continue;
      let tally = tallies.get(hit.volumeId);
      if (!tally) {
        tally = { volumeId: hit.volumeId, count: 0, sum: 0, max: -Infinity, bestPerRow: new Map(), similarities: [] };
        tallies.set(hit.volumeId, tally);
      }
      tally.count++;
      tally.similarities.push(hit.similarity);
      if (hit.similarity > tally.max) tally.max = hit.similarity;
      const best = tally.bestPerRow.get(row);
      if (!best || hit.similarity > best.similarity || (hit.similarity === best.similarity && hit.sliceIndex < best.sliceIndex)) {
        tally.bestPerRow.set(row, hit);
      }
    }
  });
  for (const tally of tallies.values()) {
    tally.similarities.sort((a, b) => b - a);
    let sum = 0;
    for (const s of tally.similarities) sum += s;
    tally.sum = sum;
  }

  if (options.top !== undefined) checkPositiveInteger(options.top, 'top');
  // Cut to the top volumes first: localizing every volume that got a single hit is most of the work on
  // a large archive, and only the kept ones are shown.
  const ordered = [...tallies.values()].sort(TALLY_ORDER[method]).slice(0, options.top);
  const results = ordered.map((tally): SearchResult => {
    const pairs: AlignedPair[] = [];
    for (const [row, hit] of tally.bestPerRow) {
      pairs.push({
        querySlice: querySliceIndices[row],
        queryZMm: queryZMm?.[row],
        targetSlice: hit.sliceIndex,
        targetZMm: hit.zMm,
        similarity: hit.similarity,
      });
    }
    pairs.sort((a, b) => a.querySlice - b.querySlice || a.targetSlice - b.targetSlice);
    const matches: SliceMatch[] = pairs.map((p) => ({ querySlice: p.querySlice, targetSlice: p.targetSlice, similarity: p.similarity }));
    const result: SearchResult = { volumeId: tally.volumeId, score: tally[method], rank: 0, matches };
    const region = localizeRegion(pairs, options.localization);
    if (region) result.region = region;
    return result;
  });
  return rankAndCut(results, options.top);
}

const TALLY_ORDER: Record<SliceAggregation, (a: VolumeTally, b: VolumeTally) => number> = {
  count: (a, b) => b.count - a.count || b.sum - a.sum || compareIds(a.volumeId, b.volumeId),
  sum: (a, b) => b.sum - a.sum || b.count - a.count || compareIds(a.volumeId, b.volumeId),
  max: (a, b) => b.max - a.max || b.sum - a.sum || b.count - a.count || compareIds(a.volumeId, b.volumeId),
};
