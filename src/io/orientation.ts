import type { Mat4, Vec3, VoxelArray } from './volume.js';

/**
 * Bringing any stored voxel order onto the canonical grid (i → Left, j → Posterior, k → Superior).
 * Only axis permutations and flips are used, chosen from the affine, so no voxel value ever changes;
 * an oblique affine keeps its obliquity (the closest canonical axes are picked, as nibabel does).
 */

/** For each stored axis: which world axis (0 x, 1 y, 2 z of RAS+) it runs along, and whether it points
 * towards the positive end of that world axis. */
export interface AxisMapping {
  worldAxis: [number, number, number];
  positive: [boolean, boolean, boolean];
}

const CODES: readonly [string, string][] = [
  ['L', 'R'],
  ['P', 'A'],
  ['I', 'S'],
];

/** Canonical directions in RAS+: i towards Left (negative x), j towards Posterior (negative y), k Superior. */
const CANONICAL_POSITIVE: readonly boolean[] = [false, false, true];

export const CANONICAL_ORIENTATION = 'LPS';

/** Greedy assignment of voxel axes to world axes by largest absolute direction cosine (as nibabel's
 * io_orientation), which is unique even for strongly oblique affines. */
export function axisMapping(affineRas: Mat4): AxisMapping {
  const worldAxis: [number, number, number] = [-1, -1, -1];
  const positive: [boolean, boolean, boolean] = [true, true, true];
  const usedWorld = [false, false, false];
  for (let round = 0; round < 3; round++) {
    let best = -1;
    let bestVoxel = -1;
    let bestWorld = -1;
    for (let v = 0; v < 3; v++) {
      if (worldAxis[v] !== -1) continue;
      const norm = Math.hypot(affineRas[v], affineRas[4 + v], affineRas[8 + v]) || 1;
      for (let w = 0; w < 3; w++) {
        if (usedWorld[w]) continue;
        const cosine = Math.abs(affineRas[4 * w + v]) / norm;
        if (cosine > best) {
          best = cosine;
          bestVoxel = v;
          bestWorld = w;
        }
      }
    }
    worldAxis[bestVoxel] = bestWorld;
    usedWorld[bestWorld] = true;
    positive[bestVoxel] = affineRas[4 * bestWorld + bestVoxel] >= 0;
  }
  return { worldAxis, positive };
}

/** Axis codes of a stored voxel order, e.g. 'LAS' for a typical dcm2niix conversion. */
export function orientationCode(affineRas: Mat4): string {
  const { worldAxis, positive } = axisMapping(affineRas);
  return [0, 1, 2].map((v) => CODES[worldAxis[v]][positive[v] ? 1 : 0]).join('');
}

/** Largest angle in degrees between a voxel axis and the world axis it was mapped to. */
export function obliquityDeg(affineRas: Mat4): number {
  const { worldAxis } = axisMapping(affineRas);
  let worst = 0;
  for (let v = 0; v < 3; v++) {
    const norm = Math.hypot(affineRas[v], affineRas[4 + v], affineRas[8 + v]) || 1;
    const cosine = Math.min(1, Math.abs(affineRas[4 * worldAxis[v] + v]) / norm);
    worst = Math.max(worst, (Math.acos(cosine) * 180) / Math.PI);
  }
  return worst;
}

export function spacingFromAffine(affineRas: Mat4): Vec3 {
  return [0, 1, 2].map((v) => Math.hypot(affineRas[v], affineRas[4 + v], affineRas[8 + v])) as Vec3;
}

export interface Canonicalized<T extends VoxelArray | Uint8Array> {
  data: T;
  dims: Vec3;
  affineRas: Mat4;
}

export interface CanonicalOptions {
  /** The caller owns `data` and no longer needs it in stored order: axis flips without an axis swap (the
   * usual LAS/RAS/LPS files) are then done in place, with no second copy of the volume: a fresh 62 MB
   * array cost about 90 ms on the 2-core machine, mostly first-touch page faults; the flips take 24. */
  inPlace?: boolean;
}

/**
 * Reorders `data` (stored axes 0 fastest) onto the canonical grid and returns the matching affine.
 * Returns the input array itself when it is already canonical, so the common DICOM case costs nothing.
 * Written by hand: a strided copy with a contiguous inner run is all it takes, and no library offers it
 * for typed arrays without a full ndarray dependency.
 */
