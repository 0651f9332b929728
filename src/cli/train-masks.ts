import { dirname, isAbsolute, resolve } from 'node:path';
import { matchLabelsCsv } from '../ingest/labels-csv.js';
import type { VolumeSourceRef } from '../ingest/discover.js';
import { SliceLabelError } from '../labels/errors.js';
import { parseSliceTarget, sliceLabelsFromMasks, type MaskedVolume } from '../labels/slice-targets.js';
import type { SliceTargetLabels } from '../space/train-head.js';
import type { Store } from '../store/types.js';
import { startProgress } from './progress.js';

/** The column of the masks CSV that names each volume's mask. */
export const MASK_COLUMN = 'mask';

/**
 * Per-slice targets of an index from a CSV that pairs each indexed volume with its mask: a `path` (or
 * `name`) column matched to the index's volumes exactly as `mir3d index --labels` matches files, and a
 * `mask` column (relative to the CSV's folder, or absolute). The labels CSV given at indexing can simply
 * carry that column. Relative source paths in the index are those given to `mir3d index`, taken from the
 * current folder.
 */
export async function sliceTargetsFromCsv(store: Store, csvPath: string, specs: readonly string[], progress: boolean): Promise<{ labels: SliceTargetLabels; lines: string[] }> {
  const targets = specs.map(parseSliceTarget);
  if (new Set(targets.map((t) => t.name)).size !== targets.length) throw new SliceLabelError('BAD_SLICE_TARGET', 'a slice target is named twice');
  const records = store.listVolumes();
  const sources: VolumeSourceRef[] = records.map((r) => ({ path: r.sourcePath, kind: r.seriesKey ? 'dicom' : 'nifti', ...(r.seriesKey ? { seriesKey: r.seriesKey } : {}) }));
  const match = matchLabelsCsv(csvPath, [], sources);
  const base = dirname(resolve(csvPath));
  const volumes: MaskedVolume[] = records.map((record, i) => {
    const mask = match.labelsFor(sources[i])[MASK_COLUMN];
    const sliceIndices = store.getVectors([record.volumeId]).get(record.volumeId)?.sliceIndices ?? new Int32Array(0);
    const maskPath = mask === undefined || mask === '' ? undefined : isAbsolute(String(mask)) ? String(mask) : resolve(base, String(mask));
    return { volumeId: record.volumeId, what: record.sourcePath, geometry: record, sliceIndices, ...(maskPath ? { maskPath } : {}) };
  });
  if (!volumes.some((v) => v.maskPath)) {
    throw new SliceLabelError('NO_MASK', `${csvPath}: no row gives a "${MASK_COLUMN}" for any of the index's ${records.length} volume(s) (columns path or name, and ${MASK_COLUMN}; paths as given to mir3d index)`);
  }
  const bar = startProgress('reading masks', volumes.filter((v) => v.maskPath).length, 'masks', progress);
  let labels;
  try {
    labels = await sliceLabelsFromMasks(volumes, targets, (done) => bar.update(done, ''));
  } finally {
    bar.stop();
  }
  const lines = targets.map((t) => {
    const c = labels.counts[t.name];
    return `slice target ${t.name} (mask label ${t.values.join(', ')}): present in ${c.present} of ${c.present + c.absent} slices of ${labels.masksRead} masked volume(s)`;
  });
  if (labels.withoutMask.length > 0) lines.push(`${labels.withoutMask.length} volume(s) without a mask: their slices are unlabelled for the slice targets`);
  if (match.unmatchedRows.length > 0) lines.push(`${match.unmatchedRows.length} row(s) of ${csvPath} match no indexed volume (e.g. ${match.unmatchedRows[0]})`);
  return { labels: { targets, byVolume: labels.byVolume }, lines };
}
