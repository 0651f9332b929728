/** The archive index: `openStore` returns the embedded engine behind the `Store` interface. */
import { openEmbeddedStore, type OpenStoreOptions } from './embedded.js';
import type { Store } from './types.js';

export * from './types.js';
export { StoreError, isStoreError, type StoreErrorCode } from './errors.js';
export { poolAll, poolVectors } from './pooling.js';
export { compileFilter, isEmptyFilter } from './filter.js';
export { checkArtifactKey, checkJson, checkStateKey } from './artifacts.js';
export { checkEf, checkPooling, checkQueries, checkVolume } from './validate.js';
export { indexExists, type EmbeddedStore, type HnswOptions, type OpenStoreOptions } from './embedded.js';

/**
 * Opens (or, with `encoderId` and `dim`, creates) the index in directory `dir`. An existing index opened
 * with another encoder id fails with StoreError ENCODER_MISMATCH; open it with `{ readOnly: true }` and no
 * encoder id to inspect it.
 */
export function openStore(dir: string, options: OpenStoreOptions = {}): Store {
  return openEmbeddedStore(dir, options);
}
