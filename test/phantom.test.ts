import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { PNG } from 'pngjs';
import { writeNifti } from '../src/io/nifti-writer.js';
import { applyAffine, orientationCode } from '../src/io/orientation.js';
import { renderSlice } from '../src/io/png.js';
import { readVolume } from '../src/io/read.js';
import { sliceZMm, voxelIndex, type Vec3, type Volume } from '../src/io/volume.js';
import { canonicalInt16Sha256 } from '../src/io/volume-stats.js';
import { generatePhantom, LABEL, lesionLabels, type Phantom, type PhantomOptions, type PhantomTruth } from '../src/synth/index.js';
import { runCli } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'mir3d-phantom-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// Small enough for a shared 2-core machine, fine enough (3 mm, 2.5 mm slices) to measure a 12 mm lesion.
const WITH_LESIONS: PhantomOptions = {
  seed: 41,
  coverage: 'liver',
  spacingMm: [3, 3, 2.5],
  lesions: [{ diameterMm: 12 }, { diameterMm: 30 }, { diameterMm: [24, 16, 10], contrastHu: 30 }],
};
const THORAX_ABDOMEN: PhantomOptions = { seed: 7, coverage: 'thorax-abdomen', matrix: [96, 96], spacingMm: [4, 4, 5] };

const withLesions = generatePhantom(WITH_LESIONS);
const thoraxAbdomen = generatePhantom(THORAX_ABDOMEN);

function organ(truth: PhantomTruth, name: string): PhantomTruth['organs'][number] {
  const found = truth.organs.find((o) => o.name === name);
  assert.ok(found, `no organ ${name} in truth`);
  return found;
}

/** Mean voxel position and HU statistics of one label, measured from the arrays alone. */
function measure(phantom: Phantom, code: number): { count: number; centroid: Vec3; meanHu: number; sdHu: number; kFirst: number; kLast: number } {
  const [ni, nj, nk] = phantom.labels.dims;
  let count = 0;
  let sumHu = 0;
  let sumHu2 = 0;
  const sum = [0, 0, 0];
  let kFirst = -1;
  let kLast = -1;
  for (let k = 0; k < nk; k++) {
    for (let j = 0; j < nj; j++) {
      for (let i = 0; i < ni; i++) {
        const at = voxelIndex(phantom.labels.dims, i, j, k);
        if (phantom.labels.data[at] !== code) continue;
        const hu = phantom.image.data[at];
        count++;
        sumHu += hu;
        sumHu2 += hu * hu;
        sum[0] += i;
        sum[1] += j;
        sum[2] += k;
        if (kFirst < 0) kFirst = k;
        kLast = k;
      }
    }
  }
  const meanHu = sumHu / count;
  return { count, centroid: sum.map((s) => s / count) as Vec3, meanHu, sdHu: Math.sqrt(sumHu2 / count - meanHu * meanHu), kFirst, kLast };
}

/** 6-connected components of one label: each component's voxel count, bounding box and centroid. */
function components(labels: Volume, code: number): { count: number; min: Vec3; max: Vec3; centroid: Vec3 }[] {
  const { dims, data } = labels;
  const seen = new Uint8Array(data.length);
  const found: { count: number; min: Vec3; max: Vec3; centroid: Vec3 }[] = [];
  const steps: Vec3[] = [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]];
  for (let start = 0; start < data.length; start++) {
    if (data[start] !== code || seen[start]) continue;
    const stack = [start];
    seen[start] = 1;
    const min: Vec3 = [Infinity, Infinity, Infinity];
    const max: Vec3 = [-Infinity, -Infinity, -Infinity];
    const sum = [0, 0, 0];
    let count = 0;
    while (stack.length) {
      const at = stack.pop() as number;
      const p: Vec3 = [at % dims[0], Math.floor(at / dims[0]) % dims[1], Math.floor(at / (dims[0] * dims[1]))];
      count++;
      for (let a = 0; a < 3; a++) {
        min[a] = Math.min(min[a], p[a]);
        max[a] = Math.max(max[a], p[a]);
        sum[a] += p[a];
      }
      for (const s of steps) {
        const q: Vec3 = [p[0] + s[0], p[1] + s[1], p[2] + s[2]];
        if (q.some((v, a) => v < 0 || v >= dims[a])) continue;
        const next = voxelIndex(dims, ...q);
        if (data[next] === code && !seen[next]) {
          seen[next] = 1;
          stack.push(next);
        }
      }
    }
    found.push({ count, min, max, centroid: sum.map((s) => s / count) as Vec3 });
  }
  return found;
}

