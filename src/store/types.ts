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
  modalities?: string[];
  bodyParts?: string[];
  includeVolumeIds?: string[];
  excludeVolumeIds?: string[];
  /** Every listed label must equal the given value. */
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
   * filter leaves too few candidates). */
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
  /** Slice vectors of the given volumes (the re-ranking stage reads 50 candidates at once). */
  getVectors(volumeIds: string[]): Map<string, VolumeVectors>;
  /** For each query row (queries: n × dim), its k nearest slices. */
  searchSlices(queries: Float32Array, options: SliceSearchOptions): Promise<SliceHit[][]>;
  /** Nearest volumes by a pooled vector. */
  searchVolumes(query: Float32Array, pooling: Pooling, k: number, filter?: VolumeFilter): Promise<VolumeHit[]>;
  /** Pooled vector of an indexed volume. */
  pooledVector(volumeId: string, pooling: Pooling): Float32Array | undefined;
  close(): void;
}
