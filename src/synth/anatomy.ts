import type { Vec3 } from '../io/volume.js';
import { LABEL, type OrganName } from './phantom-labels.js';
import type { Random } from './random.js';

/**
 * The phantom's patient, in patient millimetres of the NIfTI RAS+ world: +x towards the patient's Right,
 * +y Anterior, +z Superior. z = 0 is the reference patient's diaphragm (the top of the liver dome lies
 * just above it); the body's axis runs through x = y = 0 before the per-patient centre shift.
 *
 * Shapes are deliberately simple (ellipsoids, elliptic columns, boxes) so that every organ's extent is
 * known exactly and can serve as ground truth, yet their layout follows real anatomy closely enough that
 * slices look like CT to an image encoder: liver on the right under the diaphragm, spleen on the left
 * behind the stomach, kidneys low and posterior, lungs above, heart anterior and to the left, aorta in
 * front of the spine, ribs around the upper abdomen and thorax, pelvis at the bottom.
 */

/** A structure's solid pieces; a point inside any piece is inside the structure. */
export type Solid =
  | { kind: 'ellipsoid'; centreMm: Vec3; radiiMm: Vec3 }
  /** An elliptic prism along z, optionally rotated in the axial plane and hollow (a ring). */
  | {
      kind: 'column';
      centreXMm: number;
      centreYMm: number;
      radiusXMm: number;
      radiusYMm: number;
      zStartMm: number;
      zEndMm: number;
      angleRad?: number;
      holeRadiusXMm?: number;
      holeRadiusYMm?: number;
    }
  | { kind: 'box'; xMm: [number, number]; yMm: [number, number]; zMm: [number, number] };

/** Tissue classes the renderer maps to HU and a label code. */
export const TISSUE = {
  air: 0,
  fat: 1,
  softTissue: 2,
  spinalCanal: 3,
  disc: 4,
  bowelGas: 5,
  liver: 6,
  spleen: 7,
  kidney: 8,
  lung: 9,
  bone: 10,
  aorta: 11,
  heart: 12,
  muscle: 13,
} as const;
export type TissueName = keyof typeof TISSUE;
export const TISSUE_COUNT = 14;

export const TISSUE_LABEL: Record<TissueName, number> = {
  air: LABEL.background,
  fat: LABEL.body,
  softTissue: LABEL.body,
  spinalCanal: LABEL.body,
  disc: LABEL.body,
  bowelGas: LABEL.body,
  liver: LABEL.liver,
  spleen: LABEL.spleen,
  kidney: LABEL.kidneys,
  lung: LABEL.lungs,
  bone: LABEL.bone,
  aorta: LABEL.aorta,
  heart: LABEL.heart,
  muscle: LABEL.body,
};

/** Typical portal-venous-phase CT values; each patient varies them a little. */
export const REFERENCE_HU: Record<TissueName, number> = {
  air: -1000,
  fat: -100,
  softTissue: 40,
  spinalCanal: 15,
  disc: 90,
  bowelGas: -950,
  liver: 60,
  spleen: 45,
  kidney: 30,
  lung: -850,
  bone: 700,
  aorta: 150,
  heart: 50,
  muscle: 50,
};

/** ± range of the per-patient HU variation at variation 1. */
const HU_JITTER: Record<TissueName, number> = {
  air: 0,
  fat: 10,
  softTissue: 4,
  spinalCanal: 3,
  disc: 8,
  bowelGas: 20,
  liver: 6,
  spleen: 4,
  kidney: 4,
  lung: 30,
  bone: 60,
  aorta: 20,
  heart: 5,
  muscle: 4,
};

/** Reference body outline (semi-axes in mm) at a few heights; linear in between, constant beyond. */
const BODY_KNOTS: readonly [zMm: number, semiXMm: number, semiYMm: number][] = [
  [-330, 170, 108],
  [-250, 168, 110],
  [-150, 160, 115],
  [0, 158, 112],
  [120, 152, 106],
  [260, 148, 100],
];

