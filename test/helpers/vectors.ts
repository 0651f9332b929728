/**
 * Deterministic test vectors for the store and compute tests and the search benchmark: random unit rows,
 * and "slice-like" volumes whose rows drift smoothly (adjacent slices near-duplicates) along a shared
 * anatomy, the way real slice embeddings behave; plus brute-force references.
 */
import { createHash } from 'node:crypto';
import type { VolumeRecord, VolumeVectors } from '../../src/store/types.js';
import { uniformStream } from '../../src/synth/random.js';

/** mulberry32, the generator the phantoms and learned spaces use. */
export const rng: (seed: number) => () => number = uniformStream;

export function gaussian(random: () => number): () => number {
  return () => {
    const u = Math.max(random(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  };
}

export function normalizeRows(values: Float32Array, dim: number): Float32Array {
  for (let r = 0; r < values.length / dim; r++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += values[r * dim + j] ** 2;
    const inv = 1 / Math.sqrt(s);
    for (let j = 0; j < dim; j++) values[r * dim + j] *= inv;
  }
  return values;
}

export function randomUnitRows(rows: number, dim: number, seed: number): Float32Array {
  const g = gaussian(rng(seed));
  const out = new Float32Array(rows * dim);
  for (let i = 0; i < out.length; i++) out[i] = g();
  return normalizeRows(out, dim);
}

/** A smooth walk on the sphere: each step adds noise of relative size `step` and renormalizes. */
export function sphereWalk(rows: number, dim: number, step: number, random: () => number, start?: Float32Array): Float32Array {
  const g = gaussian(random);
  const out = new Float32Array(rows * dim);
  const scale = step / Math.sqrt(dim);
  if (start) out.set(start.subarray(0, dim));
  else for (let j = 0; j < dim; j++) out[j] = g();
  normalizeRows(out.subarray(0, dim), dim);
  for (let r = 1; r < rows; r++) {
    for (let j = 0; j < dim; j++) out[r * dim + j] = out[(r - 1) * dim + j] + scale * g();
    normalizeRows(out.subarray(r * dim, (r + 1) * dim), dim);
  }
  return out;
}

/**
 * Slice-like volumes: slice t of volume v = normalize(atlas[o_v + t] + 0.5·patient_v + 0.5·noise_v[t]),
 * where the atlas is one smooth walk shared by all volumes (the anatomy along z), o_v a random start
 * (volumes cover different z ranges), patient_v a fixed random direction and noise_v another smooth walk.
 * Adjacent slices come out near-duplicates (cos ≈ 0.99) and slices at the same level of different
 * volumes similar (cos ≈ 0.6), so a query slice has many close competitors, as with real CT.
 */
export class SliceLikeGenerator {
  private readonly atlas: Float32Array;
  private readonly atlasRows: number;

  constructor(
    readonly dim: number,
    readonly slicesPerVolume: number,
    private readonly seed: number,
  ) {
    this.atlasRows = slicesPerVolume * 2;
    this.atlas = sphereWalk(this.atlasRows, dim, 0.15, rng(seed));
  }

  /** Volume `index` (deterministic in seed and index), `rows` slices (default slicesPerVolume). */
  volume(index: number, rows: number = this.slicesPerVolume): Float32Array {
    const random = rng(this.seed * 7919 + index * 104729 + 1);
    const dim = this.dim;
    const offset = Math.floor(random() * Math.max(1, this.atlasRows - rows));
    const patient = randomUnitRows(1, dim, Math.floor(random() * 2 ** 31));
    const noise = sphereWalk(rows, dim, 0.2, random);
    const out = new Float32Array(rows * dim);
    for (let r = 0; r < rows; r++) {
      const a = ((offset + r) % this.atlasRows) * dim;
      for (let j = 0; j < dim; j++) out[r * dim + j] = this.atlas[a + j] + 0.5 * patient[j] + 0.5 * noise[r * dim + j];
    }
    return normalizeRows(out, dim);
  }
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export interface TestVolume {
  record: VolumeRecord;
  vectors: VolumeVectors;
}

/** A volume record + vectors the store accepts; slice k at z = 2.5·k − 100 mm. */
export function testVolume(
  name: string,
  vectors: Float32Array,
  dim: number,
  extra: Partial<Pick<VolumeRecord, 'modality' | 'bodyPart' | 'labels'>> & { firstSlice?: number } = {},
): TestVolume {
  const rows = vectors.length / dim;
  const sha = sha256Hex(`content:${name}`);
  const volumeId = `vol-${name}`;
  const first = extra.firstSlice ?? 0;
  const sliceIndices = Int32Array.from({ length: rows }, (_, i) => first + i);
  const zMm = Float64Array.from(sliceIndices, (k) => 2.5 * k - 100);
  return {
    record: {
      volumeId,
      sourcePath: `/data/${name}.nii.gz`,
      contentSha256: sha,
      dims: [64, 64, rows + first],
      spacingMm: [0.8, 0.8, 2.5],
      affineRas: [-0.8, 0, 0, 25, 0, -0.8, 0, 25, 0, 0, 2.5, -100, 0, 0, 0, 1],
      modality: extra.modality ?? 'CT',
      ...(extra.bodyPart !== undefined ? { bodyPart: extra.bodyPart } : {}),
      labels: extra.labels ?? {},
      sliceCount: rows,
      addedAt: '2025-01-01T00:00:00.000Z',
    },
    vectors: { volumeId, dim, sliceIndices, zMm, vectors },
  };
}

export interface RefHit {
  row: number;
  similarity: number;
}

/** Brute-force top-k by inner product in float64 over rows where `allowed(row)`; ties by lower row. */
export function bruteForceTopK(queries: Float32Array, data: Float32Array, dim: number, k: number, allowed: (row: number) => boolean = () => true): RefHit[][] {
  const out: RefHit[][] = [];
  const rows = data.length / dim;
  for (let q = 0; q < queries.length / dim; q++) {
    const all: RefHit[] = [];
    for (let r = 0; r < rows; r++) {
      if (!allowed(r)) continue;
      let s = 0;
      for (let j = 0; j < dim; j++) s += queries[q * dim + j] * data[r * dim + j];
      all.push({ row: r, similarity: s });
    }
    all.sort((a, b) => b.similarity - a.similarity || a.row - b.row);
    out.push(all.slice(0, k));
  }
  return out;
}
