/**
 * An in-memory Store for testing the search orchestrator: brute-force exact kNN over every slice, pooled
 * vectors computed on the fly, and a log of the calls so tests can check what the orchestrator asked
 * for. A test double only; the real store has its own tests.
 */
import { compileFilter } from '../../src/store/filter.js';
import { poolVectors } from '../../src/store/pooling.js';
import type {
  ApproximateIndexReport,
  Pooling,
  SliceHit,
  SliceSearchOptions,
  Store,
  StoreInfo,
  VolumeFilter,
  VolumeHit,
  VolumeRecord,
  VolumeVectors,
} from '../../src/store/types.js';

export interface FakeStoreCalls {
  searchSlices: { rows: number; options: SliceSearchOptions }[];
  searchVolumes: { pooling: Pooling; k: number; filter?: VolumeFilter; query: Float32Array }[];
  getVectors: string[][];
}

export class FakeStore implements Store {
  readonly calls: FakeStoreCalls = { searchSlices: [], searchVolumes: [], getVectors: [] };
  private readonly volumes = new Map<string, { record: VolumeRecord; vectors: VolumeVectors }>();

  constructor(
    readonly dim: number,
    readonly encoderId = 'fake-encoder',
  ) {}

  stats(): { volumes: number; slices: number } {
    let slices = 0;
    for (const v of this.volumes.values()) slices += v.vectors.sliceIndices.length;
    return { volumes: this.volumes.size, slices };
  }

  findByContent(contentSha256: string): VolumeRecord | undefined {
    for (const v of this.volumes.values()) if (v.record.contentSha256 === contentSha256) return v.record;
    return undefined;
  }

  getVolume(volumeId: string): VolumeRecord | undefined {
    return this.volumes.get(volumeId)?.record;
  }

  listVolumes(filter?: VolumeFilter): VolumeRecord[] {
    const keep = compileFilter(filter);
    return [...this.volumes.values()].map((v) => v.record).filter(keep);
  }

  addVolume(record: VolumeRecord, vectors: VolumeVectors, encoderId: string): void {
    if (encoderId !== this.encoderId) throw new Error(`encoder ${encoderId} is not the index's ${this.encoderId}`);
    if (vectors.dim !== this.dim) throw new Error(`vectors are ${vectors.dim}-d, index ${this.dim}-d`);
    this.volumes.set(record.volumeId, { record, vectors });
  }

  removeVolume(volumeId: string): boolean {
    return this.volumes.delete(volumeId);
  }

  getVectors(volumeIds: string[]): Map<string, VolumeVectors> {
    this.calls.getVectors.push(volumeIds.slice());
    const out = new Map<string, VolumeVectors>();
    for (const id of volumeIds) {
      const v = this.volumes.get(id);
      if (v) out.set(id, v.vectors);
    }
    return out;
  }

  async searchSlices(queries: Float32Array, options: SliceSearchOptions): Promise<SliceHit[][]> {
    const rows = queries.length / this.dim;
    this.calls.searchSlices.push({ rows, options });
    const keep = compileFilter(options.filter);
    const candidates = [...this.volumes.values()].filter((v) => keep(v.record));
    const result: SliceHit[][] = [];
    for (let r = 0; r < rows; r++) {
      const q = queries.subarray(r * this.dim, (r + 1) * this.dim);
      const hits: SliceHit[] = [];
      for (const { vectors } of candidates) {
        vectors.sliceIndices.forEach((sliceIndex, row) => {
          hits.push({ volumeId: vectors.volumeId, sliceIndex, zMm: vectors.zMm[row], similarity: dot(q, vectors.vectors, row, this.dim) });
        });
      }
      hits.sort((a, b) => b.similarity - a.similarity || compare(a.volumeId, b.volumeId) || a.sliceIndex - b.sliceIndex);
      result.push(hits.slice(0, options.k));
    }
    return result;
  }

  async searchVolumes(query: Float32Array, pooling: Pooling, k: number, filter?: VolumeFilter): Promise<VolumeHit[]> {
    this.calls.searchVolumes.push({ pooling, k, ...(filter ? { filter } : {}), query: query.slice() });
    const keep = compileFilter(filter);
    const hits = [...this.volumes.values()]
      .filter((v) => keep(v.record))
      .map((v) => ({ volumeId: v.record.volumeId, similarity: dot(query, this.pooled(v.vectors, pooling), 0, this.dim) }));
    hits.sort((a, b) => b.similarity - a.similarity || compare(a.volumeId, b.volumeId));
    return hits.slice(0, k);
  }

  pooledVector(volumeId: string, pooling: Pooling): Float32Array | undefined {
    const v = this.volumes.get(volumeId);
    return v ? this.pooled(v.vectors, pooling) : undefined;
  }

  async buildApproximateIndex(): Promise<ApproximateIndexReport> {
    // Every search here is brute force; there is no approximate index to build.
    return { added: 0, removed: 0, rebuilt: false, slices: this.stats().slices };
  }

  info(): StoreInfo {
    const { volumes, slices } = this.stats();
    return {
      dir: '(memory)',
      encoderId: this.encoderId,
      dim: this.dim,
      schemaVersion: 0,
      readOnly: false,
      volumes,
      slices,
      sqliteBytes: 0,
      approximateIndexBytes: 0,
      memory: { exactMatrixLoaded: true, exactMatrixBytes: slices * this.dim * 4, approximateIndexLoaded: false },
    };
  }

  close(): void {
    this.volumes.clear();
  }

  private pooled(vectors: VolumeVectors, pooling: Pooling): Float32Array {
    return poolVectors(vectors.vectors, this.dim, pooling);
  }
}

/** A record with just enough metadata for filters. */
export function fakeRecord(volumeId: string, sliceCount: number, extra: Partial<VolumeRecord> = {}): VolumeRecord {
  return {
    volumeId,
    sourcePath: `/fake/${volumeId}.nii.gz`,
    contentSha256: `sha-${volumeId}`,
    dims: [8, 8, sliceCount],
    spacingMm: [1, 1, 5],
    affineRas: [-1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 5, 0, 0, 0, 0, 1],
    modality: 'CT',
    labels: {},
    sliceCount,
    addedAt: '2024-01-01T00:00:00.000Z',
    ...extra,
  };
}

/** Slice vectors from rows given as plain arrays (normalized here), slices 0.. at `zStepMm` apart. */
export function fakeVectors(volumeId: string, rows: number[][], zStepMm = 5, firstSlice = 0): VolumeVectors {
  const dim = rows[0].length;
  const vectors = new Float32Array(rows.length * dim);
  rows.forEach((row, r) => {
    const norm = Math.hypot(...row);
    row.forEach((x, j) => {
      vectors[r * dim + j] = x / norm;
    });
  });
  return {
    volumeId,
    dim,
    sliceIndices: Int32Array.from(rows, (_, r) => firstSlice + r),
    zMm: Float64Array.from(rows, (_, r) => (firstSlice + r) * zStepMm),
    vectors,
  };
}

function dot(q: Float32Array, rows: Float32Array, row: number, dim: number): number {
  let s = 0;
  for (let j = 0; j < dim; j++) s += q[j] * rows[row * dim + j];
  return s;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
