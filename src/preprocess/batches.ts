import { sliceZMm, type Volume } from '../io/volume.js';
import { bodyBoundingBox, type BodyCropOptions } from './body-crop.js';
import { fullBox, planResize, resampleColumnsInto, resizeScratch, type PixelBox, type ResizePlan, type ResizeScratch } from './resize.js';
import { selectSlices } from './slices.js';
import type { SliceTensor } from './slice-tensor.js';
import type { SlicePreprocessing } from './spec.js';
import { int16WindowTable, windowResizeRowsFloat32, windowResizeRowsInt16, type CropRows } from './window-resize.js';
import { simdWindowResize, type WindowResizeRun } from './window-resize-simd.js';

/**
 * Everything about turning slices of one volume into encoder input that does not depend on the slice:
 * the crop, the resize weight tables and scratch buffers. Built once per volume; holds mutable scratch,
 * so each thread builds its own (a worker gets `crop` from the main thread as plain JSON and passes it
 * back in `options.crop`, skipping the body-outline search).
 */
export interface SlicePlan {
  spec: SlicePreprocessing;
  /** Canonical grid the plan was built for: columns, rows, slices. */
  dims: readonly [number, number, number];
  crop: PixelBox;
  resize: ResizePlan;
  channels: number;
  /** Float32 values per preprocessed slice: channels × heightPx × widthPx. */
  sliceValues: number;
  scratch: ResizeScratch;
  /** Windowed values of every int16 HU, made on the first int16 slice (see int16WindowTable). */
  int16Table?: Float32Array;
  /** The SIMD kernel's run for int16 slices, made on the first one; null keeps the scalar loops (no
   * WebAssembly SIMD, more than 4 windows, or set so by a test to compare the two). */
  int16Simd?: WindowResizeRun | null;
}

export interface SlicePlanOptions {
  /** Use this crop instead of computing one (ignored unless spec.bodyCrop). */
  crop?: PixelBox;
  bodyCrop?: BodyCropOptions;
}

export function validateSlicePreprocessing(spec: SlicePreprocessing): void {
  if (!Array.isArray(spec.windows) || spec.windows.length === 0) throw new RangeError('preprocessing needs at least one HU window');
  for (const window of spec.windows) {
    if (!Number.isFinite(window.levelHu) || !(window.widthHu > 0) || !Number.isFinite(window.widthHu)) {
      throw new RangeError(`HU window ${JSON.stringify(window)} needs a finite level and a positive width`);
    }
  }
  for (const [label, value] of [
    ['heightPx', spec.heightPx],
    ['widthPx', spec.widthPx],
  ] as const) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`preprocessing ${label} must be a positive integer, got ${value}`);
  }
}

export function planSlicePreprocessing(volume: Volume, spec: SlicePreprocessing, options: SlicePlanOptions = {}): SlicePlan {
  validateSlicePreprocessing(spec);
  const [widthPx, heightPx, sliceCount] = volume.dims;
  if (volume.data.length !== widthPx * heightPx * sliceCount) {
    throw new RangeError(`volume data has ${volume.data.length} voxels, dims say ${widthPx}×${heightPx}×${sliceCount}`);
  }
  let crop: PixelBox = fullBox(widthPx, heightPx);
  if (spec.bodyCrop) {
    const given = options.crop ?? bodyBoundingBox(volume, options.bodyCrop);
    crop = { iStart: given.iStart, iEnd: given.iEnd, jStart: given.jStart, jEnd: given.jEnd };
  }
  const resize = planResize({
    srcWidthPx: widthPx,
    srcHeightPx: heightPx,
    pixelSpacingMm: [volume.spacingMm[0], volume.spacingMm[1]],
    crop,
    outWidthPx: spec.widthPx,
    outHeightPx: spec.heightPx,
  });
  const channels = spec.windows.length;
  return {
    spec,
    dims: [widthPx, heightPx, sliceCount],
    crop,
    resize,
    channels,
    sliceValues: channels * spec.heightPx * spec.widthPx,
    scratch: resizeScratch(resize, channels),
  };
}

/**
 * Preprocesses canonical slice k into out[outOffset … outOffset + plan.sliceValues): one plane per
 * window (CHW), each the windowed slice cropped, resized and letterboxed with 0. Writes every value of
 * the region (padding included), so `out` may be a reused or shared buffer. No allocation per call.
 *
 * Windowing comes before resampling because the window's clamp is not linear: averaging HU first and
 * windowing afterwards would turn a sharp air/bone edge into mid-grey soft tissue instead of the
 * half-black, half-white mix a reader sees on the windowed image.
 */
