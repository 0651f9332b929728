import type { SliceMatch } from './api.js';

/**
 * The found alignment of a query onto a result, as the viewer scrolls along it: slice q of the query
 * shows the slice it matched. The matches are each query slice's most similar slice (the argmax of the
 * late interaction); kept are those that form one monotone alignment (the longest non-decreasing run
 * of target slices in query order, as the server's "consistent" localization keeps), so one stray match
 * cannot throw the other pane to the far end of the scan. Between kept matches the mapping is linear;
 * beyond them it continues at the ratio of the two slice spacings (same anatomy, same millimetres).
 */

export interface Alignment {
  /** Kept (query slice, target slice) pairs, ascending in both. */
  readonly pairs: ReadonlyArray<readonly [number, number]>;
  toTarget(querySlice: number): number;
  toQuery(targetSlice: number): number;
}

/** Indices of a longest non-decreasing subsequence of `values` (patience sorting, O(n log n)). */
export function longestNonDecreasing(values: readonly number[]): number[] {
  const tailValue: number[] = [];
  const tailIndex: number[] = [];
  const previous = new Array<number>(values.length).fill(-1);
  values.forEach((value, i) => {
    // First tail strictly greater than value: replacing it keeps runs non-decreasing.
    let low = 0;
    let high = tailValue.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (tailValue[mid] <= value) low = mid + 1;
      else high = mid;
    }
    if (low > 0) previous[i] = tailIndex[low - 1];
    tailValue[low] = value;
    tailIndex[low] = i;
  });
  const out: number[] = [];
  for (let i = tailIndex[tailIndex.length - 1] ?? -1; i >= 0; i = previous[i]) out.push(i);
  return out.reverse();
}

function interpolate(pairs: ReadonlyArray<readonly [number, number]>, x: number, slope: number): number {
  const first = pairs[0];
  const last = pairs[pairs.length - 1];
  if (x <= first[0]) return first[1] + (x - first[0]) * slope;
  if (x >= last[0]) return last[1] + (x - last[0]) * slope;
  let low = 0;
  let high = pairs.length - 1;
  while (high - low > 1) {
    const mid = (low + high) >> 1;
    if (pairs[mid][0] <= x) low = mid;
    else high = mid;
  }
  const [x0, y0] = pairs[low];
  const [x1, y1] = pairs[high];
  return x1 === x0 ? (y0 + y1) / 2 : y0 + ((x - x0) * (y1 - y0)) / (x1 - x0);
}

export function alignmentOf(
  matches: readonly SliceMatch[],
  geometry: { querySpacingMm: number; targetSpacingMm: number; querySlices: number; targetSlices: number },
): Alignment {
  const clamp = (k: number, n: number): number => Math.min(n - 1, Math.max(0, Math.round(k)));
  const sorted = [...matches].sort((a, b) => a.querySlice - b.querySlice || b.similarity - a.similarity);
  // One match per query slice (the most similar), then the monotone part.
  const single = sorted.filter((m, i) => i === 0 || m.querySlice !== sorted[i - 1].querySlice);
  const kept = longestNonDecreasing(single.map((m) => m.targetSlice)).map((i) => [single[i].querySlice, single[i].targetSlice] as const);
  const slope = geometry.querySpacingMm / Math.max(1e-6, geometry.targetSpacingMm);
  const pairs = kept.length ? kept : ([[0, 0]] as const);
  const inverse = pairs.map(([q, t]) => [t, q] as const);
  return {
    pairs: kept,
    toTarget: (q) => clamp(interpolate(pairs, q, slope), geometry.targetSlices),
    toQuery: (t) => clamp(interpolate(inverse, t, 1 / slope), geometry.querySlices),
  };
}