export function toCanonical<T extends VoxelArray | Uint8Array>(
  data: T,
  storedDims: Vec3,
  storedAffineRas: Mat4,
  options: CanonicalOptions = {},
): Canonicalized<T> {
  const { worldAxis, positive } = axisMapping(storedAffineRas);
  const storedStride = [1, storedDims[0], storedDims[0] * storedDims[1]];
  // For each canonical axis c: the stored axis feeding it and whether it is read backwards.
  const fromAxis = [0, 0, 0];
  const flip = [false, false, false];
  for (let v = 0; v < 3; v++) {
    fromAxis[worldAxis[v]] = v;
    flip[worldAxis[v]] = positive[v] !== CANONICAL_POSITIVE[worldAxis[v]];
  }
  const dims = fromAxis.map((v) => storedDims[v]) as Vec3;

  const affineRas = storedAffineRas.slice();
  for (let c = 0; c < 3; c++) {
    const v = fromAxis[c];
    const sign = flip[c] ? -1 : 1;
    for (let row = 0; row < 3; row++) {
      affineRas[4 * row + c] = sign * storedAffineRas[4 * row + v];
    }
  }
  for (let c = 0; c < 3; c++) {
    if (!flip[c]) continue;
    const v = fromAxis[c];
    for (let row = 0; row < 3; row++) affineRas[4 * row + 3] += storedAffineRas[4 * row + v] * (storedDims[v] - 1);
  }

  const sameAxes = fromAxis[0] === 0 && fromAxis[1] === 1 && fromAxis[2] === 2;
  if (sameAxes && !flip[0] && !flip[1] && !flip[2]) return { data, dims, affineRas };
  if (sameAxes && options.inPlace) {
    flipInPlace(data, dims, flip);
    return { data, dims, affineRas };
  }

  const step = [0, 1, 2].map((c) => (flip[c] ? -1 : 1) * storedStride[fromAxis[c]]);
  let start = 0;
  for (let c = 0; c < 3; c++) if (flip[c]) start += (storedDims[fromAxis[c]] - 1) * storedStride[fromAxis[c]];

  const out = new (data.constructor as new (length: number) => T)(data.length);
  const [ni, nj, nk] = dims;
  let o = 0;
  for (let k = 0; k < nk; k++) {
    const baseK = start + k * step[2];
    for (let j = 0; j < nj; j++) {
      const base = baseK + j * step[1];
      if (step[0] === 1) {
        out.set(data.subarray(base, base + ni) as ArrayLike<number>, o);
        o += ni;
      } else {
        const s0 = step[0];
        for (let i = 0, p = base; i < ni; i++, p += s0) out[o++] = data[p];
      }
    }
  }
  return { data: out, dims, affineRas };
}

/** Reverses the flagged axes of `data` (dims ni × nj × nk, i fastest) in place: the flips commute, so
 * each is done on its own, by swapping whole rows or slices (native copies) or reversing rows. */
function flipInPlace(data: VoxelArray | Uint8Array, dims: Vec3, flip: readonly boolean[]): void {
  const [ni, nj, nk] = dims;
  const plane = ni * nj;
  const swap = (a: number, b: number, length: number, scratch: VoxelArray | Uint8Array): void => {
    scratch.set(data.subarray(a, a + length) as ArrayLike<number>);
    data.copyWithin(a, b, b + length);
    data.set(scratch as ArrayLike<number>, b);
  };
  const scratchOf = (length: number): VoxelArray | Uint8Array => new (data.constructor as new (length: number) => VoxelArray | Uint8Array)(length);
  if (flip[0]) for (let row = 0; row < nj * nk; row++) data.subarray(row * ni, (row + 1) * ni).reverse();
  if (flip[1]) {
    const scratch = scratchOf(ni);
    for (let k = 0; k < nk; k++) for (let j = 0; j < nj >> 1; j++) swap(k * plane + j * ni, k * plane + (nj - 1 - j) * ni, ni, scratch);
  }
  if (flip[2]) {
    const scratch = scratchOf(plane);
    for (let k = 0; k < nk >> 1; k++) swap(k * plane, (nk - 1 - k) * plane, plane, scratch);
  }
}

/** Applies a row-major 4×4 affine to a voxel coordinate. */
export function applyAffine(affine: Mat4, i: number, j: number, k: number): Vec3 {
  return [
    affine[0] * i + affine[1] * j + affine[2] * k + affine[3],
    affine[4] * i + affine[5] * j + affine[6] * k + affine[7],
    affine[8] * i + affine[9] * j + affine[10] * k + affine[11],
  ];
}
