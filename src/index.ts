/**
 * mir3d as a library: each stage of the data flow (DESIGN.md) in the order data passes through it.
 * The CLI (`mir3d`) and the HTTP server are thin layers over these.
 */
export * from './io/volume.js';
export * from './io/errors.js';
export * from './io/orientation.js';
export { readVolume, type ReadOptions } from './io/read.js';
export { listDicomSeries, type DicomSeriesSummary } from './io/dicom.js';
export { writeNifti } from './io/nifti-writer.js';
export { canonicalInt16Sha256, intensityRange } from './io/volume-stats.js';
export { renderSlice, encodePng, writeSlicePng, DISPLAY_WINDOWS } from './io/png.js';
export { generatePhantom, LABEL as PHANTOM_LABEL } from './synth/index.js';
export * from './preprocess/index.js';
export type { Encoder } from './encode/encoder.js';
export { EncoderError } from './encode/errors.js';
export { openEncoder, listEncoders, DEFAULT_ENCODER } from './encode/registry.js';
export { embedVolume, type EmbeddedSlices } from './encode/embed-volume.js';
export { SliceFeeder } from './encode/slice-feeder.js';
export * from './store/index.js';
export * from './search/index.js';
export { discoverVolumes, type VolumeSourceRef } from './ingest/discover.js';
export { indexVolumes, volumeIdOf, type IndexSummary, type VolumeOutcome } from './ingest/indexer.js';
export * from './query/index.js';