/** Named z coverages in reference-patient mm (scaled with the patient's height), like scan protocols. */
export const COVERAGES = {
  'thorax-abdomen': [-330, 250],
  abdomen: [-330, 25],
  thorax: [-60, 250],
  liver: [-190, 40],
} as const satisfies Record<string, readonly [number, number]>;
export type CoverageName = keyof typeof COVERAGES;

export interface PatientModel {
  /** In-plane size relative to the reference patient (organ sizes and positions scale with it). */
  sizeScale: number;
  /** Height relative to the reference patient (z positions and extents scale with it). */
  heightScale: number;
  fatThicknessMm: number;
  /** Thickness of the muscle wall inside the subcutaneous fat. */
  muscleThicknessMm: number;
  /** Where the body's axis lies in x and y (mm). */
  centreXMm: number;
  centreYMm: number;
  huByTissue: Record<TissueName, number>;
  /** Solids per organ, in patient mm. Bone is listed for its extent; the slice model adds ribs, discs. */
  organs: Record<OrganName, Solid[]>;
  spine: {
    body: Solid & { kind: 'column' };
    canal: Solid & { kind: 'column' };
    arch: Solid & { kind: 'column' };
    spinous: Solid & { kind: 'box' };
    discPeriodMm: number;
    discThicknessMm: number;
    discPhaseMm: number;
  };
  ribs: { zStartMm: number; zEndMm: number; periodMm: number; thicknessMm: number; phaseMm: number };
  sternum: { zStartMm: number; zEndMm: number };
  bowelGas: (Solid & { kind: 'ellipsoid' })[];
  /** Fat capsules around the kidneys and the psoas muscles: they only fill space no organ holds. */
  perirenalFat: Solid[];
  psoas: Solid[];
  /** Visceral texture: a smooth random field in [0, 1]; interior soft tissue where it exceeds
   * `visceralFatLevel`, fat below (mesenteric fat between bowel loops). */
  visceral: Lattice;
  visceralFatLevel: number;
}

/** Random values on a coarse 3D lattice, read with smooth interpolation. */
export interface Lattice {
  values: Float32Array;
  counts: [number, number, number];
  originMm: Vec3;
  stepMm: Vec3;
}

/**
 * A patient: the reference anatomy scaled, shifted and jittered by `variation` (0 gives the reference
 * patient exactly, 1 the default spread: ±10 % size, ±6 % height, organs moved up to ±5 mm and resized
 * ±6 %, HU shifted by a few units).
 */
