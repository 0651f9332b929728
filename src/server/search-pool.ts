import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { SearchQueueInfo } from '../api/contract.js';
import { ApiError } from './errors.js';
import type { SearchJob, SearchJobResult } from './search-job.js';
import type { PacsConfig } from './pacs.js';
import type { SearchWorkerConfig, SearchWorkerRequest, SearchWorkerResponse } from './search-worker.js';

/**
 * Searches on a pool of worker threads, each holding the index read-only, behind one bounded queue.
 *
 * Why threads: a search is CPU work (kernels on ONNX Runtime's threads, aggregation, localization and
 * query embedding in JavaScript); on the server's event loop it delayed every list and picture request
 * behind it, and one at a time it answered 48 searches/s with 97 % of 32 concurrent clients refused.
 * Sizing: as many workers as cores, each with cores / workers kernel threads (at least one), so the pool
 * never runs more compute threads than there are cores; oversubscribing them only adds switching.
 *
 * The queue holds at most `maxQueued` waiting jobs and a job waits at most `queueTimeoutMs`; past either
 * the client gets 503 with Retry-After at once rather than a connection held open. A job whose client
 * went away (its signal aborted) leaves the queue; one already running finishes and is dropped.
 */

export interface SearchPoolOptions {
  dbDir: string;
  /** Worker threads; default the number of cores. */
  workers?: number;
  /** Kernel threads per worker; default max(1, floor(cores / workers)). */
  threadsPerWorker?: number;
  /** Jobs waiting for a worker, at most; default 64. */
  maxQueued?: number;
  /** Longest wait for a worker before a 503; default 20 s. */
  queueTimeoutMs?: number;
  /** Unexpected errors inside a worker (stack traces). */
  logError?: (line: string) => void;
  /** The server's PACS, for searches by a PACS series and viewer links. */
  pacs?: PacsConfig;
}

export const DEFAULT_MAX_QUEUED = 64;
export const DEFAULT_QUEUE_TIMEOUT_MS = 20_000;

interface Waiting {
  job: SearchJob;
  resolve: (result: SearchJobResult) => void;
  reject: (error: unknown) => void;
  timer: NodeJS.Timeout;
  signal?: AbortSignal;
  onAbort?: () => void;
}

interface Slot {
  worker: Worker;
  /** The job it runs, if any. */
  current?: { id: number; waiting: Waiting };
  ready: boolean;
}

export class SearchPool {
  readonly workers: number;
  readonly threadsPerWorker: number;
  readonly maxQueued: number;
  readonly queueTimeoutMs: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Waiting[] = [];
  private nextId = 1;
  private closed = false;
  /** Set when a worker could not even start (the index cannot be opened there): every job gets it. */
  private startupError: ApiError | undefined;
  private readonly counts = { completed: 0, refused: 0, timedOut: 0, cancelled: 0 };

  constructor(private readonly options: SearchPoolOptions) {
    const cores = availableParallelism();
    this.workers = Math.max(1, Math.floor(options.workers ?? cores));
    this.threadsPerWorker = Math.max(1, Math.floor(options.threadsPerWorker ?? cores / this.workers));
    this.maxQueued = Math.max(0, Math.floor(options.maxQueued ?? DEFAULT_MAX_QUEUED));
    this.queueTimeoutMs = Math.max(1, options.queueTimeoutMs ?? DEFAULT_QUEUE_TIMEOUT_MS);
    for (let n = 0; n < this.workers; n++) this.slots.push(this.spawn());
  }

  info(): SearchQueueInfo & { threadsPerWorker: number; completed: number; refused: number; timedOut: number; cancelled: number } {
    return {
      workers: this.workers,
      busy: this.slots.filter((s) => s.current).length,
      queued: this.queue.length,
      maxQueued: this.maxQueued,
      threadsPerWorker: this.threadsPerWorker,
      ...this.counts,
    };
  }

