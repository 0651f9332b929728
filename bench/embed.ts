/**
 * `npm run bench:embed`: slices per second of the default encoder (nsfwjs MobileNetV2 converted to ONNX)
 * at batch 1, 8 and 32, against the same weights run by TensorFlow.js on its WebAssembly backend in the
 * same run; then each stage of one volume (read, body crop, window+resize, inference) and the whole volume
 * through embedVolume with and without the preprocessing worker, beside inference only in the same rounds;
 * then a folder of volumes through `mir3d index`'s indexVolumes (read with the next file read ahead,
 * content hash, embedding, SQLite) beside inference only on the same slices, and with the real CTs the same
 * folder again without its JPEG 2000 series (the one source whose decoding alone costs seconds).
 * Inputs are real CT slices when ../shared/data is present, else phantoms. BENCH_SKIP_TFJS=1 leaves TF.js out.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { load as loadNsfwjs } from 'nsfwjs/core';
import { MobileNetV2Model } from 'nsfwjs/models/mobilenet_v2';
import { embedVolume } from '../src/encode/embed-volume.js';
import type { OnnxEncoder } from '../src/encode/onnx-encoder.js';
import { openEncoder } from '../src/encode/registry.js';
import { SliceFeeder } from '../src/encode/slice-feeder.js';
import { discoverVolumes } from '../src/ingest/discover.js';
import { indexVolumes } from '../src/ingest/indexer.js';
import { writeNifti } from '../src/io/nifti-writer.js';
import { readVolume } from '../src/io/read.js';
import { selectSlices } from '../src/preprocess/slices.js';
import { openStore } from '../src/store/index.js';
import type { Volume } from '../src/io/volume.js';
import { generatePhantom } from '../src/synth/index.js';
import { planSlicePreprocessing, preprocessSliceInto, sliceBatches } from '../src/preprocess/batches.js';
import { bodyBoundingBox } from '../src/preprocess/body-crop.js';
import type { SliceTensor } from '../src/preprocess/slice-tensor.js';
import { hasSharedData, sharedDataDir, sharedPath } from '../test/helpers/shared-data.js';
import { median, timed } from './stats.js';

const require = createRequire(import.meta.url);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const BATCH_SIZES = [1, 8, 32];
const SKIP_TFJS = process.env.BENCH_SKIP_TFJS === '1';
/** Slices per timed run: enough for several batches of 32. */
const SLICES_PER_RUN = 64;

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
    const tfSeconds = SKIP_TFJS ? NaN : await timeRuns(async () => {
      for (let n = 0; n < batches.length; n++) {
        const input = tf.tensor4d(nhwc[n], [batches[n].count, all.height, all.width, all.channels]);
        const output = featureModel.predict(input) as tf.Tensor;
        await output.data();
        tf.dispose([input, output]);
      }
    });
    const ort = SLICES_PER_RUN / ortSeconds;
    const tfjs = SLICES_PER_RUN / tfSeconds;
    // Skipped TF.js runs print a dash, not NaN.
    const tfText = SKIP_TFJS ? '-' : tfjs.toFixed(1);
    const ratioText = SKIP_TFJS ? '-' : `${(ort / tfjs).toFixed(1)}×`;
    process.stdout.write(`${String(size).padStart(5)} ${ort.toFixed(1).padStart(22)} ${tfText.padStart(20)} ${ratioText.padStart(7)}\n`);
  }
  nsfw.dispose();

  await wholeVolume(volume, encoder, hasSharedData ? sharedPath('ircad17/ct.nii.gz') : undefined);
  await indexFolder(encoder, 'all');
  // The same folder without its JPEG 2000 series: what the rest of the pipeline leaves of the ratio.
  if (hasSharedData) await indexFolder(encoder, 'no-jpeg2000');
  await encoder.close();
  process.stdout.write('\ngoals: ONNX Runtime ≥ 4× TF.js wasm; ≥ 30 slices/s on 2 CPU cores; end to end ≥ 0.85 of inference only\n');
  process.stdout.write(`load while measuring (1/5/15 min): ${loadavg().map((v) => v.toFixed(1)).join(' ')}\n`);
}

/** Each stage timed alone, then the whole volume through embedVolume, every variant once per round so
 * that load changes hit them alike; the ratios compare figures of the same rounds. */
