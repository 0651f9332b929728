/**
 * An in-memory Store for testing the search orchestrator: brute-force exact kNN over every slice, pooled
 * vectors computed on the fly, and a log of the calls so tests can check what the orchestrator asked
 * for. A test double only; it passes the same contract suite as the embedded store
 * (test/store-contract.test.ts), which is also what keeps it honest.
 */
import { checkArtifactKey, checkEf, checkJson, checkQueries, checkStateKey, compileFilter, poolVectors, StoreError } from '../../src/store/index.js';
import { createHash } from 'node:crypto';
import type {
  AddVolumeOptions,
  ApproximateIndexReport,
  Artifact,
  ArtifactInfo,
  ArtifactStore,
  IndexState,
  JsonObject,
  JsonValue,
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

const DIR = '(memory)';

class MemoryArtifacts implements ArtifactStore {
  private readonly items = new Map<string, Artifact>();

  put(kind: string, name: string, bytes: Uint8Array, metadata: JsonObject = {}): ArtifactInfo {
    checkArtifactKey(DIR, kind, name);
    checkJson(DIR, 'metadata', metadata);
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) throw new StoreError('BAD_ARGUMENT', DIR, 'metadata must be a JSON object');
    const artifact: Artifact = {
      kind,
      name,
      metadata: structuredClone(metadata),
      byteLength: bytes.byteLength,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      updatedAt: new Date().toISOString(),
      bytes: bytes.slice(),
    };
    this.items.set(`${kind}\u0000${name}`, artifact);
    return infoOf(artifact);
  }

  get(kind: string, name: string): Artifact | undefined {
    checkArtifactKey(DIR, kind, name);
    const a = this.items.get(`${kind}\u0000${name}`);
    return a ? { ...infoOf(a), bytes: a.bytes.slice() } : undefined;
  }

  info(kind: string, name: string): ArtifactInfo | undefined {
    const a = this.get(kind, name);
    return a ? infoOf(a) : undefined;
  }

  list(kind?: string): ArtifactInfo[] {
    return [...this.items.values()]
      .filter((a) => kind === undefined || a.kind === kind)
      .sort((a, b) => compare(a.kind, b.kind) || compare(a.name, b.name))
      .map(infoOf);
  }

  delete(kind: string, name: string): boolean {
    checkArtifactKey(DIR, kind, name);
    return this.items.delete(`${kind}\u0000${name}`);
  }
}

function infoOf(a: Artifact): ArtifactInfo {
  return { kind: a.kind, name: a.name, metadata: structuredClone(a.metadata), byteLength: a.byteLength, sha256: a.sha256, updatedAt: a.updatedAt };
}

class MemoryState implements IndexState {
  readonly namespaces = new Map<string, Map<string, string>>();

  get(namespace: string, key: string): JsonValue | undefined {
    checkStateKey(DIR, namespace, key);
    const value = this.namespaces.get(namespace)?.get(key);
    return value === undefined ? undefined : (JSON.parse(value) as JsonValue);
  }

  set(namespace: string, key: string, value: JsonValue): void {
    this.setMany(namespace, [[key, value]]);
  }

  setMany(namespace: string, entries: Iterable<readonly [string, JsonValue]>): void {
    const list = [...entries];
    for (const [key, value] of list) {
      checkStateKey(DIR, namespace, key);
      checkJson(DIR, 'value', value);
    }
    let map = this.namespaces.get(namespace);
    if (!map) this.namespaces.set(namespace, (map = new Map()));
    for (const [key, value] of list) map.set(key, JSON.stringify(value));
  }

  delete(namespace: string, key: string): boolean {
    checkStateKey(DIR, namespace, key);
    return this.namespaces.get(namespace)?.delete(key) ?? false;
  }

  list(namespace: string, prefix?: string): Array<{ key: string; value: JsonValue }> {
    return [...(this.namespaces.get(namespace) ?? new Map<string, string>()).entries()]
      .filter(([key]) => prefix === undefined || key.startsWith(prefix))
      .sort((a, b) => compare(a[0], b[0]))
      .map(([key, value]) => ({ key, value: JSON.parse(value) as JsonValue }));
  }

  clear(namespace: string): number {
    const n = this.namespaces.get(namespace)?.size ?? 0;
    this.namespaces.delete(namespace);
    return n;
  }
}

export class FakeStore implements Store {
  readonly calls: FakeStoreCalls = { searchSlices: [], searchVolumes: [], getVectors: [] };
  private readonly volumes = new Map<string, { record: VolumeRecord; vectors: VolumeVectors }>();
  readonly artifacts = new MemoryArtifacts();
  readonly state = new MemoryState();

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

  findBySource(sourcePath: string, seriesKey?: string): VolumeRecord[] {
    return [...this.volumes.values()].map((v) => v.record).filter((r) => r.sourcePath === sourcePath && r.seriesKey === seriesKey);
  }

  getVolume(volumeId: string): VolumeRecord | undefined {
    return this.volumes.get(volumeId)?.record;
  }

  listVolumes(filter?: VolumeFilter): VolumeRecord[] {
    const keep = compileFilter(filter);
    return [...this.volumes.values()].map((v) => v.record).filter(keep);
  }

  addVolume(record: VolumeRecord, vectors: VolumeVectors, encoderId: string, options: AddVolumeOptions = {}): void {
    if (encoderId !== this.encoderId) throw new StoreError('ENCODER_MISMATCH', DIR, `encoder ${encoderId} is not the index's ${this.encoderId}`);
    if (vectors.dim !== this.dim) throw new StoreError('DIM_MISMATCH', DIR, `vectors are ${vectors.dim}-d, index ${this.dim}-d`);
    if (vectors.volumeId !== record.volumeId || vectors.sliceIndices.length !== record.sliceCount || vectors.vectors.length !== record.sliceCount * this.dim || vectors.zMm.length !== record.sliceCount) {
      throw new StoreError('BAD_VECTORS', DIR, `volume ${record.volumeId}: record and vectors disagree`);
    }
    const twin = this.findByContent(record.contentSha256);
    if (twin && twin.volumeId !== record.volumeId) throw new StoreError('DUPLICATE_CONTENT', DIR, `volume ${record.volumeId} has the voxels of ${twin.volumeId}`);
    for (const entry of options.state ?? []) {
      checkStateKey(DIR, entry.namespace, entry.key);
      checkJson(DIR, 'value', entry.value);
    }
    this.volumes.set(record.volumeId, { record, vectors });
    for (const entry of options.state ?? []) this.state.set(entry.namespace, entry.key, entry.value);
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
    checkQueries(DIR, this.dim, queries, options.k);
    checkEf(DIR, options.ef);
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
    checkQueries(DIR, this.dim, query, k);
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

  async prepareForSearch(): Promise<ApproximateIndexReport | undefined> {
    return undefined;
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
      memory: { exactMatrixLoaded: true, exactMatrixBytes: slices * this.dim * 4, approximateIndexLoaded: false, approximateIndexMapped: false },
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
