import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic, writeNifti } from '../io/nifti-writer.js';
import { writeLiverTask } from './decathlon-task.js';
import { spacingFromAffine } from '../io/orientation.js';
import { readVolume } from '../io/read.js';
import type { Vec3, Volume } from '../io/volume.js';
import { randomStream } from './random.js';
import { measureTumours, tumourSummaryOf, type GroupRule, type TumourSummary } from '../labels/tumours.js';
import { type Scan, type LesionRequest, type PlacedLesion, cropSlices, blockAverage, placeLesions, drawLesions, addNoise, toInt16 } from './scan-edit.js';
import { Mir3dError } from '../errors.js';

/** The shared CT data or the output folder is not what building the benchmark needs. */
export class DevBenchError extends Mir3dError<'NO_SHARED_DATA' | 'NOT_EMPTY' | 'GRID_MISMATCH'> {
  override readonly name = 'DevBenchError';
}

export type { LesionRequest, PlacedLesion } from './scan-edit.js';
export { insideDistanceMm } from './scan-edit.js';

/**
 * A development benchmark built from the handful of real CTs in ../shared/data, in the Decathlon layout
 * with 3D-MIR-format labels and split, so the evaluation protocol written for 3D-MIR runs on it
 * unchanged (threeDMirDataset('liver', { root: outDir, csvDir: outDir/3dmir })).
 *
 * What it is: variants of few scans — 3D-IRCADb-01 patient 17 (liver with two real tumours), the
 * TotalSegmentator example (a 30-slice crop with its liver segmentation, and its 20-slice DICOM series),
 * a GE head CT and two cropped thoracic CTs as non-liver distractors — differing in z-coverage (crops),
 * slice thickness (averaging adjacent slices), image noise and synthetic liver lesions of known size
 * (hypodense ellipsoids with a soft edge, placed wholly inside the real liver mask) that span the
 * liver groups. Volumes are written at a reduced in-plane matrix (default 256) so the whole set indexes
 * on two CPU cores in minutes.
 *
 * What it can show: that labels, splits, metrics and the eval command run end to end on real anatomy;
 * whether a method ranks variants of the same anatomy above other anatomy, and how robust that is to
 * coverage, thickness and noise; whether a method separates tumour from no-tumour and lesion sizes when
 * everything else is held equal (lesions inserted in the same liver).
 * What it cannot show: generalization across patients. Queries have near-duplicates of themselves (other
 * variants of the same scan) in the database, so absolute numbers are optimistic and not comparable to
 * 3D-MIR's; inserted lesions are idealized (uniform, ellipsoidal, one contrast phase); there are three
 * liver-bearing scans. The README.md written into the output folder says the same to whoever finds it.
 *
 * Size and time: the full profile is 39 volumes, ~2 200 slices, ~110 MB, built in ~25 s on one core;
 * in-plane 256 (512-matrix scans box-averaged 2×2), slices as acquired or averaged in pairs.
 */

export interface DevBenchOptions {
  /** Largest in-plane matrix written; larger scans are box-averaged by an integer factor (default 256). */
  matrix?: number;
  /** 'full' (~40 volumes) or 'small' (a handful, for tests). */
  profile?: 'full' | 'small';
  /** Seed for lesion placement, texture and noise (default 'mir3d-devbench'). */
  seed?: string;
  /** Group table used for the written labels (default 'design'). */
  groupRule?: GroupRule;
  /** gzip level of the written NIfTI files (default 6). */
  gzipLevel?: number;
  /** Remove an existing output folder first (default false: refuse to write into a non-empty one). */
  overwrite?: boolean;
  onProgress?: (message: string) => void;
}

export type DevSourceId = 'ircad17' | 'totalseg-sm' | 'totalseg-dicom' | 'head' | 'aorta' | 'pulm';