describe('phantom generator', () => {
  test('same seed and options give the same voxels; another seed another patient', () => {
    const again = generatePhantom(WITH_LESIONS);
    assert.equal(canonicalInt16Sha256(again.image), canonicalInt16Sha256(withLesions.image));
    assert.equal(canonicalInt16Sha256(again.labels), canonicalInt16Sha256(withLesions.labels));
    assert.deepEqual(again.truth, withLesions.truth);

    const other = generatePhantom({ ...WITH_LESIONS, seed: 42 });
    assert.notEqual(canonicalInt16Sha256(other.image), canonicalInt16Sha256(withLesions.image));
    assert.notDeepEqual(other.truth.patient, withLesions.truth.patient);
    assert.notDeepEqual(other.truth.lesions.map((l) => l.centreMm), withLesions.truth.lesions.map((l) => l.centreMm));
  });

  test('the noise level changes the noise only: anatomy, lesions and labels stay put', () => {
    const quiet = generatePhantom({ ...WITH_LESIONS, noiseSigmaHu: 0 });
    assert.equal(canonicalInt16Sha256(quiet.labels), canonicalInt16Sha256(withLesions.labels));
    assert.deepEqual(quiet.truth.lesions, withLesions.truth.lesions);
    // Without noise every labelled voxel holds exactly its tissue's HU.
    for (const o of quiet.truth.organs.filter((o) => o.present && o.name !== 'bone')) {
      const m = measure(quiet, o.label);
      assert.equal(m.sdHu, 0, `${o.name} is uniform without noise`);
      assert.equal(m.meanHu, o.hu, `${o.name} HU`);
    }
  });

  test('organ HU: the measured mean of each label matches truth, and the values are CT-like', () => {
    const expected: Record<string, [number, number]> = {
      liver: [50, 70], spleen: [38, 52], kidneys: [22, 38], lungs: [-900, -800], aorta: [120, 180], heart: [40, 60], bone: [600, 800],
    };
    for (const phantom of [withLesions, thoraxAbdomen]) {
      for (const o of phantom.truth.organs.filter((o) => o.present)) {
        const m = measure(phantom, o.label);
        assert.equal(m.count, o.voxelCount, `${o.name} voxel count`);
        assert.ok(Math.abs(m.meanHu - o.hu) < 1.5, `${o.name}: mean ${m.meanHu.toFixed(1)} HU, truth ${o.hu}`);
        const [lo, hi] = expected[o.name];
        assert.ok(o.hu >= lo && o.hu <= hi, `${o.name} HU ${o.hu} outside ${lo}..${hi}`);
        if (m.count > 1000) assert.ok(Math.abs(m.sdHu - 10) < 1.5, `${o.name}: noise sd ${m.sdHu.toFixed(1)} HU, asked 10`);
      }
      // Outside the body is air or field-of-view padding.
      const air = measure(phantom, LABEL.background);
      assert.ok(air.meanHu < -990, `background mean ${air.meanHu}`);
    }
    const lesion = measure(withLesions, LABEL.lesion);
    const liverHu = organ(withLesions.truth, 'liver').hu;
    assert.ok(lesion.meanHu < liverHu - 25, `lesions (${lesion.meanHu.toFixed(1)} HU) are hypodense against liver (${liverHu} HU)`);
  });

  test('lesions measured from the mask have the requested diameters (±1 voxel) and centres', () => {
    const { truth, labels } = withLesions;
    const found = components(labels, LABEL.lesion);
    assert.equal(found.length, WITH_LESIONS.lesions?.length, 'one connected component per lesion');
    const requested: Vec3[] = [[12, 12, 12], [30, 30, 30], [24, 16, 10]];
    truth.lesions.forEach((lesion, n) => {
      assert.deepEqual(lesion.diametersMm, requested[n]);
      const component = found.reduce((best, c) =>
        Math.hypot(...c.centroid.map((v, a) => v - lesion.centreVoxel[a])) < Math.hypot(...best.centroid.map((v, a) => v - lesion.centreVoxel[a])) ? c : best);
      component.centroid.forEach((v, a) => assert.ok(Math.abs(v - lesion.centreVoxel[a]) < 1, `lesion ${n} centre axis ${a}: mask ${v.toFixed(2)}, truth ${lesion.centreVoxel[a]}`));
      // Axis a of the grid runs along patient x, y, z for a = 0, 1, 2.
      for (let a = 0; a < 3; a++) {
        const spacing = truth.spacingMm[a];
        const measuredMm = (component.max[a] - component.min[a] + 1) * spacing;
        assert.ok(Math.abs(measuredMm - requested[n][a]) <= spacing + 1e-9, `lesion ${n} axis ${a}: ${measuredMm} mm in the mask, asked ${requested[n][a]} mm`);
      }
      assert.equal(component.count, lesion.voxelCount);
      assert.deepEqual(lesion.sliceRange, [component.min[2], component.max[2]]);
      const voxelMl = (truth.spacingMm[0] * truth.spacingMm[1] * truth.spacingMm[2]) / 1000;
      assert.ok(Math.abs(component.count * voxelMl - lesion.volumeMl) < 0.25 * lesion.volumeMl, `lesion ${n} volume`);
    });
    assert.equal(truth.cancerFlag, 1);
    assert.equal(truth.lesionGroup, 2);
  });

  test('organ z-extents in truth match the mask', () => {
    const thorax = generatePhantom({ seed: 3, coverage: 'thorax', matrix: [64, 64], spacingMm: [6, 6, 4] });
    for (const phantom of [withLesions, thoraxAbdomen, thorax]) {
      const { truth } = phantom;
      const z0 = truth.zRangeMm[0];
      const dz = truth.spacingMm[2];
      for (const o of truth.organs) {
        const m = measure(phantom, o.label);
        if (!o.present) {
          assert.equal(m.count, 0, `${o.name} absent in truth but in the mask`);
          continue;
        }
        assert.deepEqual(o.sliceRange, [m.kFirst, m.kLast], `${o.name} slice range`);
        assert.ok(o.zRangeMm);
        // The first and last slices whose centres lie within the exact shape; a slice through the very
        // tip of a rounded organ may hold no voxel centre, so one slice less is allowed at each end.
        const expectFirst = Math.max(0, Math.ceil((o.zRangeMm[0] - z0) / dz - 1e-6));
        const expectLast = Math.min(truth.dims[2] - 1, Math.floor((o.zRangeMm[1] - z0) / dz + 1e-6));
        assert.ok(m.kFirst - expectFirst >= 0 && m.kFirst - expectFirst <= 1, `${o.name}: first slice ${m.kFirst}, shape starts at ${o.zRangeMm[0]} mm (slice ${expectFirst})`);
        assert.ok(expectLast - m.kLast >= 0 && expectLast - m.kLast <= 1, `${o.name}: last slice ${m.kLast}, shape ends at ${o.zRangeMm[1]} mm (slice ${expectLast})`);
      }
    }
    // Coverage: the thorax-only scan misses the kidneys and cuts the liver; the thorax–abdomen one holds
    // every organ whole.
    assert.ok(thoraxAbdomen.truth.organs.filter((o) => o.name !== 'bone').every((o) => o.present && o.complete));
    assert.equal(organ(thorax.truth, 'kidneys').present, false);
    const cutLiver = organ(thorax.truth, 'liver');
    assert.ok(cutLiver.present && !cutLiver.complete && cutLiver.sliceRange?.[0] === 0, JSON.stringify(cutLiver));
    const slabStartMm = thorax.truth.zRangeMm[0] - thorax.truth.spacingMm[2] / 2;
    assert.ok(Math.abs((cutLiver.zRangeMm?.[0] ?? NaN) - slabStartMm) < 0.02, 'a cut organ\'s range ends where the scanned slab does');
  });

  test('canonical orientation: liver on the patient right (low i), front at low j, head at high k', () => {
    for (const phantom of [withLesions, thoraxAbdomen]) {
      const { image, truth } = phantom;
      assert.equal(orientationCode(image.affineRas), 'LPS');
      assert.equal(image.source.format, 'generated');
      assert.equal(image.modality, 'CT');
      const [ni] = image.dims;
      const liver = measure(phantom, LABEL.liver).centroid;
      const spleen = measure(phantom, LABEL.spleen).centroid;
      const kidneys = measure(phantom, LABEL.kidneys).centroid;
      assert.ok(liver[0] < ni / 2 && spleen[0] > ni / 2, `liver i ${liver[0].toFixed(1)}, spleen i ${spleen[0].toFixed(1)} of ${ni}`);
      assert.ok(applyAffine(image.affineRas, ...liver)[0] > 0, 'liver at positive RAS x (patient right)');
      assert.ok(kidneys[1] > liver[1], 'kidneys lie behind the liver (higher j)');
      // The body's front edge: the first row holding body voxels, in the middle column, is anterior.
      const mid = Math.floor(ni / 2);
      const k = Math.round(liver[2]);
      const rows = Array.from({ length: image.dims[1] }, (_, j) => phantom.labels.data[voxelIndex(image.dims, mid, j, k)]);
      const spineRow = rows.findIndex((code, j) => code === LABEL.bone && j > image.dims[1] / 2);
      assert.ok(spineRow > 0, 'the spine lies in the posterior half (high j)');
      assert.ok(applyAffine(image.affineRas, mid, 0, k)[1] > applyAffine(image.affineRas, mid, spineRow, k)[1], 'low j is anterior (larger RAS y)');
      for (let kk = 0; kk < image.dims[2]; kk += 7) assert.ok(Math.abs(sliceZMm(image, kk) - (truth.zRangeMm[0] + kk * truth.spacingMm[2])) < 1e-9);
    }
    const t = thoraxAbdomen;
    const lungs = measure(t, LABEL.lungs);
    const liver = measure(t, LABEL.liver);
    const kidneys = measure(t, LABEL.kidneys);
    assert.ok(lungs.centroid[2] > liver.centroid[2] && liver.centroid[2] > kidneys.centroid[2], 'lungs above liver above kidneys');
    assert.ok(lungs.kLast > (t.truth.dims[2] * 3) / 4, 'lungs reach the top quarter');
    const heart = measure(t, LABEL.heart).centroid;
    assert.ok(heart[0] > t.image.dims[0] / 2, 'heart on the patient left');
  });

  test('explicit lesion centres: accepted inside the liver, refused outside or when too big', () => {
    const first = withLesions.truth.lesions[1];
    const placed = generatePhantom({ ...WITH_LESIONS, lesions: [{ diameterMm: 30, centreMm: first.centreMm }] });
    assert.deepEqual(placed.truth.lesions[0].centreMm, first.centreMm);
    assert.equal(placed.truth.lesions[0].voxelCount, first.voxelCount);
    const spleen = organ(withLesions.truth, 'spleen').centroidVoxel;
    assert.ok(spleen);
    const inSpleen = applyAffine(withLesions.image.affineRas, ...spleen);
    assert.throws(() => generatePhantom({ ...WITH_LESIONS, lesions: [{ diameterMm: 10, centreMm: inSpleen }] }), /inside the liver/);
    assert.throws(() => generatePhantom({ ...WITH_LESIONS, lesions: [{ diameterMm: 180 }] }), /no room/);
    assert.throws(() => generatePhantom({ seed: 1, coverage: 'thorax', matrix: [32, 32], spacingMm: [12, 12, 10], lesions: [{ diameterMm: 80 }] }), /no room/);
  });

  test('3D-MIR liver lesion groups from lesion sizes', () => {
    assert.deepEqual(lesionLabels([]), { cancerFlag: 0, lesionGroup: -1 });
    assert.deepEqual(lesionLabels([12]), { cancerFlag: 1, lesionGroup: 1 });
    assert.deepEqual(lesionLabels([25]), { cancerFlag: 1, lesionGroup: 2 });
    assert.deepEqual(lesionLabels([10, 15]), { cancerFlag: 1, lesionGroup: 2 });
    assert.deepEqual(lesionLabels([45, 30]), { cancerFlag: 1, lesionGroup: 2 });
    assert.deepEqual(lesionLabels([60]), { cancerFlag: 1, lesionGroup: 3 });
    assert.deepEqual(lesionLabels([10, 55]), { cancerFlag: 1, lesionGroup: 3 });
    assert.equal(thoraxAbdomen.truth.lesionGroup, -1);
  });

  test('image and labels survive NIfTI writing and reading unchanged', async () => {
    const ct = join(dir, 'ct.nii.gz');
    const labels = join(dir, 'labels.nii.gz');
    await writeNifti(ct, withLesions.image);
    await writeNifti(labels, withLesions.labels, { dataType: 'uint8', intent: 'label' });
    const [readCt, readLabels] = [await readVolume(ct, { modality: 'CT' }), await readVolume(labels)];
    assert.equal(canonicalInt16Sha256(readCt), canonicalInt16Sha256(withLesions.image));
    assert.equal(canonicalInt16Sha256(readLabels), canonicalInt16Sha256(withLesions.labels));
    assert.equal(readLabels.source.storedDataType, 'uint8');
    assert.deepEqual(readCt.dims, withLesions.truth.dims);
    assert.equal(readCt.source.orientation, 'LPS');
  });
});

