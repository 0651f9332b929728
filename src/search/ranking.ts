import { SearchError, checkPositiveInteger } from './errors.js';
import type { SearchResult } from './types.js';

/** Volume ids compare by UTF-16 code units, not locale, so the order is the same on every machine. */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Assigns 1-based ranks in place, after cutting to `top` (all when undefined). */
export function rankAndCut(results: SearchResult[], top: number | undefined): SearchResult[] {
  if (top !== undefined) checkPositiveInteger(top, 'top');
  const kept = top === undefined ? results : results.slice(0, top);
  kept.forEach((r, n) => {
    r.rank = n + 1;
  });
  return kept;
}

export function toIdSet(ids: Iterable<string> | undefined): Set<string> {
  return new Set(ids ?? []);
}

/** Checks that per-row query positions have one entry per query row. */
export function checkQueryPositions(
  rows: number,
  sliceIndices: ArrayLike<number>,
  zMm: ArrayLike<number> | undefined,
): void {
  if (sliceIndices.length !== rows) {
    throw new SearchError('BAD_QUERY', `${rows} query rows but ${sliceIndices.length} query slice indices`);
  }
  if (zMm !== undefined && zMm.length !== rows) {
    throw new SearchError('BAD_QUERY', `${rows} query rows but ${zMm.length} query z positions`);
  }
}
