/** What every retrieval method returns (DESIGN.md "Core types"). */

export interface SliceMatch {
  /** Canonical slice index in the query volume. */
  querySlice: number;
  /** Canonical slice index in the retrieved volume. */
  targetSlice: number;
  similarity: number;
}

export interface LocalizedRegion {
  zStartMm: number;
  zEndMm: number;
  /** Inclusive canonical slice range in the retrieved volume. */
  firstSlice: number;
  lastSlice: number;
}

export interface SearchResult {
  volumeId: string;
  score: number;
  /** 1-based. */
  rank: number;
  /** Per query slice, its best match in this volume (late interaction), or the kNN hits that voted. */
  matches: SliceMatch[];
  region?: LocalizedRegion;
}

export type SliceAggregation = 'count' | 'sum' | 'max';
