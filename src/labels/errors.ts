import { Mir3dError } from '../errors.js';

/** A 3D-MIR label file that cannot be read as one (a missing column, a value out of its range). */
export class LabelFileError extends Mir3dError<'BAD_LABEL_FILE'> {
  override readonly name = 'LabelFileError';
  constructor(message: string) {
    super('BAD_LABEL_FILE', message);
  }
}
