/**
 * Resampling a DICOM stack onto a regular orthogonal grid: gantry tilt sheared back, uneven slice gaps
 * interpolated to one spacing. Each correction is reported.
 */
import type { SliceHeader } from './dicom-scan.js';
import type { SeriesGeometry } from './dicom-geometry.js';
import type { Correction, VoxelArray } from './volume.js';
import { blendArena, type BlendArena } from './blend-int16.js';

/** In-plane shifts below this are float noise in ImagePositionPatient, not tilt. */
function tiltThresholdMm(geometry: SeriesGeometry): number {
  return Math.max(0.01, 0.02 * Math.min(geometry.rowSpacingMm, geometry.columnSpacingMm));
}

function volumeMin(data: VoxelArray): number {
  return data instanceof Int16Array ? minInt16(data) : minFloat32(data);
}

// The resampling loops below are written once per voxel type: over the `Int16Array | Float32Array` union
// V8 keeps every element access polymorphic, which made the tilted, unevenly spaced GE head read at a
// fifth of pydicom's speed. The arithmetic is the same in both copies. The int16 copies round with
// floor(v + 0.5), which equals Math.round for these values; V8 on x64 compiles Math.round to a slow
// sequence, and it took three quarters of the GE head's read time.

function minInt16(data: Int16Array): number {
  // Four running minima: one compare chain per lane lets the loads overlap (twice as fast as one).
  let a = 32767;
  let b = 32767;
  let c = 32767;
  let d = 32767;
  const whole = data.length & ~3;
  for (let p = 0; p < whole; p += 4) {
    const v0 = data[p];
    const v1 = data[p + 1];
    const v2 = data[p + 2];
    const v3 = data[p + 3];
    if (v0 < a) a = v0;
    if (v1 < b) b = v1;
    if (v2 < c) c = v2;
    if (v3 < d) d = v3;
  }
  for (let p = whole; p < data.length; p++) if (data[p] < a) a = data[p];
  return Math.min(a, b, c, d);
}

function minFloat32(data: Float32Array): number {
  let min = Infinity;
  for (let p = 0; p < data.length; p++) if (data[p] < min) min = data[p];
  return min;
}

/** Per output index along one axis: the source index below and the weight of the one above, or -1
 * where the sample falls outside the image. A constant shift gives every inner index the same offset
 * and weight: `run` is that stretch [start, end), so the loops below need no per-pixel table there. */
function axisSamples(length: number, shiftPx: number): AxisSamples {
  const index = new Int32Array(length);
  const weight = new Float64Array(length);
  for (let o = 0; o < length; o++) {
    const at = o - shiftPx;
    if (at < -1e-6 || at > length - 1 + 1e-6) {
      index[o] = -1;
      continue;
    }
    const below = Math.min(Math.max(Math.floor(at), 0), length - 1);
    index[o] = below;
    weight[o] = below + 1 < length ? Math.min(Math.max(at - below, 0), 1) : 0;
  }
  return { index, weight, run: constantRun(index, weight, length) };
}

interface AxisRun {
  start: number;
  end: number;
  /** index[o] = o + offset and weight[o] = weight for o in [start, end). */
  offset: number;
  weight: number;
}

interface AxisSamples {
  index: Int32Array;
  weight: Float64Array;
  run: AxisRun;
}

/** The longest stretch of equal offset and weight whose upper neighbour lies inside the image. */
function constantRun(index: Int32Array, weight: Float64Array, length: number): AxisRun {
  let best: AxisRun = { start: 0, end: 0, offset: 0, weight: 0 };
  let o = 0;
  while (o < length) {
    if (index[o] < 0 || index[o] + 1 >= length) {
      o++;
      continue;
    }
    const offset = index[o] - o;
    const w = weight[o];
    let end = o + 1;
    while (end < length && index[end] === end + offset && weight[end] === w && index[end] + 1 < length) end++;
    if (end - o > best.end - best.start) best = { start: o, end, offset, weight: w };
    o = end;
  }
  return best;
}

