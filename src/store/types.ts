import type { Mat4, Vec3 } from '../io/volume.js';

/**
 * The archive index as the search stage sees it. The embedded implementation (SQLite + in-memory
 * matrices + an HNSW file) sits behind this interface so that an archive that outgrows one machine can
 * swap in a distributed vector engine without touching search, cli or server.
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
}

export interface VolumeHit {
  volumeId: string;
  similarity: number;
}

export interface Store {
  /** The encoder whose vectors this index holds; other encoders' vectors are refused. */
  readonly encoderId: string;
  readonly dim: number;
  /** Number of volumes and slices currently in the index. */
  stats(): { volumes: number; slices: number };
  findByContent(contentSha256: string): VolumeRecord | undefined;
  getVolume(volumeId: string): VolumeRecord | undefined;
  listVolumes(filter?: VolumeFilter): VolumeRecord[];
  /** Adds (or replaces, same volumeId) a volume and its vectors atomically: after a crash the volume is
   * either wholly present or absent. `encoderId` must equal the index's. */
  addVolume(record: VolumeRecord, vectors: VolumeVectors, encoderId: string): void;
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
  /** Brings the approximate index up to date with the volumes and persists it. Approximate searches do
   * this lazily; an indexer calls it once at the end so that the first search does not pay for it.
   * Optional (as is `info`) so that test doubles of the Store need not implement it. */
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
  };
}
