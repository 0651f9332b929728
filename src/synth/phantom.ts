import type { Mat4, Vec3, Volume } from '../io/volume.js';
import { lesionGroupOf } from '../labels/lesion-groups.js';
import {
  COVERAGES,
  TISSUE,
  TISSUE_COUNT,
  TISSUE_LABEL,
  makePatient,
  sliceModel,
  tissueAtPoint,
  zExtentMm,
  type CoverageName,
  type PatientModel,
  type TissueName,
} from './anatomy.js';
import { LABEL, ORGAN_NAMES, type OrganName } from './phantom-labels.js';
import { randomStream } from './random.js';

/**
 * CT-like phantom volumes with known anatomy, for the demo (which must run without real data) and for
 * tests that need exact ground truth: organ z-extents for localization, lesion sizes for 3D-MIR's
 * lesion groups. Deterministic from the seed.
 */

export interface LesionSpec {
  /** Diameter in mm: one number for a sphere, or [x, y, z] for an axis-aligned ellipsoid. */
  diameterMm: number | Vec3;
  /** Centre in patient RAS+ mm. Default: a random place where the whole lesion lies inside the liver
   * and inside the scanned z range, apart from the other lesions. */
  centreMm?: Vec3;
  /** How much darker than the liver, HU (default 45: a hypodense metastasis in portal-venous phase). */
  contrastHu?: number;
}

export interface PhantomOptions {
  /** Any integer or string; the same seed and options give the same voxels. */
  seed: number | string;
  /** Voxels along i and j (default [128, 128]). */
  matrix?: [number, number];
  /** Voxel size in mm along i, j, k (default [3, 3, 2.5]). */
  spacingMm?: Vec3;
  /** Which part of the body is scanned (default 'abdomen'); a named protocol scales with the patient's
   * height, an explicit [zStartMm, zEndMm] does not. */
  coverage?: CoverageName | [number, number];
  lesions?: LesionSpec[];
  /** Standard deviation of the gaussian image noise, HU (default 10). */
  noiseSigmaHu?: number;
  /** Patient-to-patient variation: 0 the reference patient, 1 (default) the usual spread. */
  variation?: number;
}

export interface OrganTruth {
  name: OrganName;
  label: number;
  /** The organ's HU before noise. Bone is one value for all bones. */
  hu: number;
  /** Whether any voxel of the organ is in the volume. */
  present: boolean;
  /** Whether the organ's whole z-extent lies within the scanned range. */
  complete: boolean;
  /** The organ's z-extent (patient mm) from its exact shape, clipped to the scanned slab
   * [first slice centre − half a slice, last slice centre + half a slice]; null when absent. */
  zRangeMm: [number, number] | null;
  /** First and last slice index k holding the label (before a higher-priority organ took some voxels,
   * the exact shape may reach up to one slice further). */
  sliceRange: [number, number] | null;
  voxelCount: number;
  volumeMl: number;
  /** Mean voxel position (i, j, k) of the label; null when absent. */
  centroidVoxel: Vec3 | null;
}

export interface LesionTruth {
  index: number;
  centreMm: Vec3;
  /** Fractional voxel coordinates (i, j, k) of the centre. */
  centreVoxel: Vec3;
  /** Diameters along patient x, y, z (mm). */
  diametersMm: Vec3;
  /** Largest diameter (mm): the size 3D-MIR's lesion groups use. */
  diameterMm: number;
  hu: number;
  contrastHu: number;
  zRangeMm: [number, number];
  sliceRange: [number, number] | null;
  voxelCount: number;
  /** Exact ellipsoid volume (the voxel count × voxel volume approximates it). */
  volumeMl: number;
}

