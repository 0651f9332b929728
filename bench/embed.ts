/**
 * `npm run bench:embed`: slices per second of the default encoder (nsfwjs MobileNetV2 converted to ONNX)
 * at batch 1, 8 and 32, against the same weights run by TensorFlow.js on its WebAssembly backend in the
 * same run; then whole-volume embedding (preprocessing + inference) with and without the preprocessing
 * worker. Inputs are real CT slices when ../shared/data is present, else a phantom.
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { load as loadNsfwjs } from 'nsfwjs/core';
import { MobileNetV2Model } from 'nsfwjs/models/mobilenet_v2';
import { embedVolume } from '../src/encode/embed-volume.js';
import type { OnnxEncoder } from '../src/encode/onnx-encoder.js';
import { openEncoder } from '../src/encode/registry.js';
import { SliceFeeder } from '../src/encode/slice-feeder.js';
import { readVolume } from '../src/io/read.js';
import type { Volume } from '../src/io/volume.js';
import { generatePhantom } from '../src/synth/index.js';
import { sliceBatches } from '../src/preprocess/batches.js';
import type { SliceTensor } from '../src/preprocess/slice-tensor.js';
import { hasSharedData, sharedPath } from '../test/helpers/shared-data.js';

const require = createRequire(import.meta.url);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const BATCH_SIZES = [1, 8, 32];
/** Slices per timed run: enough for several batches of 32. */
const SLICES_PER_RUN = 64;

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

async function timeRuns(run: () => Promise<void>): Promise<number> {
  await run(); // warm-up: first inference allocates and tunes
  const seconds: number[] = [];
  for (let n = 0; n < RUNS; n++) {
    const start = performance.now();
    await run();
    seconds.push((performance.now() - start) / 1000);
  }
  return median(seconds);
}

/** The same preprocessed slices cut into batches of `size`. */
function rebatch(slices: SliceTensor, size: number): SliceTensor[] {
  const per = slices.channels * slices.height * slices.width;
  const out: SliceTensor[] = [];
  for (let first = 0; first < slices.count; first += size) {
    const count = Math.min(size, slices.count - first);
    out.push({
      ...slices,
      data: slices.data.subarray(first * per, (first + count) * per),
      count,
      sliceIndices: slices.sliceIndices.slice(first, first + count),
      zMm: slices.zMm.slice(first, first + count),
    });
  }
  return out;
}

function toNhwc(batch: SliceTensor): Float32Array {
  const { count, channels, height, width } = batch;
  const plane = height * width;
  const out = new Float32Array(count * plane * channels);
  for (let n = 0; n < count; n++)
    for (let c = 0; c < channels; c++)
      for (let p = 0; p < plane; p++) out[(n * plane + p) * channels + c] = batch.data[(n * channels + c) * plane + p];
  return out;
}

async function main(): Promise<void> {
  const volume: Volume = hasSharedData ? await readVolume(sharedPath('ircad17/ct.nii.gz')) : generatePhantom({ seed: 1 }).image;
  const source = hasSharedData ? 'IRCADb-17 (512×512×119)' : 'phantom (no ../shared/data)';
  const encoder = (await openEncoder('mobilenet_v2')) as OnnxEncoder;
  const sliceIndices = Array.from({ length: SLICES_PER_RUN }, (_, n) => Math.floor((n * volume.dims[2]) / SLICES_PER_RUN));
  const [all] = [...sliceBatches(volume, encoder.preprocessing, SLICES_PER_RUN, { sliceIndices })];

  process.stdout.write(`mir3d bench:embed — ${source}, ${availableParallelism()} CPU threads, median of ${RUNS} runs of ${SLICES_PER_RUN} slices\n`);
  process.stdout.write(`encoder ${encoder.id}\nONNX Runtime provider: ${encoder.provider}${encoder.providerNote ? ` (${encoder.providerNote})` : ''}\n\n`);

  // TF.js with the WebAssembly backend on the same weights, cut at the same pooled feature.
  setWasmPaths(`${dirname(require.resolve('@tensorflow/tfjs-backend-wasm'))}/`);
  await tf.setBackend('wasm');
  await tf.ready();
  const info = console.info;
  console.info = () => undefined; // nsfwjs announces the model it loads
  const nsfw = await loadNsfwjs(MobileNetV2Model.name, { modelDefinitions: [MobileNetV2Model] }).finally(() => (console.info = info));
  const layersModel = nsfw.model as tf.LayersModel;
  const featureModel = tf.model({ inputs: layersModel.inputs, outputs: layersModel.getLayer('flatten_1').output as tf.SymbolicTensor });

  const header = `${'batch'.padStart(5)} ${'ONNX Runtime slices/s'.padStart(22)} ${'TF.js wasm slices/s'.padStart(20)} ${'ratio'.padStart(7)}`;
  process.stdout.write(`inference only (preprocessed input)\n${header}\n${'-'.repeat(header.length)}\n`);
  for (const size of BATCH_SIZES) {
    const batches = rebatch(all, size);
    const nhwc = batches.map(toNhwc);
    const ortSeconds = await timeRuns(async () => {
      for (const batch of batches) await encoder.embed(batch);
    });
    const tfSeconds = await timeRuns(async () => {
      for (let n = 0; n < batches.length; n++) {
        const input = tf.tensor4d(nhwc[n], [batches[n].count, all.height, all.width, all.channels]);
        const output = featureModel.predict(input) as tf.Tensor;
        await output.data();
        tf.dispose([input, output]);
      }
    });
    const ort = SLICES_PER_RUN / ortSeconds;
    const tfjs = SLICES_PER_RUN / tfSeconds;
    process.stdout.write(`${String(size).padStart(5)} ${ort.toFixed(1).padStart(22)} ${tfjs.toFixed(1).padStart(20)} ${`${(ort / tfjs).toFixed(1)}×`.padStart(7)}\n`);
  }
  nsfw.dispose();

  process.stdout.write(`\nwhole volume: preprocessing (window, body crop, resize) + inference, batch 16, ${volume.dims[2]} slices\n`);
  for (const useWorker of [false, true]) {
    const feeder = new SliceFeeder(useWorker);
    const seconds = await timeRuns(async () => {
      await embedVolume(volume, encoder, { feeder, batchSize: 16 });
    });
    await feeder.close();
    process.stdout.write(`  ${useWorker ? 'with preprocessing worker   ' : 'preprocessing on main thread'} ${(volume.dims[2] / seconds).toFixed(1).padStart(7)} slices/s\n`);
  }
  await encoder.close();
  process.stdout.write('\ngoals: ONNX Runtime ≥ 4× TF.js wasm; ≥ 30 slices/s on 2 CPU cores\n');
}

await main();