/** True when the shift along rows is a whole zero: every column samples itself with weight 0. A tilted
 * gantry moves slices along the column direction only, so this is the usual case, and each output row is
 * then a blend of two source rows (the same arithmetic as the bilinear loop, since x·1 + x·0 is x
 * exactly), and the rows with one shared weight are one blend. */
function isIdentityAxis(s: AxisSamples): boolean {
  for (let o = 0; o < s.index.length; o++) if (s.index[o] !== o || s.weight[o] !== 0) return false;
  return true;
}

function shiftSliceInt16(src: Int16Array, srcOffset: number, dst: Int16Array, dstOffset: number, cols: number, rows: number, si: AxisSamples, sj: AxisSamples, fill: number): void {
  const { start, end, offset: di, weight: wc } = si.run;
  const wc0 = 1 - wc;
  const next = wc > 0 ? 1 : 0;
  for (let j = 0; j < rows; j++) {
    const j0 = sj.index[j];
    const outRow = dstOffset + j * cols;
    if (j0 < 0) {
      dst.fill(fill, outRow, outRow + cols);
      continue;
    }
    const wj = sj.weight[j];
    const row0 = srcOffset + j0 * cols;
    const wj0 = 1 - wj;
    const row1 = wj > 0 ? row0 + cols : row0;
    shiftRowInt16(src, dst, outRow, row0, row1, wj, si, 0, start, fill);
    // The inner stretch: same arithmetic as shiftRowInt16 with the offset and weight hoisted.
    const a = row0 + di;
    const b = row1 + di;
    for (let i = start; i < end; i++) {
      const top = src[a + i] * wc0 + src[a + i + next] * wc;
      const bottom = src[b + i] * wc0 + src[b + i + next] * wc;
      dst[outRow + i] = Math.floor(top * wj0 + bottom * wj + 0.5);
    }
    shiftRowInt16(src, dst, outRow, row0, row1, wj, si, end, cols, fill);
  }
}

function shiftRowInt16(src: Int16Array, dst: Int16Array, outRow: number, row0: number, row1: number, wj: number, si: AxisSamples, from: number, to: number, fill: number): void {
  for (let i = from; i < to; i++) {
    const i0 = si.index[i];
    if (i0 < 0) {
      dst[outRow + i] = fill;
      continue;
    }
    const wi = si.weight[i];
    const i1 = wi > 0 ? i0 + 1 : i0;
    const top = src[row0 + i0] * (1 - wi) + src[row0 + i1] * wi;
    const bottom = src[row1 + i0] * (1 - wi) + src[row1 + i1] * wi;
    dst[outRow + i] = Math.floor(top * (1 - wj) + bottom * wj + 0.5);
  }
}

function shiftSliceFloat32(src: Float32Array, srcOffset: number, dst: Float32Array, dstOffset: number, cols: number, rows: number, si: AxisSamples, sj: AxisSamples, fill: number): void {
  for (let j = 0; j < rows; j++) {
    const j0 = sj.index[j];
    const outRow = dstOffset + j * cols;
    if (j0 < 0) {
      dst.fill(fill, outRow, outRow + cols);
      continue;
    }
    const wj = sj.weight[j];
    const row0 = srcOffset + j0 * cols;
    const row1 = wj > 0 ? row0 + cols : row0;
    for (let i = 0; i < cols; i++) {
      const i0 = si.index[i];
      if (i0 < 0) {
        dst[outRow + i] = fill;
        continue;
      }
      const wi = si.weight[i];
      const i1 = wi > 0 ? i0 + 1 : i0;
      const top = src[row0 + i0] * (1 - wi) + src[row0 + i1] * wi;
      const bottom = src[row1 + i0] * (1 - wi) + src[row1 + i1] * wi;
      dst[outRow + i] = top * (1 - wj) + bottom * wj;
    }
  }
}

/**
 * Gantry tilt: the slices are parallel but each is displaced in-plane in proportion to its position.
 * Shifting every slice back (as dcm2niix does) puts all of them on one orthogonal grid anchored at the
 * first slice; the shift is sub-pixel and linear interpolation keeps it smooth.
 */