  /** Runs a job on the next free worker. Rejects with an ApiError (503 BUSY, QUEUE_TIMEOUT, the job's own refusal). */
  run(job: SearchJob, signal?: AbortSignal): Promise<SearchJobResult> {
    if (this.closed) return Promise.reject(new ApiError(503, 'CLOSING', 'the server is shutting down'));
    if (this.startupError) return Promise.reject(this.startupError);
    if (signal?.aborted) return Promise.reject(cancelled());
    const idle = this.slots.find((s) => !s.current);
    if (!idle && this.queue.length >= this.maxQueued) {
      this.counts.refused++;
      return Promise.reject(new ApiError(503, 'BUSY', `all ${this.workers} search workers are busy and ${this.queue.length} searches wait; retry shortly`, 1));
    }
    return new Promise<SearchJobResult>((resolve, reject) => {
      const waiting: Waiting = {
        job,
        resolve,
        reject,
        timer: setTimeout(() => {
          if (!this.leaveQueue(waiting)) return;
          this.counts.timedOut++;
          reject(new ApiError(503, 'QUEUE_TIMEOUT', `no search worker was free within ${(this.queueTimeoutMs / 1000).toFixed(1)} s; retry shortly`, 2));
        }, this.queueTimeoutMs),
        ...(signal ? { signal } : {}),
      };
      if (signal) {
        waiting.onAbort = () => {
          if (!this.leaveQueue(waiting)) return;
          this.counts.cancelled++;
          reject(cancelled());
        };
        signal.addEventListener('abort', waiting.onAbort, { once: true });
      }
      this.queue.push(waiting);
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const waiting of this.queue.splice(0)) {
      this.settle(waiting);
      waiting.reject(new ApiError(503, 'CLOSING', 'the server is shutting down'));
    }
    await Promise.all(this.slots.map((slot) => slot.worker.terminate()));
  }

  /** Removes a waiting job from the queue; false if it already left (dispatched or settled). */
  private leaveQueue(waiting: Waiting): boolean {
    const at = this.queue.indexOf(waiting);
    if (at < 0) return false;
    this.queue.splice(at, 1);
    this.settle(waiting);
    return true;
  }

  private settle(waiting: Waiting): void {
    clearTimeout(waiting.timer);
    if (waiting.onAbort) waiting.signal?.removeEventListener('abort', waiting.onAbort);
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (slot.current) continue;
      const waiting = this.queue.shift()!;
      this.settle(waiting);
      const id = this.nextId++;
      slot.current = { id, waiting };
      // Referenced while it works, so an awaited search keeps the process alive.
      slot.worker.ref();
      slot.worker.postMessage({ id, job: waiting.job } satisfies SearchWorkerRequest);
    }
  }

  private spawn(): Slot {
    const config: SearchWorkerConfig = { dbDir: this.options.dbDir, threads: this.threadsPerWorker, ...(this.options.pacs ? { pacs: this.options.pacs } : {}) };
    const worker = new Worker(new URL('./search-worker.js', import.meta.url), { workerData: config });
    // Idle workers must not keep a finished process alive (close() terminates them anyway).
    worker.unref();
    const slot: Slot = { worker, ready: false };
    worker.on('message', (message: SearchWorkerResponse) => {
      if (message.type === 'ready') {
        slot.ready = true;
        return;
      }
      const current = slot.current;
      if (!current || current.id !== message.id) return;
      slot.current = undefined;
      slot.worker.unref();
      if (message.type === 'done') {
        this.counts.completed++;
        current.waiting.resolve(message.result);
      } else {
        const { statusCode, code, message: text, retryAfterS, stack } = message.error;
        if (stack) this.options.logError?.(`mir3d serve: search worker: ${stack}`);
        current.waiting.reject(new ApiError(statusCode, code, text, retryAfterS));
      }
      this.dispatch();
    });
    worker.on('error', (error) => {
      this.options.logError?.(`mir3d serve: search worker failed: ${error.stack ?? error.message}`);
      if (!slot.ready) this.startupError = new ApiError(503, 'SEARCH_UNAVAILABLE', `the search workers cannot open the index (${error.message.split('\n')[0]})`);
    });
    worker.on('exit', () => {
      const current = slot.current;
      slot.current = undefined;
      if (current) current.waiting.reject(this.closed ? new ApiError(503, 'CLOSING', 'the server is shutting down') : new ApiError(500, 'INTERNAL', 'internal error'));
      if (this.closed) return;
      if (this.startupError) {
        for (const waiting of this.queue.splice(0)) {
          this.settle(waiting);
          waiting.reject(this.startupError);
        }
        return;
      }
      // A worker that crashed mid-search is replaced; the index is read-only, so nothing is left half-done.
      const at = this.slots.indexOf(slot);
      if (at >= 0) this.slots[at] = this.spawn();
      this.dispatch();
    });
    return slot;
  }
}

function cancelled(): ApiError {
  return new ApiError(499, 'CANCELLED', 'the search was cancelled');
}
