/**
 * The embedded Store: the SQLite catalogue (catalogue.ts, the source of truth) with two vector engines
 * beside it behind one interface (vector-index.ts): a flat exact engine over in-memory blocks on ONNX
 * Runtime (flat-index.ts; also one per pooling, one row per volume) and a usearch HNSW graph file
 * (hnsw-index.ts, calibrated by calibration.ts). This file decides which engine answers, turns filters
 * into selectors, and keeps the engines in step with the catalogue, including other connections' commits.
 */
import { availableParallelism } from 'node:os';
import type { ComputeOptions } from '../compute/index.js';
import { AnnIndex } from './ann.js';
import { calibrate, chooseHeldOut } from './calibration.js';
import { Catalogue, copyRecord, type CatalogueChanges, type Entry } from './catalogue.js';
import { StoreError } from './errors.js';
import { compileFilter, isEmptyFilter } from './filter.js';
import { FlatIndex } from './flat-index.js';
import { GraphIndex, type GraphSource } from './hnsw-index.js';
import { poolAll } from './pooling.js';
import { SCHEMA_VERSION } from './schema.js';
import { DEFAULT_BLOCK_BYTES } from './slice-matrix.js';
import type {
  AddVolumeOptions,
  ApproximateIndexReport,
  ArtifactStore,
  IndexState,
  Pooling,
  SliceHit,
  SliceSearchOptions,
  Store,
  StoreInfo,
  VolumeFilter,
  VolumeHit,
  VolumeRecord,
  VolumeVectors,
} from './types.js';
import { checkEf, checkPooling, checkQueries, checkVolume } from './validate.js';
import { selectorOf, type IndexHit, type KeySelector } from './vector-index.js';

export { indexExists, SQLITE_NAME } from './catalogue.js';

export interface HnswOptions {
  /** M. Default 16. */
  connectivity?: number;
  /** ef_construction. Default 128. */
  expansionAdd?: number;
  /** A fixed ef_search. Default: the calibrated one (see targetRecall), or 256 before the first
   * calibration. How much recall a given ef buys depends on the data and the archive's size (slice-like
   * rows, bench:search: ef 32 gives 0.95 at 100k × 1280 but ef 256 is needed for 0.99 at 1M × 512). */
  expansionSearch?: number;
  /** recall@20 the calibration aims for when it picks ef_search (buildApproximateIndex). Default 0.95. */
  targetRecall?: number;
}

export interface OpenStoreOptions {
  /** The encoder whose vectors the index holds. Needed to create an index; when opening an existing one
   * it must match the pinned id (leave it out, e.g. with readOnly, to inspect any index). */
  encoderId?: string;
  /** Vector dimension; needed to create an index, checked when given for an existing one. */
  dim?: number;
  /** Never changes the index (see Store); safe in any number of threads and processes at once. */
  readOnly?: boolean;
  hnsw?: HnswOptions;
  compute?: ComputeOptions;
  /** Size of one in-memory block of slice vectors. Default 256 MiB. */
  blockBytes?: number;
  /** Threads for HNSW build and search. Default os.availableParallelism(). */
  threads?: number;
  /** Approximate searches of an index with fewer slices than this run exact: it is faster there (10k ×
   * 512: exact 9 ms vs HNSW 98 ms per 100 queries, measured) and has perfect recall; the store builds and
   * calibrates its graph (prepareForSearch) only from this size on. Default 32768; 0 always uses the graph. */
  exactBelowSlices?: number;
}

const DEFAULT_EXACT_BELOW_SLICES = 32768;
/** Below this share of selected slices, post-filtering HNSW results rarely finds k: go exact at once. */
const ANN_MIN_SELECTED_FRACTION = 0.05;
const DEFAULT_TARGET_RECALL = 0.95;
/** Pooled engines hold one row per volume: small blocks, thousands of volumes. */
const POOLED_BLOCK_BYTES = 16 * 1024 * 1024;

export function openEmbeddedStore(dir: string, options: OpenStoreOptions = {}): EmbeddedStore {
  const catalogue = Catalogue.open(dir, options);
  return new EmbeddedStore(catalogue, options);
}

export class EmbeddedStore implements Store {
  readonly dir: string;
  readonly encoderId: string;
  readonly dim: number;
  readonly readOnly: boolean;
  readonly artifacts: ArtifactStore;
  readonly state: IndexState;
  /** Exact engine over all slice vectors; loaded at the first exact search (or calibration). */
  private flat: FlatIndex | undefined;
  private readonly pooled = new Map<Pooling, FlatIndex>();
  private readonly graph: GraphIndex;
  private readonly threads: number;
  private readonly exactBelowSlices: number;

