import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import type { Volume, VoxelArray } from './volume.js';

/**
 * SHA-256 of the canonical voxels as little-endian int16 (float data rounded and clamped), so two copies
 * of one scan, whatever their format or stored orientation, hash the same and can be compared from a shell.
 */
export function canonicalInt16Sha256(volume: Volume): string {
  const hash = createHash('sha256');
  const chunkVoxels = 1 << 20;
  const chunk = new Int16Array(chunkVoxels);
  const { data } = volume;
  const bigEndianHost = endianness() === 'BE';
  for (let start = 0; start < data.length; start += chunkVoxels) {
    const end = Math.min(data.length, start + chunkVoxels);
    const view = toInt16(data, start, end, chunk);
    const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
    hash.update(bigEndianHost ? swapped16(bytes) : bytes);
  }
  return hash.digest('hex');
}

function toInt16(data: VoxelArray, start: number, end: number, scratch: Int16Array): Int16Array {
  if (data instanceof Int16Array) return data.subarray(start, end);
  const out = scratch.subarray(0, end - start);
  for (let i = start; i < end; i++) {
    const v = Math.round(data[i]);
    out[i - start] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
  return out;
}

function swapped16(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += 2) {
    out[i] = bytes[i + 1];
    out[i + 1] = bytes[i];
  }
  return out;
}

/** Smallest and largest value (±Infinity for none): the range check the readers make before choosing int16. */
export function valueRange(values: ArrayLike<number>): [number, number] {
  let min = Infinity;
  let max = -Infinity;
  for (let n = 0; n < values.length; n++) {
    const v = values[n];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return [min, max];
}

export interface IntensityRange {
  min: number;
  max: number;
  mean: number;
}

export function intensityRange(data: VoxelArray): IntensityRange {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
  }
  return { min, max, mean: data.length ? sum / data.length : NaN };
}
