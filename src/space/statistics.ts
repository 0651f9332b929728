/**
 * Archive statistics of backbone vectors: mean, scatter (d × d), per-class means. The d × d product
 * XᵀX over up to 100k rows is the one heavy step (1.6·10¹¹ multiply-adds at 100k × 1280); it runs on ONNX
 * Runtime's Gemm through compute's similarity kernel (the same optimized matrix product as search), in
 * row chunks so memory stays bounded.
 */
import * as ort from 'onnxruntime-node';
import { computeSessions } from '../compute/runtime.js';

const CHUNK_ROWS = 4096;

export interface Moments {
  dim: number;
  count: number;
  mean: Float64Array;
  /** Σ (x − mean)(x − mean)ᵀ, dim × dim row-major (not divided by count). */
  scatter: Float64Array;
}

export function meanOf(vectors: Float32Array, dim: number, rows: readonly number[] | undefined = undefined): Float64Array {
  const mean = new Float64Array(dim);
  const n = rows ? rows.length : vectors.length / dim;
  for (let r = 0; r < n; r++) {
    const base = (rows ? rows[r] : r) * dim;
    for (let j = 0; j < dim; j++) mean[j] += vectors[base + j];
  }
  for (let j = 0; j < dim; j++) mean[j] /= Math.max(n, 1);
  return mean;
}

/** Mean and centred scatter of the given rows (all rows when `rows` is omitted). */
export async function momentsOf(vectors: Float32Array, dim: number, rows?: readonly number[]): Promise<Moments> {
  const count = rows ? rows.length : vectors.length / dim;
  const mean = meanOf(vectors, dim, rows);
  const scatter = new Float64Array(dim * dim);
  const sessions = await computeSessions();
  // Each chunk is written transposed (dim × chunk) and centred, so Gemm(Q = Cᵀ, X = Cᵀ, transB) = CᵀC.
  const transposed = new Float32Array(dim * Math.min(CHUNK_ROWS, Math.max(count, 1)));
  for (let r0 = 0; r0 < count; r0 += CHUNK_ROWS) {
    const n = Math.min(CHUNK_ROWS, count - r0);
    for (let r = 0; r < n; r++) {
      const base = (rows ? rows[r0 + r] : r0 + r) * dim;
      for (let j = 0; j < dim; j++) transposed[j * n + r] = vectors[base + j] - mean[j];
    }
    const t = new ort.Tensor('float32', transposed.subarray(0, dim * n), [dim, n]);
    const out = await sessions.similarity.run({ Q: t, X: t });
    const product = out.similarities.data as Float32Array;
    for (let i = 0; i < scatter.length; i++) scatter[i] += product[i];
  }
  return { dim, count, mean, scatter };
}

/** Class index per row (−1: no label, left out) and the class names, from any label values. */
export function encodeClasses(values: ReadonlyArray<string | number | undefined>): { classes: Int32Array; names: string[] } {
  const names: string[] = [];
  const byName = new Map<string, number>();
  const classes = new Int32Array(values.length);
  values.forEach((value, row) => {
    if (value === undefined || value === '') {
      classes[row] = -1;
      return;
    }
    const key = String(value);
    let index = byName.get(key);
    if (index === undefined) {
      index = names.length;
      names.push(key);
      byName.set(key, index);
    }
    classes[row] = index;
  });
  return { classes, names };
}
