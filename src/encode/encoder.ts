import type { SlicePreprocessing } from '../preprocess/spec.js';
import type { SliceTensor } from '../preprocess/slice-tensor.js';

/**
 * Anything that turns preprocessed axial slices into vectors. Rows are L2-normalized so inner product is
 * cosine similarity everywhere downstream.
 */
export interface Encoder {
  /** Model + preprocessing + version, e.g. 'mobilenet_v2@sha256:1a2b…|abdomen+lung+bone|224x224|v1'.
   * An index pins it and refuses vectors of any other id. */
  readonly id: string;
  /** Short name for people and for `--encoder`. */
  readonly name: string;
  readonly dim: number;
  /** The preprocessing this encoder expects; callers build SliceTensors with it. */
  readonly preprocessing: SlicePreprocessing;
  /** Embeds a batch: returns batch.count rows of `dim` floats, each of unit length, row-major. */
  embed(batch: SliceTensor): Promise<Float32Array>;
  /** Frees native resources (ONNX sessions, worker threads). */
  close(): Promise<void>;
}
