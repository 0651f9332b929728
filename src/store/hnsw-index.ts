/**
 * The HNSW engine: a usearch graph (see usearch.ts) kept beside the catalogue as derived data (see ann.ts
 * for its files and keys), loaded lazily, repaired against the catalogue's volumes when stale, rebuilt when
 * unreadable, built for other parameters or full of tombstones. Its calibration (how wide a search must be,
 * calibration.ts) is a property of the graph and is saved with it.
 *
 * A read-only store memory-maps a graph that holds exactly its volumes: every reader of the file (a pool of
 * search workers) then shares one copy of its pages. A mapped graph cannot change, so anything to repair
 * first replaces it by a private copy.
 */
import { AnnIndex } from './ann.js';
import type { ApproximateIndexCalibration, ApproximateIndexReport } from './types.js';
import { HnswIndex, type HnswConfig, type HnswResult } from './usearch.js';
import type { IndexHit, SearchParameters, VectorIndex } from './vector-index.js';

/** Rebuild the HNSW graph once this share of its nodes are deletion tombstones. */
const REBUILD_REMOVED_FRACTION = 0.3;
/** Rows per usearch add call when (re)building: large enough for its threads, small enough for memory. */
const ADD_BATCH_ROWS = 65536;
/** A selector's search over-fetches this many times k, then post-filters. */
const SELECTOR_OVERFETCH = 4;
/** ef_search of a graph that has not been calibrated yet: wide enough for recall ≥ 0.99 on every
 * slice-like case of bench:search. */
export const UNCALIBRATED_EF = 256;

export interface GraphOptions {
  dir: string;
  encoderId: string;
  config: HnswConfig;
  threads: number;
  readOnly: boolean;
  /** A fixed ef_search for every search that names none (else the calibrated one). */
  expansionSearch?: number;
}

/** What `sync` needs to know about the catalogue. */
export interface GraphSource {
  /** Live volume keys. */
  keys(): Iterable<number>;
  has(key: number): boolean;
  readonly size: number;
  vectorsOf(key: number): Float32Array | undefined;
}

export class GraphIndex implements VectorIndex {
  private ann: AnnIndex | undefined;
  /** The last sync that changed something, or the first one (for `info`). */
  lastReport: ApproximateIndexReport | undefined;

  constructor(private readonly options: GraphOptions) {}

  get dim(): number {
    return this.options.config.dim;
  }

  get rows(): number {
    return this.ann?.liveSlices ?? 0;
  }

  get loaded(): boolean {
    return this.ann !== undefined;
  }

  get mapped(): boolean {
    return this.ann?.viewed ?? false;
  }

  /** Volume keys in the graph (empty until loaded). */
  contents(): ReadonlyMap<number, { rows: number; base: number }> {
    return this.ann?.contents ?? new Map();
  }

  has(key: number): boolean {
    return this.ann?.contents.has(key) ?? false;
  }

  /** Keeps a loaded graph in step with the catalogue; an unloaded one is repaired at its next sync. */
  add(volumes: ReadonlyArray<{ key: number; vectors: Float32Array }>): void {
    if (this.ann?.viewed) this.ann = undefined;
    this.ann?.addVolumes(volumes, this.options.threads);
  }

  remove(key: number): boolean {
    if (this.ann?.viewed) this.ann = undefined;
    return this.ann?.removeVolume(key) ?? false;
  }

