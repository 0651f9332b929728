/**
 * Evaluation: 3D-MIR labels from tumour masks, retrieval metrics with their chance levels, dataset
 * adapters (Decathlon + 3D-MIR CSVs, C-MIR's mixed archive, TotalSegmentator regions) and the
 * development benchmark built from the shared real CTs.
 */
export * from '../labels/tumours.js';
export * from './metrics.js';
export * from './extents.js';
export * from '../synth/devbench.js';
export * from './datasets/types.js';
export * from './datasets/relevance.js';
export * from '../labels/threedmir-csv.js';
export * from './datasets/decathlon.js';
export * from './datasets/total-seg-regions.js';
export * from './datasets/total-segmentator.js';
export * from './datasets/split.js';