export interface PhantomTruth {
  schema: 'mir3d-phantom-truth/1';
  seed: number | string;
  coverage: string;
  dims: Vec3;
  spacingMm: Vec3;
  /** z (mm) of the centres of the first and last slices. */
  zRangeMm: [number, number];
  noiseSigmaHu: number;
  patient: { sizeScale: number; heightScale: number; fatThicknessMm: number; centreMm: [number, number] };
  labelCodes: typeof LABEL;
  organs: OrganTruth[];
  lesions: LesionTruth[];
  /** 3D-MIR labels from the lesions' requested sizes with the liver rule (DESIGN.md, Evaluation):
   * −1 no tumour; 1 one tumour < 20 mm; 2 one tumour ≥ 20 mm, or several with the largest ≤ 50 mm;
   * 3 largest > 50 mm. */
  cancerFlag: 0 | 1;
  lesionGroup: -1 | 1 | 2 | 3;
}

export interface Phantom {
  /** CT in HU, int16, canonical orientation. */
  image: Volume;
  /** Label codes (labels.ts) on the same grid, int16 in memory (written as uint8). */
  labels: Volume;
  truth: PhantomTruth;
}

const DEFAULT_MATRIX: [number, number] = [128, 128];
const DEFAULT_SPACING_MM: Vec3 = [3, 3, 2.5];
const DEFAULT_CONTRAST_HU = 45;
/** Value outside the scanner's circular reconstruction field, as most CT scanners store it. */
const OUTSIDE_FOV_HU = -1024;
const MIN_HU = -1024;
const MAX_HU = 3071;

interface PlacedLesion {
  centreMm: Vec3;
  radiiMm: Vec3;
  contrastHu: number;
}

export function generatePhantom(options: PhantomOptions): Phantom {
  const matrix = options.matrix ?? DEFAULT_MATRIX;
  const spacingMm = options.spacingMm ?? DEFAULT_SPACING_MM;
  const noiseSigmaHu = options.noiseSigmaHu ?? 10;
  if (matrix.some((n) => !Number.isInteger(n) || n < 8 || n > 2048)) throw new RangeError(`matrix ${matrix.join('×')} must be integers 8..2048`);
  if (spacingMm.some((s) => !(s > 0 && s < 50))) throw new RangeError(`spacing ${spacingMm.join('×')} mm must be positive and below 50 mm`);
  if (!(noiseSigmaHu >= 0)) throw new RangeError(`noise sigma ${noiseSigmaHu} HU must be ≥ 0`);

  const patient = makePatient(randomStream(options.seed, 'anatomy'), options.variation ?? 1);
  const coverageName = Array.isArray(options.coverage) ? 'custom' : (options.coverage ?? 'abdomen');
  const [zFromMm, zToMm] = Array.isArray(options.coverage)
    ? options.coverage
    : COVERAGES[options.coverage ?? 'abdomen'].map((z) => z * patient.heightScale);
  if (!(zToMm > zFromMm)) throw new RangeError(`coverage ${zFromMm}..${zToMm} mm is empty`);
  const sliceCount = Math.floor((zToMm - zFromMm) / spacingMm[2]) + 1;
  if (sliceCount > 2048) throw new RangeError(`${sliceCount} slices: coverage too long for the slice spacing`);

  const dims: Vec3 = [matrix[0], matrix[1], sliceCount];
  const affineRas = canonicalAffine(dims, spacingMm, zFromMm);
  const geometry = { dims, spacingMm, affineRas };
  const lesions = placeLesions(patient, options, geometry);

  const { image, labels, stats } = render(patient, lesions, geometry, noiseSigmaHu, options.seed);
  const truth = describe(patient, lesions, stats, geometry, { seed: options.seed, coverageName, noiseSigmaHu });
  const source = (storedDataType: string): Volume['source'] => ({
    path: `phantom:${String(options.seed)}`,
    format: 'generated',
    orientation: 'LPS',
    storedDataType,
  });
  return {
    image: { data: image, dims, spacingMm: [...spacingMm], affineRas, modality: 'CT', source: source('int16'), corrections: [] },
    labels: { data: labels, dims, spacingMm: [...spacingMm], affineRas: affineRas.slice(), modality: 'label', source: source('int16'), corrections: [] },
    truth,
  };
}

interface Geometry {
  dims: Vec3;
  spacingMm: Vec3;
  affineRas: Mat4;
}