export interface DevBenchCase {
  /** File name in imagesTr/ and labelsTr/, and the CSV's `name`. */
  name: string;
  source: DevSourceId;
  /** 'liver' for scans with a labelled liver, else 'head' or 'thorax' (distractors). */
  organ: 'liver' | 'head' | 'thorax';
  split: 'train' | 'test';
  /** Source slices kept [first, end) before any other change. */
  sourceSlices: [number, number];
  inPlaneFactor: number;
  slabSlices: number;
  noiseSigmaHu: number;
  dims: Vec3;
  spacingMm: Vec3;
  /** The scan's own tumours kept in this variant (IRCADb-17's two). */
  nativeTumours: boolean;
  lesions: PlacedLesion[];
  /** Measured on the written mask with the 3D-MIR rules (6-connectivity). */
  measuredDiametersMm: number[];
  labels: TumourSummary;
  /** Labels the requested sizes alone would give (inserted lesions only, no native tumours). */
  expectedFromRequest?: TumourSummary;
}

export interface DevBenchManifest {
  schema: 'mir3d-devbench/1';
  profile: 'full' | 'small';
  seed: string;
  groupRule: GroupRule;
  matrix: number;
  taskDir: string;
  csvDir: string;
  cases: DevBenchCase[];
  /** Variants left out because their lesions did not fit in the liver. */
  skipped: { name: string; reason: string }[];
  buildSeconds: number;
  bytesWritten: number;
}

export const DEVBENCH_TASK_FOLDER = 'Task903_Liver';

interface VariantSpec {
  name: string;
  source: DevSourceId;
  organ: DevBenchCase['organ'];
  split: 'train' | 'test';
  /** Source slice range [first, end); a function of the loaded source for IRCADb-17's tumour-free part. */
  slices?: (source: Scan) => [number, number];
  slab?: number;
  noiseSigmaHu?: number;
  lesions?: LesionRequest[];
  /** Include in the 'small' profile. */
  small?: boolean;
}

const IRCAD_TUMOUR_MARGIN_SLICES = 4;

/** Slices of IRCADb-17 strictly below its tumours (with a margin): real liver, no tumour. */
function belowTumours(source: Scan): [number, number] {
  const first = firstSliceWith(source, 2);
  if (first < 0) return [0, source.dims[2]];
  return [0, Math.max(1, first - IRCAD_TUMOUR_MARGIN_SLICES)];
}

/** The upper part of IRCADb-17, holding both tumours whole and some liver below them. */
function aroundTumours(source: Scan): [number, number] {
  const first = firstSliceWith(source, 2);
  return [Math.max(0, first - 22), source.dims[2]];
}

function firstSliceWith(scan: Scan, label: number): number {
  const perSlice = scan.dims[0] * scan.dims[1];
  for (let k = 0; k < scan.dims[2]; k++) {
    for (let p = k * perSlice; p < (k + 1) * perSlice; p++) if (scan.labels[p] === label) return k;
  }
  return -1;
}

/** The composition. Lesion sizes keep away from the group boundaries (20 and 50 mm) so that one voxel of
 * measurement error cannot change a group. */
