import type { Volume } from '../io/volume.js';
import { selectSlices } from '../preprocess/slices.js';
import { isDisplayPreprocessing } from '../preprocess/windows.js';
import { EncoderError } from './errors.js';
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
  checkIntensity(volume, encoder);
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

/** Display grey levels through HU windows (or HU through the grey pass-through) would give vectors that
 * mean nothing next to the index's others, so the pairing is refused with the way out. */
export function checkIntensity(volume: Volume, encoder: Encoder): void {
  const display = isDisplayPreprocessing(encoder.preprocessing.windows);
  const intensity = volume.intensity ?? 'hu';
  if (intensity === 'display' && !display) {
    throw new EncoderError('INTENSITY_MISMATCH', volume.source.path, `an 8-bit image of unknown display window cannot go through the HU windows of ${encoder.name}: give --hu-window LOW:HIGH (the window it was saved with), or use an index of grey key images`);
  }
  if (intensity === 'hu' && display) {
    throw new EncoderError('INTENSITY_MISMATCH', volume.source.path, `this encoder takes display grey levels (key images without a known window), not HU; use an index built for HU volumes`);
  }
}
