import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { writeNifti } from '../src/io/nifti-writer.js';
import { readVolume } from '../src/io/read.js';
import type { Mat4, Vec3 } from '../src/io/volume.js';
import { cMirMixedDataset, findDecathlonTasks, threeDMirDataset } from '../src/eval/datasets/decathlon.js';
import { judgedLabels, regionQueriesOf, regionRuns, tumourRuns } from '../src/eval/datasets/relevance.js';
import { formatThreeDMirLabels, formatThreeDMirSplit, parseThreeDMirLabels, parseThreeDMirSplit, readThreeDMirOrgan } from '../src/labels/threedmir-csv.js';
import { TOTALSEG_V1_CLASSES, TOTALSEG_V2_CLASSES, coarseRegionOf, coarseRegionsOf } from '../src/eval/datasets/total-seg-regions.js';
import { coarseExtents, readClassMap, totalSegCase, totalSegDataset } from '../src/eval/datasets/total-segmentator.js';
import type { Case } from '../src/eval/datasets/types.js';
import { buildDevBenchmark, insideDistanceMm, type DevBenchManifest } from '../src/synth/devbench.js';
import { seededRng } from './helpers/seeded-random.js';
import { TUMOUR_ORGANS, tumourSummaryFromMask } from '../src/labels/tumours.js';
import { evaluateTumourRetrieval } from '../src/eval/metrics.js';
import { sharedDataDir, sharedPath, skipWithoutSharedData } from './helpers/shared-data.js';

