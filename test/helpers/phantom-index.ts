import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openIndex } from '../../src/ingest/open-index.js';
import { demoPlan } from '../../src/synth/demo-plan.js';
import { indexVolumes } from '../../src/ingest/indexer.js';
import { writeNifti } from '../../src/io/nifti-writer.js';
import { generatePhantom, type PhantomOptions } from '../../src/synth/index.js';

/**
 * A small index of demo-like phantoms for server tests and the serve benchmark: phantoms written as
 * NIfTI into a temp folder and indexed with an encoder (the training-free baseline by default, for
 * speed), labelled as the demo labels them.
 */

export interface IndexedPhantom {
  name: string;
  path: string;
  volumeId: string;
  options: PhantomOptions;
}

export interface PhantomIndex {
  dir: string;
  indexDir: string;
  phantoms: IndexedPhantom[];
  cleanup(): Promise<void>;
}

export interface PhantomIndexOptions {
  count: number;
  /** In-plane voxels (default 64: enough anatomy for retrieval, fast to make). */
  matrixPx?: number;
  encoder?: string;
  seed?: number;
  /** Folder to build in (default a fresh temp folder). */
  dir?: string;
}

export async function buildPhantomIndex(options: PhantomIndexOptions): Promise<PhantomIndex> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'mir3d-phantom-index-')));
  const matrixPx = options.matrixPx ?? 64;
  // Keep the demo's field of view (128 voxels of 3 mm) whatever the matrix.
  const inPlaneMm = (128 * 3) / matrixPx;
  const plan = demoPlan(options.count, options.seed ?? 1);
  const written: { name: string; path: string; options: PhantomOptions; labels: Record<string, string | number> }[] = [];
  for (const { id, options: planned } of plan) {
    const phantomOptions: PhantomOptions = { ...planned, matrix: [matrixPx, matrixPx], spacingMm: [inPlaneMm, inPlaneMm, planned.spacingMm?.[2] ?? 2.5] };
    const phantom = generatePhantom(phantomOptions);
    await mkdir(join(dir, id), { recursive: true });
    const path = join(dir, id, 'ct.nii.gz');
    await writeNifti(path, phantom.image, { gzipLevel: 1 });
    written.push({
      name: id,
      path,
      options: phantomOptions,
      labels: { phantom: id, coverage: phantom.truth.coverage, cancer_flag: phantom.truth.cancerFlag, lesion_group: phantom.truth.lesionGroup },
    });
  }
  const indexDir = join(dir, 'index');
  const index = await openIndex(indexDir, { spec: { encoder: options.encoder ?? 'baseline' } });
  const { store } = index;
  const encoder = await index.encoder();
  const byPath = new Map(written.map((w) => [w.path, w]));
  try {
    const summary = await indexVolumes(
      written.map((w) => ({ path: w.path, kind: 'nifti' as const })),
      { store, encoder, useWorker: false, labelsFor: (source) => byPath.get(source.path)?.labels ?? {} },
    );
    if (summary.failed > 0) throw new Error(`indexing phantoms failed: ${JSON.stringify(summary.outcomes)}`);
    const phantoms = summary.outcomes.map((outcome) => {
      if (outcome.status === 'failed') throw new Error(outcome.reason);
      const w = byPath.get(outcome.source.path)!;
      return { name: w.name, path: w.path, volumeId: outcome.volumeId, options: w.options };
    });
    return { dir, indexDir, phantoms, cleanup: () => rm(dir, { recursive: true, force: true }) };
  } finally {
    await index.close();
  }
}
