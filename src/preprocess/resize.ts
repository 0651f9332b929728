/**
 * In-plane resize of an axial slice (or a crop of it) onto the encoder's grid, keeping the physical
 * aspect ratio and letterboxing the rest with 0.
 *
 * Hand-written rather than sharp/jimp/tfjs: those work on 8-bit RGB(A) images (HU would be quantized to
 * 256 levels before resizing, and anisotropic pixel spacing is not something they know about), and a
 * tfjs resize per slice costs a tensor round trip. Here a resize is two separable passes over
 * precomputed weight tables: area averaging (exact box overlap, like OpenCV's INTER_AREA) on an axis
 * that shrinks, so 512 → 224 averages ~2.3 source pixels per output pixel instead of sampling and
 * aliasing; bilinear (half-pixel centres, edge clamped) on an axis that grows. Weights are non-negative
 * and sum to 1, so inputs in [0, 1] stay in [0, 1] and a constant image stays constant.
 */

/** A pixel rectangle of a slice: columns iStart ≤ i < iEnd, rows jStart ≤ j < jEnd. */
export interface PixelBox {
  iStart: number;
  iEnd: number;
  jStart: number;
  jEnd: number;
}

export interface ResizeGeometry {
  /** Size of the whole source slice: columns (i) and rows (j). */
  srcWidthPx: number;
  srcHeightPx: number;
  /** Pixel size along i (between columns) and along j (between rows), mm. */
  pixelSpacingMm: readonly [number, number];
  /** The part of the slice to resize; the whole slice when absent. */
  crop?: PixelBox;
  outWidthPx: number;
  outHeightPx: number;
}

/** Resampling along one axis: output pixel o (0 ≤ o < dstLength, placed at dstOffset + o) is
 * Σ_t weights[o·maxTaps + t] · src[srcStart + starts[o] + t] for t < counts[o]. */
export interface ResampleAxis {
  filter: 'area' | 'bilinear';
  srcStart: number;
  srcLength: number;
  dstOffset: number;
  dstLength: number;
  starts: Int32Array;
  counts: Int32Array;
  weights: Float64Array;
  maxTaps: number;
}

export interface ResizePlan {
  outWidthPx: number;
  outHeightPx: number;
  srcWidthPx: number;
  srcHeightPx: number;
  crop: PixelBox;
  /** Columns: crop columns → output columns dstOffset … dstOffset + dstLength − 1. */
  x: ResampleAxis;
  /** Rows: crop rows → output rows. */
  y: ResampleAxis;
}

export function fullBox(widthPx: number, heightPx: number): PixelBox {
  return { iStart: 0, iEnd: widthPx, jStart: 0, jEnd: heightPx };
}

/**
 * Weight tables for one source → output geometry. Built once per volume (every slice of a volume shares
 * its size, spacing and crop) and reused for every slice.
 */