const tmp = mkdtempSync(join(tmpdir(), 'mir3d-eval-datasets-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Canonical grid (i → L, j → P, k → S), 1 × 1 × 2 mm, slice 0 at z = 100 mm. */
const AFFINE: Mat4 = [-1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 2, 100, 0, 0, 0, 1];
const DIMS: Vec3 = [48, 48, 24];

/** Label volume with balls (centre voxel, diameter mm) of `value` on top of `background` everywhere
 * within radius 20 of the centre (a crude organ). */
function labelVolume(balls: { centre: Vec3; diameterMm: number; value: number }[], organValue = 0): Uint8Array {
  const data = new Uint8Array(DIMS[0] * DIMS[1] * DIMS[2]);
  for (let k = 0; k < DIMS[2]; k++) for (let j = 0; j < DIMS[1]; j++) for (let i = 0; i < DIMS[0]; i++) {
    const p = i + DIMS[0] * (j + DIMS[1] * k);
    if (organValue && Math.hypot(i - 24, j - 24, (k - 12) * 2) < 20) data[p] = organValue;
    for (const b of balls) {
      if (Math.hypot(i - b.centre[0], j - b.centre[1], (k - b.centre[2]) * 2) <= b.diameterMm / 2) data[p] = b.value;
    }
  }
  return data;
}

async function writeCase(taskDir: string, name: string, labels: Uint8Array): Promise<void> {
  const image = new Int16Array(labels.length).map((_, p) => (labels[p] ? 60 : -100));
  await writeNifti(join(taskDir, 'imagesTr', name), { data: image, dims: DIMS, affineRas: AFFINE });
  await writeNifti(join(taskDir, 'labelsTr', name), { data: labels, dims: DIMS, affineRas: AFFINE }, { intent: 'label' });
}

describe('3D-MIR CSVs (shared data)', { skip: skipWithoutSharedData }, () => {
  const csvDir = sharedPath('3dmir');

  test('per-organ database and query sizes; pancreas group 4 is in no split', async () => {
    const sizes: Record<string, [number, number]> = { liver: [157, 19], colon: [156, 24], pancreas: [269, 32], lung: [62, 32] };
    for (const organ of TUMOUR_ORGANS) {
      const dataset = await threeDMirDataset(organ, { csvDir });
      assert.deepEqual([dataset.database.length, dataset.queries.length], sizes[organ], organ);
      const ids = new Set(dataset.database.map((c) => c.caseId));
      assert.ok(dataset.queries.every((q) => !ids.has(q.caseId)), `${organ}: a query is in the database`);
      assert.ok([...dataset.database, ...dataset.queries].every((c) => c.labelOrgan === organ && c.labels.source === 'csv'));
    }
    const pancreas = await readThreeDMirOrgan(csvDir, 'pancreas');
    const inSplit = new Set([...pancreas.train, ...pancreas.test]);
    const excluded = [...pancreas.rows.values()].filter((r) => !inSplit.has(r.name));
    assert.equal(excluded.length, 12);
    assert.ok(excluded.every((r) => r.organ === 'pancreas' && r.lesionGroup === 4));
  });

  test('other-organ volumes in a benchmark are exactly those organs\' group-1 volumes, labelled no tumour', async () => {
    const files = Object.fromEntries(await Promise.all(TUMOUR_ORGANS.map(async (o) => [o, await readThreeDMirOrgan(csvDir, o)] as const)));
    for (const organ of TUMOUR_ORGANS) {
      const negatives = [...files[organ].rows.values()].filter((r) => r.organ !== organ);
      assert.ok(negatives.length > 0);
      for (const row of negatives) {
        assert.deepEqual([row.lesionGroup, row.cancerFlag, row.numberTumors], [-1, 0, 0], `${organ}/${row.name}`);
        assert.equal(files[row.organ as keyof typeof files].rows.get(row.name)?.lesionGroup, 1, `${organ}/${row.name} in its own organ`);
      }
      for (const other of TUMOUR_ORGANS.filter((o) => o !== organ && o !== 'colon')) {
        const ownGroup1 = [...files[other].rows.values()].filter((r) => r.organ === other && r.lesionGroup === 1).map((r) => r.name).sort();
        assert.deepEqual(negatives.filter((r) => r.organ === other).map((r) => r.name).sort(), ownGroup1, `${organ} ← ${other}`);
      }
    }
  });

  test('chance levels reproduce DESIGN.md\'s random-retrieval numbers on the 3D-MIR splits', async (t) => {
    const design: Record<string, [number, number]> = { liver: [0.56, 0.31], colon: [0.54, 0.27], pancreas: [0.8, 0.43], lung: [0.5, 0.28] };
    for (const organ of TUMOUR_ORGANS) {
      const dataset = await threeDMirDataset(organ, { csvDir });
      const runs = tumourRuns(dataset, new Map(dataset.queries.map((q) => [q.caseId, []])));
      const chance = evaluateTumourRetrieval(runs).random.overall;
      t.diagnostic(`${organ}: random flag P@k ${chance.flag.precisionAtK[10].toFixed(4)}, group P@k ${chance.group.precisionAtK[10].toFixed(4)}, flag AP@10 ${chance.flag.ap10.toFixed(4)}, group AP@10 ${chance.group.ap10.toFixed(4)}`);
      close(chance.flag.precisionAtK[3], design[organ][0], 0.005, `${organ} flag`);
      close(chance.group.precisionAtK[10], design[organ][1], 0.005, `${organ} group`);
    }
  });

  test('C-MIR mixed archive: 515 own-organ database volumes, 74 queries, judged relative to the query organ', async (t) => {
    const mixed = await cMirMixedDataset({ csvDir });
    assert.equal(mixed.database.length, 515);
    assert.equal(mixed.queries.length, 74);
    const ids = new Set(mixed.database.map((c) => c.caseId));
    assert.ok(mixed.queries.every((q) => !ids.has(q.caseId)));
    assert.ok([...mixed.database, ...mixed.queries].every((c) => c.organ === c.labelOrgan && c.caseId.startsWith(`${c.organ}_`)));
    const liverQuery = mixed.queries.find((q) => q.organ === 'liver')!;
    const lungTumour = mixed.database.find((c) => c.organ === 'lung' && c.labels.cancerFlag === 1)!;
    const liverVolume = mixed.database.find((c) => c.organ === 'liver' && c.labels.lesionGroup === 3)!;
    assert.deepEqual(judgedLabels(liverQuery, lungTumour), { cancerFlag: 0, lesionGroup: -1 });
    assert.deepEqual(judgedLabels(liverQuery, liverVolume), { cancerFlag: 1, lesionGroup: 3 });
    const chance = evaluateTumourRetrieval(tumourRuns(mixed, new Map(mixed.queries.map((q) => [q.caseId, []])))).random;
    for (const [organ, m] of Object.entries(chance.byStratum)) {
      t.diagnostic(`mixed archive, ${organ} queries: random flag P@k ${m.flag.precisionAtK[10].toFixed(3)}, group P@k ${m.group.precisionAtK[10].toFixed(3)}`);
    }
    // A tumour query in the mixed archive is relevant only to its own organ's tumour volumes, so chance is
    // far lower than in the per-organ databases: every lung volume has a tumour, 47 of the 515 are lung.
    close(chance.byStratum.lung.flag.precisionAtK[10], 47 / 515, 1e-12, 'lung flag chance');
  });
});

function close(actual: number, expected: number, tolerance: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} vs ${expected}`);
}

describe('Decathlon adapter on a synthetic two-task folder', () => {
  const root = join(tmp, 'decathlon');
  const liverTask = join(root, 'Task03_Liver');
  const colonTask = join(root, 'Task10_Colon');

  before(async () => {
    for (const dir of [liverTask, colonTask]) {
      mkdirSync(join(dir, 'imagesTr'), { recursive: true });
      mkdirSync(join(dir, 'labelsTr'), { recursive: true });
    }
    await writeCase(liverTask, 'liver_0.nii.gz', labelVolume([{ centre: [20, 24, 12], diameterMm: 14, value: 2 }], 1));
    await writeCase(liverTask, 'liver_1.nii.gz', labelVolume([{ centre: [8, 24, 12], diameterMm: 10, value: 2 }, { centre: [30, 24, 12], diameterMm: 26, value: 2 }], 1));
    await writeCase(liverTask, 'liver_2.nii.gz', labelVolume([], 1));
    await writeCase(colonTask, 'colon_001.nii.gz', labelVolume([{ centre: [24, 24, 12], diameterMm: 44, value: 1 }]));
    // A macOS resource-fork file, as in the Decathlon tarballs.
    writeFileSync(join(liverTask, 'imagesTr', '._liver_0.nii.gz'), 'not a nifti');
    const json = (name: string, cases: string[]): string =>
      JSON.stringify({ name, labels: { '0': 'background', '1': name === 'Liver' ? 'liver' : 'colon cancer primaries', '2': 'cancer' }, training: cases.map((c) => ({ image: `./imagesTr/${c}`, label: `./labelsTr/${c}` })), test: ['./imagesTs/x_9.nii.gz'] });
    writeFileSync(join(liverTask, 'dataset.json'), json('Liver', ['liver_0.nii.gz', 'liver_1.nii.gz', 'liver_2.nii.gz', '._liver_0.nii.gz']));
    writeFileSync(join(colonTask, 'dataset.json'), json('Colon', ['colon_001.nii.gz']));
  });

  test('tasks are found, organs named from the folders, hidden files skipped', async () => {
    const tasks = await findDecathlonTasks(root);
    assert.deepEqual(tasks.map((t) => t.organ), ['liver', 'colon']);
    assert.deepEqual(tasks[0].training.map((c) => c.caseId), ['liver_0.nii.gz', 'liver_1.nii.gz', 'liver_2.nii.gz']);
    assert.ok(tasks[0].training[0].maskPath!.endsWith(join('Task03_Liver', 'labelsTr', 'liver_0.nii.gz')));
    assert.equal(tasks[0].labelNames['2'], 'cancer');
    assert.deepEqual(tasks[1].test.map((c) => c.caseId), ['x_9.nii.gz']);
  });

  test('without CSVs, labels come from the masks (liver tumour = 2, colon tumour = 1)', async () => {
    const liver = await threeDMirDataset('liver', { root, testFraction: 0 });
    assert.equal(liver.queries.length, 0);
    const byId = new Map(liver.database.map((c) => [c.caseId, c]));
    assert.deepEqual([byId.get('liver_0.nii.gz')!.labels.lesionGroup, byId.get('liver_0.nii.gz')!.labels.numberTumors], [1, 1]);
    assert.deepEqual([byId.get('liver_1.nii.gz')!.labels.lesionGroup, byId.get('liver_1.nii.gz')!.labels.numberTumors], [2, 2]);
    assert.deepEqual([byId.get('liver_2.nii.gz')!.labels.lesionGroup, byId.get('liver_2.nii.gz')!.labels.cancerFlag], [-1, 0]);
    close(byId.get('liver_1.nii.gz')!.labels.maxTumorSizeCm!, 2.6, 0.2, 'liver_1 size');
    assert.ok(byId.get('liver_0.nii.gz')!.labels.source === 'mask');
    const colon = await threeDMirDataset('colon', { root, testFraction: 1 });
    assert.equal(colon.database.length, 0);
    assert.deepEqual([colon.queries[0].labels.lesionGroup, colon.queries[0].labels.cancerFlag], [3, 1]);
  });

  test('with CSVs, labels and split come from them and names resolve across task folders', async () => {
    const csvDir = join(tmp, 'csv');
    mkdirSync(csvDir, { recursive: true });
    // liver_0's CSV group (2) deliberately differs from its mask (1): the CSV must win.
    const rows = [
      { name: 'liver_0.nii.gz', organ: 'liver', maxTumorSizeCm: 2.5, numberTumors: 1, lesionGroup: 2 as const, cancerFlag: 1 as const, captions: ['one, "quoted"\ncaption'] },
      { name: 'liver_1.nii.gz', organ: 'liver', maxTumorSizeCm: 2.6, numberTumors: 2, lesionGroup: 2 as const, cancerFlag: 1 as const, captions: [] },
      { name: 'liver_2.nii.gz', organ: 'liver', maxTumorSizeCm: 0, numberTumors: 0, lesionGroup: -1 as const, cancerFlag: 0 as const, captions: [] },
      { name: 'colon_001.nii.gz', organ: 'colon', maxTumorSizeCm: 0, numberTumors: 0, lesionGroup: -1 as const, cancerFlag: 0 as const, captions: ['The liver is in healthy condition'] },
    ];
    writeFileSync(join(csvDir, 'liver_labels_and_captions.csv'), '\ufeff' + formatThreeDMirLabels(rows));
    writeFileSync(join(csvDir, 'liver_full_train_split.csv'), formatThreeDMirSplit(['liver_0.nii.gz', 'colon_001.nii.gz'], 'training'));
    // Lung's split files have no index column; both forms must read.
    writeFileSync(join(csvDir, 'liver_full_test_split.csv'), 'testing\nliver_1.nii.gz\nliver_2.nii.gz\n');
    const dataset = await threeDMirDataset('liver', { root, csvDir });
    assert.deepEqual(dataset.database.map((c) => c.caseId), ['liver_0.nii.gz', 'colon_001.nii.gz']);
    assert.deepEqual(dataset.queries.map((c) => c.caseId), ['liver_1.nii.gz', 'liver_2.nii.gz']);
    assert.equal(dataset.database[0].labels.lesionGroup, 2);
    assert.equal(dataset.database[0].labels.source, 'csv');
    assert.ok(dataset.database[1].imagePath.endsWith(join('Task10_Colon', 'imagesTr', 'colon_001.nii.gz')));
    assert.equal(dataset.database[1].organ, 'colon');
    // Round trip of the writer through the parser, captions with quotes and newlines included.
    const parsed = parseThreeDMirLabels(readFileSync(join(csvDir, 'liver_labels_and_captions.csv'), 'utf8'));
    assert.deepEqual(parsed[0].captions, ['one, "quoted"\ncaption']);
    assert.deepEqual(parseThreeDMirSplit(formatThreeDMirSplit(['a', 'b'], 'training')), ['a', 'b']);

    // Rankings → runs: the colon volume counts as "no liver tumour" for a liver query.
    const runs = tumourRuns(dataset, new Map([['liver_1.nii.gz', ['colon_001.nii.gz', 'liver_0.nii.gz']]]));
    assert.equal(runs.length, 1);
    assert.deepEqual(runs[0].retrieved.map((l) => l.cancerFlag), [0, 1]);
    assert.equal(runs[0].pool.length, 2);
    assert.throws(() => tumourRuns(dataset, new Map([['liver_1.nii.gz', ['nope.nii.gz']]])), /not in the database/);

    // A listed volume that no task holds is an error when images are required.
    writeFileSync(join(csvDir, 'liver_full_test_split.csv'), 'testing\nliver_1.nii.gz\nliver_2.nii.gz\n');
    writeFileSync(join(csvDir, 'liver_labels_and_captions.csv'), formatThreeDMirLabels([...rows, { ...rows[2], name: 'liver_77.nii.gz' }]));
    writeFileSync(join(csvDir, 'liver_full_train_split.csv'), formatThreeDMirSplit(['liver_0.nii.gz', 'liver_77.nii.gz'], 'training'));
    await assert.rejects(threeDMirDataset('liver', { root, csvDir }), /in no task's dataset.json/);
    // …and fine when only the CSVs are used.
    assert.equal((await threeDMirDataset('liver', { csvDir })).database[1].imagePath, 'liver_77.nii.gz');
  });
});

describe('TotalSegmentator regions', () => {
  test('v1 has 104 structures in 29 coarse regions; v2 117 in 32; every structure has a region', () => {
    assert.equal(TOTALSEG_V1_CLASSES.length, 104);
    assert.equal(new Set(TOTALSEG_V1_CLASSES).size, 104);
    // Spot checks against TotalSegmentator v1's class map.
    assert.deepEqual([TOTALSEG_V1_CLASSES[4], TOTALSEG_V1_CLASSES[17], TOTALSEG_V1_CLASSES[40], TOTALSEG_V1_CLASSES[57], TOTALSEG_V1_CLASSES[92], TOTALSEG_V1_CLASSES[103]], ['liver', 'vertebrae_L5', 'vertebrae_C1', 'rib_left_1', 'face', 'urinary_bladder']);
    assert.ok(TOTALSEG_V1_CLASSES.every((s) => coarseRegionOf(s) !== undefined), TOTALSEG_V1_CLASSES.filter((s) => !coarseRegionOf(s)).join(', '));
    assert.equal(coarseRegionsOf(TOTALSEG_V1_CLASSES).length, 29);
    assert.equal(TOTALSEG_V2_CLASSES.length, 117);
    assert.ok(TOTALSEG_V2_CLASSES.every((s) => coarseRegionOf(s) !== undefined), TOTALSEG_V2_CLASSES.filter((s) => !coarseRegionOf(s)).join(', '));
    assert.equal(coarseRegionsOf(TOTALSEG_V2_CLASSES).length, 32);
    assert.deepEqual(['vertebrae_T7', 'lung_middle_lobe_right', 'rib_right_11', 'heart_atrium_left', 'duodenum', 'hip_left', 'iliopsoas_right', 'kidney_cyst_left', 'made_up'].map(coarseRegionOf), ['spine', 'lungs', 'rib_cage', 'heart', 'small_bowel', 'pelvis', 'trunk_muscles', 'kidneys', undefined]);
  });

  test('the shared class_map_total_v2.json is the built-in v2 list', { skip: skipWithoutSharedData }, async () => {
    const map = await readClassMap(sharedPath('totalseg', 'class_map_total_v2.json'));
    assert.deepEqual([...map.entries()].sort((a, b) => a[0] - b[0]).map(([, n]) => n), [...TOTALSEG_V2_CLASSES]);
  });

  test('example_seg.nii.gz: structure z-extents (numpy reference on the raw file)', { skip: skipWithoutSharedData }, async () => {
    const kase = await totalSegCase({
      caseId: 'example',
      imagePath: sharedPath('totalseg', 'example_ct_sm.nii.gz'),
      segmentationPath: sharedPath('totalseg', 'example_seg.nii.gz'),
      classMap: await readClassMap(sharedPath('totalseg', 'class_map_total_v2.json')),
    });
    const regions = kase.regions!;
    assert.equal(Object.keys(regions).length, 41);
    // Slice ranges and voxel counts from numpy on the raw file (stored RAS, so stored k = canonical k).
    const expected: Record<string, [number, number, number]> = {
      liver: [0, 29, 38634],
      gallbladder: [2, 14, 1333],
      pancreas: [2, 19, 644],
      adrenal_gland_right: [13, 24, 152],
      kidney_right: [0, 18, 3947],
      vertebrae_L1: [4, 21, 2139],
      lung_middle_lobe_right: [29, 29, 1],
    };
    for (const [name, [first, last, voxels]] of Object.entries(expected)) {
      assert.deepEqual([regions[name].firstSlice, regions[name].lastSlice, regions[name].voxelCount], [first, last, voxels], name);
    }
    // The sform puts slice 0 at z = 94.30 mm with 3 mm slices: the liver covers the whole 30-slice slab.
    close(regions.liver.zStartMm, 94.3018 - 1.5, 1e-3, 'liver start');
    close(regions.liver.zEndMm, 94.3018 + 29 * 3 + 1.5, 1e-3, 'liver end');
    close(regions.gallbladder.zExtentMm, 13 * 3, 1e-9, 'gallbladder length');
    assert.equal(regions.spleen.lastSlice, 29);
    const coarse = coarseExtents(regions);
    assert.deepEqual([coarse.spine.firstSlice, coarse.spine.lastSlice], [0, 29]);
    assert.deepEqual([coarse.kidneys.firstSlice, coarse.kidneys.lastSlice], [0, 22]);
    assert.deepEqual([coarse.lungs.firstSlice, coarse.lungs.lastSlice], [19, 29]);
    assert.equal(coarse.lungs.voxelCount, 259 + 1312 + 1 + 2735);
  });

  test('a TotalSegmentator root: per-structure folders and seg.nii.gz, meta.csv split, region runs', async () => {
    const root = join(tmp, 'totalseg');
    const s1 = join(root, 's0001');
    const s2 = join(root, 's0002');
    mkdirSync(join(s1, 'segmentations'), { recursive: true });
    mkdirSync(s2, { recursive: true });
    const image = { data: new Int16Array(DIMS[0] * DIMS[1] * DIMS[2]), dims: DIMS, affineRas: AFFINE };
    await writeNifti(join(s1, 'ct.nii.gz'), image);
    await writeNifti(join(s2, 'ct.nii.gz'), image);
    const slab = (k0: number, k1: number, value = 1): Uint8Array => {
      const out = new Uint8Array(DIMS[0] * DIMS[1] * DIMS[2]);
      for (let k = k0; k <= k1; k++) out.fill(value, k * DIMS[0] * DIMS[1] + 100, k * DIMS[0] * DIMS[1] + 110);
      return out;
    };
    await writeNifti(join(s1, 'segmentations', 'liver.nii.gz'), { data: slab(3, 10), dims: DIMS, affineRas: AFFINE });
    await writeNifti(join(s1, 'segmentations', 'spleen.nii.gz'), { data: slab(0, -1), dims: DIMS, affineRas: AFFINE });
    await writeNifti(join(s1, 'segmentations', 'vertebrae_L1.nii.gz'), { data: slab(8, 12), dims: DIMS, affineRas: AFFINE });
    await writeNifti(join(s1, 'segmentations', 'vertebrae_L2.nii.gz'), { data: slab(2, 7), dims: DIMS, affineRas: AFFINE });
    const multi = slab(5, 9, 5); // liver (v2 id 5)
    multi.set(slab(1, 2, 31).subarray(0, 3 * DIMS[0] * DIMS[1]), 0); // vertebrae_L1 (v2 id 31) on slices 1–2
    await writeNifti(join(s2, 'seg.nii.gz'), { data: multi, dims: DIMS, affineRas: AFFINE });
    writeFileSync(join(root, 'meta.csv'), 'image_id;age;split\ns0001;60;train\ns0002;71;test\n');

    const fine = await totalSegDataset(root);
    assert.deepEqual(fine.database.map((c) => c.caseId), ['s0001']);
    assert.deepEqual(fine.queries.map((c) => c.caseId), ['s0002']);
    const r1 = fine.database[0].regions!;
    assert.deepEqual(Object.keys(r1).sort(), ['liver', 'vertebrae_L1', 'vertebrae_L2']);
    assert.deepEqual([r1.liver.firstSlice, r1.liver.lastSlice, r1.liver.zStartMm, r1.liver.zEndMm], [3, 10, 105, 121]);
    assert.deepEqual([fine.queries[0].regions!.liver.firstSlice, fine.queries[0].regions!.vertebrae_L1.lastSlice], [5, 2]);

    const coarse = await totalSegDataset(root, { level: 'coarse' });
    assert.deepEqual([coarse.database[0].regions!.spine.firstSlice, coarse.database[0].regions!.spine.lastSlice], [2, 12]);
    const queries = regionQueriesOf(coarse);
    assert.deepEqual(queries, [{ queryId: 's0002', region: 'liver' }, { queryId: 's0002', region: 'spine' }]);
    const runs = regionRuns(coarse, queries, new Map([['s0002#liver', ['s0001']], ['s0002#spine', []]]));
    assert.deepEqual(runs.map((r) => [r.region, r.retrievedContains, r.poolSize, r.poolContaining]), [['liver', [true], 1, 1], ['spine', [], 1, 1]]);
  });
});

describe('development benchmark helpers', () => {
  test('inside distance transform equals brute force on random anisotropic masks (grid outside counts as outside)', () => {
    const rng = seededRng(31);
    for (let trial = 0; trial < 12; trial++) {
      const dims: Vec3 = [4 + Math.floor(rng() * 8), 4 + Math.floor(rng() * 8), 3 + Math.floor(rng() * 6)];
      const spacing: Vec3 = [0.5 + rng() * 2, 0.5 + rng() * 2, 0.5 + rng() * 4];
      const inside = Uint8Array.from({ length: dims[0] * dims[1] * dims[2] }, () => (rng() < 0.8 ? 1 : 0));
      const got = insideDistanceMm(inside, dims, spacing);
      for (let k = 0; k < dims[2]; k++) for (let j = 0; j < dims[1]; j++) for (let i = 0; i < dims[0]; i++) {
        const p = i + dims[0] * (j + dims[1] * k);
        if (!inside[p]) {
          assert.equal(got[p], 0);
          continue;
        }
        // Nearest outside voxel centre, the one-voxel ring around the grid included.
        let best = Infinity;
        for (let c = -1; c <= dims[2]; c++) for (let b = -1; b <= dims[1]; b++) for (let a = -1; a <= dims[0]; a++) {
          const ring = a < 0 || b < 0 || c < 0 || a >= dims[0] || b >= dims[1] || c >= dims[2];
          if (!ring && inside[a + dims[0] * (b + dims[1] * c)]) continue;
          best = Math.min(best, Math.hypot((a - i) * spacing[0], (b - j) * spacing[1], (c - k) * spacing[2]));
        }
        close(got[p], best, 1e-9, `trial ${trial} voxel ${i},${j},${k}`);
      }
    }
  });

  test('refuses to write into a non-empty folder unless told to overwrite', { skip: skipWithoutSharedData }, async () => {
    const busy = join(tmp, 'busy');
    mkdirSync(busy, { recursive: true });
    writeFileSync(join(busy, 'keep.txt'), 'x');
    await assert.rejects(buildDevBenchmark(sharedDataDir, busy, { profile: 'small' }), /not empty/);
    assert.equal(readFileSync(join(busy, 'keep.txt'), 'utf8'), 'x');
  });
});

describe('development benchmark (small profile, from the shared CTs)', { skip: skipWithoutSharedData }, () => {
  const out = join(tmp, 'devbench');
  let manifest: DevBenchManifest;

  before(async () => {
    manifest = await buildDevBenchmark(sharedDataDir, out, { profile: 'small', gzipLevel: 1 });
  });

  test('builds lesion-free, lesioned and distractor volumes in both splits', (t) => {
    t.diagnostic(`${manifest.cases.length} volumes in ${manifest.buildSeconds.toFixed(1)} s, ${(manifest.bytesWritten / 1e6).toFixed(1)} MB; skipped ${manifest.skipped.length}`);
    assert.equal(manifest.skipped.length, 0, JSON.stringify(manifest.skipped));
    assert.ok(manifest.cases.length >= 10);
    const groups = new Set(manifest.cases.map((c) => c.labels.lesionGroup));
    for (const g of [-1, 1, 2, 3]) assert.ok(groups.has(g as -1), `group ${g} missing`);
    assert.ok(manifest.cases.some((c) => c.organ === 'head') && manifest.cases.some((c) => c.organ === 'thorax'));
    assert.ok(manifest.cases.some((c) => c.split === 'test') && manifest.cases.some((c) => c.split === 'train'));
    // Its build time is a diagnostic above, not an assertion: on two shared cores it ranges 15-45 s.
    assert.match(readFileSync(join(out, 'README.md'), 'utf8'), /derived from a handful of patients/);
  });

  test('inserted lesions measure as requested (within a voxel) and give the requested groups', async () => {
    const lesioned = manifest.cases.filter((c) => c.lesions.length > 0);
    assert.ok(lesioned.length >= 5);
    for (const c of lesioned) {
      // Re-measure from the written file, not from the builder's memory.
      const mask = await readVolume(join(manifest.taskDir, 'labelsTr', c.name));
      const measured = tumourSummaryFromMask(mask.data, mask, 'liver', { labelValues: [2] });
      const got = measured.measurement.tumours.map((t) => t.diameterMm).sort((a, b) => a - b);
      const want = c.lesions.map((l) => l.requestedDiameterMm).sort((a, b) => a - b);
      assert.equal(got.length, want.length, c.name);
      const voxelMm = Math.max(...mask.spacingMm);
      got.forEach((d, n) => assert.ok(Math.abs(d - want[n]) < voxelMm, `${c.name}: measured ${d.toFixed(2)} mm, requested ${want[n]} mm (voxel ${voxelMm.toFixed(2)} mm)`));
      assert.equal(measured.lesionGroup, c.expectedFromRequest!.lesionGroup, c.name);
      assert.equal(measured.lesionGroup, c.labels.lesionGroup, c.name);
      // Wholly inside the liver: no tumour voxel touches background.
      const [ni, nj] = mask.dims;
      for (let p = 0; p < mask.data.length; p++) {
        if (mask.data[p] !== 2) continue;
        for (const q of [p - 1, p + 1, p - ni, p + ni, p - ni * nj, p + ni * nj]) assert.notEqual(mask.data[q], 0, `${c.name}: tumour voxel ${p} touches background`);
      }
    }
    for (const c of manifest.cases.filter((x) => x.lesions.length === 0 && !x.nativeTumours)) {
      assert.deepEqual([c.labels.lesionGroup, c.labels.cancerFlag], [-1, 0], c.name);
    }
  });

  test('the 3D-MIR protocol code reads it: images present, CSV labels equal labels from the masks', async () => {
    const fromCsv = await threeDMirDataset('liver', { root: out, csvDir: manifest.csvDir });
    assert.equal(fromCsv.database.length + fromCsv.queries.length, manifest.cases.length);
    assert.deepEqual(fromCsv.queries.map((c) => c.caseId).sort(), manifest.cases.filter((c) => c.split === 'test').map((c) => c.name).sort());
    const fromMasks = await threeDMirDataset('liver', { root: out, testFraction: 0 });
    const maskLabels = new Map<string, Case>(fromMasks.database.map((c) => [c.caseId, c]));
    for (const c of [...fromCsv.database, ...fromCsv.queries]) {
      const m = maskLabels.get(c.caseId)!;
      assert.deepEqual([c.labels.cancerFlag, c.labels.lesionGroup, c.labels.numberTumors], [m.labels.cancerFlag, m.labels.lesionGroup, m.labels.numberTumors], c.caseId);
      close(c.labels.maxTumorSizeCm!, m.labels.maxTumorSizeCm!, 1e-5, c.caseId);
    }
    // Images are in-plane ≤ 256 and keep the source's z spacing unless averaged.
    for (const c of manifest.cases) assert.ok(c.dims[0] <= 256 && c.dims[1] <= 256, c.name);
    const image = await readVolume(join(manifest.taskDir, 'imagesTr', 'liver_ircad17_lower_s14.nii.gz'));
    close(image.spacingMm[0], 0.743 * 2, 1e-3, 'in-plane spacing');
    close(image.spacingMm[2], 1.6, 1e-3, 'slice spacing');
  });
});