/**
 * Canonical grid (i → Left, j → Posterior, k → Superior) centred on x = y = 0, slice 0 at zStartMm:
 * so x falls with i and y with j, and the patient's right (liver) lands at low i, the front at low j.
 */
function canonicalAffine(dims: Vec3, spacingMm: Vec3, zStartMm: number): Mat4 {
  const [sx, sy, sz] = spacingMm;
  return [
    -sx, 0, 0, ((dims[0] - 1) / 2) * sx,
    0, -sy, 0, ((dims[1] - 1) / 2) * sy,
    0, 0, sz, zStartMm,
    0, 0, 0, 1,
  ];
}

const xOf = (g: Geometry, i: number): number => g.affineRas[0] * i + g.affineRas[3];
const yOf = (g: Geometry, j: number): number => g.affineRas[5] * j + g.affineRas[7];
const zOf = (g: Geometry, k: number): number => g.affineRas[10] * k + g.affineRas[11];
const toVoxel = (g: Geometry, p: Vec3): Vec3 => [
  (p[0] - g.affineRas[3]) / g.affineRas[0],
  (p[1] - g.affineRas[7]) / g.affineRas[5],
  (p[2] - g.affineRas[11]) / g.affineRas[10],
];

function radiiOf(spec: LesionSpec): Vec3 {
  const d = typeof spec.diameterMm === 'number' ? [spec.diameterMm, spec.diameterMm, spec.diameterMm] : spec.diameterMm;
  if (d.length !== 3 || d.some((v) => !(v > 0 && v < 300))) throw new RangeError(`lesion diameter ${String(spec.diameterMm)} mm must be positive and below 300 mm`);
  return [d[0] / 2, d[1] / 2, d[2] / 2];
}

/** Unit directions probing a lesion's surface: axes, face diagonals, corners. */
const PROBES: Vec3[] = (() => {
  const out: Vec3[] = [];
  for (const a of [-1, 0, 1]) for (const b of [-1, 0, 1]) for (const c of [-1, 0, 1]) {
    if (a === 0 && b === 0 && c === 0) continue;
    const n = Math.hypot(a, b, c);
    out.push([a / n, b / n, c / n]);
  }
  return out;
})();

/**
 * Whether a lesion fits: its surface, grown by one voxel, lies in liver (not in an organ that takes
 * priority, not outside), within the scanned slices, and away from the other lesions, so the mask shows
 * each lesion whole and as its own connected component, and measured sizes equal the requested ones.
 */
function lesionFits(patient: PatientModel, g: Geometry, centre: Vec3, radii: Vec3, others: PlacedLesion[]): boolean {
  const marginMm = Math.max(...g.spacingMm);
  const zFirst = zOf(g, 0);
  const zLast = zOf(g, g.dims[2] - 1);
  if (centre[2] - radii[2] - marginMm < zFirst || centre[2] + radii[2] + marginMm > zLast) return false;
  for (const other of others) {
    const gap = Math.hypot(centre[0] - other.centreMm[0], centre[1] - other.centreMm[1], centre[2] - other.centreMm[2]);
    if (gap < Math.max(...radii) + Math.max(...other.radiiMm) + 2 * marginMm) return false;
  }
  if (tissueAtPoint(patient, centre) !== TISSUE.liver) return false;
  for (const scale of [0.5, 1]) {
    for (const d of PROBES) {
      const p: Vec3 = [0, 1, 2].map((a) => centre[a] + d[a] * (radii[a] * scale + marginMm)) as Vec3;
      if (tissueAtPoint(patient, p) !== TISSUE.liver) return false;
    }
  }
  return true;
}

