/**
 * An index seen through a space: the same volumes, labels and artifacts, with every slice vector passed
 * through the space's graph (the kernel the query passes through too) and pooled again from the projected
 * slices. Search, eval and the server take it as any other Store, so every retrieval method works in
 * every space. The projected matrix is built once at open (100k × 1280 → 256 takes about a second) and
 * searched exactly with compute's top-k kernel; approximate mode is answered exactly in a space.
 */
import { exactTopK } from '../compute/topk.js';
import { compileFilter, poolAll } from '../store/index.js';
import type {
  ApproximateIndexReport,
  ArtifactStore,
  IndexState,
  Pooling,
  SliceHit,
  SliceSearchOptions,
  Store,
  VolumeFilter,
  VolumeHit,
  VolumeRecord,
  VolumeVectors,
} from '../store/types.js';
import { SpaceKernel } from './kernel.js';
import { loadSpace, spaceId, type SpaceMetadata } from './persist.js';

interface Placement {
  volumeId: string;
  firstRow: number;
  rows: number;
}

/** Volumes projected per kernel run while opening. */
const VOLUMES_PER_BATCH = 512;

export class SpaceStore implements Store {
  readonly encoderId: string;
  readonly dim: number;
  readonly artifacts: ArtifactStore;
  readonly state: IndexState;

  private constructor(
    private readonly base: Store,
    readonly space: SpaceMetadata,
    readonly kernel: SpaceKernel,
    private readonly matrix: Float32Array,
    private readonly placements: Placement[],
    private readonly byVolume: Map<string, { placement: Placement; sliceIndices: Int32Array; zMm: Float64Array; pooled: Record<Pooling, Float32Array> }>,
    private readonly ownsBase: boolean,
  ) {
    this.encoderId = `${base.encoderId}|${spaceId(space)}`;
    this.dim = kernel.outputDim;
    this.artifacts = base.artifacts;
    this.state = base.state;
  }

  /** Opens `base` in the named space (the base's own stored space). `ownsBase`: close() closes it too. */
  static async open(base: Store, name: string, options: { ownsBase?: boolean } = {}): Promise<SpaceStore> {
    const stored = loadSpace(base, name);
    const kernel = await SpaceKernel.open(stored.model, `space ${name}`);
    try {
      const records = base.listVolumes();
      let total = 0;
      for (const record of records) total += record.sliceCount;
      const matrix = new Float32Array(total * kernel.outputDim);
      const placements: Placement[] = [];
      const byVolume: SpaceStore['byVolume'] = new Map();
      let row = 0;
      for (let v0 = 0; v0 < records.length; v0 += VOLUMES_PER_BATCH) {
        const ids = records.slice(v0, v0 + VOLUMES_PER_BATCH).map((r) => r.volumeId);
        const vectors = base.getVectors(ids);
        let rows = 0;
        for (const id of ids) rows += vectors.get(id)?.sliceIndices.length ?? 0;
        const input = new Float32Array(rows * base.dim);
        let at = 0;
        for (const id of ids) {
          const v = vectors.get(id);
          if (!v) continue;
          input.set(v.vectors.subarray(0, v.sliceIndices.length * base.dim), at);
          at += v.sliceIndices.length * base.dim;
        }
        const projected = await kernel.apply(input);
        matrix.set(projected, row * kernel.outputDim);
        let local = 0;
        for (const id of ids) {
          const v = vectors.get(id);
          if (!v) continue;
          const count = v.sliceIndices.length;
          const placement = { volumeId: id, firstRow: row + local, rows: count };
          placements.push(placement);
          const own = projected.subarray(local * kernel.outputDim, (local + count) * kernel.outputDim);
          byVolume.set(id, { placement, sliceIndices: Int32Array.from(v.sliceIndices), zMm: Float64Array.from(v.zMm), pooled: poolAll(own, kernel.outputDim) });
          local += count;
        }
        row += local;
      }
      return new SpaceStore(base, stored.metadata, kernel, matrix.subarray(0, row * kernel.outputDim), placements, byVolume, options.ownsBase ?? false);
    } catch (error) {
      await kernel.close();
      throw error;
    }
  }

  /** The space's id (space:NAME@sha), as results and reports name it. */
  get spaceLabel(): string {
    return spaceId(this.space);
  }

  /** Query vectors (rows × backbone dim) into this space: the very kernel the database went through. */
  project(vectors: Float32Array): Promise<Float32Array> {
    return this.kernel.apply(vectors);
  }

  stats(): { volumes: number; slices: number } {
    return { volumes: this.placements.length, slices: this.matrix.length / this.dim };
  }

