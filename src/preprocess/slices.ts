import { sliceZMm, type SliceGeometry } from '../io/volume.js';

/**
 * Which canonical axial slices (k) to preprocess. With no step (undefined or 0) every slice; otherwise
 * one slice per `stepMm` along the stack: targets at 0, step, 2·step, … mm from the first slice, each
 * taking the slice whose centre is nearest (a tie goes to the lower slice), as long as the target lies
 * within the last slice's slab (its centre + half a spacing). The first slice is always kept and no slice appears twice, so a step finer than the slice
 * spacing simply gives every slice.
 *
 * Distances run along the slice axis (`spacingMm[2]`), which is what "every 5 mm" means to a reader of
 * the scan; for an oblique stack this differs slightly from patient z.
 *
 * `range` restricts the selection to a sub-volume (see `sliceRangeIndices`); the step then starts at the
 * range's first slice.
 */
export function selectSlices(volume: SliceGeometry, stepMm?: number, range?: SliceRange): number[] {
  const all = range ? sliceRangeIndices(volume, range) : allSlices(volume.dims[2]);
  if (stepMm === undefined || stepMm === 0) return all;
  if (!Number.isFinite(stepMm) || stepMm < 0) {
    throw new RangeError(`slice step must be a positive number of mm (or 0 for every slice), got ${stepMm}`);
  }
  const spacingMm = volume.spacingMm[2];
  if (!(spacingMm > 0)) throw new RangeError(`volume has no valid slice spacing (${spacingMm} mm)`);
  const first = all[0];
  const last = all[all.length - 1];
  const selected: number[] = [];
  // Targets are counted (n · step) rather than accumulated, so rounding errors do not drift over
  // hundreds of slices; the small epsilon makes exact ties (12.5 slices) go down deterministically and
  // keeps a target on the edge of the last slab within reach despite float error in step/spacing.
  const slicesPerStep = stepMm / spacingMm;
  const epsilon = 1e-9;
  for (let n = 0; ; n++) {
    const offsetSlices = n * slicesPerStep;
    if (offsetSlices > last - first + 0.5 + epsilon) break;
    const k = Math.min(last, first + Math.round(offsetSlices - epsilon));
    if (selected.length === 0 || k > selected[selected.length - 1]) selected.push(k);
  }
  return selected;
}

function allSlices(count: number): number[] {
  const indices = new Array<number>(count);
  for (let k = 0; k < count; k++) indices[k] = k;
  return indices;
}

/**
 * A sub-volume along z, for slab queries: either canonical slice indices (inclusive, any order) or a
 * patient-z range in mm (the same z as `sliceZMm` and a search result's region).
 */
export type SliceRange = { firstSlice: number; lastSlice: number } | { zStartMm: number; zEndMm: number };

/**
 * The canonical slice indices (ascending, contiguous) inside `range`, clamped to the volume.
 * Slice ranges are inclusive and clamped to [0, slices − 1]. A z range takes every slice whose slab
 * (centre ± half the slice spacing along z) overlaps it, so even a range thinner than one slice selects
 * the slice it falls in. Throws when nothing of the volume lies in the range.
 */
export function sliceRangeIndices(volume: SliceGeometry, range: SliceRange): number[] {
  const sliceCount = volume.dims[2];
  if (sliceCount < 1) throw new RangeError('volume has no slices');
  let first: number;
  let last: number;
  if ('firstSlice' in range) {
    const { firstSlice, lastSlice } = range;
    if (!Number.isInteger(firstSlice) || !Number.isInteger(lastSlice)) {
      throw new RangeError(`slice range needs integer indices, got ${firstSlice}..${lastSlice}`);
    }
    const lo = Math.min(firstSlice, lastSlice);
    const hi = Math.max(firstSlice, lastSlice);
    first = Math.max(0, lo);
    last = Math.min(sliceCount - 1, hi);
    if (first > last) {
      throw new RangeError(`slice range ${lo}..${hi} lies outside the volume's slices 0..${sliceCount - 1}`);
    }
  } else {
    const { zStartMm, zEndMm } = range;
    if (!Number.isFinite(zStartMm) || !Number.isFinite(zEndMm)) {
      throw new RangeError(`z range needs finite mm values, got ${zStartMm}..${zEndMm}`);
    }
    const loMm = Math.min(zStartMm, zEndMm);
    const hiMm = Math.max(zStartMm, zEndMm);
    // Canonical k runs superior, so z grows with k; the affine's z step is the slab thickness along z.
    const z0Mm = sliceZMm(volume, 0);
    const dzMm = sliceCount > 1 ? sliceZMm(volume, 1) - z0Mm : volume.spacingMm[2];
    if (!(dzMm > 0)) throw new RangeError(`volume's slices do not advance along z (step ${dzMm} mm)`);
    const halfMm = dzMm / 2;
    // Slice k's slab is [z0 + k·dz − dz/2, z0 + k·dz + dz/2]; it overlaps [lo, hi] (touching does not count)
    // when z0 + k·dz > lo − dz/2 and z0 + k·dz < hi + dz/2.
    // The epsilon (in slices) keeps a range that only touches a slab, up to float error, from taking it.
    const epsilon = 1e-9;
    first = Math.max(0, Math.floor((loMm - halfMm - z0Mm) / dzMm + epsilon) + 1);
    last = Math.min(sliceCount - 1, Math.ceil((hiMm + halfMm - z0Mm) / dzMm - epsilon) - 1);
    const volumeLoMm = z0Mm - halfMm;
    const volumeHiMm = z0Mm + (sliceCount - 1) * dzMm + halfMm;
    if (first > last && loMm >= volumeLoMm && hiMm <= volumeHiMm) {
      // A zero-width range exactly on the boundary between two slabs touches both and overlaps neither;
      // it is still inside the scan, so it gets the slice its position rounds to.
      first = last = Math.min(sliceCount - 1, Math.max(0, Math.round((loMm - z0Mm) / dzMm)));
    }
    if (first > last) {
      throw new RangeError(
        `z range ${fmt(loMm)}..${fmt(hiMm)} mm lies outside the volume (${fmt(volumeLoMm)}..${fmt(volumeHiMm)} mm)`,
      );
    }
  }
  const indices = new Array<number>(last - first + 1);
  for (let k = first; k <= last; k++) indices[k - first] = k;
  return indices;
}

function fmt(mm: number): string {
  return mm.toFixed(1);
}