const VARIANTS: readonly VariantSpec[] = [
  // IRCADb-17 with its own two tumours (~71 and ~63 mm: liver group 3).
  { name: 'liver_ircad17_native', source: 'ircad17', organ: 'liver', split: 'train' },
  { name: 'liver_ircad17_native_thick2_noise15', source: 'ircad17', organ: 'liver', split: 'test', slab: 2, noiseSigmaHu: 15 },
  { name: 'liver_ircad17_upper', source: 'ircad17', organ: 'liver', split: 'train', slices: aroundTumours },
  { name: 'liver_ircad17_upper_noise30', source: 'ircad17', organ: 'liver', split: 'test', slices: aroundTumours, noiseSigmaHu: 30 },
  // IRCADb-17 below its tumours: a real tumour-free liver, with and without inserted lesions.
  { name: 'liver_ircad17_lower_clean', source: 'ircad17', organ: 'liver', split: 'train', slices: belowTumours, small: true },
  { name: 'liver_ircad17_lower_clean_noise15', source: 'ircad17', organ: 'liver', split: 'test', slices: belowTumours, noiseSigmaHu: 15 },
  { name: 'liver_ircad17_lower_clean_thick2', source: 'ircad17', organ: 'liver', split: 'train', slices: belowTumours, slab: 2 },
  { name: 'liver_ircad17_lower_s14', source: 'ircad17', organ: 'liver', split: 'train', slices: belowTumours, lesions: [{ diameterMm: 14 }], small: true },
  { name: 'liver_ircad17_lower_s14_thick2_noise15', source: 'ircad17', organ: 'liver', split: 'test', slices: belowTumours, slab: 2, noiseSigmaHu: 15, lesions: [{ diameterMm: 14 }] },
  { name: 'liver_ircad17_lower_s32', source: 'ircad17', organ: 'liver', split: 'train', slices: belowTumours, lesions: [{ diameterMm: 32 }], small: true },
  { name: 'liver_ircad17_lower_s30_noise30', source: 'ircad17', organ: 'liver', split: 'test', slices: belowTumours, noiseSigmaHu: 30, lesions: [{ diameterMm: 30, contrastHu: 35 }] },
  { name: 'liver_ircad17_lower_s44', source: 'ircad17', organ: 'liver', split: 'train', slices: belowTumours, lesions: [{ diameterMm: 44 }] },
  { name: 'liver_ircad17_lower_s44_thick2', source: 'ircad17', organ: 'liver', split: 'test', slices: belowTumours, slab: 2, lesions: [{ diameterMm: 44 }] },
  { name: 'liver_ircad17_lower_m12_16_24', source: 'ircad17', organ: 'liver', split: 'train', slices: belowTumours, lesions: [{ diameterMm: 12 }, { diameterMm: 16 }, { diameterMm: 24 }] },
  { name: 'liver_ircad17_lower_m10_10', source: 'ircad17', organ: 'liver', split: 'test', slices: belowTumours, lesions: [{ diameterMm: 10 }, { diameterMm: 10 }] },
  { name: 'liver_ircad17_lower_e56', source: 'ircad17', organ: 'liver', split: 'train', slices: belowTumours, lesions: [{ diameterMm: [56, 44, 40] }] },
  { name: 'liver_ircad17_lower_e60_noise15', source: 'ircad17', organ: 'liver', split: 'test', slices: belowTumours, noiseSigmaHu: 15, lesions: [{ diameterMm: [60, 48, 40] }] },
  { name: 'liver_ircad17_lower_m14_58', source: 'ircad17', organ: 'liver', split: 'train', slices: belowTumours, lesions: [{ diameterMm: 14 }, { diameterMm: [58, 44, 40] }] },
  // TotalSegmentator example, 30-slice crop at 3 mm (liver = class 5 of example_seg.nii.gz).
  { name: 'liver_tsct_clean', source: 'totalseg-sm', organ: 'liver', split: 'train', small: true },
  { name: 'liver_tsct_clean_noise20', source: 'totalseg-sm', organ: 'liver', split: 'test', noiseSigmaHu: 20 },
  { name: 'liver_tsct_s15', source: 'totalseg-sm', organ: 'liver', split: 'train', lesions: [{ diameterMm: 15 }], small: true },
  { name: 'liver_tsct_s16_noise20', source: 'totalseg-sm', organ: 'liver', split: 'test', noiseSigmaHu: 20, lesions: [{ diameterMm: 16 }], small: true },
  { name: 'liver_tsct_s30', source: 'totalseg-sm', organ: 'liver', split: 'train', lesions: [{ diameterMm: 30 }], small: true },
  { name: 'liver_tsct_s28_noise10', source: 'totalseg-sm', organ: 'liver', split: 'test', noiseSigmaHu: 10, lesions: [{ diameterMm: 28 }] },
  { name: 'liver_tsct_m10_18', source: 'totalseg-sm', organ: 'liver', split: 'train', lesions: [{ diameterMm: 10 }, { diameterMm: 18 }], small: true },
  { name: 'liver_tsct_e62', source: 'totalseg-sm', organ: 'liver', split: 'train', lesions: [{ diameterMm: [62, 46, 40] }], small: true },
  { name: 'liver_tsct_e58_noise20', source: 'totalseg-sm', organ: 'liver', split: 'test', noiseSigmaHu: 20, lesions: [{ diameterMm: [58, 44, 40] }] },
  // TotalSegmentator example DICOM series, 20 slices at 2 mm (example_seg_dicom.nii.gz, liver = 5).
  { name: 'liver_tsdicom_clean', source: 'totalseg-dicom', organ: 'liver', split: 'train' },
  { name: 'liver_tsdicom_s12', source: 'totalseg-dicom', organ: 'liver', split: 'test', lesions: [{ diameterMm: 12 }] },
  { name: 'liver_tsdicom_s24', source: 'totalseg-dicom', organ: 'liver', split: 'train', lesions: [{ diameterMm: 24 }] },
  // Distractors: no liver in view ("no liver tumour", as 3D-MIR labels other organs' volumes).
  { name: 'head_ge', source: 'head', organ: 'head', split: 'train', small: true },
  { name: 'head_ge_thick2', source: 'head', organ: 'head', split: 'train', slab: 2 },
  { name: 'head_ge_noise20', source: 'head', organ: 'head', split: 'test', noiseSigmaHu: 20, small: true },
  { name: 'thorax_aorta', source: 'aorta', organ: 'thorax', split: 'train', small: true },
  { name: 'thorax_aorta_thick2', source: 'aorta', organ: 'thorax', split: 'train', slab: 2 },
  { name: 'thorax_aorta_upper_noise20', source: 'aorta', organ: 'thorax', split: 'test', slices: (s) => [Math.floor(s.dims[2] / 2), s.dims[2]], noiseSigmaHu: 20 },
  { name: 'thorax_pulm', source: 'pulm', organ: 'thorax', split: 'train' },
  { name: 'thorax_pulm_lower', source: 'pulm', organ: 'thorax', split: 'train', slices: (s) => [0, Math.ceil(s.dims[2] * 0.6)] },
  { name: 'thorax_pulm_thick2_noise15', source: 'pulm', organ: 'thorax', split: 'test', slab: 2, noiseSigmaHu: 15 },
];

