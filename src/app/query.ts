import { embedVolume } from '../encode/embed-volume.js';
import type { Encoder } from '../encode/encoder.js';
import type { SliceFeeder } from '../encode/slice-feeder.js';
import { readVolume } from '../io/read.js';
import type { Volume } from '../io/volume.js';
import { canonicalInt16Sha256 } from '../io/volume-stats.js';
import { SearchError } from '../search/errors.js';
import { maskLabelExtent, queryFromVolumeVectors, querySliceIndices, type QueryRange } from '../search/query-range.js';
import type { QueryVectors } from '../search/types.js';
import type { Store, VolumeRecord } from '../store/types.js';

/**
 * Turns what a user points at (a file, a DICOM folder, or an indexed volume id, with an optional slice
 * range, mm range, mask label or single slice) into embedded query vectors. Shared by the CLI and the
 * HTTP server so both resolve queries the same way.
 */

export type QuerySource = { kind: 'path'; path: string; seriesKey?: string } | { kind: 'indexed'; volumeId: string };

/** A range as a user states it: the search stage's ranges, with a mask given by path (read here). */
export type QueryRangeInput = Exclude<QueryRange, { kind: 'mask' }> | { kind: 'mask'; maskPath: string; label: number };

export interface ResolvedQuery {
  query: QueryVectors;
  /** The query volume when it was read from disk (for pictures). */
  volume?: Volume;
  /** The indexed record when the query is (or has the same content as) an indexed volume. */
  record?: VolumeRecord;
  /** Canonical slices the query uses, ascending. */
  sliceIndices: number[];
  /** True when stored vectors were reused instead of embedding again. */
  reusedStoredVectors: boolean;
}

export interface ResolveOptions {
  store: Store;
  /** Needed only when slices must be embedded (a file that is not indexed, or slices it lacks). */
  encoder?: Encoder;
  feeder?: SliceFeeder;
}

async function toQueryRange(range: QueryRangeInput): Promise<QueryRange> {
  if (range.kind !== 'mask') return range;
  return { kind: 'mask', mask: await readVolume(range.maskPath), label: range.label };
}

/** Slices of an indexed volume's stored rows that a range selects (no voxels needed). */
async function indexedSlices(record: VolumeRecord, sliceIndices: Int32Array, zMm: Float64Array, range: QueryRangeInput): Promise<number[]> {
  const all = Array.from(sliceIndices);
  switch (range.kind) {
    case 'volume':
      return all;
    case 'slices':
      return all.filter((k) => k >= range.firstSlice && k <= range.lastSlice);
    case 'slice':
      return all.filter((k) => k === range.slice);
    case 'mm': {
      // A slice belongs to a range when its slab (± half the spacing) overlaps it, as for files.
      const halfMm = record.spacingMm[2] / 2;
      const [low, high] = [Math.min(range.zStartMm, range.zEndMm), Math.max(range.zStartMm, range.zEndMm)];
      return all.filter((_, row) => zMm[row] + halfMm >= low && zMm[row] - halfMm <= high);
    }
    case 'mask': {
      const mask = await readVolume(range.maskPath);
      if (mask.dims.some((d, axis) => d !== record.dims[axis])) {
        throw new SearchError('GRID_MISMATCH', `mask dims ${mask.dims.join('×')} differ from volume ${record.volumeId}'s ${record.dims.join('×')}`);
      }
      const extent = maskLabelExtent(mask, range.label);
      return all.filter((k) => k >= extent.firstSlice && k <= extent.lastSlice);
    }
  }
}

export async function resolveQuery(source: QuerySource, range: QueryRangeInput, options: ResolveOptions): Promise<ResolvedQuery> {
  const { store } = options;
  if (source.kind === 'indexed') {
    const record = store.getVolume(source.volumeId);
    const vectors = store.getVectors([source.volumeId]).get(source.volumeId);
    if (!record || !vectors) throw new SearchError('BAD_QUERY', `no volume ${source.volumeId} in the index`);
    const wanted = await indexedSlices(record, vectors.sliceIndices, vectors.zMm, range);
    if (wanted.length === 0) throw new SearchError('SLICE_OUT_OF_RANGE', `the range selects none of volume ${source.volumeId}'s ${vectors.sliceIndices.length} embedded slices`);
    return { query: queryFromVolumeVectors(vectors, wanted), record, sliceIndices: wanted, reusedStoredVectors: true };
  }

  const volume = await readVolume(source.path, source.seriesKey ? { seriesKey: source.seriesKey } : {});
  const stepMm = options.encoder?.preprocessing.sliceStepMm;
  const wanted = querySliceIndices(volume, await toQueryRange(range), stepMm ? { stepMm } : {});
  const record = store.findByContent(canonicalInt16Sha256(volume));
  if (record) {
    // The same scan is indexed: its stored rows are exactly what embedding would give (same encoder).
    const vectors = store.getVectors([record.volumeId]).get(record.volumeId);
    const stored = new Set(vectors ? Array.from(vectors.sliceIndices) : []);
    if (vectors && wanted.every((k) => stored.has(k))) {
      return { query: queryFromVolumeVectors(vectors, wanted), volume, record, sliceIndices: wanted, reusedStoredVectors: true };
    }
  }
  if (!options.encoder) throw new SearchError('BAD_QUERY', `${source.path} is not indexed; an encoder is needed to embed it`);
  const embedded = await embedVolume(volume, options.encoder, { sliceIndices: wanted, ...(options.feeder ? { feeder: options.feeder } : {}) });
  const query: QueryVectors = {
    vectors: embedded.vectors,
    dim: embedded.dim,
    sliceIndices: Array.from(embedded.sliceIndices),
    zMm: Array.from(embedded.zMm),
    ...(record ? { volumeId: record.volumeId } : {}),
  };
  return { query, volume, ...(record ? { record } : {}), sliceIndices: wanted, reusedStoredVectors: false };
}
