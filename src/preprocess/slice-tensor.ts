/**
 * A batch of preprocessed axial slices, the hand-off from preprocessing to an encoder.
 * Layout NCHW, float32, values of windowed channels in [0, 1]; an encoder applies its own
 * normalization (mean/std) and layout change on top.
 */
export interface SliceTensor {
  data: Float32Array;
  count: number;
  channels: number;
  height: number;
  width: number;
  /** Canonical slice index k of each slice in the batch. */
  sliceIndices: number[];
  /** Patient z (superior, mm) of each slice in the batch. */
  zMm: number[];
}
