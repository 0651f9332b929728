/**
 * `npm run bench:train`: training time of a head on 10k and 100k slice vectors × 1280 dims (the goal:
 * at most 5 minutes on 2 CPU cores for 100k), for the linear (lda) and the MLP (supervised contrastive)
 * head, and the search slowdown of a fine-tuned space against raw, side by side in one run.
 *
 * Vectors: slice-like rows (smooth walks on the unit sphere, 200 slices per volume, each volume its own
 * patient) with a class signal: each of 4 classes adds its own direction
 * to its volumes' rows, weakly, so a head has something to find; the class is per volume, as mir3d's
 * per-volume labels are.
 * Search: exact top-20 for a 100-slice query over the whole archive: raw (1280-d, compute's Gemm + TopK)
 * against the space (the query through the head's kernel, then top-20 over the projected archive), plus
 * the one-time cost of projecting the archive when an index is opened in the space.
 *
 * Env: BENCH_SIZES=10000,100000 BENCH_METHODS=lda,mlp BENCH_RUNS=7 BENCH_DIM=1280.
 */
import { availableParallelism, loadavg } from 'node:os';
import { exactTopK } from '../src/compute/topk.js';
import { SpaceKernel } from '../src/space/kernel.js';
import { trainHeadOnRows, type HeadMethod } from '../src/space/train-head.js';
import { gaussian, normalizeRows, rng } from '../test/helpers/vectors.js';

const SIZES = (process.env.BENCH_SIZES ?? '10000,100000').split(',').map(Number);
const METHODS = (process.env.BENCH_METHODS ?? 'lda,mlp').split(',') as HeadMethod[];
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const DIM = Number(process.env.BENCH_DIM ?? 1280);
const SLICES_PER_VOLUME = 200;
const CLASSES = 4;
const QUERY_ROWS = 100;
const K = 20;

function archive(rows: number, dim: number): { vectors: Float32Array; targets: string[][]; groups: string[] } {
  const random = rng(rows);
  const g = gaussian(random);
  const classDirections = Array.from({ length: CLASSES }, () => normalizeRows(Float32Array.from({ length: dim }, g), dim));
  const vectors = new Float32Array(rows * dim);
  const target: string[] = [];
  const groups: string[] = [];
  const current = new Float32Array(dim);
  for (let r = 0; r < rows; r++) {
    const volume = Math.floor(r / SLICES_PER_VOLUME);
    const cls = volume % CLASSES;
    if (r % SLICES_PER_VOLUME === 0) for (let j = 0; j < dim; j++) current[j] = g();
    // A smooth walk: each slice a small step from the one below it.
    for (let j = 0; j < dim; j++) current[j] += 0.15 * g();
    let norm = 0;
    for (let j = 0; j < dim; j++) norm += current[j] ** 2;
    norm = Math.sqrt(norm);
    for (let j = 0; j < dim; j++) vectors[r * dim + j] = current[j] / norm + 0.12 * classDirections[cls][j];
    target.push(`class${cls}`);
    groups.push(`patient${volume}`);
  }
  return { vectors: normalizeRows(vectors, dim), targets: [target], groups };
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function timeSearch(query: Float32Array, dim: number, matrix: Float32Array, rows: number, kernel?: SpaceKernel): Promise<number> {
  const times: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const started = performance.now();
    const q = kernel ? await kernel.apply(query) : query;
    await exactTopK(q, kernel ? kernel.outputDim : dim, [{ vectors: matrix, rows }], K);
    times.push(performance.now() - started);
  }
  return median(times);
}

async function main(): Promise<void> {
  console.log(`bench:train — ${DIM}-d slice-like vectors, ${CLASSES} classes per volume, ${SLICES_PER_VOLUME} slices per volume (= patient); median of ${RUNS} searches of a ${QUERY_ROWS}-slice query, top-${K}\n`);
  const lines: string[] = [];
  lines.push('| slice vectors | head | train s (wall) | CPU s (all threads) | validation P@5 (raw, random) | out dim | raw search ms | space search ms | slowdown | projecting the archive at open, s |');
  lines.push('|---:|---|---:|---:|---|---:|---:|---:|---:|---:|');
  for (const rows of SIZES) {
    const data = archive(rows, DIM);
    const labelled = { vectors: data.vectors, dim: DIM, targets: data.targets, groups: data.groups };
    const query = data.vectors.slice(0, QUERY_ROWS * DIM);
    const rawMs = await timeSearch(query, DIM, data.vectors, rows);
    for (const method of METHODS) {
      const started = performance.now();
      const cpuStarted = process.cpuUsage();
      let lastLine = '';
      const trained = await trainHeadOnRows(labelled, {
        targets: ['class'],
        groupBy: 'patient',
        method,
        seed: 1,
        onProgress: (p) => {
          const line = `  ${rows} × ${DIM}, ${method}: step ${p.step}/${p.steps}, loss ${p.loss.toFixed(3)}, validation P@5 ${p.validationP5.toFixed(3)} (${((performance.now() - started) / 1000).toFixed(0)} s)`;
          if (line !== lastLine) process.stderr.write(`${line}\n`);
          lastLine = line;
        },
      });
      const trainS = (performance.now() - started) / 1000;
      const cpu = process.cpuUsage(cpuStarted);
      const cpuS = (cpu.user + cpu.system) / 1e6;
      const kernel = await SpaceKernel.open(trained.model, `bench ${method}`);
      const projectStarted = performance.now();
      const projected = await kernel.apply(data.vectors);
      const projectS = (performance.now() - projectStarted) / 1000;
      const spaceMs = await timeSearch(query, DIM, projected, rows, kernel);
      await kernel.close();
      const v = trained.validation;
      lines.push(`| ${rows} | ${method} | ${trainS.toFixed(1)} | ${cpuS.toFixed(1)} | ${v.p5.toFixed(3)} (${v.rawP5.toFixed(3)}, ${v.randomP5.toFixed(3)}) | ${trained.outputDim} | ${rawMs.toFixed(1)} | ${spaceMs.toFixed(1)} | ${(spaceMs / rawMs).toFixed(2)}× | ${projectS.toFixed(2)} |`);
      console.log(lines[lines.length - 1]);
    }
  }
  console.log(`\n${lines.join('\n')}\n`);
  console.log(`Load average at the end: ${loadavg().map((v) => v.toFixed(1)).join(', ')} on ${availableParallelism()} cores (CPU s / cores is what a quiet machine would take at best).`);
  console.log('Goal: 100k × 1280 trains in at most 300 s on 2 cores. Slowdown = space search (query through the head + top-k over the projected archive) / raw search; below 1 means faster.');
}

await main();
