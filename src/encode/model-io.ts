/**
 * The pure, engine-free halves of an ONNX encoder: packing a SliceTensor into the model's input tensor and
 * turning the model's output into unit-length rows. Nothing here imports onnxruntime, and every argument is
 * plain data, so the packing can run in a worker thread (its Float32Array transferred) while the main
 * thread's session runs the previous batch.
 */
import type { SliceTensor } from '../preprocess/slice-tensor.js';
import { EncoderError } from './errors.js';

export type TensorLayout = 'NCHW' | 'NHWC';
/** What the model expects a full-intensity pixel to be: 1 ('0-1') or 255 ('0-255'), before mean/std. */
export type ValueRange = '0-1' | '0-255';
/**
 * How a model output becomes one vector per slice:
 * - 'none': the output is already [N, D];
 * - 'cls': [N, T, D] token sequence → token 0 (ViT/CLIP/DINOv2 class token);
 * - 'mean': [N, T, D] → mean over tokens;
 * - 'gap': feature map [N, C, H, W] (or [N, H, W, C] for NHWC models) → global average over H, W;
 * - 'auto': by the output's rank: 2 → none, 3 → cls, 4 → gap.
 */
export type Pooling = 'auto' | 'none' | 'cls' | 'mean' | 'gap';

/** Everything about the model's input tensor that turns [0, 1] windowed slices into model input. */
export interface ModelInputSpec {
  heightPx: number;
  widthPx: number;
  /** Channels the model takes. A 1-window SliceTensor is replicated to 3 when the model wants 3. */
  channels: 1 | 3;
  /** Per model channel, in units of `valueRange` (ImageNet in 0–1 units: 0.485, 0.456, 0.406). */
  mean: number[];
  std: number[];
  valueRange: ValueRange;
  layout: TensorLayout;
}

/** Packs `batch` (NCHW, [0, 1]) into the model's input layout and normalization. Pure; allocation-free when
 * `target` is given (it must hold count · channels · height · width floats). */
export function packModelInput(batch: SliceTensor, spec: ModelInputSpec, target?: Float32Array): Float32Array {
  checkBatchFits(batch, spec);
  const { heightPx, widthPx, channels, layout } = spec;
  const plane = heightPx * widthPx;
  const size = batch.count * channels * plane;
  const out = target ?? new Float32Array(size);
  if (out.length < size) throw new RangeError(`pack target holds ${out.length} floats, needs ${size}`);
  const range = spec.valueRange === '0-255' ? 255 : 1;
  const src = batch.data;
  // The built-in encoders take the preprocessed tensor as it is: no copy of ~0.6 MB per slice then.
  if (!target && layout === 'NCHW' && batch.channels === channels && range === 1 && spec.mean.every((m) => m === 0) && spec.std.every((v) => v === 1)) {
    return src.length === size ? src : src.subarray(0, size);
  }
  for (let n = 0; n < batch.count; n++) {
    for (let c = 0; c < channels; c++) {
      // One multiply-add per value: (v · range − mean) / std = v · (range/std) − mean/std.
      const gain = range / spec.std[c];
      const offset = -spec.mean[c] / spec.std[c];
      const srcBase = (n * batch.channels + (batch.channels === 1 ? 0 : c)) * plane;
      if (layout === 'NCHW') {
        const dstBase = (n * channels + c) * plane;
        for (let p = 0; p < plane; p++) out[dstBase + p] = src[srcBase + p] * gain + offset;
      } else {
        const dstBase = n * plane * channels + c;
        for (let p = 0; p < plane; p++) out[dstBase + p * channels] = src[srcBase + p] * gain + offset;
      }
    }
  }
  return out;
}

export function checkBatchFits(batch: SliceTensor, spec: ModelInputSpec): void {
  if (batch.height !== spec.heightPx || batch.width !== spec.widthPx) {
    throw new EncoderError('BAD_BATCH', 'batch', `slices are ${batch.height}×${batch.width} px, the encoder takes ${spec.heightPx}×${spec.widthPx} px (preprocess with encoder.preprocessing)`);
  }
  if (batch.channels !== spec.channels && batch.channels !== 1) {
    throw new EncoderError('BAD_BATCH', 'batch', `slices have ${batch.channels} channels (windows), the model takes ${spec.channels}; use 1 window or ${spec.channels}`);
  }
  const expected = batch.count * batch.channels * batch.height * batch.width;
  if (batch.data.length !== expected) {
    throw new EncoderError('BAD_BATCH', 'batch', `data holds ${batch.data.length} floats, count × channels × height × width = ${expected}`);
  }
}

