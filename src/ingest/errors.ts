import { Mir3dError } from '../errors.js';

/** Refusals of an indexing run as a whole (before anything is written), with a stable code. */
export type IngestErrorCode =
  /** No path given names a volume: nothing would be indexed (no index is created). */
  | 'NOTHING_TO_INDEX'
  /** A labels CSV cannot be read, lacks its key column, or names a file ambiguously. */
  | 'BAD_LABELS'
  /** Another process is writing this index. */
  | 'INDEX_LOCKED';

export class IngestError extends Mir3dError<IngestErrorCode> {
  override readonly name = 'IngestError';
  constructor(code: IngestErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(code, message, { ...options, persistent: true });
  }
}
