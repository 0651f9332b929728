import { ComputeError } from '../compute/errors.js';
import { Mir3dError } from '../errors.js';

/**
 * Every problem with a query or search options becomes a SearchError with a stable code, so the CLI and
 * server can print one line and map it to a user error, and tests can assert the reason rather than a
 * message's wording.
 */
export type SearchErrorCode =
  /** Query vectors, slice indices or z positions are missing, empty or of inconsistent length. */
  | 'BAD_QUERY'
  /** Query and index (or query and candidate) vectors have different dimensions. */
  | 'DIM_MISMATCH'
  /** A numeric option is out of range, or an option names an unknown method. */
  | 'BAD_OPTION'
  /** A mask lies on a different voxel grid than the volume it should select slices of. */
  | 'GRID_MISMATCH'
  /** The requested label value does not occur in the mask. */
  | 'LABEL_ABSENT'
  /** A requested slice is outside the volume, or none of the requested slices were embedded. */
  | 'SLICE_OUT_OF_RANGE'
  /** A similarity kernel returned a matrix of the wrong size. */
  | 'KERNEL_OUTPUT'
  /** A query range is stated inconsistently (two kinds at once, one end missing, first after last). */
  | 'BAD_RANGE'
  /** A label filter is not `key=value`. */
  | 'BAD_FILTER';

/** A kernel returning the wrong shape is a defect; every other code is a bad query or option. */
export class SearchError extends Mir3dError<SearchErrorCode> {
  override readonly name = 'SearchError';
  constructor(code: SearchErrorCode, detail: string, options: { cause?: unknown } = {}) {
    super(code, detail, { ...options, expected: code !== 'KERNEL_OUTPUT' });
  }
}

/** A kernel failure from src/compute as a SearchError with the matching code; anything else unchanged. */
export function asSearchError(error: unknown): unknown {
  if (error instanceof ComputeError) {
    if (error.code === 'BAD_INPUT') return new SearchError('BAD_QUERY', error.detail);
    if (error.code === 'KERNEL_OUTPUT') return new SearchError('KERNEL_OUTPUT', error.detail);
  }
  return error;
}

export function isSearchError(value: unknown): value is SearchError {
  return value instanceof SearchError;
}

export function checkPositiveInteger(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new SearchError('BAD_OPTION', `${what} must be a positive integer, got ${value}`);
  }
}
