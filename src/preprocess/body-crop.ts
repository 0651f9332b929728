import type { Volume, VoxelArray } from '../io/volume.js';
import { int16RowRunScanner, int16Threshold, type RowRuns } from './body-runs-simd.js';
import type { PixelBox } from './resize.js';

/** Tuning of `bodyBoundingBox`; the defaults suit adult CT with or without a table. */
export interface BodyCropOptions {
  /** Voxels above this are "body" (default −500 HU). */
  thresholdHu?: number;
  /** Other components must have at least this fraction of the largest one's area (default 0.02). */
  minComponentFraction?: number;
  /** … and at least this mean thickness, area over width (default 10 mm). */
  minComponentThicknessMm?: number;
  /** A slice whose largest component is smaller than this has no body (default 400 mm², a 2 cm square). */
  minBodyAreaMm2?: number;
  /** Added on every side of the box, clamped to the image. Default 0: the −500 HU outline already sits on
   * the skin, and on IRCADb-17 the table runs 3–5 mm under the back, so even a 5 mm margin lets it back in. */
  marginMm?: number;
  /** At most this many evenly spaced slices are examined for a volume (default 64). */
  maxSlices?: number;
}

/** A pixel box of the canonical slice grid (end exclusive). `found` is false when no slice held a body;
 * the box is then the whole slice. */
export interface BodyBox extends PixelBox {
  found: boolean;
}

/** One axial slice as a row-major image: heightPx rows of widthPx columns (i fastest). */
export interface AxialSlice {
  data: VoxelArray;
  widthPx: number;
  heightPx: number;
  /** Pixel size along i and along j in mm; taken as 1 mm when absent (only mm-based options use it). */
  pixelSpacingMm?: readonly [number, number];
}

/** Canonical slice k of a volume as an image, sharing the volume's memory (no copy). */
export function axialSlice(volume: Volume, k: number): AxialSlice {
  const [widthPx, heightPx, sliceCount] = volume.dims;
  if (!Number.isInteger(k) || k < 0 || k >= sliceCount) throw new RangeError(`slice ${k} outside 0..${sliceCount - 1}`);
  const size = widthPx * heightPx;
  return {
    data: volume.data.subarray(k * size, (k + 1) * size),
    widthPx,
    heightPx,
    pixelSpacingMm: [volume.spacingMm[0], volume.spacingMm[1]],
  };
}

function isVolume(input: Volume | AxialSlice): input is Volume {
  return 'dims' in input;
}

/**
 * The body outline's bounding box, so that air and the CT table do not take up half of every encoder
 * input (at 512 px over a 380 mm field of view, air and table are often 40 % of the pixels).
 *
 * Method, per axial slice: threshold at −500 HU (between air/foam mattress, ≈ −1000…−700, and fat,
 * ≈ −100), label 4-connected components, take the largest as the trunk (or head), and keep with it every
 * other component that is (a) at least 2 % of its area, (b) on average at least 10 mm thick (area over
 * width) and (c) centred within the trunk's rows: arms beside the trunk and the second leg below the
 * pelvis pass; the table fails all three (a thin curved shell, a few percent of the body's area, lying
 * under the back across the sub −500 HU mattress), as do specks of noise and clothing. Area alone
 * cannot tell an arm (≈ 7 % of the trunk) from a table (3–6 %). 4-connectivity rather than 8 so a
 * one-pixel diagonal contact does not weld the table onto the body.
 *
 * For a volume the box is the union of the boxes of (up to `maxSlices`) evenly spaced slices, not a box
 * per slice: every slice of a volume then shares one mm → pixel scale, so the same anatomy has the same
 * size on neighbouring slices and slice-to-slice comparisons (late interaction, localization) are not
 * disturbed by the zoom following the body outline; the union is also immune to a slice where the body
 * is small (the top of the lungs) or absent.
 *
 * `scan` 'scalar' keeps int16 slices off the SIMD threshold scan (body-runs-simd.ts), for the tests that
 * compare the two.
 */
