/**
 * The training-free floor every learned encoder must beat: each window's slice shrunk to a 16×16 thumbnail by
 * exact area averaging, the three thumbnails concatenated (3 × 256 = 768 values), the vector's mean
 * subtracted and the result scaled to unit length. Cosine between two such vectors is the Pearson
 * correlation of the thumbnails: it compares layout of air, soft tissue and bone, not overall brightness.
 * Pure TypeScript and deterministic, so its vectors are identical on every machine.
 */
import type { HuWindow, SlicePreprocessing } from '../preprocess/spec.js';
import type { SliceTensor } from '../preprocess/slice-tensor.js';
import { formatWindows, parseWindows } from '../preprocess/windows.js';
import type { Encoder } from './encoder.js';
import { EncoderError } from './errors.js';
import { l2NormalizeRows } from './model-io.js';

export const BASELINE_VERSION = 'v1';

export interface BaselineEncoderOptions {
  /** Default 'abdomen,lung,bone'. */
  windows?: string | HuWindow[];
  /** Thumbnail side (default 16). */
  gridPx?: number;
  /** Slice size the encoder takes (default 64: preprocessing does the big reduction, this the last 4×4). */
  inputPx?: number;
  bodyCrop?: boolean;
  sliceStepMm?: number;
}

export class BaselineEncoder implements Encoder {
  readonly id: string;
  readonly name = 'baseline';
  readonly dim: number;
  readonly preprocessing: SlicePreprocessing;
  readonly gridPx: number;
  private readonly rowWeights: AxisWeights;
  private readonly colWeights: AxisWeights;

  constructor(options: BaselineEncoderOptions = {}) {
    const windows = typeof options.windows === 'string' ? parseWindows(options.windows) : options.windows?.map((w) => ({ ...w })) ?? parseWindows('abdomen,lung,bone');
    const gridPx = options.gridPx ?? 16;
    const inputPx = options.inputPx ?? 64;
    if (!Number.isInteger(gridPx) || gridPx < 1 || !Number.isInteger(inputPx) || inputPx < gridPx) {
      throw new EncoderError('BAD_CONFIG', 'baseline', `grid ${gridPx} px and input ${inputPx} px must be integers with input ≥ grid`);
    }
    this.gridPx = gridPx;
    this.preprocessing = {
      windows,
      heightPx: inputPx,
      widthPx: inputPx,
      bodyCrop: options.bodyCrop ?? true,
      ...(options.sliceStepMm !== undefined ? { sliceStepMm: options.sliceStepMm } : {}),
    };
    this.dim = windows.length * gridPx * gridPx;
    this.rowWeights = areaWeights(inputPx, gridPx);
    this.colWeights = areaWeights(inputPx, gridPx);
    this.id = [`baseline@thumb${gridPx}-area-centred`, formatWindows(windows), `${inputPx}x${inputPx}`, this.preprocessing.bodyCrop ? 'body-crop' : 'full-fov', BASELINE_VERSION].join('|');
  }

  async embed(batch: SliceTensor): Promise<Float32Array> {
    const { heightPx, widthPx, windows } = this.preprocessing;
    if (batch.height !== heightPx || batch.width !== widthPx || batch.channels !== windows.length) {
      throw new EncoderError('BAD_BATCH', 'baseline', `batch is ${batch.channels}×${batch.height}×${batch.width}, the baseline takes ${windows.length}×${heightPx}×${widthPx} (preprocess with encoder.preprocessing)`);
    }
    if (batch.data.length !== batch.count * batch.channels * heightPx * widthPx) {
      throw new EncoderError('BAD_BATCH', 'baseline', `data holds ${batch.data.length} floats for ${batch.count} slices`);
    }
    const grid = this.gridPx;
    const plane = heightPx * widthPx;
    const out = new Float32Array(batch.count * this.dim);
    const rowsReduced = new Float64Array(grid * widthPx);
    for (let n = 0; n < batch.count; n++) {
      for (let c = 0; c < batch.channels; c++) {
        const src = batch.data.subarray((n * batch.channels + c) * plane, (n * batch.channels + c + 1) * plane);
        // Separable area average: rows first (grid × width), then columns (grid × grid).
        rowsReduced.fill(0);
        for (let g = 0; g < grid; g++) {
          const { index, weight } = this.rowWeights[g];
          for (let t = 0; t < index.length; t++) {
            const srcRow = index[t] * widthPx;
            const w = weight[t];
            for (let x = 0; x < widthPx; x++) rowsReduced[g * widthPx + x] += w * src[srcRow + x];
          }
        }
        const dst = (n * batch.channels + c) * grid * grid;
        for (let gy = 0; gy < grid; gy++) {
          for (let gx = 0; gx < grid; gx++) {
            const { index, weight } = this.colWeights[gx];
            let sum = 0;
            for (let t = 0; t < index.length; t++) sum += weight[t] * rowsReduced[gy * widthPx + index[t]];
            out[dst + gy * grid + gx] = sum;
          }
        }
      }
      const row = out.subarray(n * this.dim, (n + 1) * this.dim);
      let mean = 0;
      for (let d = 0; d < this.dim; d++) mean += row[d];
      mean /= this.dim;
      for (let d = 0; d < this.dim; d++) row[d] -= mean;
    }
    // A slice with no contrast at all centres to zero; it becomes the uniform vector, orthogonal to every
    // centred row, so blank slices match only each other.
    l2NormalizeRows(out, this.dim);
    return out;
  }

  async close(): Promise<void> {
    // Nothing native to free.
  }
}

/** For each output cell along an axis: the source indices it overlaps and each one's share (summing to 1). */
type AxisWeights = { index: number[]; weight: number[] }[];

function areaWeights(sourceSize: number, outputSize: number): AxisWeights {
  const scale = sourceSize / outputSize;
  const cells: AxisWeights = [];
  for (let g = 0; g < outputSize; g++) {
    const start = g * scale;
    const end = (g + 1) * scale;
    const index: number[] = [];
    const weight: number[] = [];
    for (let i = Math.floor(start); i < Math.min(Math.ceil(end), sourceSize); i++) {
      const overlap = Math.min(end, i + 1) - Math.max(start, i);
      if (overlap > 1e-12) {
        index.push(i);
        weight.push(overlap / scale);
      }
    }
    cells.push({ index, weight });
  }
  return cells;
}