async function wholeVolume(volume: Volume, encoder: OnnxEncoder, path: string | undefined): Promise<void> {
  const slices = volume.dims[2];
  const batchSize = 16;
  const plan = planSlicePreprocessing(volume, encoder.preprocessing);
  const preprocessed = [...sliceBatches(volume, encoder.preprocessing, batchSize, { crop: plan.crop })];
  const scratch = new Float32Array(plan.sliceValues);
  process.env.MIR3D_ORT_SPIN = '1';
  const spinning = (await openEncoder('mobilenet_v2')) as OnnxEncoder;
  delete process.env.MIR3D_ORT_SPIN;
  const mainFeeder = new SliceFeeder(false);
  const workerFeeder = new SliceFeeder(true);
  const variants: [string, () => Promise<unknown>][] = [
    ['read', async () => (path ? readVolume(path) : undefined)],
    ['body crop', async () => bodyBoundingBox(volume)],
    ['window+resize', async () => {
      for (let k = 0; k < slices; k++) preprocessSliceInto(plan, volume, k, scratch, 0);
    }],
    ['inference', async () => {
      for (const batch of preprocessed) await encoder.embed(batch);
    }],
    ['inference, spin-waiting threads', async () => {
      for (const batch of preprocessed) await spinning.embed(batch);
    }],
    ['main', () => embedVolume(volume, encoder, { feeder: mainFeeder, batchSize })],
    ['worker', () => embedVolume(volume, encoder, { feeder: workerFeeder, batchSize })],
    ['worker, spin-waiting threads', () => embedVolume(volume, spinning, { feeder: workerFeeder, batchSize })],
  ];
  const seconds = new Map<string, number[]>(variants.map(([name]) => [name, []]));
  const cpuSeconds = new Map<string, number[]>(variants.map(([name]) => [name, []]));
  for (let round = 0; round <= RUNS; round++) {
    for (const [name, run] of variants) {
      // The spin-waiting variants' threads spin on for a while after their last run; a quarter second
      // lets them stop before the next variant starts (right after them, "main" ran 8–9 % slower).
      await new Promise((resolve) => setTimeout(resolve, 250));
      const call = await timed(run);
      if (round === 0) continue; // round 0 warms up
      seconds.get(name)!.push(call.seconds);
      cpuSeconds.get(name)!.push(call.cpuSeconds);
    }
  }
  await mainFeeder.close();
  await workerFeeder.close();
  await spinning.close();
  const at = (name: string): number => median(seconds.get(name)!);
  const cpuAt = (name: string): number => median(cpuSeconds.get(name)!);
  const perSliceMs = (name: string): string => `${((at(name) * 1000) / slices).toFixed(2).padStart(8)} ${((cpuAt(name) * 1000) / slices).toFixed(2).padStart(8)}`;
  process.stdout.write(`\nstages of one volume (${slices} slices), ms per slice (wall, CPU of all threads), median of ${RUNS} rounds\n`);
  process.stdout.write(`  read (${path ? 'gzip NIfTI, canonical' : 'phantom in memory, not read'})${' '.repeat(path ? 8 : 4)}${path ? perSliceMs('read') : '       -'}\n`);
  process.stdout.write(`  body crop (once per volume)          ${perSliceMs('body crop')}\n`);
  process.stdout.write(`  window+resize                        ${perSliceMs('window+resize')}\n`);
  process.stdout.write(`  inference, batch ${batchSize}                  ${perSliceMs('inference')}\n`);
  // Each ratio three ways: of the medians, the median of the rounds' own ratios (a load change within a
  // round hits both), and of CPU time (what the two shared cores actually spent; least disturbed by load).
  const row = (label: string, name: string, reference = 'inference'): string => {
    const perRound = seconds.get(name)!.map((t, n) => seconds.get(reference)![n] / t);
    return `  ${label.padEnd(54)} ${(slices / at(name)).toFixed(1).padStart(7)} slices/s ${(at(reference) / at(name)).toFixed(2).padStart(6)} ${median(perRound).toFixed(2).padStart(9)} ${(cpuAt(reference) / cpuAt(name)).toFixed(2).padStart(6)}\n`;
  };
  process.stdout.write(`\nend to end: a volume in memory through embedVolume (body crop, window+resize, inference), batch ${batchSize}\n`);
  process.stdout.write(`  ${'variant'.padEnd(54)} ${'rate'.padStart(16)} ÷ inference only: ${'medians'.padStart(7)} ${'per round'.padStart(9)} ${'CPU'.padStart(6)}\n`);
  process.stdout.write(row('inference only (preprocessed input)', 'inference'));
  process.stdout.write(row('preprocessing on the main thread (default on 2 cores)', 'main'));
  process.stdout.write(row('preprocessing worker (default from 3 cores)', 'worker'));
  process.stdout.write(`  with ONNX Runtime threads spin-waiting (MIR3D_ORT_SPIN=1), ÷ its own inference only:\n`);
  process.stdout.write(row('  inference only', 'inference, spin-waiting threads', 'inference, spin-waiting threads'));
  process.stdout.write(row('  preprocessing worker', 'worker, spin-waiting threads', 'inference, spin-waiting threads'));
}

