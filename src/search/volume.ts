import type { VolumeHit } from '../store/types.js';
import { compareIds, rankAndCut, toIdSet } from './ranking.js';
import type { SearchResult } from './types.js';

export interface VolumeRankingOptions {
  excludeVolumeIds?: Iterable<string>;
  /** Keep the best `top`; all by default. */
  top?: number;
}

/**
 * Volume-based retrieval (3D-MIR method 2) after the store's pooled-vector search: ranks by cosine,
 * ties by volume id, keeps a volume's best hit if it appears twice. The ranking does not trust the
 * store's order, so an approximate index that returns near-ties out of order still gives one
 * deterministic list. No matches or region: pooling discards where along z the similarity came from
 * (the orchestrator can localize the final list by alignment).
 */
export function volumeHitsToResults(hits: readonly VolumeHit[], options: VolumeRankingOptions = {}): SearchResult[] {
  const excluded = toIdSet(options.excludeVolumeIds);
  const best = new Map<string, number>();
  for (const hit of hits) {
    if (excluded.has(hit.volumeId)) continue;
    const seen = best.get(hit.volumeId);
    if (seen === undefined || hit.similarity > seen) best.set(hit.volumeId, hit.similarity);
  }
  const results = [...best]
    .sort(([idA, a], [idB, b]) => b - a || compareIds(idA, idB))
    .map(([volumeId, similarity]): SearchResult => ({ volumeId, score: similarity, rank: 0, matches: [] }));
  return rankAndCut(results, options.top);
}