  constructor(
    private readonly catalogue: Catalogue,
    private readonly options: OpenStoreOptions,
  ) {
    this.dir = catalogue.dir;
    this.encoderId = catalogue.encoderId;
    this.dim = catalogue.dim;
    this.readOnly = catalogue.readOnly;
    this.artifacts = catalogue.artifacts;
    this.state = catalogue.state;
    this.threads = Math.max(1, options.threads ?? availableParallelism());
    this.exactBelowSlices = options.exactBelowSlices ?? DEFAULT_EXACT_BELOW_SLICES;
    this.graph = new GraphIndex({
      dir: this.dir,
      encoderId: this.encoderId,
      config: { dim: this.dim, connectivity: options.hnsw?.connectivity ?? 16, expansionAdd: options.hnsw?.expansionAdd ?? 128 },
      threads: this.threads,
      readOnly: this.readOnly,
      ...(options.hnsw?.expansionSearch !== undefined ? { expansionSearch: options.hnsw.expansionSearch } : {}),
    });
    if (!this.readOnly) AnnIndex.removeLeftovers(this.dir);
  }

  // -------------------------------------------------------------------------------------------------
  // Metadata.

  stats(): { volumes: number; slices: number } {
    this.sync();
    return { volumes: this.catalogue.entries.size, slices: this.catalogue.sliceTotal };
  }

  findByContent(contentSha256: string): VolumeRecord | undefined {
    this.sync();
    return this.recordOf(this.catalogue.keyOfContent(contentSha256));
  }

  findBySource(sourcePath: string, seriesKey?: string): VolumeRecord[] {
    this.sync();
    return this.catalogue.keysOfSource(sourcePath, seriesKey).map((key) => this.recordOf(key)!);
  }

  getVolume(volumeId: string): VolumeRecord | undefined {
    this.sync();
    return this.recordOf(this.catalogue.keyOf(volumeId));
  }

  listVolumes(filter?: VolumeFilter): VolumeRecord[] {
    this.sync();
    const allowed = compileFilter(filter);
    const out: VolumeRecord[] = [];
    for (const entry of this.catalogue.entries.values()) if (allowed(entry.record)) out.push(copyRecord(entry.record));
    return out;
  }

  info(): StoreInfo {
    this.sync();
    return {
      dir: this.dir,
      encoderId: this.encoderId,
      dim: this.dim,
      schemaVersion: SCHEMA_VERSION,
      readOnly: this.readOnly,
      volumes: this.catalogue.entries.size,
      slices: this.catalogue.sliceTotal,
      exactBelowSlices: this.exactBelowSlices,
      sqliteBytes: this.catalogue.diskBytes(),
      approximateIndexBytes: AnnIndex.diskBytes(this.dir),
      approximateIndex: this.graph.lastReport,
      computeProvider: this.flat?.provider ?? [...this.pooled.values()].find((p) => p.provider)?.provider,
      memory: {
        exactMatrixLoaded: this.flat !== undefined,
        exactMatrixBytes: this.flat?.bytes ?? 0,
        approximateIndexLoaded: this.graph.loaded,
        approximateIndexMapped: this.graph.mapped,
      },
    };
  }

  // -------------------------------------------------------------------------------------------------
  // Writes.

  addVolume(record: VolumeRecord, vectors: VolumeVectors, encoderId: string, options: AddVolumeOptions = {}): void {
    this.catalogue.checkWritable();
    this.sync();
    if (encoderId !== this.encoderId) {
      throw new StoreError('ENCODER_MISMATCH', this.dir, `vectors of encoder '${encoderId}' cannot go into an index of encoder '${this.encoderId}'`);
    }
    checkVolume(this.dir, this.dim, record, vectors);
    const state = options.state ?? [];
    this.catalogue.state.check(state);
    const pooled = poolAll(vectors.vectors, this.dim);
    const { entry, replaced } = this.catalogue.insertVolume(record, vectors, pooled, state);
    if (replaced) this.forget(replaced);
    this.remember(entry, vectors.vectors, pooled);
  }

  removeVolume(volumeId: string): boolean {
    this.catalogue.checkWritable();
    this.sync();
    const { removed, forgotten } = this.catalogue.deleteVolume(volumeId);
    for (const entry of forgotten) this.forget(entry);
    return removed;
  }

  // -------------------------------------------------------------------------------------------------
  // Vectors.

  getVectors(volumeIds: string[]): Map<string, VolumeVectors> {
    this.sync();
    const out = new Map<string, VolumeVectors>();
    for (const volumeId of volumeIds) {
      const key = this.catalogue.keyOf(volumeId);
      if (key === undefined || out.has(volumeId)) continue;
      const entry = this.catalogue.entries.get(key)!;
      const vectors = this.vectorsOf(key);
      if (!vectors) continue;
      out.set(volumeId, { volumeId, dim: this.dim, sliceIndices: entry.sliceIndices, zMm: entry.zMm, vectors });
    }
    return out;
  }