// ---------------------------------------------------------------------------------------------------
// Sources
// ---------------------------------------------------------------------------------------------------

function checkSameGrid(image: Volume, labels: Volume, what: string): void {
  const same = image.dims.every((d, a) => d === labels.dims[a]) && image.affineRas.every((v, n) => Math.abs(v - labels.affineRas[n]) < 1e-3);
  if (!same) throw new DevBenchError('GRID_MISMATCH', `${what}: image and label grids differ (${image.dims.join('×')} vs ${labels.dims.join('×')})`);
}

function scanOf(image: Volume, labelMap?: (value: number) => number, labels?: Volume): Scan {
  const out = new Uint8Array(image.data.length);
  if (labels && labelMap) {
    for (let p = 0; p < out.length; p++) out[p] = labelMap(labels.data[p]);
    fillLiverHoles(out, image.dims);
  }
  return { image: Float32Array.from(image.data), labels: out, dims: [...image.dims], affineRas: image.affineRas.slice() };
}

/**
 * Per axial slice, background enclosed by liver or tumour becomes liver. IRCADb-17's vessel labels
 * overwrite the liver, leaving it riddled with holes; the Decathlon's liver masks include intrahepatic
 * vessels, and lesions may grow across them, so the filled liver is both the written label and the
 * region lesions are placed in. Vessels that leave the liver at the hilum reach the slice border through
 * background and stay out.
 */
function fillLiverHoles(labels: Uint8Array, dims: Vec3): void {
  const [ni, nj, nk] = dims;
  const per = ni * nj;
  const reached = new Uint8Array(per);
  const stack = new Int32Array(per);
  for (let k = 0; k < nk; k++) {
    const base = k * per;
    let any = false;
    for (let p = 0; p < per && !any; p++) any = labels[base + p] !== 0;
    if (!any) continue;
    reached.fill(0);
    let top = 0;
    const seed = (p: number): void => {
      if (reached[p] === 0 && labels[base + p] === 0) {
        reached[p] = 1;
        stack[top++] = p;
      }
    };
    for (let i = 0; i < ni; i++) {
      seed(i);
      seed(i + ni * (nj - 1));
    }
    for (let j = 0; j < nj; j++) {
      seed(ni * j);
      seed(ni - 1 + ni * j);
    }
    while (top > 0) {
      const p = stack[--top];
      const i = p % ni;
      if (i > 0) seed(p - 1);
      if (i < ni - 1) seed(p + 1);
      if (p >= ni) seed(p - ni);
      if (p < per - ni) seed(p + ni);
    }
    for (let p = 0; p < per; p++) if (labels[base + p] === 0 && reached[p] === 0) labels[base + p] = 1;
  }
}

