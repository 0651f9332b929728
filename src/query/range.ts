import { gridDifference, sliceZMm, type SliceGeometry, type Volume } from '../io/volume.js';
import { selectSlices, sliceRangeIndices, type SliceRange } from '../preprocess/slices.js';
import { SearchError } from '../search/errors.js';
import type { QueryVectors } from '../search/types.js';
import type { VolumeVectors } from '../store/types.js';

/**
 * Which part of the query volume to search with (DESIGN.md "Sub-volume / region query"):
 * the whole volume, an inclusive canonical slice range, a patient-z range in mm, the z-extent of one
 * label value in a mask on the same grid (an organ's slab), or one slice.
 *
 * One rule serves a volume read from disk and the stored rows of an indexed one: a range first becomes
 * an inclusive interval of canonical slices (`rangeInterval`, from the geometry alone), then a fresh
 * volume embeds the slices of that interval (`querySliceIndices`) and stored rows are those whose slice
 * lies in it (`selectRows`).
 */
export type QueryRange =
  | { kind: 'volume' }
  | { kind: 'slices'; firstSlice: number; lastSlice: number }
  | { kind: 'mm'; zStartMm: number; zEndMm: number }
  | { kind: 'mask'; mask: Volume; label: number }
  | { kind: 'slice'; slice: number };

/** A range as a user states it: a mask is given by path (read when the query is resolved). */
export type QueryRangeInput = Exclude<QueryRange, { kind: 'mask' }> | { kind: 'mask'; maskPath: string; label: number };

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

/** Inclusive canonical slices, first ≤ last. */
export interface SliceInterval {
  firstSlice: number;
  lastSlice: number;
}

/**
 * The inclusive slice interval a range covers in a volume of this geometry. Slice and mm ranges follow
 * `sliceRangeIndices` (inclusive, clamped to the volume; an error when nothing of the volume is inside);
 * a single slice must lie in the volume; a mask must share the volume's grid and contain the label.
 */
export function rangeInterval(geometry: SliceGeometry, range: QueryRange): SliceInterval {
  switch (range.kind) {
    case 'volume':
      return contiguous(withRangeErrors(() => sliceRangeIndices(geometry, { firstSlice: 0, lastSlice: geometry.dims[2] - 1 })));
    case 'slices':
      return contiguous(withRangeErrors(() => sliceRangeIndices(geometry, { firstSlice: range.firstSlice, lastSlice: range.lastSlice })));
    case 'mm':
      return contiguous(withRangeErrors(() => sliceRangeIndices(geometry, { zStartMm: range.zStartMm, zEndMm: range.zEndMm })));
    case 'mask':
      return maskSliceRange(geometry, range.mask, range.label);
    case 'slice': {
      const sliceCount = geometry.dims[2];
      // Unlike a range, one slice is not clamped: asking for slice 900 of a 300-slice scan is a mistake,
      // not a request for the top slice.
      if (!Number.isInteger(range.slice) || range.slice < 0 || range.slice >= sliceCount) {
        throw new SearchError('SLICE_OUT_OF_RANGE', `slice ${range.slice} is not in the volume's slices 0..${sliceCount - 1}`);
      }
      return { firstSlice: range.slice, lastSlice: range.slice };
    }
    default: {
      const unknown: never = range;
      throw new SearchError('BAD_OPTION', `unknown query range ${JSON.stringify(unknown)}`);
    }
  }
}

/**
 * The canonical slice indices (ascending) of a volume that a query range selects for embedding: the
 * range's interval, one slice per `stepMm` from its first slice (a single slice is taken as it is).
 */
export function querySliceIndices(volume: SliceGeometry, range: QueryRange, options: QueryRangeOptions = {}): number[] {
  const interval = rangeInterval(volume, range);
  if (range.kind === 'slice') return [interval.firstSlice];
  return withRangeErrors(() => selectSlices(volume, options.stepMm, interval));
}

/**
 * The rows of already embedded query vectors (an indexed volume's stored rows, or a whole query embedded
 * once) that a range selects: those whose slice lies in its interval. A volume indexed every few mm has
 * vectors for only some slices; the selection uses those it has, and it is an error only when it has
 * none of them. The rows themselves are returned (no copy) when the range keeps all of them, so callers
 * that cache per query array keep their cache.
 */
export function selectRows(rows: QueryVectors, geometry: SliceGeometry, range: QueryRange): QueryVectors {
  const selected = rowsInInterval(rows, rangeInterval(geometry, range));
  if (!selected) {
    const what = rows.volumeId ? `volume ${rows.volumeId}'s` : "the query's";
    throw new SearchError('SLICE_OUT_OF_RANGE', `the range selects none of ${what} ${rows.sliceIndices.length} embedded slices`);
  }
  return selected;
}

/** The rows whose slice lies in the interval (the rows themselves when that is all of them), or
 * undefined when none does. */
export function rowsInInterval(rows: QueryVectors, { firstSlice, lastSlice }: SliceInterval): QueryVectors | undefined {
  const keep: number[] = [];
  for (let r = 0; r < rows.sliceIndices.length; r++) {
    const k = rows.sliceIndices[r];
    if (k >= firstSlice && k <= lastSlice) keep.push(r);
  }
  if (keep.length === 0) return undefined;
  if (keep.length === rows.sliceIndices.length) return rows;
  return pickRows(rows, keep);
}

/** The `SliceRange` (for `selectSlices`/`sliceRangeIndices`) of a label's z-extent. */
export function maskSliceRange(volume: SliceGeometry, mask: Volume, label: number): SliceInterval & SliceRange {
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

/** Throws unless `mask` lies on `volume`'s canonical voxel grid (io's `gridDifference`). */
export function assertSameGrid(volume: Pick<SliceGeometry, 'dims' | 'affineRas'>, mask: Volume): void {
  const difference = gridDifference(volume, mask);
  if (difference) throw new SearchError('GRID_MISMATCH', difference);
}

/**
 * A query made of an indexed volume's own slice vectors, optionally only the rows whose slice index is
 * in `sliceIndices` (e.g. from `querySliceIndices`); an error only when none of them is stored.
 */
export function queryFromVolumeVectors(volume: VolumeVectors, sliceIndices?: Iterable<number>): QueryVectors {
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
  return pickRows(volume, keep);
}

/** A copy of some rows (with their positions) of a query. */
function pickRows(rows: QueryVectors, keep: readonly number[]): QueryVectors {
  const { dim } = rows;
  const vectors = new Float32Array(keep.length * dim);
  const outIndices = new Int32Array(keep.length);
  const outZMm = rows.zMm ? new Float64Array(keep.length) : undefined;
  keep.forEach((r, n) => {
    vectors.set(rows.vectors.subarray(r * dim, (r + 1) * dim), n * dim);
    outIndices[n] = rows.sliceIndices[r];
    if (outZMm) outZMm[n] = rows.zMm![r];
  });
  return { vectors, dim, sliceIndices: outIndices, ...(outZMm ? { zMm: outZMm } : {}), ...(rows.volumeId !== undefined ? { volumeId: rows.volumeId } : {}) };
}

function contiguous(indices: number[]): SliceInterval {
  return { firstSlice: indices[0], lastSlice: indices[indices.length - 1] };
}

/** `selectSlices` reports ranges outside the volume as RangeError; callers of search get SearchErrors. */
function withRangeErrors<T>(select: () => T): T {
  try {
    return select();
  } catch (error) {
    if (error instanceof RangeError) throw new SearchError('SLICE_OUT_OF_RANGE', error.message);
    throw error;
  }
}
