/**
 * Every problem with an input becomes a VolumeReadError carrying the offending path and a stable code,
 * so the CLI can print one clear line and exit non-zero, and callers (the indexer) can record the reason
 * and carry on with the next file.
 */
export type VolumeErrorCode =
  | 'NOT_FOUND'
  | 'UNREADABLE'
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
  | 'EMPTY_DIRECTORY'
  | 'NO_DICOM'
  | 'NO_PIXEL_DATA'
  | 'UNSUPPORTED_TRANSFER_SYNTAX'
  | 'INCONSISTENT_SERIES'
  | 'SERIES_NOT_FOUND'
  | 'MULTIPLE_SERIES';

export class VolumeReadError extends Error {
  override readonly name = 'VolumeReadError';
  constructor(
    readonly code: VolumeErrorCode,
    readonly path: string,
    readonly detail: string,
  ) {
    super(`${path}: ${detail}`);
  }
}

export function isVolumeReadError(value: unknown): value is VolumeReadError {
  return value instanceof VolumeReadError;
}
