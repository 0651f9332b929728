import { SearchError, checkPositiveInteger } from './errors.js';
import { compareIds, rankAndCut } from './ranking.js';
import type { SearchResult } from './types.js';

export const DEFAULT_FUSION_TOP = 10;
export const DEFAULT_RRF_K0 = 60;

/**
 * 3D-MIR's ensemble: x1, y1, x2, y2, …, keeping each volume's first appearance, until `top` volumes
 * (default 10) or both lists are used up (the longer list's tail follows when the shorter ends).
 * Interleaving only looks at positions (array order), so its score is 1/rank: higher is better, as for
 * every other method, and no scale of either input leaks into it. A fused result keeps the matches and
 * region of its first appearance, or of the other list's entry when the first has no region.
 */
export function interleave(
  first: readonly SearchResult[],
  second: readonly SearchResult[],
  top: number = DEFAULT_FUSION_TOP,
): SearchResult[] {
  checkPositiveInteger(top, 'top');
  const fused: SearchResult[] = [];
  const seen = new Set<string>();
  const lists = [first, second];
  const longest = Math.max(first.length, second.length);
  for (let position = 0; position < longest && fused.length < top; position++) {
    for (const list of lists) {
      if (position >= list.length || fused.length >= top) continue;
      const item = list[position];
      if (seen.has(item.volumeId)) continue;
      seen.add(item.volumeId);
      fused.push(fusedResult(item.volumeId, 0, lists));
    }
  }
  fused.forEach((r, n) => {
    r.score = 1 / (n + 1);
  });
  return rankAndCut(fused, top);
}

export interface RrfOptions {
  /** The constant in 1/(k0 + rank); default 60 (Cormack et al. 2009). */
  k0?: number;
  /** Default 10. */
  top?: number;
}

/**
 * Reciprocal-rank fusion over any number of lists: score(v) = Σ_lists 1/(k0 + rank_list(v)), with the
 * 1-based position in each list as the rank (a list's later duplicates of a volume are ignored), and
 * volumes absent from a list getting nothing from it. Ties → better best rank in any list → volume id.
 */
export function reciprocalRankFusion(lists: readonly (readonly SearchResult[])[], options: RrfOptions = {}): SearchResult[] {
  const k0 = options.k0 ?? DEFAULT_RRF_K0;
  const top = options.top ?? DEFAULT_FUSION_TOP;
  if (!Number.isFinite(k0) || k0 < 0) throw new SearchError('BAD_OPTION', `RRF k0 must be a non-negative number, got ${k0}`);
  checkPositiveInteger(top, 'top');
  const scores = new Map<string, { score: number; bestRank: number }>();
  for (const list of lists) {
    const seenInList = new Set<string>();
    list.forEach((item, position) => {
      if (seenInList.has(item.volumeId)) return;
      seenInList.add(item.volumeId);
      const rank = position + 1;
      const entry = scores.get(item.volumeId) ?? { score: 0, bestRank: Infinity };
      entry.score += 1 / (k0 + rank);
      entry.bestRank = Math.min(entry.bestRank, rank);
      scores.set(item.volumeId, entry);
    });
  }
  const ordered = [...scores]
    .sort(([idA, a], [idB, b]) => b.score - a.score || a.bestRank - b.bestRank || compareIds(idA, idB))
    .slice(0, top);
  return rankAndCut(
    ordered.map(([volumeId, { score }]) => fusedResult(volumeId, score, lists)),
    top,
  );
}

/** A fresh result for `volumeId`, carrying matches and region from the first list entry that has a region. */
function fusedResult(volumeId: string, score: number, lists: readonly (readonly SearchResult[])[]): SearchResult {
  let source: SearchResult | undefined;
  for (const list of lists) {
    const item = list.find((r) => r.volumeId === volumeId);
    if (!item) continue;
    source ??= item;
    if (item.region) {
      source = item;
      break;
    }
  }
  const result: SearchResult = { volumeId, score, rank: 0, matches: source ? source.matches.slice() : [] };
  if (source?.region) result.region = { ...source.region };
  return result;
}