export function makePatient(random: Random, variation = 1): PatientModel {
  const v = Math.max(0, variation);
  const sizeScale = random.jitter(0.98, 0.1, v);
  const heightScale = random.jitter(1, 0.06, v);
  const fatThicknessMm = random.jitter(15, 7, v) * sizeScale;
  const centreXMm = random.jitter(0, 6, v);
  const centreYMm = random.jitter(0, 6, v);
  const huByTissue = Object.fromEntries(
    (Object.keys(REFERENCE_HU) as TissueName[]).map((name) => [name, Math.round(random.jitter(REFERENCE_HU[name], HU_JITTER[name], v))]),
  ) as Record<TissueName, number>;

  const place = (x: number, y: number, z: number): Vec3 => [centreXMm + x * sizeScale, centreYMm + y * sizeScale, z * heightScale];
  const size = (x: number, y: number, z: number): Vec3 => [x * sizeScale, y * sizeScale, z * heightScale];

  /** One organ's own random shift and size factor, shared by all its pieces so they stay together. */
  const organJitter = (): { shift: Vec3; grow: number } => ({
    shift: [random.jitter(0, 5, v), random.jitter(0, 5, v), random.jitter(0, 5, v)],
    grow: random.jitter(1, 0.06, v),
  });
  const ellipsoid = (centre: Vec3, radii: Vec3, j: { shift: Vec3; grow: number }): Solid & { kind: 'ellipsoid' } => {
    const c = place(...centre);
    const r = size(...radii);
    return {
      kind: 'ellipsoid',
      centreMm: [c[0] + j.shift[0], c[1] + j.shift[1], c[2] + j.shift[2]],
      radiiMm: [r[0] * j.grow, r[1] * j.grow, r[2] * j.grow],
    };
  };

  const liverJ = organJitter();
  const spleenJ = organJitter();
  const rightKidneyJ = organJitter();
  const leftKidneyJ = organJitter();
  const heartJ = organJitter();
  const lungJ = organJitter();

  const lung = (x: number, radiusX: number, baseZ: number): Solid[] => {
    const c = place(x, -5, 0);
    const cx = c[0] + lungJ.shift[0] * (x > 0 ? 1 : -1);
    const cy = c[1] + lungJ.shift[1];
    const rx = radiusX * sizeScale * lungJ.grow;
    const ry = 70 * sizeScale * lungJ.grow;
    const capHeightMm = 60 * heightScale;
    const shoulderZMm = 175 * heightScale + lungJ.shift[2];
    // Flat base: the diaphragm dome is cut out of it by the liver (right) and spleen (left), which take
    // priority, as on real axial slices where lung bases surround the top of the liver.
    return [
      { kind: 'column', centreXMm: cx, centreYMm: cy, radiusXMm: rx, radiusYMm: ry, zStartMm: baseZ * heightScale + lungJ.shift[2], zEndMm: shoulderZMm },
      { kind: 'ellipsoid', centreMm: [cx, cy, shoulderZMm], radiiMm: [rx, ry, capHeightMm] },
    ];
  };

  const aortaCentre = place(-18, -28, 0);
  const aortaJ = organJitter();
  const organs: Record<OrganName, Solid[]> = {
    liver: [
      ellipsoid([60, 5, -70], [70, 78, 80], liverJ),
      ellipsoid([-10, 35, -40], [60, 38, 38], liverJ),
    ],
    spleen: [ellipsoid([-100, -40, -55], [28, 48, 50], spleenJ)],
    kidneys: [ellipsoid([65, -50, -140], [27, 24, 55], rightKidneyJ), ellipsoid([-62, -50, -125], [27, 24, 55], leftKidneyJ)],
    lungs: [...lung(75, 55, -20), ...lung(-77, 52, -10)],
    heart: [ellipsoid([-20, 30, 75], [58, 48, 55], heartJ)],
    aorta: [
      {
        kind: 'column',
        centreXMm: aortaCentre[0] + aortaJ.shift[0] * 0.4,
        centreYMm: aortaCentre[1] + aortaJ.shift[1] * 0.4,
        radiusXMm: 12 * sizeScale * aortaJ.grow,
        radiusYMm: 12 * sizeScale * aortaJ.grow,
        zStartMm: -225 * heightScale + aortaJ.shift[2],
        zEndMm: 150 * heightScale + aortaJ.shift[2],
      },
    ],
    bone: [],
  };

  const spineAt = place(0, 0, 0);
  const column = (x: number, y: number, rx: number, ry: number, z0: number, z1: number, extra: Partial<Solid & { kind: 'column' }> = {}): Solid & { kind: 'column' } => ({
    kind: 'column',
    centreXMm: spineAt[0] + x * sizeScale,
    centreYMm: spineAt[1] + y * sizeScale,
    radiusXMm: rx * sizeScale,
    radiusYMm: ry * sizeScale,
    zStartMm: z0,
    zEndMm: z1,
    ...extra,
  });
  const everywhere: [number, number] = [-1e6, 1e6];
  const spine: PatientModel['spine'] = {
    body: column(0, -62, 21, 18, ...everywhere),
    canal: column(0, -92, 10, 9, ...everywhere),
    arch: column(0, -92, 17, 16, ...everywhere, { holeRadiusXMm: 10 * sizeScale, holeRadiusYMm: 9 * sizeScale }),
    spinous: {
      kind: 'box',
      xMm: [spineAt[0] - 5 * sizeScale, spineAt[0] + 5 * sizeScale],
      yMm: [spineAt[1] - 104 * sizeScale, spineAt[1] - 95 * sizeScale],
      zMm: everywhere,
    },
    discPeriodMm: 32 * heightScale,
    discThicknessMm: 7 * heightScale,
    discPhaseMm: random.uniform(0, 32 * heightScale),
  };

  const pelvisZ: [number, number] = [-300 * heightScale, -205 * heightScale];
  const wing = (side: 1 | -1): Solid => {
    const c = place(88 * side, -30, 0);
    return {
      kind: 'column',
      centreXMm: c[0],
      centreYMm: c[1],
      radiusXMm: 55 * sizeScale,
      radiusYMm: 9 * sizeScale,
      zStartMm: pelvisZ[0],
      zEndMm: pelvisZ[1],
      // Long axis from the sacroiliac joint (posterior, medial) to the iliac crest (anterior, lateral).
      angleRad: side > 0 ? (40 * Math.PI) / 180 : (140 * Math.PI) / 180,
    };
  };
  const sacrumCentre = place(0, -70, 0);
  organs.bone = [
    spine.body,
    spine.arch,
    spine.spinous,
    wing(1),
    wing(-1),
    { kind: 'column', centreXMm: sacrumCentre[0], centreYMm: sacrumCentre[1], radiusXMm: 42 * sizeScale, radiusYMm: 16 * sizeScale, zStartMm: pelvisZ[0], zEndMm: -215 * heightScale },
    ellipsoid([88, -10, -335], [24, 24, 24], { shift: [0, 0, 0], grow: 1 }),
    ellipsoid([-88, -10, -335], [24, 24, 24], { shift: [0, 0, 0], grow: 1 }),
  ];

  const kidneyFat = (kidney: Solid): Solid =>
    kidney.kind === 'ellipsoid' ? { ...kidney, radiiMm: [kidney.radiiMm[0] + 9 * sizeScale, kidney.radiiMm[1] + 9 * sizeScale, kidney.radiiMm[2] + 9 * heightScale] } : kidney;
  const psoasZ: [number, number] = [-310 * heightScale, -110 * heightScale];
  const psoas = ([1, -1] as const).map((side): Solid => {
    const c = place(42 * side, -62, 0);
    return { kind: 'column', centreXMm: c[0], centreYMm: c[1], radiusXMm: 20 * sizeScale, radiusYMm: 17 * sizeScale, zStartMm: psoasZ[0], zEndMm: psoasZ[1] };
  });

  const bowelGas: (Solid & { kind: 'ellipsoid' })[] = [];
  const gasCount = random.int(3, 8);
  for (let n = 0; n < gasCount; n++) {
    const radius = random.uniform(5, 14);
    bowelGas.push(
      ellipsoid(
        [random.uniform(-90, 90), random.uniform(-20, 80), random.uniform(-290, -110)],
        [radius, radius * random.uniform(0.6, 1), radius * random.uniform(0.6, 1.2)],
        { shift: [0, 0, 0], grow: 1 },
      ),
    );
  }

  // Fixed in patient mm, not scaled with the patient: bowel loops follow no landmark.
  const visceral = randomLattice(random, [-260, -260, -450], [22, 22, 30], [25, 25, 31]);

  return {
    sizeScale,
    heightScale,
    fatThicknessMm,
    muscleThicknessMm: 11 * sizeScale,
    centreXMm,
    centreYMm,
    huByTissue,
    organs,
    spine,
    ribs: { zStartMm: -95 * heightScale, zEndMm: 215 * heightScale, periodMm: 30 * heightScale, thicknessMm: 9 * heightScale, phaseMm: random.uniform(0, 30 * heightScale) },
    sternum: { zStartMm: 25 * heightScale, zEndMm: 200 * heightScale },
    bowelGas,
    perirenalFat: organs.kidneys.map(kidneyFat),
    psoas,
    visceral,
    visceralFatLevel: random.jitter(0.45, 0.08, v),
  };
}