describe('slice thumbnails', () => {
  // 4 × 3 × 2 voxels, each value unique, 1 mm isotropic: pixels map one to one onto voxels.
  const dims: Vec3 = [4, 3, 2];
  const tiny = { data: Int16Array.from({ length: 24 }, (_, n) => n * 10), dims, spacingMm: [1, 1, 1] as Vec3 };
  const window = { levelHu: 127.5, widthHu: 255 }; // HU v → grey v
  const grey = (image: { width: number; data: Uint8Array }, x: number, y: number): number => image.data[4 * (y * image.width + x)];

  test('axial: i runs left to right (patient right on the left), j top to bottom (anterior on top)', () => {
    const image = renderSlice(tiny, { plane: 'axial', index: 1, window });
    assert.deepEqual([image.width, image.height], [4, 3]);
    for (let j = 0; j < 3; j++) for (let i = 0; i < 4; i++) assert.equal(grey(image, i, j), tiny.data[voxelIndex(dims, i, j, 1)]);
  });

  test('coronal: superior slice at the top; sagittal: anterior on the left', () => {
    const coronal = renderSlice(tiny, { plane: 'coronal', index: 2, window });
    assert.deepEqual([coronal.width, coronal.height], [4, 2]);
    for (let i = 0; i < 4; i++) {
      assert.equal(grey(coronal, i, 0), tiny.data[voxelIndex(dims, i, 2, 1)], 'top row is k = 1');
      assert.equal(grey(coronal, i, 1), tiny.data[voxelIndex(dims, i, 2, 0)]);
    }
    const sagittal = renderSlice(tiny, { plane: 'sagittal', index: 3, window });
    assert.deepEqual([sagittal.width, sagittal.height], [3, 2]);
    for (let j = 0; j < 3; j++) assert.equal(grey(sagittal, j, 0), tiny.data[voxelIndex(dims, 3, j, 1)]);
  });

  test('anisotropic voxels are shown with square pixels', () => {
    const coronal = renderSlice({ ...tiny, spacingMm: [1, 1, 3] }, { plane: 'coronal', window });
    assert.deepEqual([coronal.width, coronal.height], [4, 6]);
  });

  test('overlays: label outline colour, slice band tint', () => {
    const labels = new Int16Array(24);
    labels[voxelIndex(dims, 1, 1, 0)] = 2;
    const axial = renderSlice(tiny, { plane: 'axial', index: 0, window, labels: { data: labels, colors: { 2: [255, 0, 0] } } });
    const p = 4 * (1 * 4 + 1);
    assert.deepEqual(Array.from(axial.data.subarray(p, p + 3)), [255, 0, 0]);
    const q = 4 * (2 * 4 + 3);
    assert.deepEqual(Array.from(axial.data.subarray(q, q + 3)), [110, 110, 110], 'unlabelled pixels stay grey');
    const banded = renderSlice(tiny, { plane: 'coronal', index: 0, window, bands: [{ kFirst: 1, kLast: 1, color: [0, 255, 0] }] });
    assert.deepEqual(Array.from(banded.data.subarray(0, 3)), [0, 255, 0], 'top row (k = 1) carries the band');
    const r = 4 * (1 * 4 + 3);
    assert.deepEqual(Array.from(banded.data.subarray(r, r + 3)), [30, 30, 30], 'bottom row (k = 0) untouched');
    assert.throws(() => renderSlice(tiny, { plane: 'axial', index: 2 }), /outside/);
  });
});