export function bodyBoundingBox(input: Volume | AxialSlice, options: BodyCropOptions = {}, scan: 'simd' | 'scalar' = 'simd'): BodyBox {
  const thresholdHu = options.thresholdHu ?? -500;
  const minComponentFraction = options.minComponentFraction ?? 0.02;
  const minComponentThicknessMm = options.minComponentThicknessMm ?? 10;
  const minBodyAreaMm2 = options.minBodyAreaMm2 ?? 400;
  const marginMm = options.marginMm ?? 0;
  const maxSlices = options.maxSlices ?? 64;
  if (!(maxSlices >= 1)) throw new RangeError(`maxSlices must be at least 1, got ${maxSlices}`);

  let widthPx: number;
  let heightPx: number;
  let spacingIMm: number;
  let spacingJMm: number;
  let sliceStarts: number[];
  let data: VoxelArray;
  if (isVolume(input)) {
    [widthPx, heightPx] = input.dims;
    [spacingIMm, spacingJMm] = input.spacingMm;
    data = input.data;
    const sliceCount = input.dims[2];
    const used = Math.min(sliceCount, Math.floor(maxSlices));
    sliceStarts = [];
    for (let s = 0; s < used; s++) {
      const k = used === 1 ? sliceCount >> 1 : Math.round((s * (sliceCount - 1)) / (used - 1));
      sliceStarts.push(k * widthPx * heightPx);
    }
  } else {
    ({ widthPx, heightPx, data } = input);
    [spacingIMm, spacingJMm] = input.pixelSpacingMm ?? [1, 1];
    if (data.length < widthPx * heightPx) {
      throw new RangeError(`slice has ${data.length} values, expected ${widthPx}×${heightPx}`);
    }
    sliceStarts = [0];
  }

  const workspace = new ComponentWorkspace(widthPx, heightPx, scan === 'simd');
  const rules: ComponentRules = {
    thresholdHu,
    minComponentFraction,
    minComponentThicknessPx: minComponentThicknessMm / spacingJMm,
    minBodyAreaPx: minBodyAreaMm2 / (spacingIMm * spacingJMm),
  };
  let union: PixelBox | null = null;
  for (const start of sliceStarts) {
    const box = workspace.bodyBox(data, start, widthPx, heightPx, rules);
    if (!box) continue;
    if (!union) union = box;
    else {
      union.iStart = Math.min(union.iStart, box.iStart);
      union.iEnd = Math.max(union.iEnd, box.iEnd);
      union.jStart = Math.min(union.jStart, box.jStart);
      union.jEnd = Math.max(union.jEnd, box.jEnd);
    }
  }
  if (!union) return { iStart: 0, iEnd: widthPx, jStart: 0, jEnd: heightPx, found: false };
  const marginIPx = Math.ceil(marginMm / spacingIMm);
  const marginJPx = Math.ceil(marginMm / spacingJMm);
  return {
    iStart: Math.max(0, union.iStart - marginIPx),
    iEnd: Math.min(widthPx, union.iEnd + marginIPx),
    jStart: Math.max(0, union.jStart - marginJPx),
    jEnd: Math.min(heightPx, union.jEnd + marginJPx),
    found: true,
  };
}

interface ComponentRules {
  thresholdHu: number;
  minComponentFraction: number;
  /** Mean extent along j (rows), in pixels. */
  minComponentThicknessPx: number;
  minBodyAreaPx: number;
}

/**
 * Appends the runs of one row whose voxels are above `thresholdHu` (start inclusive, end exclusive) and
 * returns the new run count. Written once per voxel type so the loop stays monomorphic; NaN > threshold is
 * false, so a non-finite voxel is never body.
 */
function rowRunsInt16(data: Int16Array, rowStart: number, widthPx: number, thresholdHu: number, starts: Int32Array, ends: Int32Array, count: number): number {
  let i = 0;
  while (i < widthPx) {
    while (i < widthPx && !(data[rowStart + i] > thresholdHu)) i++;
    if (i === widthPx) break;
    starts[count] = i;
    while (i < widthPx && data[rowStart + i] > thresholdHu) i++;
    ends[count++] = i;
  }
  return count;
}

function rowRunsFloat32(data: Float32Array, rowStart: number, widthPx: number, thresholdHu: number, starts: Int32Array, ends: Int32Array, count: number): number {
  let i = 0;
  while (i < widthPx) {
    while (i < widthPx && !(data[rowStart + i] > thresholdHu)) i++;
    if (i === widthPx) break;
    starts[count] = i;
    while (i < widthPx && data[rowStart + i] > thresholdHu) i++;
    ends[count++] = i;
  }
  return count;
}

/**
 * Connected components of one slice by runs: each row's above-threshold runs, joined to the runs of the
 * row above that share a column (4-connectivity) with union-find. One read per voxel and work per run
 * rather than per pixel: a flood fill visiting every body pixel cost ~3× more. Components come out in the
 * raster order of their first pixel, as a flood fill finds them, so ties between equal areas resolve the
 * same way. Buffers are allocated once and reused per slice.
 */
class ComponentWorkspace {
  private readonly starts: Int32Array;
  private readonly ends: Int32Array;
  private readonly rowEnds: Int32Array;
  private readonly runRows: Int32Array;
  private readonly parent: Int32Array;
  /** Per root run: its component's offset in the stats. */
  private readonly slot: Int32Array;
  private readonly scanner: ((data: Int16Array, start: number, threshold: number) => RowRuns) | null;