export function preprocessSliceInto(plan: SlicePlan, volume: Volume, k: number, out: Float32Array, outOffset: number): void {
  const [widthPx, heightPx, sliceCount] = plan.dims;
  if (volume.dims[0] !== widthPx || volume.dims[1] !== heightPx || volume.dims[2] !== sliceCount) {
    throw new RangeError(`plan was built for a ${plan.dims.join('×')} volume, not ${volume.dims.join('×')}`);
  }
  if (!Number.isInteger(k) || k < 0 || k >= sliceCount) throw new RangeError(`slice ${k} outside 0..${sliceCount - 1}`);
  if (!Number.isInteger(outOffset) || outOffset < 0 || outOffset + plan.sliceValues > out.length) {
    throw new RangeError(`output region ${outOffset}..${outOffset + plan.sliceValues} does not fit in ${out.length} values`);
  }
  const { resize, crop, channels, scratch } = plan;
  const { x, y } = resize;
  const data = volume.data;
  if (data instanceof Int16Array) {
    if (plan.int16Simd === undefined) plan.int16Simd = simdWindowResize(resize, plan.spec.windows);
    if (plan.int16Simd) {
      plan.int16Simd(data, k, out, outOffset);
      return;
    }
  }
  const rowsPerChannel = (crop.jEnd - crop.jStart) * x.dstLength;
  const rows: CropRows = {
    firstVoxel: k * widthPx * heightPx + crop.jStart * widthPx + crop.iStart,
    rowStride: widthPx,
    rows: crop.jEnd - crop.jStart,
    channelStride: rowsPerChannel,
  };
  if (data instanceof Int16Array) windowResizeRowsInt16(data, rows, x, plan.int16Table ?? (plan.int16Table = int16WindowTable(plan.spec.windows)), channels, scratch.rows);
  else windowResizeRowsFloat32(data, rows, x, plan.spec.windows, scratch.rows);
  const planeValues = resize.outWidthPx * resize.outHeightPx;
  out.fill(0, outOffset, outOffset + plan.sliceValues);
  for (let c = 0; c < channels; c++) {
    resampleColumnsInto(
      y,
      scratch.rows,
      c * rowsPerChannel,
      x.dstLength,
      x.dstLength,
      out,
      outOffset + c * planeValues,
      resize.outWidthPx,
      x.dstOffset,
      scratch.accumulator,
    );
  }
}

export interface SliceBatchOptions extends SlicePlanOptions {
  /** Canonical slices to preprocess, in this order; default `selectSlices(volume, spec.sliceStepMm)`. */
  sliceIndices?: readonly number[];
}

/**
 * Preprocessed slices of a volume in batches of at most `batchSize`, made one batch at a time as the
 * consumer asks: a 1000-slice volume at 3×224×224 holds ~600 MB of float32 if preprocessed at once, one
 * batch of 32 about 19 MB. Every batch owns a fresh buffer, so a consumer may keep a batch (for an async
 * encoder still running) while asking for the next. Arguments are checked, and the crop found, when this
 * is called rather than at the first `next()`, so mistakes surface where they are made.
 */
export function sliceBatches(
  volume: Volume,
  spec: SlicePreprocessing,
  batchSize: number,
  options: SliceBatchOptions = {},
): Generator<SliceTensor, void, undefined> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batch size must be a positive integer, got ${batchSize}`);
  const sliceCount = volume.dims[2];
  const indices = options.sliceIndices ? [...options.sliceIndices] : selectSlices(volume, spec.sliceStepMm);
  for (const k of indices) {
    if (!Number.isInteger(k) || k < 0 || k >= sliceCount) throw new RangeError(`slice ${k} outside 0..${sliceCount - 1}`);
  }
  const plan = planSlicePreprocessing(volume, spec, options);
  return batchesOf(plan, volume, indices, batchSize);
}

function* batchesOf(
  plan: SlicePlan,
  volume: Volume,
  indices: number[],
  batchSize: number,
): Generator<SliceTensor, void, undefined> {
  for (let first = 0; first < indices.length; first += batchSize) {
    const batchIndices = indices.slice(first, first + batchSize);
    const data = new Float32Array(batchIndices.length * plan.sliceValues);
    for (let n = 0; n < batchIndices.length; n++) {
      preprocessSliceInto(plan, volume, batchIndices[n], data, n * plan.sliceValues);
    }
    yield {
      data,
      count: batchIndices.length,
      channels: plan.channels,
      height: plan.spec.heightPx,
      width: plan.spec.widthPx,
      sliceIndices: batchIndices,
      zMm: batchIndices.map((k) => sliceZMm(volume, k)),
    };
  }
}
