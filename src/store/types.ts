import type { Mat4, Vec3 } from '../io/volume.js';

/**
 * The archive index as every other stage sees it. The embedded implementation (a SQLite catalogue, a flat
 * exact engine over in-memory matrices, an HNSW graph file) sits behind this interface so that an archive
 * that outgrows one machine can swap in a distributed vector engine without touching search, cli or
 * server. `test/helpers/store-contract.ts` is the behaviour any implementation must show.
 */

/** Volume-level pooling of slice embeddings (3D-MIR method 2); each result is L2-normalized. */
export type Pooling = 'mean' | 'median' | 'max' | 'std';
export const POOLINGS: readonly Pooling[] = ['mean', 'median', 'max', 'std'];

/** Everything the index keeps about a volume besides its vectors. No patient name, ID or birth date. */
export interface VolumeRecord {
  /** Pseudonymous, stable id: derived from the content hash, never from DICOM identifiers. */
  volumeId: string;
  /** Where it was read from (file or DICOM directory), as given to the indexer. */
  sourcePath: string;
  /** SHA-256 of the canonical int16 voxels: re-indexing an unchanged scan is a no-op. */
  contentSha256: string;
  dims: Vec3;
  spacingMm: Vec3;
  affineRas: Mat4;
  modality: string;
  bodyPart?: string;
  /** DICOM StudyDate (YYYYMMDD) when known; a study attribute, not a birth date. */
  studyDate?: string;
  /** Pseudonymous DICOM series key, when read from DICOM. */
  seriesKey?: string;
  /** User labels (organ, cancer_flag, lesion_group, split …). */
  labels: Record<string, string | number>;
  /** Number of embedded slices. */
  sliceCount: number;
  /** ISO time the volume entered the index. */
  addedAt: string;
}

/** The slice embeddings of one volume, rows in ascending slice order. */
export interface VolumeVectors {
  volumeId: string;
  dim: number;
  /** Canonical slice index k of each row. */
  sliceIndices: Int32Array;
  /** Patient z (mm) of each row. */
  zMm: Float64Array;
  /** rows × dim, row-major, L2-normalized rows. */
  vectors: Float32Array;
}

/** Restricts a search to part of the archive. All given conditions must hold. */
export interface VolumeFilter {
  /** Case-insensitive ('ct' matches 'CT'). */
  modalities?: string[];
  /** Case-insensitive; a volume without a body part never matches. */
  bodyParts?: string[];
  includeVolumeIds?: string[];
  excludeVolumeIds?: string[];
  /** Every listed label must equal the given value, compared as text ('1' matches 1). */
  labels?: Record<string, string | number>;
}

export interface SliceHit {
  volumeId: string;
  sliceIndex: number;
  zMm: number;
  /** Inner product = cosine similarity (unit vectors). */
  similarity: number;
}

export interface SliceSearchOptions {
  k: number;
  /** 'exact' scans every vector; 'approximate' uses the HNSW index (falls back to exact when the
   * filter leaves too few candidates, and the embedded store answers exactly below 32768 slices, where
   * exact is faster). */
  mode: 'exact' | 'approximate';
  filter?: VolumeFilter;
  /** Approximate only: the width of this search (HNSW ef_search) instead of the index's calibrated one;
   * wider finds more of the true neighbours and costs time. Ignored by exact search. */
  ef?: number;
}

export interface VolumeHit {
  volumeId: string;
  similarity: number;
}

/** A value kept as JSON (artifact metadata, index state). */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** What the index knows about a named artifact, without its bytes. */
export interface ArtifactInfo {
  /** What it is, e.g. 'space', 'projection-head', 'text-tower', 'tokenizer': lower-case letters, digits,
   * '.', '_', '-' (at most 64). */
  kind: string;
  /** Its name within the kind (1–200 printable characters). */
  name: string;
  metadata: JsonObject;
  byteLength: number;
  /** SHA-256 (hex) of the bytes, so a caller can pin exactly which artifact it used. */
  sha256: string;
  /** ISO time of the last put. */
  updatedAt: string;
}

export interface Artifact extends ArtifactInfo {
  bytes: Uint8Array;
}

/**
 * Named blobs kept inside the index with JSON metadata: learned spaces (normalizations, ONNX projection
 * heads), text towers, tokenizers … Each put or delete is one transaction: a reader sees the old artifact
 * or the new one, never a mix of one's bytes and the other's metadata, and a crash leaves one of the two.
 * They live and die with the index (copying the index directory copies them). Large artifacts are fine
 * (kept in chunks; a get reads the whole artifact into memory).
 */
