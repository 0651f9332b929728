/**
 * Worker thread body: preprocesses the slices of one volume at a time into SliceTensor batches, so the
 * main thread's ONNX Runtime inference never waits on windowing and resizing. The main thread grants
 * credit one batch at a time, which bounds memory to a few batches however long the volume is.
 */
import { parentPort } from 'node:worker_threads';
import type { Volume } from '../io/volume.js';
import { planSlicePreprocessing, preprocessSliceInto } from '../preprocess/batches.js';
import type { FeederRequest, FeederResponse } from './slice-feeder.js';

if (!parentPort) throw new Error('preprocess-worker must run as a worker thread');
const port = parentPort;

interface Job {
  id: number;
  volume: Volume;
  plan: ReturnType<typeof planSlicePreprocessing>;
  indices: number[];
  batchSize: number;
  next: number;
  credit: number;
}

let job: Job | undefined;

function post(message: FeederResponse, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

function pump(): void {
  while (job && job.credit > 0 && job.next < job.indices.length) {
    const batchIndices = job.indices.slice(job.next, job.next + job.batchSize);
    const data = new Float32Array(batchIndices.length * job.plan.sliceValues);
    for (let n = 0; n < batchIndices.length; n++) preprocessSliceInto(job.plan, job.volume, batchIndices[n], data, n * job.plan.sliceValues);
    job.next += batchIndices.length;
    job.credit--;
    post({ type: 'batch', jobId: job.id, data, sliceIndices: batchIndices }, [data.buffer]);
  }
}

port.on('message', (message: FeederRequest) => {
  try {
    if (message.type === 'start') {
      const volume: Volume = {
        data: message.voxels,
        dims: message.dims,
        spacingMm: message.spacingMm,
        affineRas: message.affineRas,
        modality: 'unknown',
        source: { path: '', format: 'generated', orientation: 'LPS', storedDataType: '' },
        corrections: [],
      };
      const plan = planSlicePreprocessing(volume, message.spec);
      job = { id: message.jobId, volume, plan, indices: message.sliceIndices, batchSize: message.batchSize, next: 0, credit: message.credit };
      post({ type: 'planned', jobId: message.jobId, channels: plan.channels });
      pump();
    } else if (message.type === 'credit' && job?.id === message.jobId) {
      job.credit += message.credit;
      pump();
    } else if (message.type === 'end' && job?.id === message.jobId) {
      job = undefined;
    }
  } catch (error) {
    post({ type: 'error', jobId: 'jobId' in message ? message.jobId : -1, message: error instanceof Error ? error.message : String(error) });
  }
});
