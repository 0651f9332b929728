/**
 * The store's internal vector-engine interface, after Faiss's `Index`: vectors are added and removed per
 * volume (under the catalogue's volume key, one row per slice), and a search takes per-search parameters
 * (the width of a graph search, a selector of the volumes it may return) instead of engine-specific entry
 * points. The flat (exact) and HNSW engines are siblings behind it; another engine (compressed, remote)
 * would be a third.
 */

/** Which volumes a search may return, like Faiss's IDSelector: built once per search by the store. */
export interface KeySelector {
  has(key: number): boolean;
  /** The selected keys (engines that mask by placement walk them). */
  keys(): Iterable<number>;
  /** Rows (slices) the selected volumes hold. */
  readonly rows: number;
}

export function selectorOf(keys: ReadonlySet<number>, rows: number): KeySelector {
  return { has: (key) => keys.has(key), keys: () => keys, rows };
}

export interface SearchParameters {
  /** Only these volumes (absent: all). */
  selector?: KeySelector;
  /** Graph engines: the search width (ef). Exact engines ignore it. */
  ef?: number;
}

export interface IndexHit {
  /** Volume key. */
  key: number;
  /** Row within the volume (0-based, in the order its vectors were added). */
  ordinal: number;
  /** Inner product. */
  similarity: number;
}

export interface VectorIndex {
  readonly dim: number;
  /** Live rows. */
  readonly rows: number;
  has(key: number): boolean;
  /** Adds volumes (rows × dim each); keys already present are left as they are. */
  add(volumes: ReadonlyArray<{ key: number; vectors: Float32Array }>): void;
  /** False when the key was not there. */
  remove(key: number): boolean;
  /** Per query row, up to k hits, best first. An exact engine returns min(k, selected rows); a graph
   * engine may return fewer (the caller decides what to do about short lists). */
  search(queries: Float32Array, k: number, parameters?: SearchParameters): Promise<IndexHit[][]>;
}