describe('mir3d demo', () => {
  test('--count 2 writes two readable phantoms with truth, thumbnails and an index', async () => {
    const out = join(dir, 'demo');
    const run = runCli(['demo', '--count', '2', '--out', out, '--seed', '5'], 120_000);
    assert.equal(run.status, 0, run.stderr);
    const manifest = JSON.parse(readFileSync(join(out, 'demo.json'), 'utf8')) as { phantoms: { id: string; ct: string; labels: string; truth: string; coronalPng: string }[] };
    assert.deepEqual(manifest.phantoms.map((p) => p.id), ['phantom-01', 'phantom-02']);
    for (const entry of manifest.phantoms) {
      for (const file of [entry.ct, entry.labels, entry.truth, entry.coronalPng]) assert.ok(existsSync(join(out, file)), `${file} exists`);
      const truth = JSON.parse(readFileSync(join(out, entry.truth), 'utf8')) as PhantomTruth;
      const ct = await readVolume(join(out, entry.ct), { modality: 'CT' });
      const labels = await readVolume(join(out, entry.labels));
      assert.deepEqual(ct.dims, truth.dims);
      assert.deepEqual(labels.dims, truth.dims);
      const liver = truth.organs.find((o) => o.name === 'liver');
      assert.ok(liver);
      assert.equal(Array.from(labels.data).filter((v) => v === LABEL.liver).length, liver.voxelCount, 'truth describes the written labels');
      // The printed hash is the hash of what a reader gets from the file.
      assert.match(run.stdout, new RegExp(`${entry.id}\\b.*${canonicalInt16Sha256(ct).slice(0, 12)}`));
      const png = PNG.sync.read(readFileSync(join(out, entry.coronalPng)));
      assert.ok(png.width >= 128 && png.height >= 100, `thumbnail ${png.width}×${png.height}`);
      assert.equal(readdirSync(join(out, entry.id)).filter((name) => name.endsWith('.tmp')).length, 0, 'no temp files left');
    }
    // The second plan carries one 12 mm lesion: group 1 in the table and in truth.
    const second = JSON.parse(readFileSync(join(out, 'phantom-02/truth.json'), 'utf8')) as PhantomTruth;
    assert.deepEqual(second.lesions.map((l) => l.diameterMm), [12]);
    assert.equal(second.lesionGroup, 1);
    assert.match(run.stdout, /phantom-02\s.*\s12\s+1\s/);
  });

  test('a bad --count is refused with a message', () => {
    const run = runCli(['demo', '--count', '0', '--out', join(dir, 'never')]);
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /count/);
    assert.ok(!existsSync(join(dir, 'never')));
  });
});
