import { parentPort, workerData } from 'node:worker_threads';
import { maxSimilarityPerSegment } from '../compute/index.js';
import { SliceFeeder } from '../encode/slice-feeder.js';
import { openIndex } from '../ingest/open-index.js';
import { describeCauses } from '../errors.js';
import { toApiError } from './errors.js';
import { PacsAccess, type PacsConfig } from './pacs.js';
import { runSearchJob, type SearchJob, type SearchJobResult } from './search-job.js';

/**
 * A search worker thread: holds the index read-only and runs one search job at a time for the pool in
 * `search-pool.ts`. ONNX Runtime's kernels here get this worker's share of the cores (`threads`), so
 * the pool's workers together never ask for more threads than there are cores.
 */

export interface SearchWorkerConfig {
  dbDir: string;
  /** Threads of this worker's kernels (exact top-k, MaxSim, HNSW, the encoder). */
  threads: number;
  /** The server's PACS (credentials included: workerData stays in this process). */
  pacs?: PacsConfig;
}

export type SearchWorkerRequest = { id: number; job: SearchJob };

/** A refusal as it crosses back: the ApiError's fields (a class does not survive structured cloning). */
export interface SearchWorkerFailure {
  statusCode: number;
  code: string;
  message: string;
  retryAfterS?: number;
  /** The original stack, for the server's error log, only for unexpected errors. */
  stack?: string;
}

export type SearchWorkerResponse = { type: 'ready' } | { type: 'done'; id: number; result: SearchJobResult } | { type: 'failed'; id: number; error: SearchWorkerFailure };

const port = parentPort;
if (!port) throw new Error('search-worker.ts runs only as a worker thread');
const config = workerData as SearchWorkerConfig;
const index = await openIndex(config.dbDir, {
  readOnly: true,
  store: { threads: config.threads, compute: { threads: config.threads } },
  encoderOptions: { intraOpThreads: config.threads },
});
// Preprocessing runs on this thread: the worker is already off the server's event loop.
const feeder = new SliceFeeder(false);
const pacs = config.pacs ? new PacsAccess(config.pacs) : undefined;
const context = {
  ...(pacs ? { pacs } : {}),
  store: index.store,
  encoder: () => index.encoder(),
  textEncoder: () => index.textEncoder(),
  feeder,
  maxSim: (queries: Float32Array, dim: number, segments: readonly Float32Array[]) => maxSimilarityPerSegment(queries, dim, segments, { threads: config.threads }),
};

port.on('message', (request: SearchWorkerRequest) => {
  void (async () => {
    try {
      const result = await runSearchJob(context, request.job);
      // Copied, not transferred: a few MB at most (new slices × dim), and the arrays may be views.
      port.postMessage({ type: 'done', id: request.id, result } satisfies SearchWorkerResponse);
    } catch (error) {
      const api = toApiError(error, { volumeFromClient: request.job.kind !== 'indexed' });
      const failure: SearchWorkerFailure = {
        statusCode: api.statusCode,
        code: api.code,
        message: api.message,
        ...(api.retryAfterS ? { retryAfterS: api.retryAfterS } : {}),
        // The whole cause chain: the error here is often the ApiError wrapping the real one.
        ...(api.code === 'INTERNAL' ? { stack: describeCauses(error) } : {}),
      };
      port.postMessage({ type: 'failed', id: request.id, error: failure } satisfies SearchWorkerResponse);
    }
  })();
});

port.on('close', () => {
  void feeder.close();
  void pacs?.close();
  void index.close();
});

port.postMessage({ type: 'ready' } satisfies SearchWorkerResponse);
