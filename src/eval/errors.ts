import { Mir3dError } from '../errors.js';

/**
 * A folder or file given to `mir3d eval` that is not the dataset it should be (no dataset.json, a subject
 * without segmentations, a split that mixes patients): the user's to fix, so one line and exit 2.
 */
export class DatasetError extends Mir3dError<'BAD_DATASET'> {
  override readonly name = 'DatasetError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('BAD_DATASET', message, options);
  }
}
