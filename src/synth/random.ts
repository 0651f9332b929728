/**
 * Seeded randomness for phantoms. Math.random cannot be seeded, and a phantom must be the same voxels
 * for the same seed on every machine and Node version, so the generator is spelled out here.
 */

export interface Random {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number;
  /** Uniform in [centre − halfWidth, centre + halfWidth), scaled by `amount` (0 gives `centre`). */
  jitter(centre: number, halfWidth: number, amount?: number): number;
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number;
  /** Standard normal (mean 0, sd 1). */
  gaussian(): number;
}

/**
 * An independent stream per (seed, purpose): anatomy, lesions and noise draw from separate streams, so
 * changing the noise level or adding a lesion does not move the organs of the same seed.
 */
export function randomStream(seed: number | string, purpose: string): Random {
  return mulberry32(hash32(`${String(seed)}/${purpose}`));
}

/** FNV-1a over UTF-16 code units, then a murmur-style finalizer so nearby seeds give unrelated streams. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let n = 0; n < text.length; n++) {
    h ^= text.charCodeAt(n);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** mulberry32 straight from a numeric seed, uniform in [0, 1): tiny, fast, and good enough for noise,
 * jitter and data splits (not for cryptography). */
export function uniformStream(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mulberry32(seed: number): Random {
  const next = uniformStream(seed);
  let spare: number | undefined;
  return {
    next,
    uniform: (lo, hi) => lo + (hi - lo) * next(),
    jitter: (centre, halfWidth, amount = 1) => centre + amount * halfWidth * (2 * next() - 1),
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    gaussian: () => {
      // Box–Muller gives two normals per pair of uniforms; keep the second for the next call.
      if (spare !== undefined) {
        const value = spare;
        spare = undefined;
        return value;
      }
      const u = 1 - next(); // (0, 1]: log(0) would be −∞
      const v = next();
      const radius = Math.sqrt(-2 * Math.log(u));
      spare = radius * Math.sin(2 * Math.PI * v);
      return radius * Math.cos(2 * Math.PI * v);
    },
  };
}