export function planResize(geometry: ResizeGeometry): ResizePlan {
  const { srcWidthPx, srcHeightPx, outWidthPx, outHeightPx } = geometry;
  for (const [label, value] of [
    ['source width', srcWidthPx],
    ['source height', srcHeightPx],
    ['output width', outWidthPx],
    ['output height', outHeightPx],
  ] as const) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`${label} must be a positive integer of pixels, got ${value}`);
  }
  const [spacingIMm, spacingJMm] = geometry.pixelSpacingMm;
  if (!(spacingIMm > 0) || !(spacingJMm > 0) || !Number.isFinite(spacingIMm) || !Number.isFinite(spacingJMm)) {
    throw new RangeError(`pixel spacing must be positive mm, got ${spacingIMm} × ${spacingJMm}`);
  }
  const crop = geometry.crop ?? fullBox(srcWidthPx, srcHeightPx);
  const { iStart, iEnd, jStart, jEnd } = crop;
  if (
    !Number.isInteger(iStart) || !Number.isInteger(iEnd) || !Number.isInteger(jStart) || !Number.isInteger(jEnd) ||
    iStart < 0 || jStart < 0 || iEnd > srcWidthPx || jEnd > srcHeightPx || iStart >= iEnd || jStart >= jEnd
  ) {
    throw new RangeError(`crop ${JSON.stringify(crop)} is not a non-empty pixel box inside ${srcWidthPx}×${srcHeightPx}`);
  }
  const cropWidthPx = iEnd - iStart;
  const cropHeightPx = jEnd - jStart;
  // One mm → output-pixel scale for both axes keeps the physical aspect (not the pixel aspect); the axis
  // that does not fill the output is centred and padded.
  const widthMm = cropWidthPx * spacingIMm;
  const heightMm = cropHeightPx * spacingJMm;
  const pxPerMm = Math.min(outWidthPx / widthMm, outHeightPx / heightMm);
  const contentWidthPx = clampInt(Math.round(widthMm * pxPerMm), 1, outWidthPx);
  const contentHeightPx = clampInt(Math.round(heightMm * pxPerMm), 1, outHeightPx);
  return {
    outWidthPx,
    outHeightPx,
    srcWidthPx,
    srcHeightPx,
    crop: { iStart, iEnd, jStart, jEnd },
    x: resampleAxis(iStart, cropWidthPx, (outWidthPx - contentWidthPx) >> 1, contentWidthPx),
    y: resampleAxis(jStart, cropHeightPx, (outHeightPx - contentHeightPx) >> 1, contentHeightPx),
  };
}

function clampInt(value: number, lo: number, hi: number): number {
  return value < lo ? lo : value > hi ? hi : value;
}

function resampleAxis(srcStart: number, srcLength: number, dstOffset: number, dstLength: number): ResampleAxis {
  const scale = srcLength / dstLength; // source pixels per output pixel
  const filter = scale >= 1 ? 'area' : 'bilinear';
  const maxTaps = filter === 'area' ? Math.ceil(scale) + 1 : 2;
  const starts = new Int32Array(dstLength);
  const counts = new Int32Array(dstLength);
  const weights = new Float64Array(dstLength * maxTaps);
  for (let o = 0; o < dstLength; o++) {
    const base = o * maxTaps;
    if (filter === 'area') {
      // Output pixel o covers source interval [a, b); each source pixel weighs by its overlap.
      const a = o * scale;
      const b = Math.min(srcLength, (o + 1) * scale);
      let first = Math.floor(a);
      let end = Math.min(srcLength, Math.ceil(b));
      // Float error can leave a sliver (1e-13 of a pixel) at either end; drop it.
      if (first + 1 - a < 1e-9 && first + 1 < end) first++;
      if (b - (end - 1) < 1e-9 && end - 1 > first) end--;
      let sum = 0;
      for (let p = first; p < end; p++) {
        const w = Math.min(b, p + 1) - Math.max(a, p);
        weights[base + p - first] = w;
        sum += w;
      }
      for (let t = 0; t < end - first; t++) weights[base + t] /= sum;
      starts[o] = first;
      counts[o] = end - first;
    } else {
      const x = Math.min(srcLength - 1, Math.max(0, (o + 0.5) * scale - 0.5));
      const left = Math.floor(x);
      const frac = x - left;
      starts[o] = left;
      if (left >= srcLength - 1 || frac === 0) {
        counts[o] = 1;
        weights[base] = 1;
      } else {
        counts[o] = 2;
        weights[base] = 1 - frac;
        weights[base + 1] = frac;
      }
    }
  }
  return { filter, srcStart, srcLength, dstOffset, dstLength, starts, counts, weights, maxTaps };
}

/**
 * Horizontal pass for one row: reads `src` from `srcRowOffset` (the index of the crop's first column in
 * that row) and writes the axis's dstLength values to `dst` from `dstOffset`.
 */