function tiltCorrection(geometry: SeriesGeometry): Correction | undefined {
  const { shiftsMm, offsetsMm } = geometry;
  const maxShiftMm = Math.max(...shiftsMm.map(([a, b]) => Math.hypot(a, b)));
  if (maxShiftMm <= tiltThresholdMm(geometry)) return undefined;
  const last = offsetsMm.length - 1;
  const lastShift = Math.hypot(...shiftsMm[last]);
  const tiltDeg = (Math.atan2(lastShift, offsetsMm[last]) * 180) / Math.PI;
  const headerTilt = geometry.slices[0].gantryTiltDeg;
  const details: Record<string, number> = { tiltDeg, maxShiftMm };
  let headerNote = ' (GantryDetectorTilt absent)';
  if (headerTilt !== undefined) {
    details.headerTiltDeg = headerTilt;
    const agrees = Math.abs(Math.abs(headerTilt) - tiltDeg) < 0.5;
    headerNote = ` (GantryDetectorTilt says ${headerTilt}°${agrees ? ', agrees' : ', disagrees with the geometry, which was used'})`;
  }
  return {
    kind: 'gantry-tilt',
    message: `gantry tilt ${tiltDeg.toFixed(1)}°${headerNote}: slices sheared back onto an orthogonal grid (shifts up to ${maxShiftMm.toFixed(1)} mm, linear interpolation)`,
    details,
  };
}

interface SpacingPlan {
  sliceCount: number;
  spacingMm: number;
  correction?: Correction;
}

function gapsOf(offsetsMm: number[]): number[] {
  return offsetsMm.slice(1).map((v, k) => v - offsetsMm[k]);
}

function thinnestSliceMm(slices: SliceHeader[]): number | undefined {
  const thicknesses = slices.map((s) => s.sliceThicknessMm).filter((t): t is number => t !== undefined && t > 0);
  return thicknesses.length > 0 ? Math.min(...thicknesses) : undefined;
}

/**
 * Uneven slice gaps (a GE head protocol switches from thin to thick slices; a lost file leaves a hole)
 * cannot be described by one affine. The stack is resampled along the normal, by linear interpolation,
 * to the smallest gap, but never finer than the thinnest slice: where consecutive slices overlap (GE's
 * 4 mm → 7 mm switch leaves a 1.08 mm gap) a finer grid would only add interpolated copies, while
 * anything coarser than the finest gap between non-overlapping slices would discard acquired detail.
 * The step is then shrunk just enough to divide the extent evenly, so first and last slices stay exact.
 */
function spacingPlan(geometry: SeriesGeometry): SpacingPlan {
  const { offsetsMm } = geometry;
  const n = offsetsMm.length;
  if (n < 2) {
    const s = geometry.slices[0];
    return { sliceCount: n, spacingMm: s.spacingBetweenSlicesMm ?? s.sliceThicknessMm ?? 1 };
  }
  const gaps = gapsOf(offsetsMm);
  const minGapMm = Math.min(...gaps);
  const maxGapMm = Math.max(...gaps);
  const extentMm = offsetsMm[n - 1];
  const tolerance = Math.max(0.01, 0.01 * minGapMm);
  if (maxGapMm - minGapMm <= tolerance) return { sliceCount: n, spacingMm: extentMm / (n - 1) };

  const targetMm = Math.max(minGapMm, thinnestSliceMm(geometry.slices) ?? 0);
  // Four times the input is a last guard against a near-duplicate slice exploding the volume.
  const steps = Math.min(Math.ceil(extentMm / targetMm - 1e-6), 4 * (n - 1));
  const spacingMm = extentMm / steps;
  return {
    sliceCount: steps + 1,
    spacingMm,
    correction: {
      kind: 'uneven-spacing',
      message: `slice gaps vary from ${minGapMm.toFixed(2)} to ${maxGapMm.toFixed(2)} mm: resampled to ${steps + 1} slices every ${spacingMm.toFixed(3)} mm (linear interpolation)`,
      details: { minGapMm, maxGapMm, spacingMm, slicesIn: n, slicesOut: steps + 1 },
    },
  };
}

