import type { Mat4, Vec3 } from '../io/volume.js';
import { spacingFromAffine } from '../io/orientation.js';
import type { Random } from './random.js';

/**
 * The development benchmark's edits of a real scan: crops, in-plane and slab averaging (each keeps the
 * affine exact), lesions placed inside the liver and drawn with soft edges and texture, noise.
 */

/** A scan on its grid with a label map: 0 other, 1 liver, 2 tumour. */
export interface Scan {
  image: Float32Array;
  labels: Uint8Array;
  dims: Vec3;
  affineRas: Mat4;
}

export interface LesionRequest {
  /** Diameters along i, j, k (patient L–R, A–P, I–S) in mm; one number for a sphere. */
  diameterMm: number | Vec3;
  /** How much darker than the liver's median (HU); default 50. */
  contrastHu?: number;
}

export interface PlacedLesion {
  requestedDiametersMm: Vec3;
  /** Largest requested diameter: what the measured size should match. */
  requestedDiameterMm: number;
  centreVoxel: Vec3;
  contrastHu: number;
}

// ---------------------------------------------------------------------------------------------------
// Grid operations (crop, in-plane box average, slab average); each keeps the affine exact
// ---------------------------------------------------------------------------------------------------

/** Affine of a grid whose voxel (i', j', k') sits at old voxel (offset + scale·(i', j', k')). */
export function resampledAffine(affine: Mat4, scale: Vec3, offset: Vec3): Mat4 {
  const out = affine.slice();
  for (let row = 0; row < 3; row++) {
    for (let c = 0; c < 3; c++) out[4 * row + c] = affine[4 * row + c] * scale[c];
    out[4 * row + 3] = affine[4 * row + 3] + affine[4 * row] * offset[0] + affine[4 * row + 1] * offset[1] + affine[4 * row + 2] * offset[2];
  }
  return out;
}

export function cropSlices(scan: Scan, first: number, end: number): Scan {
  const [ni, nj] = scan.dims;
  const per = ni * nj;
  return {
    image: scan.image.slice(first * per, end * per),
    labels: scan.labels.slice(first * per, end * per),
    dims: [ni, nj, end - first],
    affineRas: resampledAffine(scan.affineRas, [1, 1, 1], [0, 0, first]),
  };
}

/**
 * Averages f×f×g blocks (in-plane factor f, slab g): images by the mean, labels by coverage — tumour when
 * at least half the block is tumour, else liver when at least half is liver or tumour. Trailing voxels
 * that do not fill a block are dropped.
 */
export function blockAverage(scan: Scan, f: number, g: number): Scan {
  if (f === 1 && g === 1) return scan;
  const [ni, nj, nk] = scan.dims;
  const [mi, mj, mk] = [Math.floor(ni / f), Math.floor(nj / f), Math.floor(nk / g)];
  const image = new Float32Array(mi * mj * mk);
  const labels = new Uint8Array(mi * mj * mk);
  const blockSize = f * f * g;
  for (let k = 0; k < mk; k++) {
    for (let j = 0; j < mj; j++) {
      for (let i = 0; i < mi; i++) {
        let sum = 0;
        let tumour = 0;
        let liver = 0;
        for (let dk = 0; dk < g; dk++) {
          for (let dj = 0; dj < f; dj++) {
            const base = i * f + ni * (j * f + dj + nj * (k * g + dk));
            for (let di = 0; di < f; di++) {
              sum += scan.image[base + di];
              const l = scan.labels[base + di];
              if (l === 2) tumour++;
              else if (l === 1) liver++;
            }
          }
        }
        const o = i + mi * (j + mj * k);
        image[o] = sum / blockSize;
        labels[o] = 2 * tumour >= blockSize ? 2 : 2 * (tumour + liver) >= blockSize ? 1 : 0;
      }
    }
  }
  return {
    image,
    labels,
    dims: [mi, mj, mk],
    affineRas: resampledAffine(scan.affineRas, [f, f, g], [(f - 1) / 2, (f - 1) / 2, (g - 1) / 2]),
  };
}

