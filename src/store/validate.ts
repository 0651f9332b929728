/**
 * The checks every Store implementation applies to what it is given, so that each engine refuses the same
 * inputs with the same StoreError codes (the contract suite checks them).
 */
import { MAX_SLICES_PER_VOLUME } from './ann.js';
import { StoreError } from './errors.js';
import { POOLINGS, type Pooling, type VolumeRecord, type VolumeVectors } from './types.js';

/** Slice vectors must be unit length (similarity = inner product); float32 rounding stays far below this. */
const UNIT_NORM_TOLERANCE = 1e-3;

export function checkVolume(dir: string, dim: number, record: VolumeRecord, v: VolumeVectors): void {
  const bad = (detail: string): never => {
    throw new StoreError('BAD_VECTORS', dir, `volume ${record.volumeId}: ${detail}`);
  };
  if (typeof record.volumeId !== 'string' || record.volumeId === '') bad('empty volume id');
  if (!/^[0-9a-f]{64}$/i.test(record.contentSha256)) bad(`content hash '${record.contentSha256}' is not a SHA-256 hex digest`);
  if (v.volumeId !== record.volumeId) bad(`vectors are labelled ${v.volumeId}`);
  if (v.dim !== dim) throw new StoreError('DIM_MISMATCH', dir, `volume ${record.volumeId}: ${v.dim}-d vectors, the index holds ${dim}-d`);
  const rows = v.sliceIndices.length;
  if (rows === 0) bad('no slices');
  if (rows > MAX_SLICES_PER_VOLUME) bad(`${rows} slices, at most ${MAX_SLICES_PER_VOLUME} per volume`);
  if (record.sliceCount !== rows) bad(`record says ${record.sliceCount} slices, vectors have ${rows}`);
  if (v.zMm.length !== rows) bad(`${v.zMm.length} z positions for ${rows} slices`);
  if (v.vectors.length !== rows * dim) bad(`${v.vectors.length} floats for ${rows} × ${dim}`);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let j = r * dim; j < (r + 1) * dim; j++) sum += v.vectors[j] * v.vectors[j];
    if (!Number.isFinite(sum)) bad(`slice row ${r} has non-finite values`);
    if (Math.abs(Math.sqrt(sum) - 1) > UNIT_NORM_TOLERANCE) bad(`slice row ${r} has length ${Math.sqrt(sum).toFixed(4)}, not 1 (rows must be L2-normalized)`);
    if (!Number.isFinite(v.zMm[r])) bad(`slice row ${r} has a non-finite z`);
  }
}

export function checkQueries(dir: string, dim: number, queries: Float32Array, k: number): void {
  if (!Number.isInteger(k) || k <= 0) throw new StoreError('BAD_QUERY', dir, `k must be a positive integer, got ${k}`);
  if (queries.length === 0 || queries.length % dim !== 0) {
    throw new StoreError('BAD_QUERY', dir, `queries hold ${queries.length} floats, not rows of ${dim}`);
  }
}

export function checkEf(dir: string, ef: number | undefined): void {
  if (ef !== undefined && (!Number.isInteger(ef) || ef <= 0)) throw new StoreError('BAD_QUERY', dir, `ef must be a positive integer, got ${ef}`);
}

export function checkPooling(dir: string, pooling: Pooling): void {
  if (!POOLINGS.includes(pooling)) throw new StoreError('BAD_QUERY', dir, `unknown pooling '${String(pooling)}' (${POOLINGS.join(', ')})`);
}
