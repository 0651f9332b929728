/** Numeric kernels on ONNX Runtime. Imports nothing else from the project, so any stage may use them. */
export { exactTopK, type RowBlock, type TopKOptions, type TopKResult } from './topk.js';
export { maxSimilarityPerSegment, type MaxSimOptions, type MaxSimResult } from './late-interaction.js';
export { computeSessions, ComputeError, type ComputeOptions, type ComputeProvider, type ComputeProviderChoice, type ComputeSessions } from './runtime.js';