// ---------------------------------------------------------------------------------------------------
// Lesions
// ---------------------------------------------------------------------------------------------------

/** Squared Euclidean distance transform along one line (Felzenszwalb & Huttenlocher), sites `spacing`
 * apart. f: input squared distances (0 at features, 1e20 elsewhere). */
export function edt1d(f: Float64Array, n: number, spacing: number, out: Float64Array, v: Int32Array, z: Float64Array): void {
  const meet = (q: number, r: number): number => {
    const xq = q * spacing;
    const xr = r * spacing;
    return (f[q] + xq * xq - (f[r] + xr * xr)) / (2 * (xq - xr));
  };
  let k = 0;
  v[0] = 0;
  z[0] = -Infinity;
  z[1] = Infinity;
  for (let q = 1; q < n; q++) {
    let s = meet(q, v[k]);
    // z[0] = −∞ stops the loop at k = 0.
    while (s <= z[k]) {
      k--;
      s = meet(q, v[k]);
    }
    k++;
    v[k] = q;
    z[k] = s;
    z[k + 1] = Infinity;
  }
  k = 0;
  for (let q = 0; q < n; q++) {
    const x = q * spacing;
    while (z[k + 1] < x) k++;
    const d = x - v[k] * spacing;
    out[q] = d * d + f[v[k]];
  }
}

/**
 * Distance (mm) from each voxel inside `inside` to the nearest voxel centre outside it, the grid's
 * outside counting as outside (so a lesion that fits never reaches the scanned slab's ends).
 */
export function insideDistanceMm(inside: Uint8Array, dims: Vec3, spacingMm: Vec3): Float64Array {
  const [ni, nj, nk] = dims.map((d) => d + 2);
  const BIG = 1e20;
  const d = new Float64Array(ni * nj * nk).fill(0);
  for (let k = 1; k < nk - 1; k++) {
    for (let j = 1; j < nj - 1; j++) {
      for (let i = 1; i < ni - 1; i++) {
        if (inside[i - 1 + dims[0] * (j - 1 + dims[1] * (k - 1))]) d[i + ni * (j + nj * k)] = BIG;
      }
    }
  }
  const longest = Math.max(ni, nj, nk);
  const f = new Float64Array(longest);
  const out = new Float64Array(longest);
  const v = new Int32Array(longest);
  const z = new Float64Array(longest + 1);
  const pass = (n: number, count: number, indexOf: (line: number, t: number) => number, spacing: number): void => {
    for (let line = 0; line < count; line++) {
      for (let t = 0; t < n; t++) f[t] = d[indexOf(line, t)];
      edt1d(f, n, spacing, out, v, z);
      for (let t = 0; t < n; t++) d[indexOf(line, t)] = out[t];
    }
  };
  pass(ni, nj * nk, (line, t) => t + ni * line, spacingMm[0]);
  pass(nj, ni * nk, (line, t) => (line % ni) + ni * (t + nj * Math.floor(line / ni)), spacingMm[1]);
  pass(nk, ni * nj, (line, t) => line + ni * nj * t, spacingMm[2]);
  const result = new Float64Array(dims[0] * dims[1] * dims[2]);
  for (let k = 0; k < dims[2]; k++) {
    for (let j = 0; j < dims[1]; j++) {
      for (let i = 0; i < dims[0]; i++) result[i + dims[0] * (j + dims[1] * k)] = Math.sqrt(d[i + 1 + ni * (j + 1 + nj * (k + 1))]);
    }
  }
  return result;
}

const EDGE_TAU_MM = 0.6;
const LESION_TEXTURE_SD_HU = 8;
const DEFAULT_CONTRAST_HU = 50;