/** The shared CTs (NIfTI and DICOM, JPEG 2000 and the tilted GE head included), or three phantoms
 * written as .nii.gz when ../shared/data is absent. */
async function folderInputs(work: string, which: 'all' | 'no-jpeg2000'): Promise<{ paths: string[]; label: string }> {
  if (hasSharedData) {
    const all = ['ircad17/ct.nii.gz', 'ircad17/dicom', 'totalseg/example_ct.nii.gz', 'totalseg/dicom', 'ge-head-ct-dicom'];
    const names = which === 'all' ? all : all.filter((name) => name !== 'totalseg/dicom');
    return { paths: names.map((name) => sharedPath(name)), label: names.join(', ') };
  }
  const paths: string[] = [];
  for (let seed = 1; seed <= 3; seed++) paths.push(await writeNifti(join(work, `phantom-${seed}.nii.gz`), generatePhantom({ seed }).image));
  return { paths, label: 'three phantoms (no ../shared/data)' };
}

/** `mir3d index` on a folder, each round into a fresh index, beside inference only on the same slices
 * (read and preprocessed beforehand) in the same round. */
async function indexFolder(encoder: OnnxEncoder, which: 'all' | 'no-jpeg2000'): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'mir3d-bench-index-'));
  try {
    const { paths, label } = await folderInputs(work, which);
    const { sources } = await discoverVolumes(paths);
    const batchSize = 16;
    const preprocessed: SliceTensor[] = [];
    const reads: string[] = [];
    for (const source of sources) {
      const read = await timed(() => readVolume(source.path, source.seriesKey ? { seriesKey: source.seriesKey } : {}));
      const volume = read.value;
      const sliceIndices = selectSlices(volume, encoder.preprocessing.sliceStepMm);
      reads.push(`${relative(hasSharedData ? sharedDataDir : work, source.path)}: ${sliceIndices.length} slices, read ${(read.seconds * 1000).toFixed(0)} ms, CPU ${(read.cpuSeconds * 1000).toFixed(0)} ms (all threads)`);
      preprocessed.push(...sliceBatches(volume, encoder.preprocessing, batchSize, { sliceIndices }));
    }
    const slices = preprocessed.reduce((n, batch) => n + batch.count, 0);
    const seconds = { inference: [] as number[], index: [] as number[] };
    const cpuSeconds = { inference: [] as number[], index: [] as number[] };
    const timedRound = async (into: 'inference' | 'index', round: number, run: () => Promise<void>): Promise<void> => {
      const call = await timed(run);
      if (round === 0) return; // round 0 warms up
      seconds[into].push(call.seconds);
      cpuSeconds[into].push(call.cpuSeconds);
    };
    for (let round = 0; round <= RUNS; round++) {
      await timedRound('inference', round, async () => {
        for (const batch of preprocessed) await encoder.embed(batch);
      });
      const dir = join(work, `index-${round}`);
      await timedRound('index', round, async () => {
        const store = openStore(dir, { encoderId: encoder.id, dim: encoder.dim });
        try {
          const summary = await indexVolumes(sources, { store, encoder, batchSize });
          if (summary.added !== sources.length || summary.slicesEmbedded !== slices) {
            throw new Error(`index added ${summary.added} of ${sources.length} volumes, ${summary.slicesEmbedded} of ${slices} slices`);
          }
        } finally {
          store.close();
        }
      });
      rmSync(dir, { recursive: true, force: true });
    }
    const perRound = seconds.index.map((t, n) => seconds.inference[n] / t);
    process.stdout.write(`
a folder through mir3d index (${sources.length} volumes, ${slices} slices: ${label}), median of ${RUNS} rounds
`);
    process.stdout.write(`  ${'variant'.padEnd(54)} ${'rate'.padStart(16)} ÷ inference only: ${'medians'.padStart(7)} ${'per round'.padStart(9)} ${'CPU'.padStart(6)}
`);
    const row = (text: string, name: 'inference' | 'index', ratio: [number, number, number]): string =>
      `  ${text.padEnd(54)} ${(slices / median(seconds[name])).toFixed(1).padStart(7)} slices/s ${ratio[0].toFixed(2).padStart(6)} ${ratio[1].toFixed(2).padStart(9)} ${ratio[2].toFixed(2).padStart(6)}
`;
    process.stdout.write(row('inference only (preprocessed input)', 'inference', [1, 1, 1]));
    process.stdout.write(
      row('index: read (next file ahead), hash, embed, store', 'index', [
        median(seconds.inference) / median(seconds.index),
        median(perRound),
        median(cpuSeconds.inference) / median(cpuSeconds.index),
      ]),
    );
    process.stdout.write(`  one read of each (before the rounds; JPEG 2000 frames decode on worker threads, gzip on libuv's):\n${reads.map((line) => `    ${line}\n`).join('')}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