/** Resolves 'auto' for an output of the given rank, and rejects poolings that do not fit it. */
export function resolvePooling(pooling: Pooling, rank: number, source: string, outputName = 'model output'): Exclude<Pooling, 'auto'> {
  const byRank: Record<number, Exclude<Pooling, 'auto'>> = { 2: 'none', 3: 'cls', 4: 'gap' };
  const resolved = pooling === 'auto' ? byRank[rank] : pooling;
  const fits = (resolved === 'none' && rank === 2) || ((resolved === 'cls' || resolved === 'mean') && rank === 3) || (resolved === 'gap' && rank === 4);
  if (!resolved || !fits) {
    throw new EncoderError('BAD_OUTPUT', source, `${outputName} of rank ${rank} cannot be pooled with '${pooling}' (rank 2: none; rank 3 [N,T,D]: cls or mean; rank 4 feature map: gap)`);
  }
  return resolved;
}

/**
 * Model output → `count` rows of `dim` floats, pooled as asked and L2-normalized.
 * `layout` says where channels sit in a rank-4 output (the model's input layout).
 */
export function poolAndNormalize(data: Float32Array, dims: readonly number[], pooling: Exclude<Pooling, 'auto'>, layout: TensorLayout, count: number, source: string): { rows: Float32Array; dim: number } {
  resolvePooling(pooling, dims.length, source);
  if (dims[0] < count) throw new EncoderError('BAD_OUTPUT', source, `output has ${dims[0]} rows for ${count} slices`);
  let dim: number;
  let rows: Float32Array;
  if (pooling === 'none') {
    dim = dims[1];
    rows = data.slice(0, count * dim);
  } else if (pooling === 'cls' || pooling === 'mean') {
    const [, tokens, width] = dims;
    dim = width;
    rows = new Float32Array(count * dim);
    for (let n = 0; n < count; n++) {
      const base = n * tokens * width;
      if (pooling === 'cls') rows.set(data.subarray(base, base + width), n * dim);
      else {
        const row = rows.subarray(n * dim, (n + 1) * dim);
        for (let t = 0; t < tokens; t++) for (let d = 0; d < width; d++) row[d] += data[base + t * width + d];
        for (let d = 0; d < width; d++) row[d] /= tokens;
      }
    }
  } else {
    const [, a, b, c] = dims;
    const channels = layout === 'NCHW' ? a : c;
    const plane = layout === 'NCHW' ? b * c : a * b;
    dim = channels;
    rows = new Float32Array(count * dim);
    for (let n = 0; n < count; n++) {
      const base = n * channels * plane;
      for (let ch = 0; ch < channels; ch++) {
        let sum = 0;
        if (layout === 'NCHW') for (let p = 0; p < plane; p++) sum += data[base + ch * plane + p];
        else for (let p = 0; p < plane; p++) sum += data[base + p * channels + ch];
        rows[n * dim + ch] = sum / plane;
      }
    }
  }
  l2NormalizeRows(rows, dim);
  return { rows, dim };
}

/**
 * Scales each row to unit length in place. A zero row (no signal at all) becomes the uniform unit vector,
 * so every row has length 1 as the Encoder contract says and all empty inputs are identical to each other.
 */
export function l2NormalizeRows(rows: Float32Array, dim: number): void {
  for (let start = 0; start < rows.length; start += dim) {
    let sumSquares = 0;
    for (let d = 0; d < dim; d++) sumSquares += rows[start + d] * rows[start + d];
    if (!Number.isFinite(sumSquares)) throw new EncoderError('BAD_OUTPUT', 'model', 'model output contains NaN or infinite values');
    if (sumSquares > 0) {
      const inv = 1 / Math.sqrt(sumSquares);
      for (let d = 0; d < dim; d++) rows[start + d] *= inv;
    } else {
      rows.fill(1 / Math.sqrt(dim), start, start + dim);
    }
  }
}

/** A compact, stable text form of the input spec for encoder ids: 'c3|mean=0,0,0|std=1,1,1|0-1|NCHW'. */
export function describeInputSpec(spec: ModelInputSpec): string {
  const nums = (values: number[]): string => values.map((v) => Number(v.toPrecision(6)).toString()).join(',');
  return `c${spec.channels}|mean=${nums(spec.mean)}|std=${nums(spec.std)}|${spec.valueRange}|${spec.layout}`;
}
