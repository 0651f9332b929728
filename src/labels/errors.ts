import { Mir3dError } from '../errors.js';

/** A 3D-MIR label file that cannot be read as one (a missing column, a value out of its range). */
export class LabelFileError extends Mir3dError<'BAD_LABEL_FILE'> {
  override readonly name = 'LabelFileError';
  constructor(message: string) {
    super('BAD_LABEL_FILE', message);
  }
}

/** A per-slice target from masks that cannot be computed: a bad `NAME=V,…` spec, no mask for any volume,
 * a mask on another grid than its volume, or label values that occur in no mask. */
export type SliceLabelErrorCode = 'BAD_SLICE_TARGET' | 'NO_MASK' | 'GRID_MISMATCH' | 'LABEL_ABSENT';

export class SliceLabelError extends Mir3dError<SliceLabelErrorCode> {
  override readonly name = 'SliceLabelError';
}
