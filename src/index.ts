export * from './io/volume.js';
export * from './io/errors.js';
export * from './io/orientation.js';
export * from './preprocess/sliceTensor.js';