  pooledVector(volumeId: string, pooling: Pooling): Float32Array | undefined {
    this.sync();
    checkPooling(this.dir, pooling);
    const key = this.catalogue.keyOf(volumeId);
    if (key === undefined) return undefined;
    const cached = this.pooled.get(pooling)?.view(key);
    if (cached) return cached.slice();
    return this.catalogue.readPooled(key, pooling)?.slice();
  }

  // -------------------------------------------------------------------------------------------------
  // Search.

  async searchSlices(queries: Float32Array, options: SliceSearchOptions): Promise<SliceHit[][]> {
    this.sync();
    checkQueries(this.dir, this.dim, queries, options.k);
    const selector = this.selectorFor(options.filter);
    let hits: IndexHit[][];
    if (options.mode === 'approximate') {
      checkEf(this.dir, options.ef);
      hits = await this.approximateSearch(queries, options.k, selector, options.ef);
    } else if (options.mode === 'exact') {
      hits = await this.ensureFlat().search(queries, options.k, selector ? { selector } : {});
    } else {
      throw new StoreError('BAD_QUERY', this.dir, `unknown search mode '${String(options.mode)}'`);
    }
    return hits.map((list) => this.toSliceHits(list));
  }

  async searchVolumes(query: Float32Array, pooling: Pooling, k: number, filter?: VolumeFilter): Promise<VolumeHit[]> {
    this.sync();
    checkPooling(this.dir, pooling);
    if (query.length !== this.dim) throw new StoreError('BAD_QUERY', this.dir, `a volume query is one ${this.dim}-d vector, got ${query.length} floats`);
    checkQueries(this.dir, this.dim, query, k);
    const selector = this.selectorFor(filter);
    const hits = await this.ensurePooled(pooling).search(query, k, selector ? { selector } : {});
    return hits[0].map((h) => ({ volumeId: this.catalogue.entries.get(h.key)!.record.volumeId, similarity: h.similarity }));
  }

  /** Above `exactBelowSlices` approximate searches use the graph: bring it up to date now, not at the first search. */
  async prepareForSearch(options: { onWork?: (what: string) => void } = {}): Promise<ApproximateIndexReport | undefined> {
    this.sync();
    if (!this.graphNeeded()) return undefined;
    options.onWork?.('updating the approximate (HNSW) index');
    return this.buildApproximateIndex();
  }

  /**
   * Brings the HNSW index up to date with the volumes (adds missing ones, removes deleted ones, rebuilds
   * it when unreadable, built for other parameters or full of tombstones), calibrates it when the index is
   * searched through it and its calibration is missing or stale, and saves it when writable.
   */
  async buildApproximateIndex(): Promise<ApproximateIndexReport> {
    this.sync();
    const target = this.options.hnsw?.targetRecall ?? DEFAULT_TARGET_RECALL;
    const needed = this.graphNeeded();
    const sliceCountOf = (key: number): number => this.catalogue.entries.get(key)!.record.sliceCount;
    let heldOut: number[] = [];
    const report = this.graph.sync(this.graphSource(), (missing) => {
      if (!needed) return new Set();
      const slicesAfter = this.graph.rows + missing.reduce((n, key) => n + sliceCountOf(key), 0);
      if (this.graph.calibrationFor(slicesAfter, target)) return new Set();
      heldOut = chooseHeldOut(missing, this.catalogue.entries.size, sliceCountOf);
      return new Set(heldOut);
    });
    if (needed && (heldOut.length > 0 || !this.graph.calibrationFor(this.graph.rows, target))) {
      this.graph.calibration = await calibrate(this.graph, this.ensureFlat(), target, heldOut);
    }
    if (this.graph.calibration) report.calibration = this.graph.calibration;
    report.slices = this.graph.rows;
    this.graph.save();
    this.graph.lastReport = report;
    return report;
  }

  close(): void {
    if (this.catalogue.isClosed) return;
    try {
      // The HNSW file is derived data: failing to save it must not hide the close, the next open repairs it.
      if (this.graph.dirty) this.graph.save();
    } catch {
      // Ignored on purpose, see above.
    } finally {
      this.catalogue.close();
      this.flat = undefined;
      this.graph.release();
      this.pooled.clear();
    }
  }

  // -------------------------------------------------------------------------------------------------
  // Internals: which engine answers.

  private graphNeeded(): boolean {
    return this.catalogue.sliceTotal >= this.exactBelowSlices;
  }

