import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { sliceZMm, type Mat4, type Vec3, type Volume, type VoxelArray } from '../io/volume.js';
import { sliceBatches } from '../preprocess/batches.js';
import type { SliceTensor } from '../preprocess/slice-tensor.js';
import type { SlicePreprocessing } from '../preprocess/spec.js';

/**
 * Feeds preprocessed slice batches to an encoder. With a worker thread, windowing and resizing of batch
 * n+1 run while ONNX Runtime embeds batch n; without one, batches are made on the calling thread as they
 * are consumed.
 */

export type FeederRequest =
  | {
      type: 'start';
      jobId: number;
      voxels: VoxelArray;
      dims: Vec3;
      spacingMm: Vec3;
      affineRas: Mat4;
      spec: SlicePreprocessing;
      sliceIndices: number[];
      batchSize: number;
      credit: number;
    }
  | { type: 'credit'; jobId: number; credit: number }
  | { type: 'end'; jobId: number };

export type FeederResponse =
  | { type: 'planned'; jobId: number; channels: number }
  | { type: 'batch'; jobId: number; data: Float32Array; sliceIndices: number[] }
  | { type: 'error'; jobId: number; message: string };

/** Batches prepared ahead of the encoder: two keeps the encoder busy without holding more memory. */
const PREFETCH_BATCHES = 2;

/** The voxels in shared memory, copied once per volume, so the worker reads them without a copy of its own. */
function sharedCopy(data: VoxelArray): VoxelArray {
  const shared = new SharedArrayBuffer(data.byteLength);
  const out = data instanceof Int16Array ? new Int16Array(shared) : new Float32Array(shared);
  out.set(data);
  return out;
}

export class SliceFeeder {
  private worker: Worker | undefined;
  private nextJobId = 1;
  private busy = false;

  /** On two cores the worker only competes with ONNX Runtime's two intra-op threads: bench:embed (three runs,
   * loaded machine) measured end to end ÷ inference only at 0.70 with the worker and 0.77 without, so the
   * worker is the default from three cores up. */
  constructor(private readonly useWorker = availableParallelism() > 2) {}

  /** Preprocessed batches of `sliceIndices` (ascending order is not required), in order. */
  async *batches(volume: Volume, spec: SlicePreprocessing, sliceIndices: number[], batchSize: number): AsyncGenerator<SliceTensor, void, undefined> {
    if (!this.useWorker) {
      yield* sliceBatches(volume, spec, batchSize, { sliceIndices });
      return;
    }
    if (this.busy) throw new Error('SliceFeeder serves one volume at a time');
    this.busy = true;
    const worker = this.ensureWorker();
    const jobId = this.nextJobId++;
    const queue: FeederResponse[] = [];
    let wake: (() => void) | undefined;
    let failure: Error | undefined;
    const onMessage = (message: FeederResponse): void => {
      if (message.jobId !== jobId) return;
      queue.push(message);
      wake?.();
    };
    const onError = (error: Error): void => {
      failure = error;
      wake?.();
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    // Referenced only while a job runs: the pending batch is all that keeps the process waiting.
    worker.ref();
    try {
      const request: FeederRequest = {
        type: 'start',
        jobId,
        voxels: sharedCopy(volume.data),
        dims: volume.dims,
        spacingMm: volume.spacingMm,
        affineRas: volume.affineRas,
        spec,
        sliceIndices,
        batchSize,
        credit: PREFETCH_BATCHES,
      };
      worker.postMessage(request);
      let channels = spec.windows.length;
      let delivered = 0;
      while (delivered < sliceIndices.length) {
        while (queue.length === 0 && !failure) await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        if (failure) throw failure;
        const message = queue.shift()!;
        if (message.type === 'error') throw new RangeError(message.message);
        if (message.type === 'planned') {
          channels = message.channels;
          continue;
        }
        if (message.type !== 'batch') continue;
        delivered += message.sliceIndices.length;
        worker.postMessage({ type: 'credit', jobId, credit: 1 } satisfies FeederRequest);
        yield {
          data: message.data,
          count: message.sliceIndices.length,
          channels,
          height: spec.heightPx,
          width: spec.widthPx,
          sliceIndices: message.sliceIndices,
          zMm: message.sliceIndices.map((k) => sliceZMm(volume, k)),
        };
      }
    } finally {
      worker.postMessage({ type: 'end', jobId } satisfies FeederRequest);
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.unref();
      this.busy = false;
    }
  }

  private ensureWorker(): Worker {
    if (!this.worker) {
      this.worker = new Worker(new URL('./preprocess-worker.js', import.meta.url));
      // An idle worker must not keep the process alive.
      this.worker.unref();
    }
    return this.worker;
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
    this.worker = undefined;
  }
}
