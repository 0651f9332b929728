/**
 * Archive statistics of backbone vectors: mean, scatter (d × d), per-class means. The d × d product
 * XᵀX over up to 100k rows is the one heavy step (1.6·10¹¹ multiply-adds at 100k × 1280); it runs on ONNX
 * Runtime's Gemm through compute's similarity kernel (the same optimized matrix product as search), in
 * row chunks so memory stays bounded.
 */
import { computeSessions } from '../compute/runtime.js';
import { runSession } from '../compute/session.js';
import { symmetricEigen } from './eigen.js';

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
    const t = { type: 'float32' as const, data: transposed.subarray(0, dim * n), dims: [dim, n] };
    const out = await runSession(sessions.similarity, { Q: t, X: t });
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

/** The leading principal axes of some rows: mean, and the top eigenvalues of the centred scatter with
 * their unit eigenvectors (rows of `vectors`, each `dim` long). */
export interface PrincipalAxes {
  dim: number;
  count: number;
  mean: Float64Array;
  /** Eigenvalues of Σ (x − mean)(x − mean)ᵀ, largest first. */
  values: Float64Array;
  /** values.length × dim, row-major. */
  vectors: Float64Array;
}

/**
 * The top `maxAxes` principal axes. With fewer rows than dimensions (a few hundred key images of 1280-d
 * vectors) the n × n Gram matrix C·Cᵀ has the same non-zero eigenvalues as the d × d scatter CᵀC, and
 * Cᵀu/√λ are its eigenvectors, so the eigen-decomposition runs on the smaller of the two (a 600 × 600
 * decomposition instead of 1280 × 1280: ten times less work).
 */
export async function principalAxesOf(vectors: Float32Array, dim: number, rows: readonly number[] | undefined, maxAxes: number): Promise<PrincipalAxes> {
  const count = rows ? rows.length : vectors.length / dim;
  const keep = Math.max(1, Math.min(maxAxes, dim, count));
  if (count >= dim) {
    const moments = await momentsOf(vectors, dim, rows);
    const eigen = symmetricEigen(moments.scatter, dim);
    return { dim, count, mean: moments.mean, values: eigen.values.slice(0, keep), vectors: eigen.vectors.slice(0, keep * dim) };
  }
  const mean = meanOf(vectors, dim, rows);
  const centred = new Float32Array(count * dim);
  for (let r = 0; r < count; r++) {
    const base = (rows ? rows[r] : r) * dim;
    for (let j = 0; j < dim; j++) centred[r * dim + j] = vectors[base + j] - mean[j];
  }
  const sessions = await computeSessions();
  const c = { type: 'float32' as const, data: centred, dims: [count, dim] };
  const gram = (await runSession(sessions.similarity, { Q: c, X: c })).similarities.data as Float32Array;
  const eigen = symmetricEigen(Float64Array.from(gram), count);
  // Cᵀ·u for the kept axes: Gemm(Q = Uᵀ [keep × count], X = Cᵀ [dim × count]) = Uᵀ·C [keep × dim].
  const ut = new Float32Array(keep * count);
  for (let k = 0; k < keep; k++) for (let r = 0; r < count; r++) ut[k * count + r] = eigen.vectors[k * count + r];
  const ct = new Float32Array(dim * count);
  for (let r = 0; r < count; r++) for (let j = 0; j < dim; j++) ct[j * count + r] = centred[r * dim + j];
  const product = (await runSession(sessions.similarity, { Q: { type: 'float32', data: ut, dims: [keep, count] }, X: { type: 'float32', data: ct, dims: [dim, count] } })).similarities.data as Float32Array;
  const axes = new Float64Array(keep * dim);
  for (let k = 0; k < keep; k++) {
    let norm = 0;
    for (let j = 0; j < dim; j++) norm += product[k * dim + j] ** 2;
    norm = Math.sqrt(norm) || 1;
    for (let j = 0; j < dim; j++) axes[k * dim + j] = product[k * dim + j] / norm;
  }
  return { dim, count, mean, values: eigen.values.slice(0, keep), vectors: axes };
}