export interface Resampled {
  data: VoxelArray;
  sliceCount: number;
  spacingMm: number;
  /** The tilt correction, then the spacing correction, where either was made. */
  corrections: Correction[];
}

/** Input slice k, sheared back where tilted, on hand for the output walk. */
interface ShearedSlices {
  /** Sheared slice k into out at o. */
  copyTo(k: number, out: VoxelArray, o: number): void;
  /** (1 − w) · sheared slice k + w · sheared slice k + 1, into out at o. */
  blendTo(k: number, w: number, out: VoxelArray, o: number): void;
}

/**
 * The stack on a regular orthogonal grid: each slice sheared back (tilt), then slices interpolated to
 * one spacing (gaps), in one pass over the output. A sheared slice is computed once into one of two
 * slice-sized scratch buffers and blended from there, so no whole-volume intermediate is allocated or
 * walked. The arithmetic and rounding are those of shearing the whole stack first: the voxels are the
 * same as before the pass was fused (pinned by the GE head's canonical hash in the tests).
 * `scalarBlend` runs the int16 blends in the scalar loop instead of the SIMD kernel (for the tests).
 */
export function resampleStack(data: VoxelArray, geometry: SeriesGeometry, options: { scalarBlend?: boolean } = {}): Resampled {
  const tilt = tiltCorrection(geometry);
  const plan = spacingPlan(geometry);
  const corrections = [tilt, plan.correction].filter((c): c is Correction => c !== undefined);
  if (!tilt && !plan.correction) return { data, sliceCount: plan.sliceCount, spacingMm: plan.spacingMm, corrections };

  const perSlice = geometry.slices[0].rows * geometry.slices[0].cols;
  const out = new (data.constructor as new (length: number) => VoxelArray)(perSlice * plan.sliceCount);
  const fill = tilt ? volumeMin(data) : 0;
  const slices = data instanceof Int16Array ? int16Slices(data, geometry, tilt !== undefined, fill, options.scalarBlend === true) : float32Slices(data, geometry, tilt !== undefined, fill);
  const { offsetsMm } = geometry;
  const n = offsetsMm.length;
  const steps = plan.sliceCount - 1;
  let below = 0;
  for (let m = 0; m <= steps; m++) {
    const o = m * perSlice;
    if (!plan.correction) {
      slices.copyTo(m, out, o);
      continue;
    }
    const at = m === steps ? offsetsMm[n - 1] : m * plan.spacingMm;
    while (below < n - 2 && offsetsMm[below + 1] <= at) below++;
    const w = Math.min(Math.max((at - offsetsMm[below]) / (offsetsMm[below + 1] - offsetsMm[below]), 0), 1);
    if (w < 1e-6) slices.copyTo(below, out, o);
    else if (w > 1 - 1e-6) slices.copyTo(below + 1, out, o);
    else slices.blendTo(below, w, out, o);
  }
  return { data: out, sliceCount: plan.sliceCount, spacingMm: plan.spacingMm, corrections };
}

/** Pixel shifts of slice k: along rows (i) and along columns (j). */
function shiftsPx(geometry: SeriesGeometry, k: number): [number, number] {
  const [alongRowMm, alongColMm] = geometry.shiftsMm[k];
  return [alongRowMm / geometry.columnSpacingMm, alongColMm / geometry.rowSpacingMm];
}

/** Two held slices in slots 0 and 1; `ensure(k, keep)` puts slice k in one, never evicting `keep`. */
function slotCache(fillSlot: (k: number, slot: number) => void): (k: number, keep: number) => number {
  const held = [-1, -1];
  return (k, keep) => {
    let slot = held.indexOf(k);
    if (slot >= 0) return slot;
    slot = held[0] === keep ? 1 : held[1] === keep ? 0 : held[0] <= held[1] ? 0 : 1;
    fillSlot(k, slot);
    held[slot] = k;
    return slot;
  };
}

const IN = 2;
const BLENDED = 3;

/** Int16 stacks: the blends run in the SIMD kernel's memory (slots 0–1 sheared slices, 2 the input slice,
 * 3 a blended output slice), copied in and out with memcpy. */