function placeLesions(patient: PatientModel, options: PhantomOptions, g: Geometry): PlacedLesion[] {
  const random = randomStream(options.seed, 'lesions');
  const placed: PlacedLesion[] = [];
  const liverSolids = patient.organs.liver;
  for (const [n, spec] of (options.lesions ?? []).entries()) {
    const radiiMm = radiiOf(spec);
    const contrastHu = spec.contrastHu ?? DEFAULT_CONTRAST_HU;
    if (spec.centreMm) {
      if (!lesionFits(patient, g, spec.centreMm, radiiMm, placed)) {
        throw new RangeError(`lesion ${n + 1} (${String(spec.diameterMm)} mm at ${spec.centreMm.map((v) => v.toFixed(0)).join(', ')} mm) does not lie wholly inside the liver and the scanned range, apart from the other lesions`);
      }
      placed.push({ centreMm: [...spec.centreMm], radiiMm, contrastHu });
      continue;
    }
    let found: Vec3 | undefined;
    for (let attempt = 0; attempt < 4000 && !found; attempt++) {
      // Pick a liver piece by its volume, then a point in its bounding box (the fit test does the rest).
      const solid = liverSolids[random.next() < 0.8 ? 0 : liverSolids.length - 1];
      if (solid.kind !== 'ellipsoid') continue;
      const candidate = [0, 1, 2].map((a) => solid.centreMm[a] + solid.radiiMm[a] * random.uniform(-1, 1)) as Vec3;
      if (lesionFits(patient, g, candidate, radiiMm, placed)) found = candidate;
    }
    if (!found) {
      throw new RangeError(`no room for lesion ${n + 1} (${String(spec.diameterMm)} mm) inside the scanned liver; use a smaller size or a coverage that holds the liver`);
    }
    placed.push({ centreMm: found, radiiMm, contrastHu });
  }
  return placed;
}

interface LabelStats {
  count: number;
  kFirst: number;
  kLast: number;
  sum: Vec3;
}

interface RenderStats {
  byLabel: LabelStats[];
  byLesion: LabelStats[];
}

function emptyStats(): LabelStats {
  return { count: 0, kFirst: -1, kLast: -1, sum: [0, 0, 0] };
}

/** Size of the table of pre-drawn normal deviates the noise is read from (a power of two). */
const NOISE_TABLE_SIZE = 1 << 16;