export function resampleRowInto(
  axis: ResampleAxis,
  src: ArrayLike<number>,
  srcRowOffset: number,
  dst: Float32Array,
  dstOffset: number,
): void {
  const { starts, counts, weights, maxTaps, dstLength } = axis;
  for (let o = 0; o < dstLength; o++) {
    const from = srcRowOffset + starts[o];
    const n = counts[o];
    const base = o * maxTaps;
    let acc = 0;
    for (let t = 0; t < n; t++) acc += weights[base + t] * src[from + t];
    dst[dstOffset + o] = acc;
  }
}

/**
 * Vertical pass: `rows` holds the horizontally resampled crop rows (crop row r at rowsOffset + r · rowStride,
 * width values each); writes the axis's dstLength output rows into `out`, row oy at
 * outOffset + (dstOffset + oy) · outRowStride + columnOffset. Accumulates in float64 (`accumulator`,
 * at least `width` long) so that a sum of weights that is 1 in float64 never rounds above 1.
 */
export function resampleColumnsInto(
  axis: ResampleAxis,
  rows: Float32Array,
  rowsOffset: number,
  rowStride: number,
  width: number,
  out: Float32Array,
  outOffset: number,
  outRowStride: number,
  columnOffset: number,
  accumulator: Float64Array,
): void {
  const { starts, counts, weights, maxTaps, dstLength, dstOffset } = axis;
  for (let oy = 0; oy < dstLength; oy++) {
    const n = counts[oy];
    const wBase = oy * maxTaps;
    let rowBase = rowsOffset + starts[oy] * rowStride;
    let w = weights[wBase];
    for (let ox = 0; ox < width; ox++) accumulator[ox] = w * rows[rowBase + ox];
    for (let t = 1; t < n; t++) {
      rowBase += rowStride;
      w = weights[wBase + t];
      for (let ox = 0; ox < width; ox++) accumulator[ox] += w * rows[rowBase + ox];
    }
    const outBase = outOffset + (dstOffset + oy) * outRowStride + columnOffset;
    for (let ox = 0; ox < width; ox++) out[outBase + ox] = accumulator[ox];
  }
}

/** Scratch buffers for one resize plan; one per thread, reused for every slice. */
export interface ResizeScratch {
  rows: Float32Array;
  accumulator: Float64Array;
}

export function resizeScratch(plan: ResizePlan, channels = 1): ResizeScratch {
  return {
    rows: new Float32Array(channels * (plan.crop.jEnd - plan.crop.jStart) * plan.x.dstLength),
    accumulator: new Float64Array(plan.x.dstLength),
  };
}

/**
 * Resizes one single-channel slice (srcWidthPx × srcHeightPx values, row-major, any numeric array)
 * into `out` from `outOffset`: outHeightPx rows of outWidthPx, the letterbox filled with `padValue`.
 * No windowing: values are resampled as they are (use `sliceBatches` for windowed encoder input).
 */
export function resizeInto(
  plan: ResizePlan,
  src: ArrayLike<number>,
  out: Float32Array,
  outOffset = 0,
  padValue = 0,
  scratch: ResizeScratch = resizeScratch(plan),
): void {
  if (src.length < plan.srcWidthPx * plan.srcHeightPx) {
    throw new RangeError(`source has ${src.length} values, expected ${plan.srcWidthPx}×${plan.srcHeightPx}`);
  }
  const planeSize = plan.outWidthPx * plan.outHeightPx;
  if (outOffset < 0 || outOffset + planeSize > out.length) {
    throw new RangeError(`output region ${outOffset}..${outOffset + planeSize} does not fit in ${out.length} values`);
  }
  const { x, y, crop } = plan;
  out.fill(padValue, outOffset, outOffset + planeSize);
  const cropHeightPx = crop.jEnd - crop.jStart;
  for (let r = 0; r < cropHeightPx; r++) {
    resampleRowInto(x, src, (crop.jStart + r) * plan.srcWidthPx + crop.iStart, scratch.rows, r * x.dstLength);
  }
  resampleColumnsInto(y, scratch.rows, 0, x.dstLength, x.dstLength, out, outOffset, plan.outWidthPx, x.dstOffset, scratch.accumulator);
}
