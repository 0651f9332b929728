/**
 * DICOM series geometry: consistency of the slices, their order along the normal, the in-plane shifts
 * of a tilted gantry and the gaps between slices; the affine of the stored stack.
 */
import { VolumeReadError } from './errors.js';
import type { SliceHeader } from './dicom-scan.js';
import type { Mat4, Vec3 } from './volume.js';

type Vec3Like = readonly [number, number, number];

const dot = (a: Vec3Like, b: Vec3Like): number => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const cross = (a: Vec3Like, b: Vec3Like): Vec3 => [
  a[1] * b[2] - a[2] * b[1],
  a[2] * b[0] - a[0] * b[2],
  a[0] * b[1] - a[1] * b[0],
];
export const sub = (a: Vec3Like, b: Vec3Like): Vec3 => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
export const scale = (a: Vec3Like, s: number): Vec3 => [a[0] * s, a[1] * s, a[2] * s];
const norm = (a: Vec3Like): number => Math.hypot(a[0], a[1], a[2]);
const unit = (a: Vec3Like): Vec3 => scale(a, 1 / (norm(a) || 1));

export interface SeriesGeometry {
  /** Slices sorted along the normal, inferior-most first in the normal's sense. */
  slices: SliceHeader[];
  rowDir: Vec3;
  colDir: Vec3;
  normal: Vec3;
  /** Distance between columns (along rowDir) and between rows (along colDir). */
  columnSpacingMm: number;
  rowSpacingMm: number;
  /** Position of each sorted slice along the normal, relative to the first. */
  offsetsMm: number[];
  /** In-plane offset of each slice's origin from where an orthogonal stack would put it, in mm along
   * rowDir and colDir: zero everywhere unless the gantry was tilted. */
  shiftsMm: [number, number][];
}

export function checkConsistent(slices: SliceHeader[], dir: string): void {
  const first = slices[0];
  const fail = (what: string): never => {
    throw new VolumeReadError('INCONSISTENT_SERIES', dir, `slices of series ${first.seriesKey} differ in ${what}`);
  };
  for (const s of slices) {
    if (s.rows !== first.rows || s.cols !== first.cols) fail(`size (${first.cols}×${first.rows} vs ${s.cols}×${s.rows})`);
    if (s.bitsAllocated !== first.bitsAllocated || s.samplesPerPixel !== first.samplesPerPixel) fail('pixel format');
    if (!s.orientation || !s.positionMm || !s.pixelSpacingMm) continue;
    if (first.orientation && s.orientation.some((v, n) => Math.abs(v - first.orientation![n]) > 1e-4)) {
      fail('orientation (ImageOrientationPatient)');
    }
    if (first.pixelSpacingMm && s.pixelSpacingMm.some((v, n) => Math.abs(v - first.pixelSpacingMm![n]) > 1e-4)) {
      fail('pixel spacing');
    }
  }
}

function requireGeometry(slices: SliceHeader[], dir: string): void {
  for (const s of slices) {
    const missing = !s.orientation ? 'ImageOrientationPatient' : !s.positionMm ? 'ImagePositionPatient' : !s.pixelSpacingMm ? 'PixelSpacing' : '';
    if (missing) throw new VolumeReadError('BAD_HEADER', dir, `${s.label} has no ${missing}, so slices cannot be placed in space`);
    if (s.rows <= 0 || s.cols <= 0) throw new VolumeReadError('BAD_DIMENSIONS', dir, `${s.label} has ${s.cols}×${s.rows} pixels`);
    if (s.samplesPerPixel !== 1) throw new VolumeReadError('UNSUPPORTED_DATATYPE', dir, `${s.label} has ${s.samplesPerPixel} samples per pixel (colour); only greyscale is read`);
    if (s.frames !== 1) throw new VolumeReadError('UNSUPPORTED_DATATYPE', dir, `${s.label} is multi-frame (${s.frames} frames); only single-frame slices are read`);
  }
}

export function geometryOf(slices: SliceHeader[], dir: string): SeriesGeometry {
  requireGeometry(slices, dir);
  const o = slices[0].orientation!;
  const rowDir = unit([o[0], o[1], o[2]]);
  const colDir = unit([o[3], o[4], o[5]]);
  const normal = unit(cross(rowDir, colDir));
  const sorted = slices
    .map((s) => ({ s, along: dot(s.positionMm!, normal) }))
    .sort((a, b) => a.along - b.along);
  for (let k = 1; k < sorted.length; k++) {
    if (sorted[k].along - sorted[k - 1].along < 1e-3) {
      throw new VolumeReadError(
        'INCONSISTENT_SERIES',
        dir,
        `two slices (${sorted[k - 1].s.label}, ${sorted[k].s.label}) lie at the same position: the series mixes acquisitions`,
      );
    }
  }
  const origin = sorted[0].s.positionMm!;
  const offsetsMm = sorted.map((e) => e.along - sorted[0].along);
  const shiftsMm = sorted.map((e, k): [number, number] => {
    const inPlane = sub(sub(e.s.positionMm!, origin), scale(normal, offsetsMm[k]));
    return [dot(inPlane, rowDir), dot(inPlane, colDir)];
  });
  const [rowSpacingMm, columnSpacingMm] = slices[0].pixelSpacingMm!;
  return { slices: sorted.map((e) => e.s), rowDir, colDir, normal, rowSpacingMm, columnSpacingMm, offsetsMm, shiftsMm };
}


/** Voxel (i, j, k) of the stored stack → LPS mm, with k along `sliceStep`. */
export function storedAffineLps(geometry: SeriesGeometry, sliceStep: Vec3): Mat4 {
  const origin = geometry.slices[0].positionMm!;
  const i = scale(geometry.rowDir, geometry.columnSpacingMm);
  const j = scale(geometry.colDir, geometry.rowSpacingMm);
  return [
    i[0], j[0], sliceStep[0], origin[0],
    i[1], j[1], sliceStep[1], origin[1],
    i[2], j[2], sliceStep[2], origin[2],
    0, 0, 0, 1,
  ];
}

/** LPS → RAS+: the same matrix with the x and y rows negated. */
export function lpsToRas(affine: Mat4): Mat4 {
  return affine.map((v, n) => (n < 8 ? -v : v));
}

/** The slice step: the measured one where the stack was already regular and straight (keeps any slight
 * obliquity the scanner recorded), the normal times the new spacing where the reader resampled. */
export function sliceStepOf(geometry: SeriesGeometry, resampled: boolean, tilted: boolean, spacingMm: number): Vec3 {
  const n = geometry.slices.length;
  if (n < 2 || resampled || tilted) return scale(geometry.normal, spacingMm);
  return scale(sub(geometry.slices[n - 1].positionMm!, geometry.slices[0].positionMm!), 1 / (n - 1));
}
