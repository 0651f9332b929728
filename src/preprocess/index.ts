export * from './spec.js';
export * from './slice-tensor.js';
export * from './windows.js';
export * from './slices.js';
export * from './resize.js';
export * from './body-crop.js';
export * from './batches.js';