  findByContent(contentSha256: string): VolumeRecord | undefined {
    return this.base.findByContent(contentSha256);
  }

  findBySource(sourcePath: string, seriesKey?: string): VolumeRecord[] {
    return this.base.findBySource(sourcePath, seriesKey);
  }

  getVolume(volumeId: string): VolumeRecord | undefined {
    return this.base.getVolume(volumeId);
  }

  listVolumes(filter?: VolumeFilter): VolumeRecord[] {
    return this.base.listVolumes(filter);
  }

  addVolume(): void {
    throw new RangeError(`an index opened in space ${this.space.name} is read-only: add volumes to the index itself (its spaces follow at the next open)`);
  }

  removeVolume(): boolean {
    throw new RangeError(`an index opened in space ${this.space.name} is read-only`);
  }

  getVectors(volumeIds: string[]): Map<string, VolumeVectors> {
    const out = new Map<string, VolumeVectors>();
    for (const id of volumeIds) {
      const entry = this.byVolume.get(id);
      if (!entry) continue;
      const { placement } = entry;
      out.set(id, {
        volumeId: id,
        dim: this.dim,
        sliceIndices: entry.sliceIndices,
        zMm: entry.zMm,
        vectors: this.matrix.subarray(placement.firstRow * this.dim, (placement.firstRow + placement.rows) * this.dim),
      });
    }
    return out;
  }

  private bias(filter: VolumeFilter | undefined): Float32Array | undefined {
    if (!filter) return undefined;
    const keep = compileFilter(filter);
    const bias = new Float32Array(this.matrix.length / this.dim);
    for (const placement of this.placements) {
      const record = this.base.getVolume(placement.volumeId);
      if (!record || !keep(record)) bias.fill(-Infinity, placement.firstRow, placement.firstRow + placement.rows);
    }
    return bias;
  }

  async searchSlices(queries: Float32Array, options: SliceSearchOptions): Promise<SliceHit[][]> {
    const rows = this.matrix.length / this.dim;
    const queryCount = queries.length / this.dim;
    if (rows === 0) return Array.from({ length: queryCount }, () => []);
    const bias = this.bias(options.filter);
    const top = await exactTopK(queries, this.dim, [{ vectors: this.matrix, rows, ...(bias ? { bias } : {}) }], options.k);
    // Row → volume by binary search over the placements (ascending firstRow).
    const volumeAt = (row: number): Placement => {
      let lo = 0;
      let hi = this.placements.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (this.placements[mid].firstRow <= row) lo = mid;
        else hi = mid - 1;
      }
      return this.placements[lo];
    };
    const out: SliceHit[][] = [];
    for (let q = 0; q < queryCount; q++) {
      const hits: SliceHit[] = [];
      for (let h = 0; h < top.counts[q]; h++) {
        const row = top.rowIndices[q * options.k + h];
        const placement = volumeAt(row);
        const entry = this.byVolume.get(placement.volumeId)!;
        const local = row - placement.firstRow;
        hits.push({ volumeId: placement.volumeId, sliceIndex: entry.sliceIndices[local], zMm: entry.zMm[local], similarity: top.similarities[q * options.k + h] });
      }
      out.push(hits);
    }
    return out;
  }

  async searchVolumes(query: Float32Array, pooling: Pooling, k: number, filter?: VolumeFilter): Promise<VolumeHit[]> {
    const keep = compileFilter(filter);
    const ids = this.placements.map((p) => p.volumeId).filter((id) => {
      const record = this.base.getVolume(id);
      return record !== undefined && keep(record);
    });
    if (ids.length === 0) return [];
    const pooled = new Float32Array(ids.length * this.dim);
    ids.forEach((id, i) => pooled.set(this.byVolume.get(id)!.pooled[pooling], i * this.dim));
    const top = await exactTopK(query, this.dim, [{ vectors: pooled, rows: ids.length }], Math.min(k, ids.length));
    const hits: VolumeHit[] = [];
    for (let h = 0; h < top.counts[0]; h++) hits.push({ volumeId: ids[top.rowIndices[h]], similarity: top.similarities[h] });
    return hits;
  }

  pooledVector(volumeId: string, pooling: Pooling): Float32Array | undefined {
    return this.byVolume.get(volumeId)?.pooled[pooling];
  }

  async prepareForSearch(): Promise<ApproximateIndexReport | undefined> {
    return undefined;
  }

  close(): void {
    void this.kernel.close();
    if (this.ownsBase) this.base.close();
  }
}