async function loadSource(shared: string, id: DevSourceId): Promise<Scan> {
  switch (id) {
    case 'ircad17': {
      const [image, labels] = await Promise.all([readVolume(join(shared, 'ircad17/ct.nii.gz')), readVolume(join(shared, 'ircad17/labels.nii.gz'))]);
      checkSameGrid(image, labels, 'ircad17');
      // 1 liver, 2 and 3 its two tumours; vessels (4–6) and bone (7) are not liver for placement.
      return scanOf(image, (v) => (v === 1 ? 1 : v === 2 || v === 3 ? 2 : 0), labels);
    }
    case 'totalseg-sm': {
      const [image, labels] = await Promise.all([readVolume(join(shared, 'totalseg/example_ct_sm.nii.gz')), readVolume(join(shared, 'totalseg/example_seg.nii.gz'))]);
      checkSameGrid(image, labels, 'totalseg example_ct_sm');
      return scanOf(image, (v) => (v === 5 ? 1 : 0), labels);
    }
    case 'totalseg-dicom': {
      const [image, labels] = await Promise.all([readVolume(join(shared, 'totalseg/dicom')), readVolume(join(shared, 'totalseg/example_seg_dicom.nii.gz'))]);
      checkSameGrid(image, labels, 'totalseg dicom');
      return scanOf(image, (v) => (v === 5 ? 1 : 0), labels);
    }
    case 'head':
      return scanOf(await readVolume(join(shared, 'ge-head-ct-dicom')));
    case 'aorta':
      return scanOf(await readVolume(join(shared, 'totalseg/aorta_ct_cropped.nii.gz')));
    case 'pulm':
      return scanOf(await readVolume(join(shared, 'totalseg/pulm_ct_cropped.nii.gz')));
  }
}

// ---------------------------------------------------------------------------------------------------
// Build
// ---------------------------------------------------------------------------------------------------

/**
 * Builds the development benchmark from `sharedDataDir` (../shared/data) into `outDir`:
 *   outDir/Task903_Liver/{dataset.json, imagesTr/, labelsTr/}   labels: 0 background, 1 liver, 2 tumour
 *   outDir/3dmir/liver_labels_and_captions.csv, liver_full_train_split.csv, liver_full_test_split.csv
 *   outDir/manifest.json (requested and measured lesions per case), outDir/README.md
 */
