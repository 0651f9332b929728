import { Mir3dError, type Mir3dErrorOptions } from '../errors.js';

/**
 * Every problem with an input becomes a VolumeReadError carrying the offending path and a stable code,
 * so the CLI can print one clear line and exit non-zero, and callers (the indexer) can record the reason
 * and carry on with the next file.
 */
export type VolumeErrorCode =
  | 'NOT_FOUND'
  | 'UNREADABLE'
  /** A FIFO, device, socket (also behind a link): only regular files are read. */
  | 'NOT_REGULAR_FILE'
  /** The file, or what it inflates to, exceeds what its header justifies or the configured maximum. */
  | 'TOO_LARGE'
  | 'UNKNOWN_FORMAT'
  | 'BAD_MAGIC'
  | 'TRUNCATED'
  | 'CORRUPT_GZIP'
  | 'BAD_HEADER'
  | 'BAD_DIMENSIONS'
  | 'SIZE_MISMATCH'
  | 'UNSUPPORTED_DATATYPE'
  | 'NOT_3D'
  | 'NON_FINITE_VOXELS'
  /** Finite values that do not fit float32 (the widest type voxels are held in). */
  | 'VOXEL_OVERFLOW'
  /** The file's bytes contradict themselves in a way no specific check names (the cause is kept). */
  | 'MALFORMED'
  | 'EMPTY_DIRECTORY'
  | 'NO_DICOM'
  | 'NO_PIXEL_DATA'
  | 'UNSUPPORTED_TRANSFER_SYNTAX'
  | 'INCONSISTENT_SERIES'
  | 'SERIES_NOT_FOUND'
  | 'MULTIPLE_SERIES';

/** A problem with one input file: expected, and never persistent (the next file may be fine). */
export class VolumeReadError extends Mir3dError<VolumeErrorCode> {
  override readonly name = 'VolumeReadError';
  constructor(
    code: VolumeErrorCode,
    readonly path: string,
    readonly detail: string,
    options: Pick<Mir3dErrorOptions, 'cause'> = {},
  ) {
    super(code, `${path}: ${detail}`, options);
  }
}

export function isVolumeReadError(value: unknown): value is VolumeReadError {
  return value instanceof VolumeReadError;
}