export function diametersOf(request: LesionRequest): Vec3 {
  const d = typeof request.diameterMm === 'number' ? [request.diameterMm, request.diameterMm, request.diameterMm] : request.diameterMm;
  if (d.length !== 3 || d.some((x) => !(x > 0))) throw new RangeError(`lesion diameter ${String(request.diameterMm)} must be positive`);
  return [d[0], d[1], d[2]];
}

export function median(values: Float32Array | number[]): number {
  const sorted = Float64Array.from(values).sort();
  return sorted.length === 0 ? NaN : sorted[Math.floor(sorted.length / 2)];
}

/**
 * Places the lesions wholly inside the liver (label 1): every voxel within the ellipsoid grown by a
 * margin of 1.5 voxels (so the soft edge stays in liver too) must be liver, and each lesion keeps a gap
 * to the ones already placed so that it stays its own component. Candidate centres are drawn at random
 * among liver voxels whose distance to non-liver is at least the smallest grown semi-axis (a necessary
 * condition, cheap to test), then checked exactly; an ellipsoid may also be turned by 90° in plane.
 * Returns undefined when a lesion does not fit.
 */
export function placeLesions(scan: Scan, requests: readonly LesionRequest[], random: Random): PlacedLesion[] | undefined {
  if (requests.length === 0) return [];
  const spacing = spacingFromAffine(scan.affineRas);
  const liver = new Uint8Array(scan.labels.length);
  for (let p = 0; p < liver.length; p++) liver[p] = scan.labels[p] === 1 ? 1 : 0;
  const distance = insideDistanceMm(liver, scan.dims, spacing);
  const marginMm = 1.5 * Math.max(...spacing);
  const [ni, nj, nk] = scan.dims;
  const placed: PlacedLesion[] = [];
  const fits = (c: Vec3, d: Vec3): boolean => {
    const grown = d.map((x) => x / 2 + marginMm) as Vec3;
    const reach = grown.map((r, a) => Math.ceil(r / spacing[a]));
    for (let k = c[2] - reach[2]; k <= c[2] + reach[2]; k++) {
      const z = ((k - c[2]) * spacing[2]) / grown[2];
      for (let j = c[1] - reach[1]; j <= c[1] + reach[1]; j++) {
        const y = ((j - c[1]) * spacing[1]) / grown[1];
        for (let i = c[0] - reach[0]; i <= c[0] + reach[0]; i++) {
          const x = ((i - c[0]) * spacing[0]) / grown[0];
          if (x * x + y * y + z * z > 1) continue;
          if (i < 0 || j < 0 || k < 0 || i >= ni || j >= nj || k >= nk) return false;
          if (liver[i + ni * (j + nj * k)] === 0) return false;
        }
      }
    }
    return true;
  };
  // Largest first: the big one has the fewest places to go.
  const order = requests.map((r, n) => ({ r, n, d: diametersOf(r) })).sort((a, b) => Math.max(...b.d) - Math.max(...a.d));
  const byRequest: PlacedLesion[] = new Array<PlacedLesion>(requests.length);
  for (const { r, n, d } of order) {
    const needMm = Math.min(...d) / 2 + marginMm;
    const candidates: number[] = [];
    for (let p = 0; p < distance.length; p++) if (distance[p] >= needMm) candidates.push(p);
    const orientations: Vec3[] = d[0] === d[1] ? [d] : [d, [d[1], d[0], d[2]]];
    let chosen: { c: Vec3; d: Vec3 } | undefined;
    for (let attempt = 0; attempt < 3000 && candidates.length > 0 && !chosen; attempt++) {
      const p = candidates[Math.floor(random.next() * candidates.length)];
      const c: Vec3 = [p % ni, Math.floor(p / ni) % nj, Math.floor(p / (ni * nj))];
      const clear = placed.every((o) => {
        const gap = Math.hypot(...([0, 1, 2].map((a) => (c[a] - o.centreVoxel[a]) * spacing[a])));
        return gap >= Math.max(...d) / 2 + o.requestedDiameterMm / 2 + 2 * Math.max(...spacing) + 4 * EDGE_TAU_MM;
      });
      if (!clear) continue;
      const orientation = orientations.find((o) => fits(c, o));
      if (orientation) chosen = { c, d: orientation };
    }
    if (!chosen) return undefined;
    const lesion: PlacedLesion = { requestedDiametersMm: chosen.d, requestedDiameterMm: Math.max(...d), centreVoxel: chosen.c, contrastHu: r.contrastHu ?? DEFAULT_CONTRAST_HU };
    placed.push(lesion);
    byRequest[n] = lesion;
  }
  return byRequest;
}

