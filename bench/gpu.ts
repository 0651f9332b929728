/**
 * `npm run bench:gpu`: the GPU figures in one run of a few minutes, each beside the CPU's on the same machine:
 * the default encoder's slices/s (inference only on preprocessed slices, and one volume end to end through
 * readVolume + embedVolume), then exact top-20 of a 100-slice query over 1M × 1280 rows through exactTopK,
 * the kernel behind Store.searchSlices, in the store's 256 MiB blocks. Where CUDA cannot start it says why
 * and prints the CPU column alone (exit 0): the script is the same on a machine with and without a GPU.
 *
 * Env: BENCH_RUNS=3 (timed rounds; the providers alternate within a round), BENCH_GPU_ROWS=1000000,
 * BENCH_GPU_DIM=1280.
 */
import { availableParallelism, loadavg } from 'node:os';
import { computeSessions, exactTopK, type ExecutionProvider, type RowBlock } from '../src/compute/index.js';
import { firstLine } from '../src/errors.js';
import { embedVolume } from '../src/encode/embed-volume.js';
import type { OnnxEncoder } from '../src/encode/onnx-encoder.js';
import { openEncoder } from '../src/encode/registry.js';
import { readVolume } from '../src/io/read.js';
import type { Volume } from '../src/io/volume.js';
import { sliceBatches } from '../src/preprocess/batches.js';
import type { SliceTensor } from '../src/preprocess/slice-tensor.js';
import { selectSlices } from '../src/preprocess/slices.js';
import { DEFAULT_BLOCK_BYTES } from '../src/store/slice-matrix.js';
import { generatePhantom } from '../src/synth/index.js';
import { hasSharedData, sharedPath } from '../test/helpers/shared-data.js';
import { median, timed, unitRows } from './stats.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const ROWS = Number(process.env.BENCH_GPU_ROWS ?? 1_000_000);
const DIM = Number(process.env.BENCH_GPU_DIM ?? 1280);
const QUERY_SLICES = 100;
const K = 20;
/** embedVolume's default batch, the one bench:embed measures end to end. */
const BATCH = 16;
const PROVIDERS: readonly ExecutionProvider[] = ['cpu', 'cuda'];

interface Row {
  label: string;
  unit: string;
  /** Per provider that ran: the median of the rounds. */
  values: Map<ExecutionProvider, number>;
  /** true: higher is better (a rate); false: a time. */
  rate: boolean;
}

function printRows(title: string, rows: Row[], ran: readonly ExecutionProvider[]): void {
  process.stdout.write(`\n${title}\n`);
  process.stdout.write(`  ${'figure'.padEnd(62)} ${'CPU'.padStart(12)} ${'CUDA'.padStart(12)} ${'CUDA vs CPU'.padStart(12)}\n`);
  for (const row of rows) {
    const cpu = row.values.get('cpu')!;
    const cuda = row.values.get('cuda');
    const cell = (value: number | undefined): string => (value === undefined ? '–' : `${value.toFixed(1)} ${row.unit}`).padStart(12);
    const speedup = cuda === undefined ? '–' : `${(row.rate ? cuda / cpu : cpu / cuda).toFixed(1)}× faster`;
    process.stdout.write(`  ${row.label.padEnd(62)} ${cell(cpu)} ${cell(cuda)} ${speedup.padStart(12)}\n`);
  }
  if (!ran.includes('cuda')) process.stdout.write('  (CUDA column empty: see the provider line above)\n');
}

/** Smallest cosine between the same slice's vectors from two providers (they should agree to ~1e-5). */
function minCosine(a: Float32Array, b: Float32Array, dim: number): number {
  let least = 1;
  for (let r = 0; r < a.length / dim; r++) {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let j = r * dim; j < (r + 1) * dim; j++) {
      dot += a[j] * b[j];
      na += a[j] * a[j];
      nb += b[j] * b[j];
    }
    least = Math.min(least, dot / Math.sqrt(na * nb));
  }
  return least;
}