function render(
  patient: PatientModel,
  lesions: PlacedLesion[],
  g: Geometry,
  noiseSigmaHu: number,
  seed: number | string,
): { image: Int16Array; labels: Int16Array; stats: RenderStats } {
  const [ni, nj, nk] = g.dims;
  const image = new Int16Array(ni * nj * nk);
  const labels = new Int16Array(ni * nj * nk);
  const tissueNames = Object.keys(TISSUE) as TissueName[];
  const huOf = new Float64Array(TISSUE_COUNT);
  const labelOf = new Int16Array(TISSUE_COUNT);
  for (const name of tissueNames) {
    huOf[TISSUE[name]] = patient.huByTissue[name];
    labelOf[TISSUE[name]] = TISSUE_LABEL[name];
  }
  const labelCount = Object.keys(LABEL).length;
  const stats: RenderStats = { byLabel: Array.from({ length: labelCount }, emptyStats), byLesion: lesions.map(emptyStats) };

  // Box–Muller per voxel is most of the cost of a phantom; instead draw a table of normals once and
  // pick entries with a cheap xorshift. Still deterministic and, at 65 536 entries, without visible
  // pattern (the picks are random, not sequential).
  const noise = randomStream(seed, 'noise');
  const noiseTable = Float64Array.from({ length: NOISE_TABLE_SIZE }, () => noiseSigmaHu * noise.gaussian());
  let pick = (Math.floor(noise.next() * 0xffffffff) | 1) >>> 0;

  const xs = Float64Array.from({ length: ni }, (_, i) => xOf(g, i));
  const ys = Float64Array.from({ length: nj }, (_, j) => yOf(g, j));
  // The scanner reconstructs a disc inscribed in the square field; corners are padding, not air.
  const fovRadiusMm = (Math.min(ni * g.spacingMm[0], nj * g.spacingMm[1]) / 2) * 0.98;
  const fovR2 = fovRadiusMm * fovRadiusMm;
  const gridCx = (xs[0] + xs[ni - 1]) / 2;
  const gridCy = (ys[0] + ys[nj - 1]) / 2;
  const airHu = huOf[TISSUE.air];
  const liverHu = huOf[TISSUE.liver];

  const sliceCounts = new Float64Array(labelCount);
  const sliceSumI = new Float64Array(labelCount);
  const sliceSumJ = new Float64Array(labelCount);
  for (let k = 0; k < nk; k++) {
    const z = zOf(g, k);
    const slice = sliceModel(patient, z);
    const { centreXMm: bx, centreYMm: by, semiXMm, semiYMm } = slice.body;
    const lesionSections = lesions.flatMap((lesion, index) => {
      const dz = (z - lesion.centreMm[2]) / lesion.radiiMm[2];
      if (dz * dz > 1) return [];
      const f = Math.sqrt(1 - dz * dz);
      return [{ index, cx: lesion.centreMm[0], cy: lesion.centreMm[1], invRx2: 1 / (lesion.radiiMm[0] * f) ** 2, invRy2: 1 / (lesion.radiiMm[1] * f) ** 2, hu: liverHu - lesion.contrastHu }];
    });
    sliceCounts.fill(0);
    sliceSumI.fill(0);
    sliceSumJ.fill(0);
    for (let j = 0; j < nj; j++) {
      const y = ys[j];
      const dyFov = y - gridCy;
      // Outside the body's chord on this row everything is air, without asking the slice model.
      const dyBody = (y - by) / semiYMm;
      const halfChord = dyBody * dyBody < 1 ? semiXMm * Math.sqrt(1 - dyBody * dyBody) : -1;
      const bodyX0 = bx - halfChord;
      const bodyX1 = bx + halfChord;
      let at = ni * (j + nj * k);
      for (let i = 0; i < ni; i++, at++) {
        const x = xs[i];
        const dxFov = x - gridCx;
        if (dxFov * dxFov + dyFov * dyFov > fovR2) {
          image[at] = OUTSIDE_FOV_HU;
          continue;
        }
        let hu = airHu;
        let label = 0;
        if (x >= bodyX0 && x <= bodyX1) {
          const tissue = slice.tissueAt(x, y);
          hu = huOf[tissue];
          label = labelOf[tissue];
          if (tissue === TISSUE.liver) {
            for (let s = 0; s < lesionSections.length; s++) {
              const section = lesionSections[s];
              const dx = x - section.cx;
              const dy = y - section.cy;
              if (dx * dx * section.invRx2 + dy * dy * section.invRy2 <= 1) {
                hu = section.hu;
                label = LABEL.lesion;
                const lesionStats = stats.byLesion[section.index];
                if (lesionStats.count === 0) lesionStats.kFirst = k;
                lesionStats.kLast = k;
                lesionStats.count++;
                lesionStats.sum[0] += i;
                lesionStats.sum[1] += j;
                lesionStats.sum[2] += k;
                break;
              }
            }
          }
          sliceCounts[label]++;
          sliceSumI[label] += i;
          sliceSumJ[label] += j;
        }
        pick ^= pick << 13;
        pick ^= pick >>> 17;
        pick ^= pick << 5;
        const rounded = Math.round(hu + noiseTable[pick & (NOISE_TABLE_SIZE - 1)]);
        image[at] = rounded < MIN_HU ? MIN_HU : rounded > MAX_HU ? MAX_HU : rounded;
        labels[at] = label;
      }
    }
    for (let label = 1; label < labelCount; label++) {
      const n = sliceCounts[label];
      if (n === 0) continue;
      const s = stats.byLabel[label];
      if (s.count === 0) s.kFirst = k;
      s.kLast = k;
      s.count += n;
      s.sum[0] += sliceSumI[label];
      s.sum[1] += sliceSumJ[label];
      s.sum[2] += n * k;
    }
  }
  return { image, labels, stats };
}

const ORGAN_TISSUE: Record<OrganName, TissueName> = {
  liver: 'liver',
  spleen: 'spleen',
  kidneys: 'kidney',
  lungs: 'lung',
  bone: 'bone',
  aorta: 'aorta',
  heart: 'heart',
};