/**
 * Draws the lesions into image and labels: label 2 where the voxel centre is inside the ellipsoid; the
 * image blends towards (liver median − contrast + texture) with a logistic edge (τ = 0.6 mm, ~2.6 mm from
 * 10 % to 90 %), averaged over sub-slices for thick slabs as the scanner's slice profile would.
 */
export function drawLesions(scan: Scan, lesions: readonly PlacedLesion[], random: Random): void {
  if (lesions.length === 0) return;
  const spacing = spacingFromAffine(scan.affineRas);
  const [ni, nj] = scan.dims;
  const liverValues: number[] = [];
  for (let p = 0; p < scan.labels.length; p++) if (scan.labels[p] === 1) liverValues.push(scan.image[p]);
  const liverHu = median(liverValues);
  const subSlices = Math.max(1, Math.round(spacing[2] / 0.8));
  for (const lesion of lesions) {
    const radii = lesion.requestedDiametersMm.map((x) => x / 2) as Vec3;
    const reach = radii.map((r, a) => Math.ceil((r + 6 * EDGE_TAU_MM) / spacing[a]) + 1);
    const lo = lesion.centreVoxel.map((c, a) => Math.max(0, c - reach[a]));
    const hi = lesion.centreVoxel.map((c, a) => Math.min(scan.dims[a] - 1, c + reach[a]));
    const lesionHu = liverHu - lesion.contrastHu;
    const weightAt = (x: number, y: number, z: number): number => {
      const rho = Math.sqrt((x / radii[0]) ** 2 + (y / radii[1]) ** 2 + (z / radii[2]) ** 2);
      if (rho === 0) return 1;
      // Signed distance to the surface along the ray from the centre.
      const dMm = Math.hypot(x, y, z) * (1 - 1 / rho);
      return 1 / (1 + Math.exp(dMm / EDGE_TAU_MM));
    };
    for (let k = lo[2]; k <= hi[2]; k++) {
      for (let j = lo[1]; j <= hi[1]; j++) {
        for (let i = lo[0]; i <= hi[0]; i++) {
          const x = (i - lesion.centreVoxel[0]) * spacing[0];
          const y = (j - lesion.centreVoxel[1]) * spacing[1];
          const zc = (k - lesion.centreVoxel[2]) * spacing[2];
          let w = 0;
          for (let s = 0; s < subSlices; s++) w += weightAt(x, y, zc + ((s + 0.5) / subSlices - 0.5) * spacing[2]);
          w /= subSlices;
          const p = i + ni * (j + nj * k);
          if ((x / radii[0]) ** 2 + (y / radii[1]) ** 2 + (zc / radii[2]) ** 2 <= 1) scan.labels[p] = 2;
          if (w < 1e-4) continue;
          scan.image[p] = (1 - w) * scan.image[p] + w * (lesionHu + LESION_TEXTURE_SD_HU * random.gaussian());
        }
      }
    }
  }
}

export function addNoise(scan: Scan, sigmaHu: number, random: Random): void {
  if (!(sigmaHu > 0)) return;
  for (let p = 0; p < scan.image.length; p++) scan.image[p] += sigmaHu * random.gaussian();
}

export function toInt16(image: Float32Array): Int16Array {
  const out = new Int16Array(image.length);
  for (let p = 0; p < image.length; p++) out[p] = Math.max(-1024, Math.min(3071, Math.round(image[p])));
  return out;
}