async function embedding(): Promise<void> {
  const path = hasSharedData ? sharedPath('ircad17/ct.nii.gz') : undefined;
  const volume: Volume = path ? await readVolume(path) : generatePhantom({ seed: 1 }).image;
  const encoders = new Map<ExecutionProvider, OnnxEncoder>();
  for (const provider of PROVIDERS) {
    try {
      // The default encoder is an ONNX one (bench:embed relies on the same).
      const encoder = (await openEncoder('mobilenet_v2', { executionProvider: provider })) as OnnxEncoder;
      encoders.set(provider, encoder);
      process.stdout.write(`encoder ${encoder.id} on ${provider}: ${encoder.provider}${encoder.providerNote ? ` (${encoder.providerNote})` : ''}\n`);
    } catch (error) {
      process.stdout.write(`encoder on ${provider}: cannot start: ${firstLine(error)}\n`);
    }
  }
  const ran = [...encoders.keys()];
  const cpuEncoder = encoders.get('cpu')!;
  const indices = selectSlices(volume, cpuEncoder.preprocessing.sliceStepMm);
  const batches: SliceTensor[] = [...sliceBatches(volume, cpuEncoder.preprocessing, BATCH, { sliceIndices: indices })];
  const inference = new Map<ExecutionProvider, number[]>(ran.map((p) => [p, []]));
  const endToEnd = new Map<ExecutionProvider, number[]>(ran.map((p) => [p, []]));
  const vectors = new Map<ExecutionProvider, Float32Array>();
  for (let round = 0; round <= RUNS; round++) {
    for (const [provider, encoder] of encoders) {
      const inferenceOnly = await timed(async () => {
        for (const batch of batches) await encoder.embed(batch);
      });
      const whole = await timed(async () => embedVolume(path ? await readVolume(path) : volume, encoder, { batchSize: BATCH }));
      vectors.set(provider, whole.value.vectors);
      if (round === 0) continue; // warm-up: first runs allocate, and CUDA tunes its kernels
      inference.get(provider)!.push(indices.length / inferenceOnly.seconds);
      endToEnd.get(provider)!.push(indices.length / whole.seconds);
    }
  }
  const source = path ? `IRCADb-17 (512×512×${volume.dims[2]}, gzip NIfTI)` : 'a phantom in memory (no ../shared/data)';
  printRows(
    `embedding: ${indices.length} slices of ${source}, batch ${BATCH}, median of ${RUNS} rounds`,
    [
      { label: 'inference only (preprocessed input), slices/s', unit: '/s', rate: true, values: new Map(ran.map((p) => [p, median(inference.get(p)!)])) },
      { label: `end to end (${path ? 'read, ' : ''}crop, window+resize, inference), slices/s`, unit: '/s', rate: true, values: new Map(ran.map((p) => [p, median(endToEnd.get(p)!)])) },
    ],
    ran,
  );
  if (vectors.has('cuda')) process.stdout.write(`  same vectors: smallest cosine CPU vs CUDA over ${indices.length} slices ${minCosine(vectors.get('cpu')!, vectors.get('cuda')!, cpuEncoder.dim).toFixed(6)}\n`);
  for (const encoder of encoders.values()) await encoder.close();
}

/** Random unit rows in the store's block size, generated block by block (5 GB at 1M × 1280). */
function randomBlocks(rows: number, dim: number, seed: number): RowBlock[] {
  const blockRows = Math.max(1, Math.floor(DEFAULT_BLOCK_BYTES / (4 * dim)));
  const blocks: RowBlock[] = [];
  for (let first = 0; first < rows; first += blockRows) {
    const count = Math.min(blockRows, rows - first);
    blocks.push({ vectors: unitRows(count, dim, seed + first), rows: count });
  }
  return blocks;
}

async function exactSearch(): Promise<void> {
  const ran: ExecutionProvider[] = [];
  for (const provider of PROVIDERS) {
    try {
      const sessions = await computeSessions({ provider });
      ran.push(provider);
      process.stdout.write(`search kernels on ${provider}: ${sessions.provider}${sessions.providerNote ? ` (${sessions.providerNote})` : ''}\n`);
    } catch (error) {
      process.stdout.write(`search kernels on ${provider}: cannot start: ${firstLine(error)}\n`);
    }
  }
  const generateStart = performance.now();
  const blocks = randomBlocks(ROWS, DIM, 7);
  const queries = randomBlocks(QUERY_SLICES, DIM, 8)[0].vectors;
  process.stdout.write(`  ${ROWS} × ${DIM} random unit rows in ${blocks.length} blocks generated in ${((performance.now() - generateStart) / 1000).toFixed(0)} s\n`);
  const times = new Map<ExecutionProvider, number[]>(ran.map((p) => [p, []]));
  const ids = new Map<ExecutionProvider, string[]>();
  for (let round = 0; round <= RUNS; round++) {
    for (const provider of ran) {
      const search = await timed(() => exactTopK(queries, DIM, blocks, K, { provider }));
      const found = search.value;
      ids.set(provider, Array.from(found.blockIndices, (b, n) => `${b}:${found.rowIndices[n]}`));
      if (round > 0) times.get(provider)!.push(search.seconds * 1000);
    }
  }
  printRows(
    `exact top-${K} of a ${QUERY_SLICES}-slice query over ${ROWS} × ${DIM} (exactTopK: Gemm + TopK per 256 MiB block, k-way merge), median of ${RUNS} runs`,
    [{ label: 'search, ms', unit: 'ms', rate: false, values: new Map(ran.map((p) => [p, median(times.get(p)!)])) }],
    ran,
  );
  if (ids.has('cuda')) {
    const cpu = ids.get('cpu')!;
    const same = ids.get('cuda')!.filter((id, n) => id === cpu[n]).length / cpu.length;
    process.stdout.write(`  same ids at the same ranks, CUDA vs CPU: ${(100 * same).toFixed(2)} % (float sums in another order may swap near-ties)\n`);
    // The Node binding feeds ONNX Runtime tensors from host memory, so every search copies each block to
    // the GPU: this is the figure of today's store on a GPU, not of an index resident in GPU memory.
    process.stdout.write('  the CUDA figure includes copying every block to the GPU on each search (the Node binding takes host tensors)\n');
  }
}

async function main(): Promise<void> {
  process.stdout.write(`mir3d bench:gpu — ${availableParallelism()} CPU threads; CPU beside CUDA in the same rounds\n`);
  await embedding();
  process.stdout.write('\n');
  await exactSearch();
  process.stdout.write(`\nload while measuring (1/5/15 min): ${loadavg().map((v) => v.toFixed(1)).join(' ')}\n`);
}

await main();
