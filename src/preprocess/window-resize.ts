/**
 * HU windowing and the horizontal resize pass of a slice's crop rows in one pass over the voxels, written
 * once per voxel type: the float32 path, and the int16 path where the SIMD kernel (window-resize-simd.ts,
 * 4× faster) cannot serve; also its reference in the tests. Hand-written (and twice) because it runs for every
 * voxel of every embedded slice: a loop that reads an `Int16Array | Float32Array` union stays polymorphic
 * in V8, and windowing each channel into a scratch row before resampling it read every voxel three times.
 * The arithmetic is the same as windowInto + resampleRowInto (float32 windowed values, float64 weights and
 * sums), so the result is bit for bit what the two-step version gave.
 */
import type { ResampleAxis } from './resize.js';
import type { HuWindow } from './spec.js';
import { windowMinHu } from './windows.js';

/** Where the rows of one slice's crop lie and where their resampled rows go. */
export interface CropRows {
  /** Index of the crop's first voxel (row jStart, column iStart) of the slice in the volume's data. */
  firstVoxel: number;
  /** Voxels between two rows of the slice (its width). */
  rowStride: number;
  rows: number;
  /** Channel c, crop row r starts at out[c · channelStride + r · axis.dstLength]. */
  channelStride: number;
}

const INT16_OFFSET = 32768;
const tables = new Map<string, Float32Array>();

/**
 * Windowed values of every int16 HU for the given windows, interleaved (entry (hu + 32768) · channels + c):
 * one load per voxel and channel instead of a subtraction, a multiplication and a clamp. 768 KiB for three
 * windows, built once per window set; the part real CT touches (−1024…3071 HU) is 48 KiB.
 */
export function int16WindowTable(windows: readonly HuWindow[]): Float32Array {
  const key = windows.map((w) => `${w.levelHu}:${w.widthHu}`).join(',');
  let table = tables.get(key);
  if (!table) {
    const channels = windows.length;
    table = new Float32Array(65536 * channels);
    windows.forEach((window, c) => {
      const minHu = windowMinHu(window);
      const perHu = 1 / window.widthHu;
      for (let hu = -INT16_OFFSET; hu < INT16_OFFSET; hu++) {
        const v = (hu - minHu) * perHu;
        table![(hu + INT16_OFFSET) * channels + c] = v > 0 ? (v < 1 ? v : 1) : 0;
      }
    });
    tables.set(key, table);
  }
  return table;
}

/** int16 voxels: windowed through `table` (from int16WindowTable) and resampled along x into `out`. */
export function windowResizeRowsInt16(src: Int16Array, rows: CropRows, axis: ResampleAxis, table: Float32Array, channels: number, out: Float32Array): void {
  const { starts, counts, weights, maxTaps, dstLength } = axis;
  const { channelStride } = rows;
  for (let r = 0; r < rows.rows; r++) {
    const rowStart = rows.firstVoxel + r * rows.rowStride;
    const outRow = r * dstLength;
    if (channels === 3) {
      for (let o = 0; o < dstLength; o++) {
        const from = rowStart + starts[o];
        const n = counts[o];
        const base = o * maxTaps;
        let a0 = 0;
        let a1 = 0;
        let a2 = 0;
        for (let t = 0; t < n; t++) {
          const w = weights[base + t];
          const at = (src[from + t] + INT16_OFFSET) * 3;
          a0 += w * table[at];
          a1 += w * table[at + 1];
          a2 += w * table[at + 2];
        }
        out[outRow + o] = a0;
        out[channelStride + outRow + o] = a1;
        out[2 * channelStride + outRow + o] = a2;
      }
    } else {
      for (let c = 0; c < channels; c++) {
        const dst = c * channelStride + outRow;
        for (let o = 0; o < dstLength; o++) {
          const from = rowStart + starts[o];
          const n = counts[o];
          const base = o * maxTaps;
          let acc = 0;
          for (let t = 0; t < n; t++) acc += weights[base + t] * table[(src[from + t] + INT16_OFFSET) * channels + c];
          out[dst + o] = acc;
        }
      }
    }
  }
}

/** float32 voxels: windowed in place of a table (any value, NaN → 0) and resampled along x into `out`. */
export function windowResizeRowsFloat32(src: Float32Array, rows: CropRows, axis: ResampleAxis, windows: readonly HuWindow[], out: Float32Array): void {
  const { starts, counts, weights, maxTaps, dstLength } = axis;
  const { channelStride } = rows;
  const fround = Math.fround;
  for (let c = 0; c < windows.length; c++) {
    const minHu = windowMinHu(windows[c]);
    const perHu = 1 / windows[c].widthHu;
    for (let r = 0; r < rows.rows; r++) {
      const rowStart = rows.firstVoxel + r * rows.rowStride;
      const dst = c * channelStride + r * dstLength;
      for (let o = 0; o < dstLength; o++) {
        const from = rowStart + starts[o];
        const n = counts[o];
        const base = o * maxTaps;
        let acc = 0;
        for (let t = 0; t < n; t++) {
          const v = (src[from + t] - minHu) * perHu;
          // Rounded to float32 as the windowed row used to be stored, so both voxel types resample alike.
          acc += weights[base + t] * fround(v > 0 ? (v < 1 ? v : 1) : 0);
        }
        out[dst + o] = acc;
      }
    }
  }
}