function randomLattice(random: Random, originMm: Vec3, stepMm: Vec3, counts: [number, number, number]): Lattice {
  const values = new Float32Array(counts[0] * counts[1] * counts[2]);
  for (let n = 0; n < values.length; n++) values[n] = random.next();
  return { values, counts, originMm, stepMm };
}

/** Lattice cell along one axis, clamped so that cell + 1 still exists. */
function cellOf(t: number, count: number): number {
  return Math.floor(Math.min(Math.max(t, 0), count - 1.000001));
}

function smooth(f: number): number {
  return f * f * (3 - 2 * f);
}

/** The lattice interpolated along z at one height: a 2D grid read per voxel with smooth bilinear
 * weights (no allocation per call: this runs for most voxels inside the body). */
function latticePlane(lattice: Lattice, zMm: number): (xMm: number, yMm: number) => number {
  const [nx, ny, nz] = lattice.counts;
  const tz = Math.min(Math.max((zMm - lattice.originMm[2]) / lattice.stepMm[2], 0), nz - 1.000001);
  const z0 = cellOf(tz, nz);
  const wz = smooth(tz - z0);
  const plane = new Float32Array(nx * ny);
  for (let n = 0; n < nx * ny; n++) plane[n] = lattice.values[n + nx * ny * z0] * (1 - wz) + lattice.values[n + nx * ny * (z0 + 1)] * wz;
  const [ox, oy] = lattice.originMm;
  const [sx, sy] = lattice.stepMm;
  return (xMm, yMm) => {
    const tx = Math.min(Math.max((xMm - ox) / sx, 0), nx - 1.000001);
    const ty = Math.min(Math.max((yMm - oy) / sy, 0), ny - 1.000001);
    const x0 = Math.floor(tx);
    const y0 = Math.floor(ty);
    const wx = smooth(tx - x0);
    const wy = smooth(ty - y0);
    const at = x0 + nx * y0;
    const a = plane[at] * (1 - wx) + plane[at + 1] * wx;
    const b = plane[at + nx] * (1 - wx) + plane[at + nx + 1] * wx;
    return a * (1 - wy) + b * wy;
  };
}

