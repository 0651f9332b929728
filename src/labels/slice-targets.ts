/**
 * Per-slice labels from segmentation masks: "does slice k hold any voxel of these label values" (tumour /
 * no-tumour slices, liver slices …), for each stored slice of a volume, by its canonical slice index. The
 * mask must lie on the volume's own grid (the indexed record's dims and affine), so slice k of the mask is
 * the slice whose vector the index stored as row k; nothing is resampled.
 */
import { readVolume } from '../io/read.js';
import { gridDifference, type Volume } from '../io/volume.js';
import { SliceLabelError } from './errors.js';

/** A per-slice target: its name and the mask label values that make a slice "present". */
export interface SliceTarget {
  name: string;
  values: number[];
}

/** The two values a slice target takes. */
export const SLICE_PRESENT = 'yes';
export const SLICE_ABSENT = 'no';

/** `NAME=V[,V…]`, e.g. `tumour=2,3` or `liver=1`. */
export function parseSliceTarget(text: string): SliceTarget {
  const match = /^([A-Za-z][A-Za-z0-9_.-]*)=([0-9][0-9,\s]*)$/.exec(text.trim());
  const values = match ? match[2].split(',').map((v) => v.trim()).filter(Boolean).map(Number) : [];
  if (!match || values.length === 0 || values.some((v) => !Number.isInteger(v))) {
    throw new SliceLabelError('BAD_SLICE_TARGET', `slice target "${text}": give NAME=VALUE[,VALUE…], the mask label values that mark a slice (e.g. tumour=2,3)`);
  }
  return { name: match[1], values: [...new Set(values)].sort((a, b) => a - b) };
}

/**
 * Per target, per canonical slice of the mask: 1 when a voxel of the slice holds one of its values. Also
 * every non-zero value the mask holds, for error messages. One pass over the voxels: runs of equal values
 * are counted once, so the work per voxel is one comparison.
 */
export function slicePresence(mask: Pick<Volume, 'dims' | 'data'>, targets: readonly SliceTarget[]): { present: Uint8Array[]; valuesSeen: Set<number> } {
  const [ni, nj, nk] = mask.dims;
  const perSlice = ni * nj;
  const present = targets.map(() => new Uint8Array(nk));
  const valuesSeen = new Set<number>();
  const wanted = targets.map((t) => new Set(t.values));
  const data = mask.data;
  for (let k = 0; k < nk; k++) {
    const inSlice = new Set<number>();
    let previous = Number.NaN;
    for (let p = k * perSlice; p < (k + 1) * perSlice; p++) {
      const v = data[p];
      if (v !== previous) {
        if (v !== 0) inSlice.add(v);
        previous = v;
      }
    }
    for (const v of inSlice) valuesSeen.add(v);
    wanted.forEach((values, t) => {
      for (const v of inSlice) if (values.has(v)) present[t][k] = 1;
    });
  }
  return { present, valuesSeen };
}

/** An indexed volume whose slices are to be labelled: its grid, its stored rows' slice indices, its mask. */
export interface MaskedVolume {
  volumeId: string;
  /** How messages name it (its source path). */
  what: string;
  geometry: Pick<Volume, 'dims' | 'affineRas'>;
  /** Canonical slice index of each stored row. */
  sliceIndices: ArrayLike<number>;
  /** Undefined: no mask for this volume (its slices stay unlabelled for every slice target). */
  maskPath?: string;
}

export interface SliceLabels {
  /** Volume id → per target, per stored row: SLICE_PRESENT or SLICE_ABSENT. Volumes without a mask are absent. */
  byVolume: Map<string, string[][]>;
  /** Volumes left unlabelled for want of a mask. */
  withoutMask: string[];
  /** Per target: stored rows labelled present and absent. */
  counts: Record<string, { present: number; absent: number }>;
  masksRead: number;
}

/**
 * Labels every stored row of the volumes with each target, reading one mask at a time (a 512² × 119
 * mask is read, labelled and dropped before the next). Errors: no volume has a mask (NO_MASK), a mask on
 * another grid (GRID_MISMATCH, naming both files), a target whose values occur in no mask (LABEL_ABSENT).
 */
export async function sliceLabelsFromMasks(
  volumes: readonly MaskedVolume[],
  targets: readonly SliceTarget[],
  onMask?: (done: number, total: number) => void,
  options: { requirePresent?: boolean } = {},
): Promise<SliceLabels> {
  const withMask = volumes.filter((v) => v.maskPath !== undefined);
  if (withMask.length === 0) throw new SliceLabelError('NO_MASK', `none of the ${volumes.length} volume(s) has a mask; name each volume's mask (a "mask" column beside "path")`);
  const byVolume = new Map<string, string[][]>();
  const counts: SliceLabels['counts'] = Object.fromEntries(targets.map((t) => [t.name, { present: 0, absent: 0 }]));
  const seen = new Set<number>();
  const found = targets.map(() => false);
  for (const [n, volume] of withMask.entries()) {
    const mask = await readVolume(volume.maskPath!);
    const difference = gridDifference(volume.geometry, mask);
    if (difference) throw new SliceLabelError('GRID_MISMATCH', `${volume.maskPath}: not on the grid of ${volume.what} (${difference})`);
    const { present, valuesSeen } = slicePresence(mask, targets);
    for (const v of valuesSeen) seen.add(v);
    byVolume.set(
      volume.volumeId,
      targets.map((target, t) =>
        Array.from(volume.sliceIndices, (k) => {
          const yes = present[t][k] === 1;
          if (yes) found[t] = true;
          counts[target.name][yes ? 'present' : 'absent']++;
          return yes ? SLICE_PRESENT : SLICE_ABSENT;
        }),
      ),
    );
    onMask?.(n + 1, withMask.length);
  }
  targets.forEach((target, t) => {
    // Scoring queries may meet a split without any present slice; learning from one may not.
    if (!found[t] && (options.requirePresent ?? true)) {
      const values = [...seen].sort((a, b) => a - b);
      throw new SliceLabelError(
        'LABEL_ABSENT',
        `slice target ${target.name}: label ${target.values.join(', ')} occurs in no stored slice of the ${withMask.length} mask(s) (their labels: ${values.slice(0, 20).join(', ') || 'none'}${values.length > 20 ? ', …' : ''})`,
      );
    }
  });
  return { byVolume, withoutMask: volumes.filter((v) => v.maskPath === undefined).map((v) => v.volumeId), counts, masksRead: withMask.length };
}