  /**
   * Loads the graph if needed and syncs it with the catalogue's volumes; builds it when it cannot be used.
   * `holdOut` may keep some of the volumes about to be added out of the graph (the caller adds them).
   */
  sync(source: GraphSource, holdOut?: (missing: number[]) => Set<number>): ApproximateIndexReport {
    const { dir, encoderId, config, threads, readOnly } = this.options;
    let rebuilt = false;
    let reason: string | undefined;
    if (this.ann?.viewed && !holdsExactly(this.ann, source)) this.ann = undefined;
    if (!this.ann) {
      let loaded = AnnIndex.load(dir, encoderId, config, { view: readOnly });
      if ('index' in loaded && loaded.index.viewed && !holdsExactly(loaded.index, source)) loaded = AnnIndex.load(dir, encoderId, config);
      if ('index' in loaded) {
        this.ann = loaded.index;
      } else {
        this.ann = new AnnIndex(new HnswIndex(config), encoderId);
        rebuilt = true;
        reason = loaded.problem;
      }
    }
    let ann = this.ann;
    let removed = 0;
    for (const key of [...ann.contents.keys()]) {
      if (!source.has(key) && ann.removeVolume(key)) removed++;
    }
    // Deleted nodes stay in the graph as tombstones that searches still walk: past a share, start afresh.
    const total = ann.liveSlices + ann.removedSlices;
    if (!rebuilt && total > 0 && ann.removedSlices > REBUILD_REMOVED_FRACTION * total) {
      reason = `${ann.removedSlices} of its ${total} slices were deleted ones`;
      ann = this.ann = new AnnIndex(new HnswIndex(config), encoderId);
      rebuilt = true;
    }
    const allMissing = [...source.keys()].filter((key) => !ann.contents.has(key));
    const held = holdOut?.(allMissing) ?? new Set<number>();
    let batch: Array<{ key: number; vectors: Float32Array }> = [];
    let batchRows = 0;
    const flush = (): void => {
      ann.addVolumes(batch, threads);
      batch = [];
      batchRows = 0;
    };
    for (const key of allMissing) {
      if (held.has(key)) continue;
      const vectors = source.vectorsOf(key);
      if (!vectors) continue;
      batch.push({ key, vectors });
      batchRows += vectors.length / config.dim;
      if (batchRows >= ADD_BATCH_ROWS) flush();
    }
    if (batch.length > 0) flush();
    const report: ApproximateIndexReport = {
      added: allMissing.length,
      removed,
      rebuilt,
      ...(reason !== undefined ? { reason } : {}),
      slices: ann.liveSlices,
      ...(ann.calibration ? { calibration: ann.calibration } : {}),
    };
    if (report.added > 0 || report.removed > 0 || rebuilt || !this.lastReport) this.lastReport = report;
    return report;
  }

  /** The ef a search uses when it names none: the fixed one, else the calibrated one, else a wide default. */
  get defaultEf(): number {
    return this.options.expansionSearch ?? this.ann?.calibration?.ef ?? UNCALIBRATED_EF;
  }

  /** Searches the synced graph. With a selector it over-fetches and post-filters, so lists may come back
   * shorter than k (the store answers those exactly). */
  async search(queries: Float32Array, k: number, parameters: SearchParameters = {}): Promise<IndexHit[][]> {
    const ann = this.ann;
    const queryCount = queries.length / this.dim;
    if (!ann) return Array.from({ length: queryCount }, () => []);
    const selector = parameters.selector;
    const fetch = Math.min(Math.max(1, ann.liveSlices), selector ? SELECTOR_OVERFETCH * k : k);
    const found = ann.search(queries, fetch, this.options.threads, parameters.ef ?? this.defaultEf);
    const { volumeKeys, ordinals } = ann.resolve(found.keys);
    const hits: IndexHit[][] = [];
    for (let q = 0; q < queryCount; q++) {
      const list: IndexHit[] = [];
      for (let i = 0; i < found.counts[q] && list.length < k; i++) {
        const slot = q * found.k + i;
        const key = volumeKeys[slot];
        if (key < 0 || (selector && !selector.has(key))) continue;
        list.push({ key, ordinal: ordinals[slot], similarity: 1 - found.distances[slot] });
      }
      hits.push(list);
    }
    return hits;
  }

  /** Raw graph search with its (volume key, ordinal) resolution, for calibration. */
  searchRaw(queries: Float32Array, k: number, ef: number): { found: HnswResult; volumeKeys: Float64Array; ordinals: Int32Array } {
    const ann = this.loadedAnn();
    const found = ann.search(queries, k, this.options.threads, ef);
    return { found, ...ann.resolve(found.keys) };
  }

  get calibration(): ApproximateIndexCalibration | undefined {
    return this.ann?.calibration;
  }

  set calibration(value: ApproximateIndexCalibration | undefined) {
    this.loadedAnn().calibration = value;
  }

  calibrationFor(slices: number, targetRecall?: number): ApproximateIndexCalibration | undefined {
    return this.ann?.calibrationFor(slices, targetRecall);
  }

  /** Persists the graph and its sidecar when they changed (never for a read-only store). */
  save(): void {
    if (!this.options.readOnly) this.ann?.save(this.options.dir);
  }

  get dirty(): boolean {
    return this.ann?.dirty ?? false;
  }

  release(): void {
    this.ann = undefined;
  }

  private loadedAnn(): AnnIndex {
    if (!this.ann) throw new Error('the HNSW graph is not loaded (sync first)');
    return this.ann;
  }
}

/** Whether the graph holds exactly the live volumes (nothing to add, nothing to remove). */
function holdsExactly(ann: AnnIndex, source: GraphSource): boolean {
  if (ann.contents.size !== source.size) return false;
  for (const key of ann.contents.keys()) if (!source.has(key)) return false;
  return true;
}
