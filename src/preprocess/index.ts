export * from './spec.js';
export * from './sliceTensor.js';
export * from './windows.js';
export * from './slices.js';
export * from './resize.js';
export * from './bodyCrop.js';
export * from './batches.js';
