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

/**
 * An embedded query: one L2-normalized row per query slice, in any order. `sliceIndices` and `zMm` say
 * where each row came from in the query volume; they are what a result's matches and the robust
 * localization refer to. A text query is one row; give it any slice index and leave `zMm` out.
 */
export interface QueryVectors {
  /** rows × dim, row-major, L2-normalized rows. */
  vectors: Float32Array;
  dim: number;
  /** Canonical slice index of each row in the query volume. */
  sliceIndices: ArrayLike<number>;
  /** Patient z (mm) of each row; without it the robust localization can only use the slice order. */
  zMm?: ArrayLike<number>;
  /** The indexed volume the query was cut from, if any; excluded from its own results by default. */
  volumeId?: string;
}

export type VolumeMethod = 'volume-mean' | 'volume-median' | 'volume-max' | 'volume-std';
export type SliceMethod = 'slice-count' | 'slice-sum' | 'slice-max';
/** A method that produces a ranked list by itself (can be the first stage of 'rerank'). */
export type FirstStageMethod = SliceMethod | VolumeMethod;
export type SearchMethod = FirstStageMethod | 'rerank';
export const SEARCH_METHODS: readonly SearchMethod[] = [
  'slice-count',
  'slice-sum',
  'slice-max',
  'volume-mean',
  'volume-median',
  'volume-max',
  'volume-std',
  'rerank',
];

export type FusionMethod = 'interleave' | 'rrf';