export async function buildDevBenchmark(sharedDataDir: string, outDir: string, options: DevBenchOptions = {}): Promise<DevBenchManifest> {
  const started = performance.now();
  const profile = options.profile ?? 'full';
  const matrix = options.matrix ?? 256;
  const seed = options.seed ?? 'mir3d-devbench';
  const groupRule = options.groupRule ?? 'design';
  const progress = options.onProgress ?? ((): void => undefined);
  if (!existsSync(join(sharedDataDir, 'ircad17'))) throw new DevBenchError('NO_SHARED_DATA', `${sharedDataDir} does not hold the shared CT data (no ircad17/); give --shared-data DIR or set MIR3D_SHARED_DATA`);
  if (existsSync(outDir)) {
    if (options.overwrite) await rm(outDir, { recursive: true, force: true });
    else if ((await readdir(outDir)).length > 0) {
      throw new DevBenchError('NOT_EMPTY', `${outDir} exists and is not empty (pass overwrite to replace it)`);
    }
  }
  const taskDir = join(outDir, DEVBENCH_TASK_FOLDER);
  const csvDir = join(outDir, '3dmir');
  await mkdir(join(taskDir, 'imagesTr'), { recursive: true });
  await mkdir(join(taskDir, 'labelsTr'), { recursive: true });
  await mkdir(csvDir, { recursive: true });

  const specs = VARIANTS.filter((v) => profile === 'full' || v.small);
  const cases: DevBenchCase[] = [];
  const skipped: DevBenchManifest['skipped'] = [];
  let bytesWritten = 0;
  const sources = [...new Set(specs.map((s) => s.source))];
  for (const sourceId of sources) {
    progress(`reading ${sourceId}`);
    const source = await loadSource(sharedDataDir, sourceId);
    for (const spec of specs.filter((s) => s.source === sourceId)) {
      const random = randomStream(seed, spec.name);
      const [first, end] = spec.slices ? spec.slices(source) : [0, source.dims[2]];
      let scan = cropSlices(source, first, end);
      const factor = Math.max(1, Math.ceil(Math.max(scan.dims[0], scan.dims[1]) / matrix));
      scan = blockAverage(scan, factor, spec.slab ?? 1);
      const lesions = placeLesions(scan, spec.lesions ?? [], random);
      if (!lesions) {
        skipped.push({ name: spec.name, reason: `lesions ${(spec.lesions ?? []).map((l) => String(l.diameterMm)).join(' + ')} mm do not fit in the liver of this variant` });
        progress(`skipped ${spec.name}: lesions do not fit`);
        continue;
      }
      drawLesions(scan, lesions, random);
      addNoise(scan, spec.noiseSigmaHu ?? 0, random);
      const spacingMm = spacingFromAffine(scan.affineRas);
      const measured = measureTumours(scan.labels, { dims: scan.dims, spacingMm, affineRas: scan.affineRas }, { labelValues: [2] });
      const labels = tumourSummaryOf('liver', measured.tumours.map((t) => t.diameterMm), groupRule);
      const native = spec.source === 'ircad17' && firstSliceWith(scan, 2) >= 0 && lesions.length === 0;
      const name = `${spec.name}.nii.gz`;
      const image = { data: toInt16(scan.image), dims: scan.dims, affineRas: scan.affineRas };
      await writeNifti(join(taskDir, 'imagesTr', name), image, { gzipLevel: options.gzipLevel, description: `mir3d devbench ${spec.name}` });
      await writeNifti(join(taskDir, 'labelsTr', name), { data: scan.labels, dims: scan.dims, affineRas: scan.affineRas }, { gzipLevel: options.gzipLevel, intent: 'label', dataType: 'uint8' });
      bytesWritten += (await stat(join(taskDir, 'imagesTr', name))).size + (await stat(join(taskDir, 'labelsTr', name))).size;
      cases.push({
        name,
        source: spec.source,
        organ: spec.organ,
        split: spec.split,
        sourceSlices: [first, end],
        inPlaneFactor: factor,
        slabSlices: spec.slab ?? 1,
        noiseSigmaHu: spec.noiseSigmaHu ?? 0,
        dims: scan.dims,
        spacingMm,
        nativeTumours: native,
        lesions,
        measuredDiametersMm: measured.tumours.map((t) => t.diameterMm),
        labels,
        expectedFromRequest: lesions.length > 0 && !native ? tumourSummaryOf('liver', lesions.map((l) => l.requestedDiameterMm), groupRule) : undefined,
      });
      progress(`wrote ${name} (${scan.dims.join('×')}, group ${labels.lesionGroup})`);
    }
  }

  await writeLiverTask(cases, { taskDir, csvDir }, { name: 'DevLiver', description: 'mir3d development benchmark: variants of a few real CTs with real and inserted liver lesions; see README.md', reference: 'derived from 3D-IRCADb-01 (IRCAD), TotalSegmentator test files (Apache-2.0), dcm_qa_ct (BSD-2-Clause)' });

  const manifest: DevBenchManifest = {
    schema: 'mir3d-devbench/1',
    profile,
    seed,
    groupRule,
    matrix,
    taskDir,
    csvDir,
    cases,
    skipped,
    buildSeconds: (performance.now() - started) / 1000,
    bytesWritten,
  };
  await writeFileAtomic(join(outDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  await writeFile(join(outDir, 'README.md'), readmeOf(manifest));
  return manifest;
}

function readmeOf(m: DevBenchManifest): string {
  const count = (f: (c: DevBenchCase) => boolean): number => m.cases.filter(f).length;
  const groups = [-1, 1, 2, 3]
    .map((g) => `group ${g}: ${count((c) => c.labels.lesionGroup === g && c.split === 'train')} database / ${count((c) => c.labels.lesionGroup === g && c.split === 'test')} queries`)
    .join('; ');
  const rows = m.cases
    .map((c) => `| ${c.name} | ${c.split} | ${c.organ} | ${c.dims.join('×')} | ${c.spacingMm.map((s) => s.toFixed(2)).join(' × ')} | ${c.noiseSigmaHu} | ${c.lesions.map((l) => l.requestedDiametersMm.map((d) => d.toFixed(0)).join('×')).join(', ') || (c.nativeTumours ? 'native' : '—')} | ${c.measuredDiametersMm.map((d) => d.toFixed(1)).join(', ') || '—'} | ${c.labels.lesionGroup} |`)
    .join('\n');
  return `# mir3d development benchmark (DevLiver)

Built by \`buildDevBenchmark\` (src/eval/devbench.ts), profile \`${m.profile}\`, seed \`${m.seed}\`, group rule \`${m.groupRule}\`,
in ${m.buildSeconds.toFixed(1)} s; ${m.cases.length} volumes, ${(m.bytesWritten / 1e6).toFixed(1)} MB.

**It is derived from a handful of patients.** Every volume is a variant of one of six real CT series:
3D-IRCADb-01 patient 17 (abdomen, liver with two real tumours), the TotalSegmentator example CT (a 30-slice
3 mm crop with its liver segmentation) and TotalSegmentator's 20-slice 2 mm DICOM example with its
segmentation, a GE head CT and two cropped thoracic CTs (non-liver distractors). Three liver-bearing scans in
total; lesion-free and lesioned variants of one scan differ only by the inserted lesions.

## Layout

- \`${DEVBENCH_TASK_FOLDER}/\` in the Medical Segmentation Decathlon layout: \`dataset.json\`, \`imagesTr/\` (CT, int16 HU),
  \`labelsTr/\` (uint8: 0 background, 1 liver, 2 tumour; distractors are all 0).
- \`3dmir/liver_labels_and_captions.csv\`, \`liver_full_train_split.csv\` (= database), \`liver_full_test_split.csv\`
  (= queries), in 3D-MIR's format. Labels were measured on the written masks with the 3D-MIR rules
  (6-connected components, ≥ 3 voxels, > 1 slice, largest equivalent-ellipsoid diameter). Distractors are
  labelled "no liver tumour" (-1 / 0), as 3D-MIR labels other organs' volumes in its liver benchmark.
- \`manifest.json\`: per volume the source, crop, in-plane factor, slab, noise, requested lesion sizes and
  positions, measured sizes and labels.

Run the 3D-MIR protocol on it with \`threeDMirDataset('liver', { root: <this folder>, csvDir: <this folder>/3dmir })\`.

## How the variants differ

- z-coverage: whole scan, the part above / below IRCADb-17's tumours (below them the liver is tumour-free), halves of the thoracic crops;
- slice thickness: adjacent slices averaged in pairs (\`thick2\`);
- noise: added Gaussian noise of σ = 10–30 HU (\`noise…\`);
- in-plane size: scans wider than ${m.matrix} voxels are box-averaged by an integer factor (512 → 256);
- lesions: hypodense (liver median − 35…50 HU, 8 HU texture) spheres (\`s<d>\`) or ellipsoids (\`e<d>\`), several (\`m…\`),
  with a soft logistic edge, placed wholly inside the real liver mask (label 1; IRCADb-17's vessel holes filled
  slice by slice) and apart from each other, with sizes kept away from the group boundaries (20, 50 mm).
  The requested sizes and centres are in manifest.json; measured sizes match them within a voxel.

Groups: ${groups}.

## What it can and cannot show

It can show that loading, labels, splits, metrics and reports run end to end on real anatomy; whether a method ranks
variants of the same anatomy above other anatomy and how robust that is to coverage, thickness and noise; and whether
it separates tumour from no tumour and lesion sizes when everything else is held equal.

It cannot show generalization across patients: queries have near-duplicates of themselves (other variants of the same
scan) in the database, so its numbers are optimistic and not comparable with 3D-MIR's. Inserted lesions are idealized
(uniform texture, ellipsoids, one contrast phase). Do not report it as a benchmark result.

## Volumes

| name | split | organ | dims | spacing (mm) | noise σ (HU) | lesions requested (mm) | measured (mm) | group |
|---|---|---|---|---|---|---|---|---|
${rows}
${m.skipped.length > 0 ? `\nLeft out (lesions did not fit): ${m.skipped.map((s) => s.name).join(', ')}.\n` : ''}
Sources and licences: 3D-IRCADb-01 (IRCAD, research use with citation), TotalSegmentator test files (Apache-2.0),
dcm_qa_ct (BSD-2-Clause). Labels follow 3D-MIR (Ben Abacha et al., CC BY 4.0).
`;
}
