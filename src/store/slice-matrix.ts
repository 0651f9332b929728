/**
 * All live slice vectors of an index in memory, for exact search and for serving re-ranking candidates
 * without touching SQLite.
 *
 * Layout: fixed-size blocks (default 256 MiB each) rather than one giant array, so growth never copies
 * the archive and no single allocation has to find gigabytes of contiguous memory. A volume's rows are one
 * contiguous run inside one block (getVectors hands out zero-copy views). Each block keeps a bias row
 * (0 live, −∞ free) that the exact-search kernel adds to the scores, so deleted rows cost nothing to skip.
 *
 * Removal frees a run; a later volume reuses it first-fit. Freed runs are not reused while a search is in
 * flight (ONNX Runtime reads blocks on its own thread), so a hit is never attributed to a volume that
 * moved into its row mid-search. There is no compaction: volumes are similar in size (100–1000 slices),
 * so holes refill; the worst case is the hole rows being scored and masked.
 */

export const DEFAULT_BLOCK_BYTES = 256 * 1024 * 1024;

export interface MatrixBlock {
  readonly capacityRows: number;
  /** capacityRows × dim. */
  readonly vectors: Float32Array;
  /** 0 for live rows, −∞ for free ones. */
  readonly bias: Float32Array;
  /** Volume key (store row id) owning each row; stale for free rows. */
  readonly owner: Float64Array;
  /** Rows [0, usedRows) have ever been written; the kernel reads only those. */
  usedRows: number;
  liveRows: number;
  /** Free runs inside [0, usedRows), sorted by start, never adjacent. */
  free: Array<{ start: number; rows: number }>;
}

export interface Placement {
  block: number;
  start: number;
  rows: number;
}

export class SliceMatrix {
  readonly blocks: MatrixBlock[] = [];
  private readonly placements = new Map<number, Placement>();
  private readonly blockRows: number;
  /** Runs freed while searches were in flight; released when the last one ends. */
  private pendingFree: Placement[] = [];
  private inFlight = 0;

  constructor(
    readonly dim: number,
    blockBytes: number = DEFAULT_BLOCK_BYTES,
  ) {
    this.blockRows = Math.max(1, Math.floor(blockBytes / (4 * dim)));
  }

  get volumeCount(): number {
    return this.placements.size;
  }

  get liveRows(): number {
    let n = 0;
    for (const b of this.blocks) n += b.liveRows;
    return n;
  }

  placement(key: number): Placement | undefined {
    return this.placements.get(key);
  }

  has(key: number): boolean {
    return this.placements.has(key);
  }

  /** Rows of a volume as a view into its block; callers must not write to it. */
  view(key: number): Float32Array | undefined {
    const p = this.placements.get(key);
    if (!p) return undefined;
    return this.blocks[p.block].vectors.subarray(p.start * this.dim, (p.start + p.rows) * this.dim);
  }

  add(key: number, vectors: Float32Array): Placement {
    const rows = vectors.length / this.dim;
    if (!Number.isInteger(rows) || rows === 0) throw new Error(`slice matrix: ${vectors.length} floats are not rows of dim ${this.dim}`);
    if (this.placements.has(key)) this.remove(key);
    const placement = this.allocate(rows);
    const block = this.blocks[placement.block];
    block.vectors.set(vectors, placement.start * this.dim);
    block.owner.fill(key, placement.start, placement.start + rows);
    block.bias.fill(0, placement.start, placement.start + rows);
    block.liveRows += rows;
    this.placements.set(key, placement);
    return placement;
  }

  remove(key: number): boolean {
    const p = this.placements.get(key);
    if (!p) return false;
    this.placements.delete(key);
    const block = this.blocks[p.block];
    block.bias.fill(-Infinity, p.start, p.start + p.rows);
    block.liveRows -= p.rows;
    if (this.inFlight > 0) this.pendingFree.push(p);
    else this.release(p);
    return true;
  }

  /** Brackets a read of the blocks that runs across an await. */
  beginRead(): void {
    this.inFlight++;
  }

  endRead(): void {
    this.inFlight--;
    if (this.inFlight === 0 && this.pendingFree.length > 0) {
      const pending = this.pendingFree;
      this.pendingFree = [];
      for (const p of pending) this.release(p);
    }
  }

  private allocate(rows: number): Placement {
    for (let b = 0; b < this.blocks.length; b++) {
      const block = this.blocks[b];
      const i = block.free.findIndex((f) => f.rows >= rows);
      if (i >= 0) {
        const run = block.free[i];
        const placement = { block: b, start: run.start, rows };
        if (run.rows === rows) block.free.splice(i, 1);
        else block.free[i] = { start: run.start + rows, rows: run.rows - rows };
        return placement;
      }
      if (block.capacityRows - block.usedRows >= rows) {
        const placement = { block: b, start: block.usedRows, rows };
        block.usedRows += rows;
        return placement;
      }
    }
    // A volume longer than a block gets a block of its own size.
    const capacityRows = Math.max(this.blockRows, rows);
    this.blocks.push({
      capacityRows,
      vectors: new Float32Array(capacityRows * this.dim),
      bias: new Float32Array(capacityRows).fill(-Infinity),
      owner: new Float64Array(capacityRows).fill(-1),
      usedRows: rows,
      liveRows: 0,
      free: [],
    });
    return { block: this.blocks.length - 1, start: 0, rows };
  }

  private release(p: Placement): void {
    const block = this.blocks[p.block];
    if (p.start + p.rows === block.usedRows) {
      // Shrinking the used prefix keeps the kernel from scoring dead tail rows.
      block.usedRows = p.start;
      const last = block.free[block.free.length - 1];
      if (last && last.start + last.rows === block.usedRows) {
        block.usedRows = last.start;
        block.free.pop();
      }
      return;
    }
    const free = block.free;
    let i = 0;
    while (i < free.length && free[i].start < p.start) i++;
    const run = { start: p.start, rows: p.rows };
    free.splice(i, 0, run);
    // Merge with neighbours so runs stay maximal.
    if (i + 1 < free.length && run.start + run.rows === free[i + 1].start) {
      run.rows += free[i + 1].rows;
      free.splice(i + 1, 1);
    }
    if (i > 0 && free[i - 1].start + free[i - 1].rows === run.start) {
      free[i - 1].rows += run.rows;
      free.splice(i, 1);
    }
  }
}