export interface ArtifactStore {
  /** Adds or replaces the artifact (kind, name). */
  put(kind: string, name: string, bytes: Uint8Array, metadata?: JsonObject): ArtifactInfo;
  get(kind: string, name: string): Artifact | undefined;
  /** Metadata only (no bytes read). */
  info(kind: string, name: string): ArtifactInfo | undefined;
  /** Every artifact (of one kind), ordered by kind then name. */
  list(kind?: string): ArtifactInfo[];
  /** False when it was not there. */
  delete(kind: string, name: string): boolean;
}

/**
 * Small key/value state kept with the index, grouped in namespaces (e.g. a DICOMweb source's sync state:
 * series UID hash → when it was last seen). Values are JSON. Each call is one transaction; `setMany`
 * writes all its entries in one, and `Store.addVolume` can write entries in the volume's own transaction
 * (so "this series is indexed" is recorded exactly when its volume is). Namespaces and keys: 1–200
 * printable characters. Not for patient identifiers: hash or pseudonymize keys first.
 */
export interface IndexState {
  get(namespace: string, key: string): JsonValue | undefined;
  set(namespace: string, key: string, value: JsonValue): void;
  setMany(namespace: string, entries: Iterable<readonly [string, JsonValue]>): void;
  /** False when it was not there. */
  delete(namespace: string, key: string): boolean;
  /** Entries of a namespace ordered by key (only keys starting with `prefix` when given). */
  list(namespace: string, prefix?: string): Array<{ key: string; value: JsonValue }>;
  /** Deletes a whole namespace; returns how many entries it held. */
  clear(namespace: string): number;
}

/** An index state entry written together with a volume (see `AddVolumeOptions`). */
export interface StateEntry {
  namespace: string;
  key: string;
  value: JsonValue;
}

export interface AddVolumeOptions {
  /** State entries committed in the volume's own transaction: both are there after a crash, or neither. */
  state?: readonly StateEntry[];
}

/**
 * Every stage reaches the index through this interface.
 *
 * Concurrency: one process (or thread) writes at a time; any number read. A read-only store (embedded:
 * `openStore(dir, { readOnly: true })`) never changes the index: it creates no tables, saves no graph and
 * deletes nothing, and sees other connections' commits at its next call. Several worker threads may each
 * open the same index read-only at once (a search worker pool); each then holds its own slice matrix,
 * loaded at its first exact search (ONNX Runtime's Node binding refuses SharedArrayBuffer-backed tensors,
 * so a shared matrix would cost a copy per search), while an up-to-date HNSW graph is memory-mapped, so
 * its pages are shared by every reader of the file.
 */
export interface Store {
  /** The encoder whose vectors this index holds; other encoders' vectors are refused. */
  readonly encoderId: string;
  readonly dim: number;
  /** Named artifacts kept in the index (learned spaces, heads, text towers …). */
  readonly artifacts: ArtifactStore;
  /** Small per-index key/value state (e.g. a PACS source's sync state). */
  readonly state: IndexState;
  /** Number of volumes and slices currently in the index. */
  stats(): { volumes: number; slices: number };
  findByContent(contentSha256: string): VolumeRecord | undefined;
  /** Volumes read from this source: the same `sourcePath` and the same `seriesKey` (absent matches
   * absent). Usually one; more while a changed file's old entry awaits removal. Constant time. */
  findBySource(sourcePath: string, seriesKey?: string): VolumeRecord[];
  getVolume(volumeId: string): VolumeRecord | undefined;
  listVolumes(filter?: VolumeFilter): VolumeRecord[];
  /** Adds (or replaces, same volumeId) a volume and its vectors atomically: after a crash the volume is
   * either wholly present or absent. `encoderId` must equal the index's. */
  addVolume(record: VolumeRecord, vectors: VolumeVectors, encoderId: string, options?: AddVolumeOptions): void;
  /** Removes a volume atomically; false when it was not there. */
  removeVolume(volumeId: string): boolean;
  /** Slice vectors of the given volumes (the re-ranking stage reads 50 candidates at once). Unknown ids
   * are left out. The arrays may be views of the index's own memory (no copy): never write to them. */
  getVectors(volumeIds: string[]): Map<string, VolumeVectors>;
  /** For each query row (queries: n × dim), its k nearest slices. */
  searchSlices(queries: Float32Array, options: SliceSearchOptions): Promise<SliceHit[][]>;
  /** Nearest volumes by a pooled vector. */
  searchVolumes(query: Float32Array, pooling: Pooling, k: number, filter?: VolumeFilter): Promise<VolumeHit[]>;
  /** Pooled vector of an indexed volume. */
  pooledVector(volumeId: string, pooling: Pooling): Float32Array | undefined;
  /** Call after a batch of writes (the end of an indexing run): the store brings whatever derived search
   * structures its size calls for up to date, so that no search pays for them. The embedded store updates
   * (and calibrates) its HNSW graph once the index reaches the size where approximate search uses it;
   * below that it does nothing and returns undefined. `onWork` is told before any long work starts. */
  prepareForSearch(options?: { onWork?: (what: string) => void }): Promise<ApproximateIndexReport | undefined>;
  /** Brings the approximate index up to date with the volumes and persists it, whatever the index's size.
   * Approximate searches do this lazily; `prepareForSearch` calls it when it is needed. Optional (as is
   * `info`) so that an engine without a graph need not implement it. */
  buildApproximateIndex?(): Promise<ApproximateIndexReport>;
  /** Sizes, settings and which engine pieces are loaded (for `mir3d info`, logs and benchmarks). */
  info?(): StoreInfo;
  close(): void;
}