  private async approximateSearch(queries: Float32Array, k: number, selector: KeySelector | undefined, ef: number | undefined): Promise<IndexHit[][]> {
    if (!this.graphNeeded()) return this.ensureFlat().search(queries, k, selector ? { selector } : {});
    this.graph.sync(this.graphSource());
    const queryCount = queries.length / this.dim;
    const total = this.catalogue.sliceTotal;
    if (selector) {
      if (selector.rows === 0) return Array.from({ length: queryCount }, () => []);
      if (selector.rows < ANN_MIN_SELECTED_FRACTION * total) return this.ensureFlat().search(queries, k, { selector });
    }
    const hits = await this.graph.search(queries, k, { ...(selector ? { selector } : {}), ...(ef !== undefined ? { ef } : {}) });
    const want = Math.min(k, selector ? selector.rows : total);
    const short = hits.flatMap((list, q) => (list.length < want ? [q] : []));
    if (short.length > 0) {
      // Too few survived the filter (or the graph returned fewer than k): answer those queries exactly.
      const subset = new Float32Array(short.length * this.dim);
      short.forEach((q, i) => subset.set(queries.subarray(q * this.dim, (q + 1) * this.dim), i * this.dim));
      const exact = await this.ensureFlat().search(subset, k, selector ? { selector } : {});
      short.forEach((q, i) => (hits[q] = exact[i]));
    }
    return hits;
  }

  /** The filter as the engines take it; undefined when it restricts nothing. */
  private selectorFor(filter: VolumeFilter | undefined): KeySelector | undefined {
    if (isEmptyFilter(filter)) return undefined;
    const allowed = compileFilter(filter);
    const keys = new Set<number>();
    let rows = 0;
    for (const entry of this.catalogue.entries.values()) {
      if (!allowed(entry.record)) continue;
      keys.add(entry.key);
      rows += entry.record.sliceCount;
    }
    return selectorOf(keys, rows);
  }

  private toSliceHits(list: IndexHit[]): SliceHit[] {
    const out: SliceHit[] = [];
    for (const h of list) {
      const entry = this.catalogue.entries.get(h.key);
      if (!entry) continue;
      out.push({ volumeId: entry.record.volumeId, sliceIndex: entry.sliceIndices[h.ordinal], zMm: entry.zMm[h.ordinal], similarity: h.similarity });
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------------
  // Internals: engines in step with the catalogue.

  private graphSource(): GraphSource {
    const entries = this.catalogue.entries;
    return { keys: () => entries.keys(), has: (key) => entries.has(key), size: entries.size, vectorsOf: (key) => this.vectorsOf(key) };
  }

  private vectorsOf(key: number): Float32Array | undefined {
    return this.flat?.view(key) ?? this.catalogue.readVectors(key);
  }

  private ensureFlat(): FlatIndex {
    if (this.flat) return this.flat;
    const flat = new FlatIndex(this.dim, this.options.blockBytes ?? DEFAULT_BLOCK_BYTES, this.options.compute);
    for (const volume of this.catalogue.allVectors()) flat.add([volume]);
    this.flat = flat;
    return flat;
  }

  private ensurePooled(pooling: Pooling): FlatIndex {
    let flat = this.pooled.get(pooling);
    if (flat) return flat;
    flat = new FlatIndex(this.dim, POOLED_BLOCK_BYTES, this.options.compute);
    for (const volume of this.catalogue.allPooled(pooling)) flat.add([volume]);
    this.pooled.set(pooling, flat);
    return flat;
  }

  /** Applies other connections' commits to the loaded engines. */
  private sync(): void {
    const changes: CatalogueChanges = this.catalogue.refresh();
    for (const entry of changes.removed) this.forget(entry);
    for (const entry of changes.added) this.remember(entry, undefined, undefined);
  }

  private remember(entry: Entry, vectors: Float32Array | undefined, pooled: Record<Pooling, Float32Array> | undefined): void {
    const key = entry.key;
    if (this.flat) this.flat.add([{ key, vectors: vectors ?? this.catalogue.readVectors(key)! }]);
    for (const [pooling, flat] of this.pooled) {
      const vector = pooled?.[pooling] ?? this.catalogue.readPooled(key, pooling);
      if (vector) flat.add([{ key, vectors: vector }]);
    }
    if (this.graph.loaded) this.graph.add([{ key, vectors: vectors ?? this.catalogue.readVectors(key)! }]);
  }

  private forget(entry: Entry): void {
    this.flat?.remove(entry.key);
    for (const flat of this.pooled.values()) flat.remove(entry.key);
    this.graph.remove(entry.key);
  }

  private recordOf(key: number | undefined): VolumeRecord | undefined {
    return key === undefined ? undefined : copyRecord(this.catalogue.entries.get(key)!.record);
  }
}
