import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { captionOf, formatThreeDMirLabels, formatThreeDMirSplit, type ThreeDMirRow } from '../../src/labels/threedmir-csv.js';
import { writeNifti } from '../../src/io/nifti-writer.js';
import { generatePhantom, LABEL, type PhantomOptions } from '../../src/synth/index.js';

/**
 * A tiny tumour-retrieval dataset on disk, laid out as the development benchmark lays out the real CTs:
 * phantoms (src/phantom, known lesions) in a Decathlon task folder with liver/tumour masks, and
 * 3D-MIR-format labels and split written by the same CSV writers. Small grids (64 × 64, 6 × 6 × 5 mm)
 * keep a whole evaluation with the baseline encoder to seconds.
 */

export const PHANTOM_TASK = 'Task901_Liver';

export interface PhantomCasePlan {
  name: string;
  split: 'train' | 'test';
  options: Omit<PhantomOptions, 'seed' | 'matrix' | 'spacingMm'>;
}

export const PHANTOM_PLANS: readonly PhantomCasePlan[] = [
  { name: 'db_abd_clean.nii.gz', split: 'train', options: { coverage: 'abdomen' } },
  { name: 'db_abd_s12.nii.gz', split: 'train', options: { coverage: 'abdomen', lesions: [{ diameterMm: 12 }] } },
  { name: 'db_liver_s30.nii.gz', split: 'train', options: { coverage: 'liver', lesions: [{ diameterMm: 30 }] } },
  { name: 'db_abd_s60.nii.gz', split: 'train', options: { coverage: 'abdomen', lesions: [{ diameterMm: 60 }] } },
  { name: 'db_thorax.nii.gz', split: 'train', options: { coverage: 'thorax' } },
  { name: 'db_tab_m25_15.nii.gz', split: 'train', options: { coverage: 'thorax-abdomen', lesions: [{ diameterMm: 25 }, { diameterMm: 15 }] } },
  { name: 'q_abd_s14.nii.gz', split: 'test', options: { coverage: 'abdomen', lesions: [{ diameterMm: 14 }] } },
  { name: 'q_liver_clean.nii.gz', split: 'test', options: { coverage: 'liver' } },
  { name: 'q_tab_s35.nii.gz', split: 'test', options: { coverage: 'thorax-abdomen', lesions: [{ diameterMm: 35 }] } },
];

export interface PhantomDataset {
  root: string;
  taskDir: string;
  csvDir: string;
  rows: ThreeDMirRow[];
  train: string[];
  test: string[];
  /** Per case: inclusive slice range of liver ∪ tumour in its mask, if any. */
  liverSlices: Map<string, [number, number] | undefined>;
}

