import { Mir3dError } from '../errors.js';

/**
 * Every problem with a model or a batch becomes an EncoderError with a stable code and the offending path,
 * so the CLI can print one line ("model.onnx: model input has 1 channel, ...") and an indexer can tell a
 * bad model (stop) from a bad batch (skip the volume).
 */
export type EncoderErrorCode =
  /** Model file or folder does not exist. */
  | 'NOT_FOUND'
  /** The file exists but ONNX Runtime (or the TF.js parser) cannot read it. */
  | 'CORRUPT_MODEL'
  /** A model folder lacks files, or its config files are malformed or contradict each other. */
  | 'BAD_CONFIG'
  /** The model's input cannot take slices with the requested preprocessing (rank, channels, size, dtype). */
  | 'INCOMPATIBLE_INPUT'
  /** The requested output name or index does not exist, or its shape cannot be pooled to a vector. */
  | 'BAD_OUTPUT'
  /** A hub model id was asked for; nothing is downloaded, the files must be placed locally. */
  | 'OFFLINE_HUB_MODEL'
  /** The TF.js model uses a layer or op the converter does not map. */
  | 'UNSUPPORTED_OP'
  /** A batch does not match the encoder's declared preprocessing. */
  | 'BAD_BATCH'
  /** A volume's values are display grey levels and the encoder applies HU windows, or the reverse. */
  | 'INTENSITY_MISMATCH'
  /** An explicitly requested execution provider cannot run here. */
  | 'PROVIDER_UNAVAILABLE'
  /** The model cache folder cannot be created or written. */
  | 'CACHE_UNWRITABLE'
  /** Unknown encoder name. */
  | 'UNKNOWN_ENCODER'
  /** embed() after close(). */
  | 'CLOSED'
  /** A text query is empty (or blank). */
  | 'BAD_TEXT'
  /** A tokenizer's ids do not fit the text model it sits beside. */
  | 'TOKENIZER_MISMATCH'
  /** Two towers (or a text space and an index) give vectors of different widths: they share no space. */
  | 'DIM_MISMATCH'
  /** A text query against an index (or image encoder) that has no text side. */
  | 'NO_TEXT_SPACE';

/**
 * A problem with a batch (BAD_BATCH) concerns one volume; every other code concerns the model, so it is
 * persistent. Using an encoder after close() is a defect, not bad input.
 */
export class EncoderError extends Mir3dError<EncoderErrorCode> {
  override readonly name = 'EncoderError';
  constructor(
    code: EncoderErrorCode,
    /** The model file or folder (or encoder name) the problem is about. */
    readonly path: string,
    readonly detail: string,
    options: { cause?: unknown } = {},
  ) {
    super(code, `${path}: ${detail}`, { ...options, expected: code !== 'CLOSED', persistent: code !== 'BAD_BATCH' && code !== 'INTENSITY_MISMATCH' });
  }
}

export function isEncoderError(value: unknown): value is EncoderError {
  return value instanceof EncoderError;
}
