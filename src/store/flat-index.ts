/**
 * The flat (exact) engine: every row of every volume scored against every query, on ONNX Runtime (Gemm
 * with a bias row, then TopK; see compute/topk.ts), over the fixed-size in-memory blocks of a SliceMatrix.
 * A selector becomes a per-search bias mask (0 on the selected volumes' runs, −∞ elsewhere), so a filter
 * costs one pass over the selected placements and blocks with nothing selected are skipped.
 */
import { computeSessions, exactTopK, type ComputeOptions, type ExecutionProvider, type RowBlock } from '../compute/index.js';
import { SliceMatrix } from './slice-matrix.js';
import type { IndexHit, SearchParameters, VectorIndex } from './vector-index.js';

export class FlatIndex implements VectorIndex {
  private readonly matrix: SliceMatrix;
  /** Execution provider of the kernel, known after the first search. */
  provider: ExecutionProvider | undefined;

  constructor(
    readonly dim: number,
    blockBytes: number,
    private readonly compute: ComputeOptions | undefined,
  ) {
    this.matrix = new SliceMatrix(dim, blockBytes);
  }

  get rows(): number {
    return this.matrix.liveRows;
  }

  /** Bytes allocated for the blocks (capacity, not only live rows). */
  get bytes(): number {
    return this.matrix.blocks.reduce((s, b) => s + b.vectors.byteLength, 0);
  }

  has(key: number): boolean {
    return this.matrix.has(key);
  }

  /** A volume's rows as a view into its block (no copy); never write to it. */
  view(key: number): Float32Array | undefined {
    return this.matrix.view(key);
  }

  add(volumes: ReadonlyArray<{ key: number; vectors: Float32Array }>): void {
    for (const { key, vectors } of volumes) if (!this.matrix.has(key)) this.matrix.add(key, vectors);
  }

  remove(key: number): boolean {
    return this.matrix.remove(key);
  }

  async search(queries: Float32Array, k: number, parameters: SearchParameters = {}): Promise<IndexHit[][]> {
    const matrix = this.matrix;
    const queryCount = queries.length / this.dim;
    const blockIds: number[] = [];
    const blocks: RowBlock[] = [];
    const selector = parameters.selector;
    if (!selector) {
      matrix.blocks.forEach((b, i) => {
        if (b.liveRows === 0) return;
        blockIds.push(i);
        blocks.push({ vectors: b.vectors, rows: b.usedRows, bias: b.bias });
      });
    } else {
      // A per-search mask: −∞ everywhere, 0 on the runs of selected volumes. Blocks with no selected row are skipped.
      const masks = new Map<number, Float32Array>();
      for (const key of selector.keys()) {
        const p = matrix.placement(key);
        if (!p) continue;
        let mask = masks.get(p.block);
        if (!mask) {
          mask = new Float32Array(matrix.blocks[p.block].usedRows).fill(-Infinity);
          masks.set(p.block, mask);
        }
        mask.fill(0, p.start, p.start + p.rows);
      }
      for (const [i, mask] of [...masks.entries()].sort((a, b) => a[0] - b[0])) {
        blockIds.push(i);
        blocks.push({ vectors: matrix.blocks[i].vectors, rows: mask.length, bias: mask });
      }
    }
    if (blocks.length === 0) return Array.from({ length: queryCount }, () => []);
    const owners = blockIds.map((i) => matrix.blocks[i].owner);
    matrix.beginRead();
    let result;
    try {
      const sessions = await computeSessions(this.compute);
      this.provider = sessions.provider;
      result = await exactTopK(queries, this.dim, blocks, k, this.compute);
    } finally {
      matrix.endRead();
    }
    const hits: IndexHit[][] = [];
    for (let q = 0; q < queryCount; q++) {
      const list: IndexHit[] = [];
      for (let i = 0; i < result.counts[q]; i++) {
        const slot = q * k + i;
        const row = result.rowIndices[slot];
        const key = owners[result.blockIndices[slot]][row];
        // Offsets come from the live placement: a volume never moves while it is placed.
        const p = matrix.placement(key);
        if (!p) continue; // removed while the search ran
        list.push({ key, ordinal: row - p.start, similarity: result.similarities[slot] });
      }
      hits.push(list);
    }
    return hits;
  }
}
