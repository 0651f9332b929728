import { Mir3dError } from '../errors.js';

/**
 * Every refusal of the index becomes a StoreError with a stable code and the index directory, so the CLI
 * can print one line and an indexer can tell "wrong index" (stop) from "bad volume" (skip it).
 */
export type StoreErrorCode =
  /** Opening read-only (or without an encoder id) an index directory that holds no index. */
  | 'NOT_FOUND'
  /** Creating an index needs an encoder id and a dimension. */
  | 'MISSING_ENCODER'
  /** Vectors or an open request of another encoder than the one the index pins. */
  | 'ENCODER_MISMATCH'
  /** Vectors of another dimension than the index's. */
  | 'DIM_MISMATCH'
  /** The index was written by a newer mir3d (unknown schema version). */
  | 'SCHEMA_VERSION'
  /** The same voxel content is already indexed under another volume id. */
  | 'DUPLICATE_CONTENT'
  /** A volume's record and vectors disagree (row counts, lengths, non-finite values). */
  | 'BAD_VECTORS'
  /** A search request that cannot be answered as given (k, query length, unknown pooling). */
  | 'BAD_QUERY'
  /** An artifact or state name, key or value the index cannot keep (see ArtifactStore, IndexState). */
  | 'BAD_ARGUMENT'
  /** A write on an index opened read-only. */
  | 'READ_ONLY'
  /** Any call after close(). */
  | 'CLOSED'
  /** The SQLite file cannot be opened or is not an index. */
  | 'CORRUPT'
  /** The disk (or the quota) is full: nothing of the write was kept. */
  | 'NO_SPACE';

/** Codes about one volume's vectors; every other code concerns the index itself, so it is persistent. */
const VOLUME_CODES: ReadonlySet<StoreErrorCode> = new Set(['BAD_VECTORS', 'DUPLICATE_CONTENT', 'BAD_QUERY']);

/** Calls after close() are defects, not bad input. */
export class StoreError extends Mir3dError<StoreErrorCode> {
  override readonly name = 'StoreError';
  constructor(
    code: StoreErrorCode,
    /** The index directory the problem is about. */
    readonly path: string,
    readonly detail: string,
    options: { cause?: unknown } = {},
  ) {
    super(code, `${path}: ${detail}`, { ...options, expected: code !== 'CLOSED', persistent: !VOLUME_CODES.has(code) });
  }
}

export function isStoreError(value: unknown): value is StoreError {
  return value instanceof StoreError;
}

/**
 * A failed SQLite or file write as a StoreError: a full disk is the user's to fix (one line, and it stops
 * an indexing run, since every later volume would fail alike); anything else is returned unchanged.
 */
export function storageError(dir: string, cause: unknown): unknown {
  const code = (cause as { code?: unknown }).code;
  if (code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'EDQUOT') {
    return new StoreError('NO_SPACE', dir, 'the disk is full: nothing of this write was kept; free space and run again (finished volumes stay indexed)', { cause });
  }
  return cause;
}
