/** Seeded randomness for property tests: the same cases on every run and machine. */
import { uniformStream } from '../../src/synth/random.js';

export type Rng = () => number;

/** mulberry32, the generator the phantoms and learned spaces use. */
export const seededRng: (seed: number) => () => number = uniformStream;

export function randomInt(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

/** Standard normal by Box–Muller. */
export function gaussian(rng: Rng): number {
  const u = 1 - rng();
  const v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** `rows` L2-normalized rows of Gaussian directions, row-major. */
export function randomUnitRows(rng: Rng, rows: number, dim: number): Float32Array {
  const out = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let norm = 0;
    const row = new Float64Array(dim);
    for (let j = 0; j < dim; j++) {
      row[j] = gaussian(rng);
      norm += row[j] * row[j];
    }
    norm = Math.sqrt(norm);
    for (let j = 0; j < dim; j++) out[r * dim + j] = row[j] / norm;
  }
  return out;
}

/** A shuffled copy (Fisher–Yates). */
export function shuffled<T>(rng: Rng, items: readonly T[]): T[] {
  const out = items.slice();
  for (let n = out.length - 1; n > 0; n--) {
    const m = Math.floor(rng() * (n + 1));
    [out[n], out[m]] = [out[m], out[n]];
  }
  return out;
}
