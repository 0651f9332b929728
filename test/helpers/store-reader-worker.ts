/**
 * Worker thread of the store's concurrent-readers test: opens the index read-only, runs the searches it is
 * given, and posts the hits and what it holds in memory.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openStore } from '../../src/store/index.js';

const { dir, queries, k } = workerData as { dir: string; queries: Float32Array; k: number };
const store = openStore(dir, { readOnly: true, exactBelowSlices: 0 });
try {
  const exact = await store.searchSlices(queries, { k, mode: 'exact' });
  const approximate = await store.searchSlices(queries, { k, mode: 'approximate' });
  parentPort!.postMessage({ exact, approximate, memory: store.info!().memory });
} finally {
  store.close();
}