function int16Slices(data: Int16Array, geometry: SeriesGeometry, tilted: boolean, fill: number, scalar: boolean): ShearedSlices {
  const { rows, cols } = geometry.slices[0];
  const perSlice = rows * cols;
  const arena = blendArena(4, perSlice, scalar);
  const input = (k: number): Int16Array => data.subarray(k * perSlice, (k + 1) * perSlice);
  const ensure = slotCache((k, slot) => {
    if (!tilted) {
      arena.slots[slot].set(input(k));
      return;
    }
    arena.slots[IN].set(input(k));
    const [shiftI, shiftJ] = shiftsPx(geometry, k);
    shearInt16(arena, IN, slot, cols, rows, axisSamples(cols, shiftI), axisSamples(rows, shiftJ), fill);
  });
  return {
    copyTo: (k, out, o) => {
      if (tilted) out.set(arena.slots[ensure(k, -1)], o);
      else out.set(input(k), o);
    },
    blendTo: (k, w, out, o) => {
      const a = ensure(k, -1);
      const b = ensure(k + 1, k);
      arena.blend(a, 0, b, 0, BLENDED, 0, perSlice, w);
      out.set(arena.slots[BLENDED], o);
    },
  };
}

/** Shear of arena slot `from` into slot `to`; a shift along columns only is blends of whole rows. */
function shearInt16(arena: BlendArena, from: number, to: number, cols: number, rows: number, si: AxisSamples, sj: AxisSamples, fill: number): void {
  const src = arena.slots[from];
  const dst = arena.slots[to];
  if (!isIdentityAxis(si)) {
    shiftSliceInt16(src, 0, dst, 0, cols, rows, si, sj, fill);
    return;
  }
  const { start, end, offset, weight } = sj.run;
  const rowsOf = (j0: number, j1: number, w: number): void => {
    if (j1 <= j0) return;
    if (w > 0) arena.blend(from, (j0 + offset) * cols, from, (j0 + offset + 1) * cols, to, j0 * cols, (j1 - j0) * cols, w);
    else dst.set(src.subarray((j0 + offset) * cols, (j1 + offset) * cols), j0 * cols);
  };
  for (let j = 0; j < rows; j++) {
    if (j === start && end > start) {
      rowsOf(start, end, weight);
      j = end - 1;
      continue;
    }
    const j0 = sj.index[j];
    if (j0 < 0) dst.fill(fill, j * cols, (j + 1) * cols);
    else if (sj.weight[j] > 0) arena.blend(from, j0 * cols, from, (j0 + 1) * cols, to, j * cols, cols, sj.weight[j]);
    else dst.set(src.subarray(j0 * cols, (j0 + 1) * cols), j * cols);
  }
}

/** Float32 stacks (non-integer rescale): the same walk in plain loops. */
function float32Slices(data: Float32Array, geometry: SeriesGeometry, tilted: boolean, fill: number): ShearedSlices {
  const { rows, cols } = geometry.slices[0];
  const perSlice = rows * cols;
  const scratch = [new Float32Array(perSlice), new Float32Array(perSlice)];
  const shearInto = (k: number, dst: Float32Array, o: number): void => {
    const [shiftI, shiftJ] = shiftsPx(geometry, k);
    shiftSliceFloat32(data, k * perSlice, dst, o, cols, rows, axisSamples(cols, shiftI), axisSamples(rows, shiftJ), fill);
  };
  const ensure = slotCache((k, slot) => shearInto(k, scratch[slot], 0));
  const at = (k: number, keep: number): [Float32Array, number] => (tilted ? [scratch[ensure(k, keep)], 0] : [data, k * perSlice]);
  return {
    copyTo: (k, out, o) => {
      if (tilted) shearInto(k, out as Float32Array, o);
      else out.set(data.subarray(k * perSlice, (k + 1) * perSlice), o);
    },
    blendTo: (k, w, out, o) => {
      const [a, aOffset] = at(k, -1);
      const [b, bOffset] = at(k + 1, k);
      const dst = out as Float32Array;
      for (let p = 0; p < perSlice; p++) dst[o + p] = a[aOffset + p] * (1 - w) + b[bOffset + p] * w;
    },
  };
}