/** Body outline semi-axes (mm) at height z. */
export function bodySemiAxesMm(patient: PatientModel, zMm: number): [number, number] {
  const zRef = zMm / patient.heightScale;
  const last = BODY_KNOTS[BODY_KNOTS.length - 1];
  let semiX = zRef >= last[0] ? last[1] : BODY_KNOTS[0][1];
  let semiY = zRef >= last[0] ? last[2] : BODY_KNOTS[0][2];
  for (let n = 1; n < BODY_KNOTS.length && zRef < last[0]; n++) {
    const [z1, x1, y1] = BODY_KNOTS[n];
    if (zRef < z1) {
      const [z0, x0, y0] = BODY_KNOTS[n - 1];
      const t = Math.max(0, (zRef - z0) / (z1 - z0));
      semiX = x0 + t * (x1 - x0);
      semiY = y0 + t * (y1 - y0);
      break;
    }
  }
  return [semiX * patient.sizeScale, semiY * patient.sizeScale];
}

/** Lowest and highest z (mm) of a set of solids; ±Infinity for solids unbounded along z. */
export function zExtentMm(solids: readonly Solid[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const solid of solids) {
    const [a, b] =
      solid.kind === 'ellipsoid'
        ? [solid.centreMm[2] - solid.radiiMm[2], solid.centreMm[2] + solid.radiiMm[2]]
        : solid.kind === 'column'
          ? [solid.zStartMm, solid.zEndMm]
          : solid.zMm;
    lo = Math.min(lo, a);
    hi = Math.max(hi, b);
  }
  return [lo, hi];
}

