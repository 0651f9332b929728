import { sliceZMm, type Volume } from '../io/volume.js';
import { selectSlices, type SliceRange } from '../preprocess/slices.js';
import type { VolumeVectors } from '../store/types.js';
import { SearchError } from './errors.js';
import type { QueryVectors } from './types.js';

/**
 * Which part of the query volume to search with (DESIGN.md "Sub-volume / region query"):
 * the whole volume, an inclusive canonical slice range, a patient-z range in mm, the z-extent of one
 * label value in a mask on the same grid (an organ's slab), or one slice.
 */
export type QueryRange =
  | { kind: 'volume' }
  | { kind: 'slices'; firstSlice: number; lastSlice: number }
  | { kind: 'mm'; zStartMm: number; zEndMm: number }
  | { kind: 'mask'; mask: Volume; label: number }
  | { kind: 'slice'; slice: number };

export interface QueryRangeOptions {
  /** One slice per this many mm inside the range (see `selectSlices`); every slice when absent or 0.
   * Ignored for a single slice. */
  stepMm?: number;
}

/** The z-extent of a label in a mask: inclusive slices and the z of their centres. */
export interface LabelExtent {
  firstSlice: number;
  lastSlice: number;
  zStartMm: number;
  zEndMm: number;
  /** Voxels carrying the label. */
  voxelCount: number;
}

/**
 * The canonical slice indices (ascending) of `volume` that a query range selects. Slice and mm ranges
 * follow `sliceRangeIndices` (inclusive, clamped to the volume; an error when nothing of the volume is
 * inside); a single slice must lie in the volume; a mask must share the volume's grid and contain the
 * label.
 */
export function querySliceIndices(volume: Volume, range: QueryRange, options: QueryRangeOptions = {}): number[] {
  const { stepMm } = options;
  switch (range.kind) {
    case 'volume':
      return withRangeErrors(() => selectSlices(volume, stepMm));
    case 'slices':
      return withRangeErrors(() => selectSlices(volume, stepMm, { firstSlice: range.firstSlice, lastSlice: range.lastSlice }));
    case 'mm':
      return withRangeErrors(() => selectSlices(volume, stepMm, { zStartMm: range.zStartMm, zEndMm: range.zEndMm }));
    case 'mask': {
      assertSameGrid(volume, range.mask);
      const extent = maskLabelExtent(range.mask, range.label);
      return withRangeErrors(() => selectSlices(volume, stepMm, { firstSlice: extent.firstSlice, lastSlice: extent.lastSlice }));
    }
    case 'slice': {
      const sliceCount = volume.dims[2];
      // Unlike a range, one slice is not clamped: asking for slice 900 of a 300-slice scan is a mistake,
      // not a request for the top slice.
      if (!Number.isInteger(range.slice) || range.slice < 0 || range.slice >= sliceCount) {
        throw new SearchError('SLICE_OUT_OF_RANGE', `slice ${range.slice} is not in the volume's slices 0..${sliceCount - 1}`);
      }
      return [range.slice];
    }
    default: {
      const unknown: never = range;
      throw new SearchError('BAD_OPTION', `unknown query range ${JSON.stringify(unknown)}`);
    }
  }
}

/** The `SliceRange` (for `selectSlices`/`sliceRangeIndices`) of a label's z-extent. */
export function maskSliceRange(volume: Volume, mask: Volume, label: number): SliceRange {
  assertSameGrid(volume, mask);
  const { firstSlice, lastSlice } = maskLabelExtent(mask, label);
  return { firstSlice, lastSlice };
}

/** First and last canonical slice (and their z) holding `label`; an error when no voxel has it. */
export function maskLabelExtent(mask: Volume, label: number): LabelExtent {
  if (!Number.isFinite(label)) throw new SearchError('BAD_OPTION', `mask label must be a finite number, got ${label}`);
  const [nx, ny, nz] = mask.dims;
  const sliceVoxels = nx * ny;
  const data = mask.data;
  let firstSlice = -1;
  let lastSlice = -1;
  let voxelCount = 0;
  for (let k = 0; k < nz; k++) {
    const start = k * sliceVoxels;
    const end = start + sliceVoxels;
    let inSlice = 0;
    for (let p = start; p < end; p++) if (data[p] === label) inSlice++;
    if (inSlice > 0) {
      if (firstSlice < 0) firstSlice = k;
      lastSlice = k;
      voxelCount += inSlice;
    }
  }
  if (firstSlice < 0) throw new SearchError('LABEL_ABSENT', `label ${label} does not occur in the mask (${mask.source.path})`);
  return { firstSlice, lastSlice, zStartMm: sliceZMm(mask, firstSlice), zEndMm: sliceZMm(mask, lastSlice), voxelCount };
}

/**
 * Throws unless `mask` lies on `volume`'s canonical voxel grid: same dims and the same voxel → mm
 * affine up to 1 µm (float rounding of headers written by different tools), so slice k of one is
 * slice k of the other.
 */
export function assertSameGrid(volume: Volume, mask: Volume): void {
  const [a, b] = [volume.dims, mask.dims];
  if (a[0] !== b[0] || a[1] !== b[1] || a[2] !== b[2]) {
    throw new SearchError('GRID_MISMATCH', `mask dims ${b.join('×')} differ from the volume's ${a.join('×')}`);
  }
  const toleranceMm = 1e-3;
  for (let n = 0; n < 12; n++) {
    const difference = Math.abs(volume.affineRas[n] - mask.affineRas[n]);
    if (!(difference <= toleranceMm)) {
      throw new SearchError(
        'GRID_MISMATCH',
        `mask affine differs from the volume's (entry ${n}: ${mask.affineRas[n]} vs ${volume.affineRas[n]}); resample the mask onto the volume's grid`,
      );
    }
  }
}

/**
 * A query made of an indexed volume's own slice vectors, optionally only the rows whose slice index is
 * in `sliceIndices` (e.g. from `querySliceIndices`). A volume indexed every few mm has vectors for only
 * some slices; the selection then uses those it has, and it is an error only when it has none of them.
 */
export function queryFromVolumeVectors(volume: VolumeVectors, sliceIndices?: Iterable<number>): QueryVectors {
  const { dim } = volume;
  const rows = volume.sliceIndices.length;
  const wanted = sliceIndices === undefined ? undefined : new Set(sliceIndices);
  const keep: number[] = [];
  for (let r = 0; r < rows; r++) if (!wanted || wanted.has(volume.sliceIndices[r])) keep.push(r);
  if (keep.length === 0) {
    throw new SearchError(
      'SLICE_OUT_OF_RANGE',
      wanted && rows > 0
        ? `volume ${volume.volumeId} has no embedded slice among the ${wanted.size} requested`
        : `volume ${volume.volumeId} has no embedded slices`,
    );
  }
  const vectors = new Float32Array(keep.length * dim);
  const outIndices = new Int32Array(keep.length);
  const outZMm = new Float64Array(keep.length);
  keep.forEach((r, n) => {
    vectors.set(volume.vectors.subarray(r * dim, (r + 1) * dim), n * dim);
    outIndices[n] = volume.sliceIndices[r];
    outZMm[n] = volume.zMm[r];
  });
  return { vectors, dim, sliceIndices: outIndices, zMm: outZMm, volumeId: volume.volumeId };
}

/** `selectSlices` reports ranges outside the volume as RangeError; callers of search get SearchErrors. */
function withRangeErrors(select: () => number[]): number[] {
  try {
    return select();
  } catch (error) {
    if (error instanceof RangeError) throw new SearchError('SLICE_OUT_OF_RANGE', error.message);
    throw error;
  }
}
