export * from './range.js';
export * from './sources.js';
export * from './request.js';
export * from './run.js';