export interface ApproximateIndexReport {
  /** Volumes added to the approximate index by this call (all of them after a rebuild). */
  added: number;
  /** Volumes removed from it (deleted from the index since it was last saved). */
  removed: number;
  /** Built from scratch: there was none, it was unreadable, built with other parameters, or too many of
   * its nodes were deleted ones. */
  rebuilt: boolean;
  /** Why it was rebuilt. */
  reason?: string;
  /** Slices it holds now. */
  slices: number;
  /** How wide its searches are, and the recall that buys (absent while the index is searched exactly). */
  calibration?: ApproximateIndexCalibration;
}

/**
 * How wide an HNSW search this index needs: the smallest ef of a ladder whose recall@k against exact search,
 * measured on slices sampled from the index itself, reached the target. Each sampled query excludes its own
 * volume, whose near-duplicate slices would otherwise make the task easy.
 */
export interface ApproximateIndexCalibration {
  ef: number;
  /** recall@k at that ef on the sample. */
  recall: number;
  targetRecall: number;
  /** Whether some ef of the ladder reached the target (if not, ef is the widest tried). */
  reached: boolean;
  k: number;
  queries: number;
  /** Where the queries came from: volumes kept out of the graph until measured (like new patients), or,
   * when nothing new was added, indexed slices with their own volume excluded (a stricter test). */
  sample: 'held-out volumes' | 'indexed slices, own volume excluded' | 'indexed slices';
  /** Slices in the graph after the measurement. */
  slices: number;
  /** Per query on the sample: the speed-up people ask about. */
  exactMsPerQuery: number;
  approximateMsPerQuery: number;
  /** Every ef tried, narrowest first. */
  ladder: Array<{ ef: number; recall: number; msPerQuery: number }>;
}

export interface StoreInfo {
  dir: string;
  encoderId: string;
  dim: number;
  schemaVersion: number;
  readOnly: boolean;
  volumes: number;
  slices: number;
  /** Below this many slices an approximate search is answered exactly (faster there); absent: never. */
  exactBelowSlices?: number;
  /** index.sqlite plus its write-ahead log. */
  sqliteBytes: number;
  /** The current HNSW file (0 when there is none yet). */
  approximateIndexBytes: number;
  /** The last sync of the approximate index in this process, if any. */
  approximateIndex?: ApproximateIndexReport;
  /** Execution provider of the exact-search kernel; undefined until the first exact search. */
  computeProvider?: 'cpu' | 'cuda';
  memory: {
    exactMatrixLoaded: boolean;
    /** Bytes allocated for in-memory slice vectors (block capacity, not only live rows). */
    exactMatrixBytes: number;
    approximateIndexLoaded: boolean;
    /** The graph is memory-mapped from its file (read-only stores whose graph is up to date), so every
     * reader of that file shares its pages. */
    approximateIndexMapped: boolean;
  };
}