  constructor(widthPx: number, heightPx: number, simd: boolean) {
    // At most one run per two columns, plus one per row.
    const capacity = heightPx * (Math.ceil(widthPx / 2) + 1);
    this.starts = new Int32Array(capacity);
    this.ends = new Int32Array(capacity);
    this.rowEnds = new Int32Array(heightPx);
    this.runRows = new Int32Array(capacity);
    this.parent = new Int32Array(capacity);
    this.slot = new Int32Array(capacity);
    this.scanner = simd ? int16RowRunScanner(widthPx, heightPx) : null;
  }

  private find(run: number): number {
    const parent = this.parent;
    let root = run;
    while (parent[root] !== root) root = parent[root];
    while (parent[run] !== root) {
      const next = parent[run];
      parent[run] = root;
      run = next;
    }
    return root;
  }

  /** Every row's above-threshold runs, in raster order. */
  private runsOf(data: VoxelArray, start: number, widthPx: number, heightPx: number, thresholdHu: number): RowRuns {
    if (data instanceof Int16Array && this.scanner) {
      const threshold = int16Threshold(thresholdHu);
      if (threshold !== undefined) return this.scanner(data, start, threshold);
    }
    const { starts, ends, rowEnds } = this;
    let count = 0;
    for (let j = 0; j < heightPx; j++) {
      const rowStart = start + j * widthPx;
      count = data instanceof Int16Array
        ? rowRunsInt16(data, rowStart, widthPx, thresholdHu, starts, ends, count)
        : rowRunsFloat32(data as Float32Array, rowStart, widthPx, thresholdHu, starts, ends, count);
      rowEnds[j] = count;
    }
    return { starts, ends, rowEnds };
  }

  /** Box of the body components of the slice at data[start …], or null when the slice has no body. */
  bodyBox(
    data: VoxelArray,
    start: number,
    widthPx: number,
    heightPx: number,
    rules: ComponentRules,
  ): PixelBox | null {
    const { runRows, parent } = this;
    const { starts, ends, rowEnds } = this.runsOf(data, start, widthPx, heightPx, rules.thresholdHu);
    const count = heightPx > 0 ? rowEnds[heightPx - 1] : 0;
    let first = 0;
    let previousFirst = 0;
    for (let j = 0; j < heightPx; j++) {
      const end = rowEnds[j];
      // Join with the runs of the row above that overlap in at least one column.
      let above = j > 0 ? previousFirst : first;
      for (let r = first; r < end; r++) {
        parent[r] = r;
        runRows[r] = j;
        while (above < first && ends[above] <= starts[r]) above++;
        for (let u = above; u < first && starts[u] < ends[r]; u++) {
          const a = this.find(u);
          const b = this.find(r);
          // The earlier run is the root, so a component's root is its first run in raster order.
          if (a < b) parent[b] = a;
          else if (b < a) parent[a] = b;
        }
      }
      previousFirst = first;
      first = end;
    }
    // Per component: area, then box (iMin, iMax, jMin, jMax inclusive), 5 numbers each, in root order.
    const stats: number[] = [];
    // A root is its component's first run, so it is met (and given its slot) before the component's others.
    const slot = this.slot;
    for (let r = 0; r < count; r++) {
      const root = this.find(r);
      let c: number;
      if (root === r) {
        c = stats.length;
        slot[r] = c;
        stats.push(0, starts[r], ends[r] - 1, runRows[r], runRows[r]);
      } else c = slot[root];
      stats[c] += ends[r] - starts[r];
      if (starts[r] < stats[c + 1]) stats[c + 1] = starts[r];
      if (ends[r] - 1 > stats[c + 2]) stats[c + 2] = ends[r] - 1;
      if (runRows[r] > stats[c + 4]) stats[c + 4] = runRows[r];
    }
    let largest = -1;
    for (let c = 0; c < stats.length; c += 5) if (largest < 0 || stats[c] > stats[largest]) largest = c;
    if (largest < 0 || stats[largest] < rules.minBodyAreaPx) return null;
    const minAreaPx = stats[largest] * rules.minComponentFraction;
    const trunkJMin = stats[largest + 3];
    const trunkJMax = stats[largest + 4];
    const box: PixelBox = { iStart: widthPx, iEnd: 0, jStart: heightPx, jEnd: 0 };
    for (let c = 0; c < stats.length; c += 5) {
      const areaPx = stats[c];
      if (c !== largest) {
        if (areaPx < minAreaPx) continue;
        if (areaPx / (stats[c + 2] - stats[c + 1] + 1) < rules.minComponentThicknessPx) continue;
        const jCentre = (stats[c + 3] + stats[c + 4]) / 2;
        if (jCentre < trunkJMin || jCentre > trunkJMax) continue;
      }
      box.iStart = Math.min(box.iStart, stats[c + 1]);
      box.iEnd = Math.max(box.iEnd, stats[c + 2] + 1);
      box.jStart = Math.min(box.jStart, stats[c + 3]);
      box.jEnd = Math.max(box.jEnd, stats[c + 4] + 1);
    }
    return box;
  }
}