/** A solid's axial cross-section at one height, ready for fast point tests. */
interface Section {
  kind: 'ellipse' | 'rect';
  cx: number;
  cy: number;
  /** Inverse squared semi-axes, so a test is two multiplies. */
  invRx2: number;
  invRy2: number;
  cos: number;
  sin: number;
  holeInvRx2: number;
  holeInvRy2: number;
  /** Bounding box; a rectangle is exactly its box. */
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

function sectionOf(solid: Solid, zMm: number): Section | undefined {
  const base = { cos: 1, sin: 0, holeInvRx2: 0, holeInvRy2: 0, x0: 0, x1: 0, y0: 0, y1: 0 };
  if (solid.kind === 'ellipsoid') {
    const dz = (zMm - solid.centreMm[2]) / solid.radiiMm[2];
    if (dz * dz >= 1) return undefined;
    const f = Math.sqrt(1 - dz * dz);
    const rx = solid.radiiMm[0] * f;
    const ry = solid.radiiMm[1] * f;
    const [cx, cy] = solid.centreMm;
    return { ...base, kind: 'ellipse', cx, cy, invRx2: 1 / (rx * rx), invRy2: 1 / (ry * ry), x0: cx - rx, x1: cx + rx, y0: cy - ry, y1: cy + ry };
  }
  if (solid.kind === 'column') {
    if (zMm < solid.zStartMm || zMm > solid.zEndMm) return undefined;
    const angle = solid.angleRad ?? 0;
    const holeX = solid.holeRadiusXMm;
    const holeY = solid.holeRadiusYMm;
    // Half-extents of the rotated ellipse's bounding box.
    const cos = Math.cos(angle);
    const sin = Math.sin(angle);
    const halfX = Math.hypot(solid.radiusXMm * cos, solid.radiusYMm * sin);
    const halfY = Math.hypot(solid.radiusXMm * sin, solid.radiusYMm * cos);
    return {
      ...base,
      kind: 'ellipse',
      cx: solid.centreXMm,
      cy: solid.centreYMm,
      invRx2: 1 / solid.radiusXMm ** 2,
      invRy2: 1 / solid.radiusYMm ** 2,
      cos,
      sin,
      holeInvRx2: holeX ? 1 / holeX ** 2 : 0,
      holeInvRy2: holeY ? 1 / holeY ** 2 : 0,
      x0: solid.centreXMm - halfX,
      x1: solid.centreXMm + halfX,
      y0: solid.centreYMm - halfY,
      y1: solid.centreYMm + halfY,
    };
  }
  if (zMm < solid.zMm[0] || zMm > solid.zMm[1]) return undefined;
  return { ...base, kind: 'rect', cx: 0, cy: 0, invRx2: 0, invRy2: 0, x0: solid.xMm[0], x1: solid.xMm[1], y0: solid.yMm[0], y1: solid.yMm[1] };
}

function inSection(s: Section, x: number, y: number): boolean {
  if (x < s.x0 || x > s.x1 || y < s.y0 || y > s.y1) return false;
  if (s.kind === 'rect') return true;
  const dx = x - s.cx;
  const dy = y - s.cy;
  const u = dx * s.cos + dy * s.sin;
  const w = -dx * s.sin + dy * s.cos;
  if (u * u * s.invRx2 + w * w * s.invRy2 > 1) return false;
  // A hole (the ring of a vertebral arch) excludes its inside.
  return !(s.holeInvRx2 > 0 && u * u * s.holeInvRx2 + w * w * s.holeInvRy2 < 1);
}

interface Layer {
  tissue: number;
  sections: Section[];
}

/**
 * Everything about one axial slice needed to classify points quickly. Built once per slice; `tissueAt`
 * is then called per voxel, so it allocates nothing.
 */
export interface SliceModel {
  zMm: number;
  /** The body outline at this height: everything outside is air. */
  body: { centreXMm: number; centreYMm: number; semiXMm: number; semiYMm: number };
  tissueAt(xMm: number, yMm: number): number;
}

function periodicOn(zMm: number, phaseMm: number, periodMm: number, thicknessMm: number): boolean {
  const t = (((zMm - phaseMm) % periodMm) + periodMm) % periodMm;
  return t < thicknessMm;
}

export function sliceModel(patient: PatientModel, zMm: number): SliceModel {
  const [semiX, semiY] = bodySemiAxesMm(patient, zMm);
  const bx = patient.centreXMm;
  const by = patient.centreYMm;
  const invA2 = 1 / (semiX * semiX);
  const invB2 = 1 / (semiY * semiY);
  const innerX = semiX - patient.fatThicknessMm;
  const innerY = semiY - patient.fatThicknessMm;
  const cavityX = innerX - patient.muscleThicknessMm;
  const cavityY = innerY - patient.muscleThicknessMm;
  const invCavityA2 = 1 / (cavityX * cavityX);
  const invCavityB2 = 1 / (cavityY * cavityY);
  const invInnerA2 = 1 / (innerX * innerX);
  const invInnerB2 = 1 / (innerY * innerY);

  const sections = (solids: readonly Solid[]): Section[] =>
    solids.map((solid) => sectionOf(solid, zMm)).filter((s): s is Section => s !== undefined);
  const { spine, ribs, sternum } = patient;
  const atDisc = periodicOn(zMm, spine.discPhaseMm, spine.discPeriodMm, spine.discThicknessMm);

  // Priority order: the first layer containing a point wins.
  const boneSolids = patient.organs.bone.filter((solid) => solid !== spine.body || !atDisc);
  const layers: Layer[] = [
    { tissue: TISSUE.bone, sections: sections(boneSolids) },
    { tissue: TISSUE.disc, sections: atDisc ? sections([spine.body]) : [] },
    { tissue: TISSUE.spinalCanal, sections: sections([spine.canal]) },
    { tissue: TISSUE.aorta, sections: sections(patient.organs.aorta) },
    { tissue: TISSUE.kidney, sections: sections(patient.organs.kidneys) },
    { tissue: TISSUE.spleen, sections: sections(patient.organs.spleen) },
    { tissue: TISSUE.liver, sections: sections(patient.organs.liver) },
    { tissue: TISSUE.heart, sections: sections(patient.organs.heart) },
    { tissue: TISSUE.lung, sections: sections(patient.organs.lungs) },
  ].filter((layer) => layer.sections.length > 0);
  const gas = sections(patient.bowelGas);
  const kidneyFat = sections(patient.perirenalFat);
  const psoas = sections(patient.psoas);
  const visceral = latticePlane(patient.visceral, zMm);
  const fatLevel = patient.visceralFatLevel;

  const ribsHere = zMm >= ribs.zStartMm && zMm <= ribs.zEndMm && periodicOn(zMm, ribs.phaseMm, ribs.periodMm, ribs.thicknessMm);
  const sternumHere = zMm >= sternum.zStartMm && zMm <= sternum.zEndMm;
  // Ribs: a thin ring just inside the body wall, open at the front where cartilage and sternum take over.
  const ribOuter = 0.97;
  const ribInner = 0.9;
  const ribFrontLimitMm = by + 0.45 * innerY;
  const sternumX = bx;
  const sternumY = by + innerY - 14 * patient.sizeScale;
  const sternumInvRx2 = 1 / (16 * patient.sizeScale) ** 2;
  const sternumInvRy2 = 1 / (8 * patient.sizeScale) ** 2;

  return {
    zMm,
    body: { centreXMm: bx, centreYMm: by, semiXMm: semiX, semiYMm: semiY },
    tissueAt(x: number, y: number): number {
      const dx = x - bx;
      const dy = y - by;
      if (dx * dx * invA2 + dy * dy * invB2 > 1) return TISSUE.air;
      const inner = dx * dx * invInnerA2 + dy * dy * invInnerB2;
      if (ribsHere && y < ribFrontLimitMm && inner <= ribOuter * ribOuter && inner >= ribInner * ribInner) return TISSUE.bone;
      if (sternumHere) {
        const sx = x - sternumX;
        const sy = y - sternumY;
        if (sx * sx * sternumInvRx2 + sy * sy * sternumInvRy2 <= 1) return TISSUE.bone;
      }
      for (let l = 0; l < layers.length; l++) {
        const layer = layers[l];
        for (let s = 0; s < layer.sections.length; s++) if (inSection(layer.sections[s], x, y)) return layer.tissue;
      }
      if (inner > 1) return TISSUE.fat;
      if (dx * dx * invCavityA2 + dy * dy * invCavityB2 > 1) return TISSUE.muscle;
      // What no organ holds: fat around the kidneys, psoas, bowel gas, then bowel loops and fat.
      for (let s = 0; s < kidneyFat.length; s++) if (inSection(kidneyFat[s], x, y)) return TISSUE.fat;
      for (let s = 0; s < psoas.length; s++) if (inSection(psoas[s], x, y)) return TISSUE.muscle;
      for (let s = 0; s < gas.length; s++) if (inSection(gas[s], x, y)) return TISSUE.bowelGas;
      return visceral(x, y) < fatLevel ? TISSUE.fat : TISSUE.softTissue;
    },
  };
}

/** The tissue at one point (slow: builds a slice model). For placing lesions and for tests. */
export function tissueAtPoint(patient: PatientModel, pointMm: Vec3): number {
  return sliceModel(patient, pointMm[2]).tissueAt(pointMm[0], pointMm[1]);
}