export async function writePhantomDecathlon(root: string, plans: readonly PhantomCasePlan[] = PHANTOM_PLANS): Promise<PhantomDataset> {
  const taskDir = join(root, PHANTOM_TASK);
  const csvDir = join(root, '3dmir');
  for (const dir of [join(taskDir, 'imagesTr'), join(taskDir, 'labelsTr'), csvDir]) mkdirSync(dir, { recursive: true });
  const rows: ThreeDMirRow[] = [];
  const liverSlices = new Map<string, [number, number] | undefined>();
  for (const [n, plan] of plans.entries()) {
    const phantom = generatePhantom({ ...plan.options, seed: 9000 + n, matrix: [64, 64], spacingMm: [6, 6, 5] });
    // Decathlon liver masks: 1 liver, 2 tumour, nothing else.
    const mask = new Uint8Array(phantom.labels.data.length);
    for (let p = 0; p < mask.length; p++) {
      const code = phantom.labels.data[p];
      mask[p] = code === LABEL.liver ? 1 : code === LABEL.lesion ? 2 : 0;
    }
    await writeNifti(join(taskDir, 'imagesTr', plan.name), phantom.image, { gzipLevel: 1 });
    await writeNifti(join(taskDir, 'labelsTr', plan.name), { data: mask, dims: phantom.labels.dims, affineRas: phantom.labels.affineRas }, { gzipLevel: 1, intent: 'label', dataType: 'uint8' });
    // The mask's liver ∪ tumour slices, as the evaluation will measure them.
    const perSlice = phantom.labels.dims[0] * phantom.labels.dims[1];
    let first = -1;
    let last = -1;
    for (let k = 0; k < phantom.labels.dims[2]; k++) {
      let any = false;
      for (let p = k * perSlice; p < (k + 1) * perSlice && !any; p++) any = mask[p] !== 0;
      if (!any) continue;
      if (first < 0) first = k;
      last = k;
    }
    liverSlices.set(plan.name, first >= 0 ? [first, last] : undefined);
    const diameters = phantom.truth.lesions.map((l) => l.diameterMm);
    const maxCm = diameters.length ? Math.max(...diameters) / 10 : 0;
    rows.push({
      name: plan.name,
      organ: 'liver',
      maxTumorSizeCm: maxCm,
      numberTumors: diameters.length,
      lesionGroup: phantom.truth.lesionGroup,
      cancerFlag: phantom.truth.cancerFlag,
      captions: [captionOf('liver', 'liver', maxCm, diameters.length)],
    });
  }
  const dataset = {
    name: 'PhantomLiver',
    labels: { '0': 'background', '1': 'liver', '2': 'cancer' },
    training: plans.map((p) => ({ image: `./imagesTr/${p.name}`, label: `./labelsTr/${p.name}` })),
    test: [],
  };
  writeFileSync(join(taskDir, 'dataset.json'), JSON.stringify(dataset, null, 2));
  const train = plans.filter((p) => p.split === 'train').map((p) => p.name);
  const test = plans.filter((p) => p.split === 'test').map((p) => p.name);
  writeFileSync(join(csvDir, 'liver_labels_and_captions.csv'), formatThreeDMirLabels(rows));
  writeFileSync(join(csvDir, 'liver_full_train_split.csv'), formatThreeDMirSplit(train, 'training'));
  writeFileSync(join(csvDir, 'liver_full_test_split.csv'), formatThreeDMirSplit(test, 'testing'));
  return { root, taskDir, csvDir, rows, train, test, liverSlices };
}

/** Phantom label → TotalSegmentator v2 class id (class_map_total_v2), for a region dataset. Bone becomes
 * one vertebra, so its coarse region is the spine; the lesion stays liver. */
const TOTALSEG_V2_ID: Record<number, number> = {
  [LABEL.liver]: 5,
  [LABEL.lesion]: 5,
  [LABEL.spleen]: 1,
  [LABEL.kidneys]: 2,
  [LABEL.lungs]: 10,
  [LABEL.bone]: 27,
  [LABEL.aorta]: 52,
  [LABEL.heart]: 51,
};

export interface TotalSegSubjectPlan {
  id: string;
  split: 'train' | 'test';
  coverage: PhantomOptions['coverage'];
}

export const TOTALSEG_PLANS: readonly TotalSegSubjectPlan[] = [
  { id: 's0001', split: 'train', coverage: 'thorax' },
  { id: 's0002', split: 'train', coverage: 'abdomen' },
  { id: 's0003', split: 'train', coverage: 'liver' },
  { id: 's0004', split: 'train', coverage: 'thorax-abdomen' },
  { id: 's0005', split: 'test', coverage: 'abdomen' },
  { id: 's0006', split: 'test', coverage: 'thorax' },
];

/** A TotalSegmentator-layout root: <subject>/ct.nii.gz, <subject>/seg.nii.gz (v2 ids), meta.csv split. */
export async function writePhantomTotalSeg(root: string, plans: readonly TotalSegSubjectPlan[] = TOTALSEG_PLANS): Promise<void> {
  for (const [n, plan] of plans.entries()) {
    const dir = join(root, plan.id);
    mkdirSync(dir, { recursive: true });
    const phantom = generatePhantom({ seed: 7000 + n, coverage: plan.coverage, matrix: [64, 64], spacingMm: [6, 6, 5] });
    const seg = new Uint8Array(phantom.labels.data.length);
    for (let p = 0; p < seg.length; p++) seg[p] = TOTALSEG_V2_ID[phantom.labels.data[p]] ?? 0;
    await writeNifti(join(dir, 'ct.nii.gz'), phantom.image, { gzipLevel: 1 });
    await writeNifti(join(dir, 'seg.nii.gz'), { data: seg, dims: phantom.labels.dims, affineRas: phantom.labels.affineRas }, { gzipLevel: 1, intent: 'label', dataType: 'uint8' });
  }
  writeFileSync(join(root, 'meta.csv'), ['image_id;split', ...plans.map((p) => `${p.id};${p.split}`)].join('\n') + '\n');
}
