import { sliceZMm, type Volume } from '../io/volume.js';
import type { ZExtent } from './datasets/types.js';

/**
 * z-extents of the labels of a label volume: per value, its first and last slice and the slab they
 * cover. One pass over the voxels whatever the number of labels (a TotalSegmentator map has 117).
 */
export function labelZExtents(labels: Volume): Map<number, ZExtent> {
  const [ni, nj, nk] = labels.dims;
  const perSlice = ni * nj;
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  const count = new Map<number, number>();
  const data = labels.data;
  for (let k = 0; k < nk; k++) {
    const base = k * perSlice;
    // Counting per slice first keeps the Map work to one update per (label, slice), not per voxel.
    const sliceCounts = new Map<number, number>();
    let previous = 0;
    let run = 0;
    for (let p = base; p < base + perSlice; p++) {
      const v = data[p];
      if (v === previous) {
        run++;
        continue;
      }
      if (previous !== 0 && run > 0) sliceCounts.set(previous, (sliceCounts.get(previous) ?? 0) + run);
      previous = v;
      run = 1;
    }
    if (previous !== 0 && run > 0) sliceCounts.set(previous, (sliceCounts.get(previous) ?? 0) + run);
    for (const [value, n] of sliceCounts) {
      if (!first.has(value)) first.set(value, k);
      last.set(value, k);
      count.set(value, (count.get(value) ?? 0) + n);
    }
  }
  const out = new Map<number, ZExtent>();
  for (const value of [...first.keys()].sort((a, b) => a - b)) {
    out.set(value, extentOf(labels, first.get(value)!, last.get(value)!, count.get(value)!));
  }
  return out;
}

/** The ZExtent of slices firstSlice…lastSlice of `volume`. */
export function extentOf(volume: Volume, firstSlice: number, lastSlice: number, voxelCount: number): ZExtent {
  const halfMm = volume.spacingMm[2] / 2;
  const a = sliceZMm(volume, firstSlice);
  const b = sliceZMm(volume, lastSlice);
  const zStartMm = Math.min(a, b) - halfMm;
  const zEndMm = Math.max(a, b) + halfMm;
  return { firstSlice, lastSlice, zStartMm, zEndMm, zExtentMm: zEndMm - zStartMm, voxelCount };
}

/** The z-extent of the non-zero voxels of a mask; undefined when empty. */
export function maskZExtent(mask: Volume): ZExtent | undefined {
  const [ni, nj, nk] = mask.dims;
  const perSlice = ni * nj;
  let firstSlice = -1;
  let lastSlice = -1;
  let voxelCount = 0;
  for (let k = 0; k < nk; k++) {
    let n = 0;
    for (let p = k * perSlice; p < (k + 1) * perSlice; p++) if (mask.data[p] !== 0) n++;
    if (n === 0) continue;
    if (firstSlice < 0) firstSlice = k;
    lastSlice = k;
    voxelCount += n;
  }
  return firstSlice < 0 ? undefined : extentOf(mask, firstSlice, lastSlice, voxelCount);
}

/** The union of several extents (min first slice, max last slice, summed voxels). */
export function unionExtent(extents: readonly ZExtent[]): ZExtent | undefined {
  if (extents.length === 0) return undefined;
  const firstSlice = Math.min(...extents.map((e) => e.firstSlice));
  const lastSlice = Math.max(...extents.map((e) => e.lastSlice));
  const zStartMm = Math.min(...extents.map((e) => e.zStartMm));
  const zEndMm = Math.max(...extents.map((e) => e.zEndMm));
  const voxelCount = extents.reduce((n, e) => n + e.voxelCount, 0);
  return { firstSlice, lastSlice, zStartMm, zEndMm, zExtentMm: zEndMm - zStartMm, voxelCount };
}
