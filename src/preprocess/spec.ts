/**
 * How slices are turned into encoder input. An encoder declares the spec it was built for, and the spec
 * is part of the encoder's id, so vectors made with other windows or sizes never mix in one index.
 */

/** A HU window: values in [levelHu − widthHu/2, levelHu + widthHu/2] map linearly onto [0, 1], clamped. */
export interface HuWindow {
  name: string;
  levelHu: number;
  widthHu: number;
}

export interface SlicePreprocessing {
  /** One channel per window, in this order. */
  windows: HuWindow[];
  /** Output size of every slice in pixels. */
  heightPx: number;
  widthPx: number;
  /** Crop each slice to the body outline (air and table removed) before resizing. */
  bodyCrop: boolean;
  /** One slice per this many mm along z; undefined or 0 keeps every slice. */
  sliceStepMm?: number;
}
