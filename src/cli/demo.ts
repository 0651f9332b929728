import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { SingleBar } from 'cli-progress';
import { InvalidArgumentError, type Command } from 'commander';
import { writeFileAtomic, writeNifti } from '../io/nifti-writer.js';
import { writeSlicePng, type Rgb } from '../io/png.js';
import { readVolume } from '../io/read.js';
import { sliceZMm } from '../io/volume.js';
import { canonicalInt16Sha256 } from '../io/volume-stats.js';
import { DEFAULT_ENCODER } from '../encode/registry.js';
import { generatePhantom, LABEL, type Phantom } from '../synth/index.js';
import { demoPlan } from '../synth/demo-plan.js';
import { demoIndexStep, demoSearchStep } from './demo-retrieval.js';
import type { DemoContext, DemoOptions, DemoPhantomFiles, DemoStep } from './demo-steps.js';
import { demoServeHintStep, serveDemoIndex } from './demo-serve.js';
import { displayPath, formatTable } from './format.js';

/**
 * `mir3d demo`: the product's main job on a machine without real data. It runs as a list of steps over
 * one shared context, so later stages (index, search, evaluate) are added as further steps without
 * touching the ones here.
 */

export type { DemoContext, DemoOptions, DemoPhantom, DemoPhantomFiles, DemoStep } from './demo-steps.js';

const OVERLAY_COLORS: Record<number, Rgb> = {
  [LABEL.liver]: [60, 200, 80],
  [LABEL.lesion]: [255, 40, 40],
  [LABEL.spleen]: [200, 80, 220],
  [LABEL.kidneys]: [240, 200, 40],
};

/** About 256 pixels across a 384 mm field: big enough to see a 1 cm lesion, small enough to skim. */
const THUMBNAIL_PIXEL_MM = 1.5;

/** The coronal plane worth looking at: through the largest lesion, else between liver and kidneys. */
function coronalIndex(phantom: Phantom): number {
  const { truth } = phantom;
  const largest = [...truth.lesions].sort((a, b) => b.diameterMm - a.diameterMm)[0];
  if (largest) return Math.round(largest.centreVoxel[1]);
  const at = (name: string): number | undefined => truth.organs.find((o) => o.name === name)?.centroidVoxel?.[1];
  const liverJ = at('liver');
  const kidneyJ = at('kidneys');
  if (liverJ !== undefined && kidneyJ !== undefined) return Math.round((liverJ + kidneyJ) / 2);
  return Math.floor(truth.dims[1] / 2);
}