function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function describe(
  patient: PatientModel,
  lesions: PlacedLesion[],
  stats: RenderStats,
  g: Geometry,
  meta: { seed: number | string; coverageName: string; noiseSigmaHu: number },
): PhantomTruth {
  const voxelMl = (g.spacingMm[0] * g.spacingMm[1] * g.spacingMm[2]) / 1000;
  const zFirst = zOf(g, 0);
  const zLast = zOf(g, g.dims[2] - 1);
  const slabLo = zFirst - g.spacingMm[2] / 2;
  const slabHi = zLast + g.spacingMm[2] / 2;
  const sliceRangeOf = (s: LabelStats): [number, number] | null => (s.count > 0 ? [s.kFirst, s.kLast] : null);
  const centroidOf = (s: LabelStats): Vec3 | null => (s.count > 0 ? (s.sum.map((v) => round(v / s.count)) as Vec3) : null);

  const organs = ORGAN_NAMES.map((name): OrganTruth => {
    const s = stats.byLabel[LABEL[name]];
    const [lo, hi] = zExtentMm(patient.organs[name]);
    const present = s.count > 0;
    return {
      name,
      label: LABEL[name],
      hu: patient.huByTissue[ORGAN_TISSUE[name]],
      present,
      complete: lo >= slabLo && hi <= slabHi,
      zRangeMm: present ? [Math.max(lo, slabLo), Math.min(hi, slabHi)] : null,
      sliceRange: sliceRangeOf(s),
      voxelCount: s.count,
      volumeMl: round(s.count * voxelMl, 1),
      centroidVoxel: centroidOf(s),
    };
  });

  const lesionTruth = lesions.map((lesion, index): LesionTruth => {
    const s = stats.byLesion[index];
    const diametersMm = lesion.radiiMm.map((r) => 2 * r) as Vec3;
    const hu = patient.huByTissue.liver - lesion.contrastHu;
    return {
      index,
      centreMm: [...lesion.centreMm],
      centreVoxel: toVoxel(g, lesion.centreMm),
      diametersMm,
      diameterMm: Math.max(...diametersMm),
      hu,
      contrastHu: lesion.contrastHu,
      zRangeMm: [lesion.centreMm[2] - lesion.radiiMm[2], lesion.centreMm[2] + lesion.radiiMm[2]],
      sliceRange: sliceRangeOf(s),
      voxelCount: s.count,
      volumeMl: round(((4 / 3) * Math.PI * lesion.radiiMm[0] * lesion.radiiMm[1] * lesion.radiiMm[2]) / 1000, 2),
    };
  });

  return {
    schema: 'mir3d-phantom-truth/1',
    seed: meta.seed,
    coverage: meta.coverageName,
    dims: [...g.dims],
    spacingMm: [...g.spacingMm],
    zRangeMm: [zFirst, zLast],
    noiseSigmaHu: meta.noiseSigmaHu,
    patient: {
      sizeScale: round(patient.sizeScale, 3),
      heightScale: round(patient.heightScale, 3),
      fatThicknessMm: round(patient.fatThicknessMm, 1),
      centreMm: [round(patient.centreXMm), round(patient.centreYMm)],
    },
    labelCodes: LABEL,
    organs,
    lesions: lesionTruth,
    ...lesionLabels(lesionTruth.map((l) => l.diameterMm)),
  };
}

/** 3D-MIR's liver rule (DESIGN.md's table, src/labels/lesion-groups.ts) applied to the lesions' largest
 * diameters in mm. */
export function lesionLabels(diametersMm: number[]): { cancerFlag: 0 | 1; lesionGroup: -1 | 1 | 2 | 3 } {
  if (diametersMm.length === 0) return { cancerFlag: 0, lesionGroup: -1 };
  return { cancerFlag: 1, lesionGroup: lesionGroupOf('liver', Math.max(...diametersMm), diametersMm.length) as 1 | 2 | 3 };
}
