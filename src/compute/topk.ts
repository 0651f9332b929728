/**
 * Exact inner-product top-k over row blocks: per block, one ONNX Runtime run of Gemm(Q, X, bias) → TopK,
 * then a k-way merge of the per-block lists in JS. Vectors stay in the caller's blocks (no copy: ONNX
 * Runtime reads the Float32Array in place), so the archive is held once, in blocks of a few hundred MB.
 */
import * as ort from 'onnxruntime-node';
import { ComputeError } from './errors.js';
import { computeSessions, type ComputeOptions } from './runtime.js';

export interface RowBlock {
  /** Row-major vectors; only the first `rows` rows are read, so a block may have spare capacity. */
  vectors: Float32Array;
  rows: number;
  /** Additive mask, at least `rows` long: 0 for rows that may be returned, −Infinity for rows that may
   * not (filtered out, deleted, unused). Omitted: every row may be returned. */
  bias?: Float32Array;
}

export interface TopKResult {
  queryCount: number;
  k: number;
  /** Hits found per query: k, or fewer when fewer rows are allowed. */
  counts: Int32Array;
  /** queryCount × k, each query's hits by descending similarity; slots past counts[q] are unused. */
  similarities: Float32Array;
  /** Index of the hit's block in the `blocks` argument. */
  blockIndices: Int32Array;
  /** Row of the hit within its block. */
  rowIndices: Int32Array;
}

export interface TopKOptions extends ComputeOptions {
  /** Upper bound on one run's score matrix (query rows × block rows × 4 B); queries are split to stay
   * under it. Default 128 MiB. */
  maxScoreBytes?: number;
}

const DEFAULT_MAX_SCORE_BYTES = 128 * 1024 * 1024;

let zeros = new Float32Array(0);
/** A shared all-zero bias for blocks without a mask (never written, so sharing is safe). */
function zeroBias(rows: number): Float32Array {
  if (zeros.length < rows) zeros = new Float32Array(Math.max(rows, zeros.length * 2));
  return zeros.subarray(0, rows);
}

/**
 * For each of the `queries.length / dim` query rows, the k rows of highest inner product across all
 * blocks. Ties keep the earlier (block, row). Excluded rows (bias −∞) are never returned.
 */
export async function exactTopK(queries: Float32Array, dim: number, blocks: readonly RowBlock[], k: number, options: TopKOptions = {}): Promise<TopKResult> {
  if (!Number.isInteger(dim) || dim <= 0 || queries.length % dim !== 0) {
    throw new ComputeError('BAD_INPUT', `queries hold ${queries.length} floats, not a multiple of dim ${dim}`);
  }
  if (!Number.isInteger(k) || k <= 0) throw new ComputeError('BAD_INPUT', `k must be a positive integer, got ${k}`);
  const queryCount = queries.length / dim;
  const result: TopKResult = {
    queryCount,
    k,
    counts: new Int32Array(queryCount),
    similarities: new Float32Array(queryCount * k),
    blockIndices: new Int32Array(queryCount * k),
    rowIndices: new Int32Array(queryCount * k),
  };
  if (queryCount === 0) return result;
  const sessions = await computeSessions(options);
  const maxScoreBytes = options.maxScoreBytes ?? DEFAULT_MAX_SCORE_BYTES;
  // Scratch for the merge: one query's incoming list.
  const merged = { sims: new Float32Array(k), blocks: new Int32Array(k), rows: new Int32Array(k) };

  for (let b = 0; b < blocks.length; b++) {
    const block = blocks[b];
    const rows = block.rows;
    if (rows === 0) continue;
    if (block.vectors.length < rows * dim) {
      throw new ComputeError('BAD_INPUT', `block ${b} holds ${block.vectors.length} floats, fewer than ${rows} rows × ${dim}`);
    }
    if (block.bias && block.bias.length < rows) throw new ComputeError('BAD_INPUT', `block ${b}: bias shorter than ${rows} rows`);
    const kk = Math.min(k, rows);
    const x = new ort.Tensor('float32', block.vectors.subarray(0, rows * dim), [rows, dim]);
    const bias = new ort.Tensor('float32', block.bias ? block.bias.subarray(0, rows) : zeroBias(rows), [rows]);
    const kTensor = new ort.Tensor('int64', BigInt64Array.of(BigInt(kk)), [1]);
    const queriesPerRun = Math.max(1, Math.min(queryCount, Math.floor(maxScoreBytes / (4 * rows))));
    for (let q0 = 0; q0 < queryCount; q0 += queriesPerRun) {
      const qn = Math.min(queriesPerRun, queryCount - q0);
      const q = new ort.Tensor('float32', queries.subarray(q0 * dim, (q0 + qn) * dim), [qn, dim]);
      const out = await sessions.topK.run({ Q: q, X: x, bias, k: kTensor });
      const values = out.values.data as Float32Array;
      const indices = out.indices.data as BigInt64Array;
      for (let i = 0; i < qn; i++) {
        mergeInto(result, q0 + i, values, indices, i * kk, kk, b, merged);
      }
    }
  }
  return result;
}

/** Merges one block's sorted list for query `query` into the running top-k (both descending). */
function mergeInto(
  result: TopKResult,
  query: number,
  values: Float32Array,
  indices: BigInt64Array,
  offset: number,
  length: number,
  block: number,
  scratch: { sims: Float32Array; blocks: Int32Array; rows: Int32Array },
): void {
  const k = result.k;
  const base = query * k;
  const have = result.counts[query];
  // Excluded rows come back as −∞ at the tail of a sorted list; they end the useful part.
  let incoming = 0;
  while (incoming < length && values[offset + incoming] > -Infinity) incoming++;
  if (incoming === 0) return;
  let i = 0;
  let j = 0;
  let n = 0;
  while (n < k && (i < have || j < incoming)) {
    // `>=` keeps the earlier block first on ties.
    if (j >= incoming || (i < have && result.similarities[base + i] >= values[offset + j])) {
      scratch.sims[n] = result.similarities[base + i];
      scratch.blocks[n] = result.blockIndices[base + i];
      scratch.rows[n] = result.rowIndices[base + i];
      i++;
    } else {
      scratch.sims[n] = values[offset + j];
      scratch.blocks[n] = block;
      scratch.rows[n] = Number(indices[offset + j]);
      j++;
    }
    n++;
  }
  result.similarities.set(scratch.sims.subarray(0, n), base);
  result.blockIndices.set(scratch.blocks.subarray(0, n), base);
  result.rowIndices.set(scratch.rows.subarray(0, n), base);
  result.counts[query] = n;
}
