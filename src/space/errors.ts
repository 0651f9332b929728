import { Mir3dError } from '../errors.js';

/**
 * Problems with a learned space (a normalization or a trained head) carry a stable code and the space or
 * index they concern, so the CLI prints one line and exits 2, as for bad volumes.
 */
export type SpaceErrorCode =
  /** The stored graph or its description is unreadable, or its bytes do not match the recorded hash. */
  | 'CORRUPT_SPACE'
  /** No space of that name in the index. */
  | 'UNKNOWN_SPACE'
  /** The space was learned from other vectors (another encoder or dimension) than the index holds. */
  | 'SPACE_MISMATCH'
  /** The labels cannot train anything: a missing column, one class only, too few groups. */
  | 'BAD_LABELS'
  /** A space name that cannot be a file name, or is reserved. */
  | 'BAD_NAME';

export class SpaceError extends Mir3dError<SpaceErrorCode> {
  override readonly name = 'SpaceError';
  constructor(
    code: SpaceErrorCode,
    readonly path: string,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    // A damaged or foreign space concerns the index, not one query: a batch stops on it.
    super(code, `${path}: ${detail}`, { ...(options?.cause !== undefined ? { cause: options.cause } : {}), persistent: code !== 'BAD_LABELS' && code !== 'BAD_NAME' });
  }
}

export function isSpaceError(value: unknown): value is SpaceError {
  return value instanceof SpaceError;
}
