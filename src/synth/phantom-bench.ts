import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic, writeNifti } from '../io/nifti-writer.js';
import { writeLiverTask } from './decathlon-task.js';
import { spacingFromAffine } from '../io/orientation.js';
import type { GroupRule, TumourSummary } from '../labels/lesion-groups.js';
import { measureTumours, tumourSummaryOf } from '../labels/tumours.js';
import { demoPlan } from './demo-plan.js';
import { generatePhantom } from './phantom.js';
import { LABEL } from './phantom-labels.js';

/**
 * A retrieval benchmark made only of generated phantoms, for `mir3d eval demo`: every organ and lesion
 * is known, nothing outside the checkout is needed. It is written exactly as the development benchmark
 * and the Decathlon are (a task folder with imagesTr/labelsTr, liver = 1 and tumour = 2 in the masks,
 * 3D-MIR label and split CSVs), so the evaluation reads it through the same adapters.
 *
 * Each phantom is its own "patient" (own seed, own anatomy), so holding every fourth out as a query is
 * a split by patient. The plans are the demo's (src/synth/demo-plan.ts), cycled: lesion-free and
 * lesion-bearing livers in every liver group, thorax-only scans without a liver.
 */

export const PHANTOM_BENCH_TASK_FOLDER = 'Task901_Liver';

export interface PhantomBenchOptions {
  /** Phantoms (default 24). */
  count?: number;
  seed?: number;
  /** In-plane voxels (default 96, with the demo's 384 mm field of view). */
  matrix?: number;
  groupRule?: GroupRule;
  /** Replace a folder that exists (default: refuse a non-empty one). */
  overwrite?: boolean;
  onProgress?: (message: string) => void;
}

export interface PhantomBenchCase {
  name: string;
  phantom: string;
  split: 'train' | 'test';
  coverage: string;
  dims: [number, number, number];
  spacingMm: [number, number, number];
  /** Lesion diameters the generator drew, and what the evaluation's own rule measures on the mask. */
  lesionDiametersMm: number[];
  measuredDiametersMm: number[];
  labels: TumourSummary;
}

export interface PhantomBenchManifest {
  schema: 'mir3d-phantom-bench/1';
  count: number;
  seed: number;
  matrix: number;
  groupRule: GroupRule;
  taskDir: string;
  csvDir: string;
  cases: PhantomBenchCase[];
  buildSeconds: number;
}

/** Every `QUERY_EVERY`-th phantom is a query (test split); the rest form the database. */
const QUERY_EVERY = 4;

export async function buildPhantomBenchmark(outDir: string, options: PhantomBenchOptions = {}): Promise<PhantomBenchManifest> {
  const started = performance.now();
  const count = options.count ?? 24;
  const seed = options.seed ?? 1;
  const matrix = options.matrix ?? 96;
  const groupRule = options.groupRule ?? 'design';
  const progress = options.onProgress ?? ((): void => undefined);
  if (!Number.isInteger(count) || count < QUERY_EVERY) throw new RangeError(`a phantom benchmark needs at least ${QUERY_EVERY} phantoms, got ${count}`);
  if (existsSync(outDir)) {
    if (options.overwrite) await rm(outDir, { recursive: true, force: true });
    else if ((await readdir(outDir)).length > 0) throw new Error(`${outDir} exists and is not empty (pass overwrite to replace it)`);
  }
  const taskDir = join(outDir, PHANTOM_BENCH_TASK_FOLDER);
  const csvDir = join(outDir, '3dmir');
  await mkdir(join(taskDir, 'imagesTr'), { recursive: true });
  await mkdir(join(taskDir, 'labelsTr'), { recursive: true });
  await mkdir(csvDir, { recursive: true });

  // The demo's 128 voxels of 3 mm, whatever the matrix.
  const inPlaneMm = (128 * 3) / matrix;
  const cases: PhantomBenchCase[] = [];
  for (const [n, { id, options: planned }] of demoPlan(count, seed).entries()) {
    const phantom = generatePhantom({ ...planned, matrix: [matrix, matrix], spacingMm: [inPlaneMm, inPlaneMm, planned.spacingMm?.[2] ?? 2.5] });
    const name = `${id}.nii.gz`;
    // The Decathlon's liver masks hold the liver (1) and its tumours (2) only.
    const mask = new Uint8Array(phantom.labels.data.length);
    for (let p = 0; p < mask.length; p++) {
      const code = phantom.labels.data[p];
      mask[p] = code === LABEL.lesion ? 2 : code === LABEL.liver ? 1 : 0;
    }
    const { dims, affineRas } = phantom.image;
    const spacingMm = spacingFromAffine(affineRas);
    await writeNifti(join(taskDir, 'imagesTr', name), phantom.image, { gzipLevel: 1, description: `mir3d phantom ${id}` });
    await writeNifti(join(taskDir, 'labelsTr', name), { data: mask, dims, affineRas }, { gzipLevel: 1, intent: 'label', dataType: 'uint8' });
    const measured = measureTumours(mask, { dims, spacingMm, affineRas }, { labelValues: [2] });
    const diameters = measured.tumours.map((t) => t.diameterMm);
    cases.push({
      name,
      phantom: id,
      split: n % QUERY_EVERY === QUERY_EVERY - 1 ? 'test' : 'train',
      coverage: phantom.truth.coverage,
      dims: [...dims],
      spacingMm,
      lesionDiametersMm: phantom.truth.lesions.map((l) => l.diameterMm),
      measuredDiametersMm: diameters,
      labels: tumourSummaryOf('liver', diameters, groupRule),
    });
    progress(`wrote ${name} (${dims.join('×')}, group ${cases[cases.length - 1].labels.lesionGroup})`);
  }

  await writeLiverTask(cases.map((c) => ({ ...c, organ: 'liver' })), { taskDir, csvDir }, { name: 'PhantomLiver', description: 'mir3d phantom benchmark: generated CT-like phantoms with known organs and liver lesions' });
  const manifest: PhantomBenchManifest = { schema: 'mir3d-phantom-bench/1', count, seed, matrix, groupRule, taskDir, csvDir, cases, buildSeconds: (performance.now() - started) / 1000 };
  await writeFileAtomic(join(outDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  await writeFile(
    join(outDir, 'README.md'),
    `# mir3d phantom benchmark\n\n${count} generated phantoms (seed ${seed}, ${matrix}² voxels), the demo's plans cycled; ` +
      `every ${QUERY_EVERY}th is a query. Masks: liver 1, tumour 2; labels measured from the masks with the ` +
      `'${groupRule}' group rule. Built by \`mir3d eval demo\`; see manifest.json.\n`,
  );
  return manifest;
}
