import type { Store } from '../store/types.js';

export interface StoreSlices {
  /** rows × dim backbone vectors, volumes in listing order. */
  vectors: Float32Array;
  dim: number;
  /** Each row's volume, an index into `volumeIds` / `labels`. */
  owners: number[];
  /** Each row's canonical slice index in its volume. */
  sliceIndices: Int32Array;
  /** Each volume's first row (its rows are consecutive, in ascending slice order). */
  firstRows: number[];
  volumeIds: string[];
  labels: Array<Record<string, string | number>>;
}

/** Every stored slice vector of the index with its volume's labels (the backbone's, never a space's). */
export function slicesOfStore(store: Store, volumeIds?: readonly string[]): StoreSlices {
  const wanted = volumeIds ? new Set(volumeIds) : undefined;
  const records = store.listVolumes().filter((r) => !wanted || wanted.has(r.volumeId));
  const vectors = store.getVectors(records.map((r) => r.volumeId));
  let rows = 0;
  for (const r of records) rows += vectors.get(r.volumeId)?.sliceIndices.length ?? 0;
  const out = new Float32Array(rows * store.dim);
  const owners: number[] = [];
  const sliceIndices = new Int32Array(rows);
  const firstRows: number[] = [];
  let at = 0;
  records.forEach((record, i) => {
    firstRows.push(at);
    const v = vectors.get(record.volumeId);
    if (!v) return;
    out.set(v.vectors.subarray(0, v.sliceIndices.length * store.dim), at * store.dim);
    sliceIndices.set(v.sliceIndices, at);
    for (let s = 0; s < v.sliceIndices.length; s++) owners.push(i);
    at += v.sliceIndices.length;
  });
  return { vectors: out, dim: store.dim, owners, sliceIndices, firstRows, volumeIds: records.map((r) => r.volumeId), labels: records.map((r) => r.labels) };
}

/** Canonical slice indices of volume `owner`'s rows (a view of `slices.sliceIndices`). */
export function volumeSliceIndices(slices: StoreSlices, owner: number): Int32Array {
  const end = owner + 1 < slices.firstRows.length ? slices.firstRows[owner + 1] : slices.owners.length;
  return slices.sliceIndices.subarray(slices.firstRows[owner], end);
}

/** Rows laid out volume by volume, each volume's rows consecutive in ascending slice order: StoreSlices is
 * one; the grouped evaluation lays out its own in the CSV's order. */
export interface RowLayout {
  /** Each row's volume, an index into `volumeIds`. */
  owners: readonly number[];
  /** Each volume's first row. */
  firstRows: readonly number[];
  volumeIds: readonly string[];
}

/** Per-slice labels of volumes (volume id → per target → per stored row of the volume), as
 * labels/slice-targets.ts gives them. */
export type SliceLabelsByVolume = ReadonlyMap<string, ReadonlyArray<ReadonlyArray<string>>>;

/** Each row's label for slice target `t` (undefined: its volume has no mask). */
export function rowSliceLabels(layout: RowLayout, byVolume: SliceLabelsByVolume, t: number): Array<string | undefined> {
  return layout.owners.map((o, row) => byVolume.get(layout.volumeIds[o])?.[t]?.[row - layout.firstRows[o]]);
}

/** The same labels keyed by canonical slice index (volume id → slice index → label per target), for
 * scoring search hits, which name their slice. */
export function sliceLabelsBySliceIndex(byVolume: SliceLabelsByVolume, sliceIndicesOf: (volumeId: string) => ArrayLike<number>): Map<string, Map<number, string[]>> {
  const out = new Map<string, Map<number, string[]>>();
  for (const [volumeId, perTarget] of byVolume) {
    out.set(volumeId, new Map(Array.from(sliceIndicesOf(volumeId), (k, row) => [k, perTarget.map((labels) => labels[row])] as const)));
  }
  return out;
}