export const generateStep: DemoStep = {
  name: 'generate',
  async run(context) {
    const { outDir, count, seed, progress } = context.options;
    await mkdir(outDir, { recursive: true });
    const plan = demoPlan(count, seed);
    const bar = progress && process.stderr.isTTY ? new SingleBar({ format: 'writing phantoms [{bar}] {value}/{total} {id}', hideCursor: true, clearOnComplete: true }) : undefined;
    bar?.start(plan.length, 0, { id: '' });
    try {
      for (const { id, options } of plan) {
        bar?.update({ id });
        const dir = join(outDir, id);
        await mkdir(dir, { recursive: true });
        const phantom = generatePhantom(options);
        const files: DemoPhantomFiles = { ct: `${id}/ct.nii.gz`, labels: `${id}/labels.nii.gz`, truth: `${id}/truth.json`, coronalPng: `${id}/coronal.png` };
        await writeNifti(join(outDir, files.ct), phantom.image, { description: `mir3d phantom ${id} seed ${String(options.seed)}` });
        await writeNifti(join(outDir, files.labels), phantom.labels, { dataType: 'uint8', intent: 'label', description: `mir3d phantom labels ${id}` });
        await writeFileAtomic(join(outDir, files.truth), `${JSON.stringify({ id, ...phantom.truth }, null, 2)}\n`);
        await writeSlicePng(join(outDir, files.coronalPng), phantom.image, {
          plane: 'coronal',
          index: coronalIndex(phantom),
          pixelMm: THUMBNAIL_PIXEL_MM,
          labels: { data: phantom.labels.data, colors: OVERLAY_COLORS, alpha: 0 },
          bands: phantom.truth.lesions.flatMap((l) => (l.sliceRange ? [{ kFirst: l.sliceRange[0], kLast: l.sliceRange[1], color: [255, 60, 60] as Rgb, alpha: 0.12 }] : [])),
        });
        context.phantoms.push({ id, dir, options, files, truth: phantom.truth, sha256Generated: canonicalInt16Sha256(phantom.image) });
        bar?.increment();
      }
    } finally {
      bar?.stop();
    }
    const manifest = {
      schema: 'mir3d-demo/1',
      seed,
      phantoms: context.phantoms.map((p) => ({
        id: p.id,
        ...p.files,
        coverage: p.truth.coverage,
        lesionDiametersMm: p.truth.lesions.map((l) => l.diameterMm),
        cancerFlag: p.truth.cancerFlag,
        lesionGroup: p.truth.lesionGroup,
      })),
    };
    await writeFileAtomic(join(outDir, 'demo.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  },
};

/** Reads every phantom back through the same reader the indexer uses, and insists it is what was made. */
export const readBackStep: DemoStep = {
  name: 'read back',
  async run(context) {
    const { outDir } = context.options;
    for (const phantom of context.phantoms) {
      const image = await readVolume(join(outDir, phantom.files.ct), { modality: 'CT' });
      const labels = await readVolume(join(outDir, phantom.files.labels));
      const sha256Int16 = canonicalInt16Sha256(image);
      if (sha256Int16 !== phantom.sha256Generated) throw new Error(`${phantom.files.ct}: voxels read back differ from those generated`);
      if (labels.dims.join() !== image.dims.join()) throw new Error(`${phantom.files.labels}: grid ${labels.dims.join('×')} differs from the image's ${image.dims.join('×')}`);
      phantom.readBack = {
        dims: image.dims,
        spacingMm: image.spacingMm,
        zRangeMm: [sliceZMm(image, 0), sliceZMm(image, image.dims[2] - 1)],
        sha256Int16,
        orientation: image.source.orientation,
      };
    }
  },
};

const ORGAN_SHORT: Record<string, string> = { liver: 'liver', spleen: 'spleen', kidneys: 'kidneys', lungs: 'lungs', heart: 'heart' };

export function formatDemoSummary(context: DemoContext): string {
  const header = ['id', 'coverage', 'dims', 'spacing mm', 'z range mm', 'organs (* partly scanned)', 'lesions mm', 'group', 'sha256'];
  const rows = context.phantoms.map((p) => {
    const r = p.readBack;
    const organs = p.truth.organs
      .filter((o) => o.present && ORGAN_SHORT[o.name])
      .map((o) => `${ORGAN_SHORT[o.name]}${o.complete ? '' : '*'}`)
      .join(' ');
    return [
      p.id,
      p.truth.coverage,
      (r?.dims ?? p.truth.dims).join('×'),
      (r?.spacingMm ?? p.truth.spacingMm).map((s) => s.toFixed(1)).join('×'),
      (r?.zRangeMm ?? p.truth.zRangeMm).map((z) => z.toFixed(0)).join('…'),
      organs,
      p.truth.lesions.length ? p.truth.lesions.map((l) => l.diameterMm.toFixed(0)).join(', ') : '-',
      String(p.truth.lesionGroup),
      (r?.sha256Int16 ?? p.sha256Generated).slice(0, 12),
    ];
  });
  return formatTable(header, rows);
}

export const summaryStep: DemoStep = {
  name: 'summary',
  async run(context) {
    const { outDir, print } = context.options;
    print(`${formatDemoSummary(context)}\n`);
    const where = displayPath(outDir);
    const timings = Object.entries(context.timingsS)
      .map(([name, s]) => `${name} ${s.toFixed(1)} s`)
      .join(', ');
    print(`\n${context.phantoms.length} phantoms in ${where}/ (ct.nii.gz, labels.nii.gz, truth.json, coronal.png each; index in demo.json); ${timings}\n`);
  },
};

/** The whole main job; `encoder` picks the index's encoder (the built-in MobileNetV2 by default). */
export function demoSteps(encoder: string): DemoStep[] {
  return [generateStep, readBackStep, summaryStep, demoIndexStep(encoder), demoSearchStep, demoServeHintStep];
}

export const DEMO_STEPS: DemoStep[] = demoSteps(DEFAULT_ENCODER);

export async function runDemo(options: DemoOptions, steps: DemoStep[] = DEMO_STEPS): Promise<DemoContext> {
  const context: DemoContext = { options, phantoms: [], timingsS: {} };
  for (const step of steps) {
    const started = performance.now();
    await step.run(context);
    context.timingsS[step.name] = (performance.now() - started) / 1000;
  }
  return context;
}

function integerIn(lo: number, hi: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < lo || n > hi) throw new InvalidArgumentError(`expected an integer ${lo}..${hi}`);
    return n;
  };
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('The main job on generated data: CT-like phantoms with known organs and lesions are written as NIfTI, read back, indexed, and searched with a liver slab; results are checked against the known anatomy')
    .option('--out <dir>', 'output folder', 'out/demo')
    .option('--count <n>', 'number of phantoms', integerIn(1, 99), 8)
    .option('--seed <s>', 'seed: the same seed gives the same phantoms', integerIn(0, 1_000_000), 1)
    .option('--encoder <name|path>', 'encoder for the demo index', DEFAULT_ENCODER)
    .option('--no-search', 'only generate and read back the phantoms')
    .option('--serve', 'then serve the demo index (API and web page) until Ctrl-C')
    .action(async (options: { out: string; count: number; seed: number; encoder: string; search: boolean; serve?: boolean }) => {
      const steps = options.search ? demoSteps(options.encoder) : [generateStep, readBackStep, summaryStep];
      await runDemo({
        outDir: resolve(options.out),
        count: options.count,
        seed: options.seed,
        print: (text) => process.stdout.write(text),
        progress: true,
      }, steps);
      if (options.serve && options.search) await serveDemoIndex(resolve(options.out));
    });
}
