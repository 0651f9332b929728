import type { Volume } from '../io/volume.js';
import { selectSlices } from '../preprocess/slices.js';
import type { Encoder } from './encoder.js';
import { SliceFeeder } from './slice-feeder.js';

/** The slice embeddings of one volume, tagged with the encoder that made them. */
export interface EmbeddedSlices {
  encoderId: string;
  dim: number;
  /** Canonical slice index of each row, ascending. */
  sliceIndices: Int32Array;
  zMm: Float64Array;
  /** rows × dim, row-major, unit rows. */
  vectors: Float32Array;
}

export interface EmbedOptions {
  /** Slices to embed; default: the encoder's slice step (every slice when it has none). */
  sliceIndices?: number[];
  /** Slices per encoder call (default 16: past that ONNX Runtime on CPU gains little and memory grows). */
  batchSize?: number;
  /** Reuse one feeder (and its worker thread) across volumes; one is made and closed otherwise. */
  feeder?: SliceFeeder;
  onProgress?: (slicesDone: number, slicesTotal: number) => void;
}

export async function embedVolume(volume: Volume, encoder: Encoder, options: EmbedOptions = {}): Promise<EmbeddedSlices> {
  const indices = [...(options.sliceIndices ?? selectSlices(volume, encoder.preprocessing.sliceStepMm))].sort((a, b) => a - b);
  const batchSize = options.batchSize ?? 16;
  const feeder = options.feeder ?? new SliceFeeder();
  const vectors = new Float32Array(indices.length * encoder.dim);
  const zMm = new Float64Array(indices.length);
  let done = 0;
  try {
    for await (const batch of feeder.batches(volume, encoder.preprocessing, indices, batchSize)) {
      const rows = await encoder.embed(batch);
      vectors.set(rows, done * encoder.dim);
      zMm.set(batch.zMm, done);
      done += batch.count;
      options.onProgress?.(done, indices.length);
    }
  } finally {
    if (!options.feeder) await feeder.close();
  }
  return { encoderId: encoder.id, dim: encoder.dim, sliceIndices: Int32Array.from(indices), zMm, vectors };
}
