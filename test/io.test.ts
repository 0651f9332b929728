import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, describe, test } from 'node:test';
import { listDicomSeries } from '../src/io/dicom.js';
import { VolumeReadError } from '../src/io/errors.js';
import { decodeJ2k, decodeJ2kHere, j2kThreadsFor } from '../src/io/j2k-codec.js';
import { readNifti } from '../src/io/nifti.js';
import { readVolume } from '../src/io/read.js';
import { canonicalInt16Sha256 } from '../src/io/volume-stats.js';
import { sliceZMm, voxelIndex, type Volume } from '../src/io/volume.js';
import { rawNifti, type RawNiftiSpec } from './helpers/nifti-bytes.js';
import { sharedPath, skipWithoutSharedData } from './helpers/shared-data.js';

const work = mkdtempSync(join(tmpdir(), 'mir3d-io-'));
after(() => rmSync(work, { recursive: true, force: true }));
let fileCounter = 0;

function writeTemp(bytes: Uint8Array, name = `v${fileCounter++}.nii`): string {
  const path = join(work, name);
  writeFileSync(path, bytes);
  return path;
}

async function rejectsWith(promise: Promise<unknown>, code: string, path: string): Promise<VolumeReadError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof VolumeReadError, `expected VolumeReadError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    assert.equal(error.path, path);
    return error;
  }
  assert.fail(`expected ${code} for ${path}`);
}

/** Mean intensity and mean voxel coordinates of the voxels carrying `label`. */
function labelStats(image: Volume, labels: Volume, label: number): { count: number; meanHu: number; centroid: number[]; kRange: [number, number] } {
  const [ni, nj] = labels.dims;
  let count = 0;
  let sum = 0;
  const c = [0, 0, 0];
  let kMin = Infinity;
  let kMax = -Infinity;
  for (let p = 0; p < labels.data.length; p++) {
    if (labels.data[p] !== label) continue;
    const i = p % ni;
    const j = Math.floor(p / ni) % nj;
    const k = Math.floor(p / (ni * nj));
    count++;
    sum += image.data[p];
    c[0] += i;
    c[1] += j;
    c[2] += k;
    kMin = Math.min(kMin, k);
    kMax = Math.max(kMax, k);
  }
  return { count, meanHu: sum / count, centroid: c.map((v) => v / count), kRange: [kMin, kMax] };
}

describe('real CT: every format and orientation lands on the same canonical grid', { skip: skipWithoutSharedData }, () => {
  test('IRCADb-17: the 24 DICOM slices equal slices 76–99 of the LAS NIfTI, voxel for voxel, at the same z', async () => {
    const nifti = await readVolume(sharedPath('ircad17/ct.nii.gz'));
    const dicom = await readVolume(sharedPath('ircad17/dicom'));
    assert.equal(nifti.source.orientation, 'LAS');
    assert.equal(dicom.source.orientation, 'LPS');
    assert.deepEqual(dicom.dims, [512, 512, 24]);
    const perSlice = 512 * 512;
    const first = 76;
    let differing = 0;
    for (let p = 0; p < dicom.data.length; p++) if (nifti.data[first * perSlice + p] !== dicom.data[p]) differing++;
    assert.equal(differing, 0);
    for (const k of [0, 23]) assert.ok(Math.abs(sliceZMm(dicom, k) - sliceZMm(nifti, first + k)) < 1e-3);
    // In-plane axes agree in direction too, not only the voxels.
    for (const n of [0, 5, 10]) assert.ok(Math.abs(dicom.affineRas[n] - nifti.affineRas[n]) < 1e-4, `affine[${n}]`);
  });

  test('IRCADb-17 labels go through the same path: liver on the patient’s right, tumours at the documented slices', async () => {
    const ct = await readVolume(sharedPath('ircad17/ct.nii.gz'));
    const labels = await readVolume(sharedPath('ircad17/labels.nii.gz'));
    assert.deepEqual(labels.dims, ct.dims);
    assert.deepEqual(labels.affineRas, ct.affineRas);
    const liver = labelStats(ct, labels, 1);
    assert.ok(liver.meanHu > 40 && liver.meanHu < 200, `liver mean ${liver.meanHu} HU`);
    // i runs towards the patient's left, so the liver (patient right) has a low i; anterior means low j.
    assert.ok(liver.centroid[0] < 256, `liver centroid i ${liver.centroid[0]}`);
    assert.deepEqual(liver.kRange, [1, 113]);
    assert.deepEqual(labelStats(ct, labels, 2).kRange, [84, 113]);
    assert.deepEqual(labelStats(ct, labels, 3).kRange, [78, 105]);
    const bone = labelStats(ct, labels, 7);
    assert.ok(bone.meanHu > 200, `bone mean ${bone.meanHu} HU`);
    // The spine lies posterior to the liver.
    assert.ok(bone.centroid[1] > liver.centroid[1], 'bone posterior of liver');
  });

  test('JPEG 2000: frames decoded on the worker pool equal frames decoded in this thread', async () => {
    const { readFileSync: read } = await import('node:fs');
    const dir = sharedPath('totalseg/dicom');
    const { createRequire } = await import('node:module');
    const dicomParser = createRequire(import.meta.url)('dicom-parser') as typeof import('dicom-parser');
    const frames = readdirSync(dir).slice(0, 4).map((name) => {
      const dataSet = dicomParser.parseDicom(new Uint8Array(read(join(dir, name))));
      const element = dataSet.elements.x7fe00010;
      return dicomParser.readEncapsulatedPixelDataFromFragments(dataSet, element, 0, element.fragments!.length) as Uint8Array;
    });
    assert.equal(j2kThreadsFor(frames.length, 4, {}), 4, 'four cores give a pool of four');
    assert.equal(j2kThreadsFor(frames.length, 2, {}), 2, 'two cores give a pool of two');
    assert.equal(j2kThreadsFor(frames.length, 1, {}), 0, 'one core decodes in this thread');
    assert.equal(j2kThreadsFor(frames.length, 2, { MIR3D_DECODE_THREADS: '1' }), 0, 'unless told otherwise');
    assert.equal(j2kThreadsFor(1, 8, {}), 0, 'one frame is decoded in this thread');
    const pooled = await Promise.all(frames.map((f) => decodeJ2k(f, frames.length, 4)));
    for (const [n, f] of frames.entries()) {
      const here = await decodeJ2kHere(f);
      assert.deepEqual([pooled[n].width, pooled[n].height, pooled[n].componentCount], [512, 512, 1]);
      assert.ok(Buffer.from(pooled[n].bytes).equals(Buffer.from(here.bytes)), `frame ${n} differs`);
    }
    // OpenJPEG hands back an empty frame for bytes that are no codestream; the reader's size check refuses it.
    const garbage = await decodeJ2k(new Uint8Array(200).fill(7), 2, 4);
    assert.notEqual(garbage.width * garbage.height, 512 * 512);
  });

  test('TotalSegmentator: DICOM series and its NIfTI segmentation line up voxel for voxel', async () => {
    const ct = await readVolume(sharedPath('totalseg/dicom'));
    const seg = await readVolume(sharedPath('totalseg/example_seg_dicom.nii.gz'));
    assert.deepEqual(seg.dims, ct.dims);
    seg.affineRas.forEach((v, n) => assert.ok(Math.abs(v - ct.affineRas[n]) < 1e-3, `affine[${n}] ${v} vs ${ct.affineRas[n]}`));
    // Class ids from class_map_total_v2.json: 1 spleen, 5 liver, 69/70 vertebrae.
    const liver = labelStats(ct, seg, 5);
    const spleen = labelStats(ct, seg, 1);
    assert.ok(liver.meanHu > 40 && liver.meanHu < 150, `liver ${liver.meanHu}`);
    assert.ok(spleen.meanHu > 40 && spleen.meanHu < 150, `spleen ${spleen.meanHu}`);
    assert.ok(liver.centroid[0] < spleen.centroid[0], 'liver on the patient’s right of the spleen');
    assert.ok(labelStats(ct, seg, 69).meanHu > 300, 'vertebra is bone');
    // A segmentation shifted by one voxel would no longer fit: the liver's mean HU drops towards fat/air.
    let outside = 0;
    let inside = 0;
    for (let p = 0; p < seg.data.length; p++) if (seg.data[p] === 5) (ct.data[p] > -100 ? inside++ : outside++);
    assert.ok(outside / (inside + outside) < 0.01, `liver voxels outside soft tissue: ${outside}`);
  });

  test('TotalSegmentator: the 30-slice crop equals slices 82–111 of the full scan', async () => {
    const full = await readVolume(sharedPath('totalseg/example_ct.nii.gz'));
    const crop = await readVolume(sharedPath('totalseg/example_ct_sm.nii.gz'));
    assert.equal(full.source.storedDataType, 'int32');
    assert.ok(full.data instanceof Int16Array, 'integral HU kept as int16');
    const perSlice = full.dims[0] * full.dims[1];
    assert.deepEqual(Array.from(crop.data), Array.from(full.data.subarray(82 * perSlice, 112 * perSlice)));
  });

  test('LPS-stored NIfTI is already canonical', async () => {
    const aorta = await readVolume(sharedPath('totalseg/aorta_ct_cropped.nii.gz'));
    assert.equal(aorta.source.orientation, 'LPS');
    assert.deepEqual(aorta.spacingMm.map((s) => +s.toFixed(3)), [1.5, 1.5, 1.5]);
    assert.ok(sliceZMm(aorta, 1) > sliceZMm(aorta, 0), 'k runs superior');
  });

  test('DICOM slices are ordered by position, not by file name: renamed files give the same volume', async () => {
    const dir = join(work, 'shuffled');
    mkdirSync(dir);
    const source = sharedPath('ircad17/dicom');
    const names = readdirSync(source).sort();
    names.forEach((name, n) => copyFileSync(join(source, name), join(dir, `x${String(names.length - n).padStart(3, '0')}.dcm`)));
    writeFileSync(join(dir, 'README.txt'), 'exported by a viewer\n');
    const original = await readVolume(source);
    const shuffled = await readVolume(dir);
    assert.equal(canonicalInt16Sha256(shuffled), canonicalInt16Sha256(original));
    assert.equal(shuffled.source.skippedFiles, 1);
  });

  test('two series in one directory are listed, refused without a choice, and read by key', async () => {
    const dir = join(work, 'two-series');
    mkdirSync(dir);
    for (const [folder, prefix] of [['ircad17/dicom', 'a'], ['totalseg/dicom', 'b']] as const) {
      for (const name of readdirSync(sharedPath(folder))) copyFileSync(sharedPath(folder, name), join(dir, `${prefix}-${name}`));
    }
    const series = await listDicomSeries(dir);
    assert.deepEqual(series.map((s) => s.sliceCount), [24, 20]);
    const error = await rejectsWith(readVolume(dir), 'MULTIPLE_SERIES', dir);
    assert.ok(error.message.includes(series[0].seriesKey) && error.message.includes(series[1].seriesKey));
    const picked = await readVolume(dir, { seriesKey: series[1].seriesKey });
    assert.deepEqual(picked.dims, [512, 512, 20]);
    assert.equal(picked.source.seriesCount, 2);
    await rejectsWith(readVolume(dir, { seriesKey: 'ffffffffffff' }), 'SERIES_NOT_FOUND', dir);
  });

  test('GE head CT: 18.5° gantry tilt and uneven gaps are resampled onto a regular grid and reported', async () => {
    const head = await readVolume(sharedPath('ge-head-ct-dicom'));
    const tilt = head.corrections.find((c) => c.kind === 'gantry-tilt');
    const gaps = head.corrections.find((c) => c.kind === 'uneven-spacing');
    assert.ok(tilt && Math.abs(tilt.details.tiltDeg - 18.5) < 0.5, JSON.stringify(head.corrections));
    assert.ok(gaps && gaps.details.maxGapMm > gaps.details.minGapMm + 1, JSON.stringify(gaps));
    assert.equal(head.dims[2], gaps.details.slicesOut);
    for (let k = 1; k < head.dims[2]; k++) assert.ok(sliceZMm(head, k) > sliceZMm(head, k - 1), `z ascending at ${k}`);
    // Skull (bone) is present in the middle slice and air surrounds the head.
    const mid = Math.floor(head.dims[2] / 2);
    let bone = 0;
    for (let p = 0; p < 512 * 512; p++) if (head.data[mid * 512 * 512 + p] > 700) bone++;
    assert.ok(bone > 1000, `bone voxels in mid slice: ${bone}`);
    assert.ok(head.data[voxelIndex(head.dims, 2, 2, mid)] < -900, 'corner is air');
  });

  test('DICOM: files without pixel data, truncated files and non-DICOM folders fail with the folder named', async () => {
    const source = sharedPath('ircad17/dicom');
    const firstName = readdirSync(source).sort()[0];
    const bytes = readFileSync(join(source, firstName));
    // Cut each file just before the PixelData element (7FE0,0010 little-endian tag bytes).
    const tagAt = bytes.lastIndexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00]));
    assert.ok(tagAt > 132);
    const noPixels = join(work, 'no-pixels');
    mkdirSync(noPixels);
    writeFileSync(join(noPixels, 'a.dcm'), bytes.subarray(0, tagAt));
    await rejectsWith(readVolume(noPixels), 'NO_PIXEL_DATA', noPixels);

    const truncated = join(work, 'truncated-dicom');
    mkdirSync(truncated);
    writeFileSync(join(truncated, 'a.dcm'), bytes.subarray(0, tagAt + 5000));
    const error = await readVolume(truncated).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(error instanceof VolumeReadError, String(error));
    assert.ok(['TRUNCATED', 'SIZE_MISMATCH'].includes(error.code), error.message);

    const notDicom = join(work, 'not-dicom');
    mkdirSync(notDicom);
    writeFileSync(join(notDicom, 'a.txt'), 'hello');
    writeFileSync(join(notDicom, 'b.bin'), Buffer.alloc(4096, 7));
    await rejectsWith(readVolume(notDicom), 'NO_DICOM', notDicom);
  });
});

// ---------------------------------------------------------------------------------------------------
// Synthetic files built byte by byte: every orientation, data type and malformation.

/** Canonical test volume: 3 × 4 × 5 voxels whose value is their canonical index. */
const CANONICAL_DIMS = [3, 4, 5] as const;
const SPACING = [0.5, 0.75, 2];
const ORIGIN_RAS = [10, -20, 30];

/** Row-major 3×4 affine of the canonical grid: i towards Left (−x), j Posterior (−y), k Superior (+z). */
const CANONICAL_AFFINE = [-SPACING[0], 0, 0, ORIGIN_RAS[0], 0, -SPACING[1], 0, ORIGIN_RAS[1], 0, 0, SPACING[2], ORIGIN_RAS[2]];

/** The canonical volume stored with axes permuted (stored axis s = canonical axis perm[s]) and some
 * stored axes reversed: returns stored dims, stored values, and the stored sform. */
function storedVariant(perm: number[], flips: boolean[]): { dims: number[]; values: number[]; sform: number[] } {
  const dims = perm.map((c) => CANONICAL_DIMS[c]);
  const values: number[] = [];
  for (let s2 = 0; s2 < dims[2]; s2++)
    for (let s1 = 0; s1 < dims[1]; s1++)
      for (let s0 = 0; s0 < dims[0]; s0++) {
        const stored = [s0, s1, s2];
        const canonical = [0, 0, 0];
        perm.forEach((c, s) => (canonical[c] = flips[s] ? dims[s] - 1 - stored[s] : stored[s]));
        values.push(canonical[0] + 3 * (canonical[1] + 4 * canonical[2]));
      }
  // Stored voxel → world: column s is ±(canonical column perm[s]); a reversed axis starts at its far end.
  const sform = CANONICAL_AFFINE.slice();
  for (let row = 0; row < 3; row++) {
    let offset = CANONICAL_AFFINE[4 * row + 3];
    perm.forEach((c, s) => {
      const column = CANONICAL_AFFINE[4 * row + c];
      sform[4 * row + s] = flips[s] ? -column : column;
      if (flips[s]) offset += column * (dims[s] - 1);
    });
    sform[4 * row + 3] = offset;
  }
  return { dims, values, sform };
}

const PERMUTATIONS = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];

describe('NIfTI reader on synthetic files', () => {
  test('all 48 axis orders and flips give the same canonical voxels and affine', async () => {
    const expected = Array.from({ length: 60 }, (_, n) => n);
    for (const perm of PERMUTATIONS) {
      for (let mask = 0; mask < 8; mask++) {
        const flips = [0, 1, 2].map((b) => (mask & (1 << b)) !== 0);
        const variant = storedVariant(perm, flips);
        const path = writeTemp(rawNifti({ dims: variant.dims, datatype: 4, values: variant.values, pixdim: perm.map((c) => SPACING[c]) as [number, number, number], sform: variant.sform }));
        const volume = await readNifti(path);
        const label = `perm ${perm} flips ${flips}`;
        assert.deepEqual(volume.dims, [...CANONICAL_DIMS], label);
        assert.deepEqual(Array.from(volume.data), expected, label);
        CANONICAL_AFFINE.forEach((v, n) => assert.ok(Math.abs(volume.affineRas[n] - v) < 1e-5, `${label}: affine[${n}]`));
      }
    }
  });

  test('qform alone (180° about z: an LPS-stored scan) gives the same geometry as the sform', async () => {
    const values = Array.from({ length: 60 }, (_, n) => n);
    // Quaternion (b, c, d) = (0, 0, 1) rotates x → −x and y → −y: stored axes run Left, Posterior, Superior.
    const qform = { b: 0, c: 0, d: 1, offset: ORIGIN_RAS as [number, number, number] };
    const viaQ = await readNifti(writeTemp(rawNifti({ dims: [3, 4, 5], datatype: 4, values, pixdim: SPACING as [number, number, number], qform })));
    const viaS = await readNifti(writeTemp(rawNifti({ dims: [3, 4, 5], datatype: 4, values, pixdim: SPACING as [number, number, number], sform: CANONICAL_AFFINE })));
    assert.equal(viaQ.source.orientation, 'LPS');
    viaS.affineRas.forEach((v, n) => assert.ok(Math.abs(viaQ.affineRas[n] - v) < 1e-5, `affine[${n}]`));
    assert.deepEqual(Array.from(viaQ.data), values);
  });

  test('no transform at all falls back to nibabel’s Analyze default (x flipped, centred)', async () => {
    const volume = await readNifti(writeTemp(rawNifti({ dims: [3, 4, 5], datatype: 4, values: new Array(60).fill(1), pixdim: [1, 1, 1] })));
    assert.equal(volume.source.orientation, 'LAS');
    assert.deepEqual(volume.spacingMm, [1, 1, 1]);
  });

  test('every CT data type, scl_slope/scl_inter, big-endian and NIfTI-2 read to the same HU', async () => {
    const hu = [-1024, -1000, -5, 0, 40, 1023, 3071, -3];
    // With the canonical affine, stored order is canonical order, so values compare directly.
    const base: Omit<RawNiftiSpec, 'datatype' | 'values'> = { dims: [2, 2, 2], pixdim: [1, 1, 1], sform: CANONICAL_AFFINE };
    const cases: [string, RawNiftiSpec][] = [
      ['int16', { ...base, datatype: 4, values: hu }],
      ['int16 big-endian', { ...base, datatype: 4, values: hu, bigEndian: true }],
      ['int16 NIfTI-2', { ...base, datatype: 4, values: hu, version: 2 }],
      ['int32', { ...base, datatype: 8, values: hu }],
      ['float32', { ...base, datatype: 16, values: hu }],
      ['float64 big-endian NIfTI-2', { ...base, datatype: 64, values: hu, version: 2, bigEndian: true }],
      ['uint16 + intercept', { ...base, datatype: 512, values: hu.map((v) => v + 1024), sclSlope: 1, sclInter: -1024 }],
      ['uint8 × 16 − 1024', { ...base, datatype: 2, values: [0, 1, 63, 64, 66, 127, 255, 63], sclSlope: 16, sclInter: -1024 }],
    ];
    const expected = (spec: RawNiftiSpec): number[] => {
      const slope = spec.sclSlope ?? 1;
      const inter = spec.sclInter ?? 0;
      return Array.from(spec.values, (v) => v * slope + inter);
    };
    for (const [name, spec] of cases) {
      const volume = await readNifti(writeTemp(rawNifti(spec)));
      assert.deepEqual(Array.from(volume.data), expected(spec), name);
      assert.ok(volume.data instanceof Int16Array, `${name}: integral HU kept as int16`);
    }
    const fractional = await readNifti(writeTemp(rawNifti({ ...base, datatype: 4, values: hu, sclSlope: 0.5 })));
    assert.ok(fractional.data instanceof Float32Array, 'non-integral scaling gives float32');
    assert.deepEqual(Array.from(fractional.data), (hu.map((v) => v * 0.5)));
    const gz = await readNifti(writeTemp(gzipSync(rawNifti({ ...base, datatype: 4, values: hu })), 'x.nii.gz'));
    assert.deepEqual(Array.from(gz.data), (hu));
  });

  test('file type is told by bytes: a gzip file named .nii and a plain file named .nii.gz both read', async () => {
    const spec: RawNiftiSpec = { dims: [2, 2, 2], datatype: 4, values: [1, 2, 3, 4, 5, 6, 7, 8], sform: CANONICAL_AFFINE };
    const a = await readVolume(writeTemp(gzipSync(rawNifti(spec)), 'really-gzip.nii'));
    const b = await readVolume(writeTemp(rawNifti(spec), 'really-plain.nii.gz'));
    assert.deepEqual(Array.from(a.data), Array.from(b.data));
  });

  test('NaN voxels are refused by default and replaced when asked, with a correction recorded', async () => {
    const path = writeTemp(rawNifti({ dims: [2, 2, 2], datatype: 16, values: [0, 1, NaN, 3, 4, Infinity, -7, 8], sform: CANONICAL_AFFINE }));
    await rejectsWith(readNifti(path), 'NON_FINITE_VOXELS', path);
    const replaced = await readNifti(path, { nonFiniteVoxels: 'replace' });
    assert.equal(replaced.corrections[0].kind, 'non-finite-voxels');
    assert.equal(replaced.corrections[0].details.count, 2);
    assert.ok(Array.from(replaced.data).every(Number.isFinite));
    assert.equal(Math.min(...replaced.data), -7);
  });
});

describe('NIfTI reader on bad input: typed errors naming the file', () => {
  const good: RawNiftiSpec = { dims: [4, 4, 4], datatype: 4, values: new Array(64).fill(0), sform: CANONICAL_AFFINE };

  test('missing file, empty file, text file, .hdr/.img header, single DICOM file', async () => {
    const missing = join(work, 'missing.nii.gz');
    await rejectsWith(readVolume(missing), 'NOT_FOUND', missing);
    const empty = writeTemp(new Uint8Array(0));
    await rejectsWith(readVolume(empty), 'TRUNCATED', empty);
    const text = writeTemp(Buffer.from('not an image\n'.repeat(100)));
    await rejectsWith(readVolume(text), 'BAD_MAGIC', text);
    const pair = Buffer.from(rawNifti(good));
    pair.write('ni1\0', 344, 'latin1');
    const hdr = writeTemp(pair);
    const error = await rejectsWith(readVolume(hdr), 'BAD_MAGIC', hdr);
    assert.match(error.message, /\.hdr\/\.img/);
  });

  test('truncated and corrupt gzip', async () => {
    const gz = gzipSync(rawNifti({ ...good, values: Array.from({ length: 64 }, (_, n) => n * 37) }));
    const cut = writeTemp(gz.subarray(0, gz.length - 20), 'cut.nii.gz');
    await rejectsWith(readVolume(cut), 'TRUNCATED', cut);
    const corrupt = Buffer.from(gz);
    for (let n = 12; n < corrupt.length - 8; n++) corrupt[n] ^= 0x5a;
    const bad = writeTemp(corrupt, 'corrupt.nii.gz');
    await rejectsWith(readVolume(bad), 'CORRUPT_GZIP', bad);
  });

  test('data shorter than the header says', async () => {
    const bytes = rawNifti(good);
    const path = writeTemp(bytes.subarray(0, bytes.length - 10));
    const error = await rejectsWith(readVolume(path), 'SIZE_MISMATCH', path);
    assert.match(error.message, /64 voxels/);
  });

  test('zero, negative and absurd dimensions; 4D data; complex data; zero voxel size', async () => {
    for (const dims of [[0, 4, 4], [4, -2, 4], [100000, 4, 4]]) {
      const bytes = rawNifti(good);
      dims.forEach((d, n) => bytes.writeInt16LE(Math.max(-32768, Math.min(32767, d)), 42 + 2 * n));
      if (dims[0] === 100000) bytes.writeInt16LE(-1, 42);
      const path = writeTemp(bytes);
      await rejectsWith(readVolume(path), 'BAD_DIMENSIONS', path);
    }
    const fourD = writeTemp(rawNifti({ ...good, dims: [2, 2, 2, 8], values: new Array(64).fill(0) }));
    await rejectsWith(readVolume(fourD), 'NOT_3D', fourD);
    const complex = Buffer.from(rawNifti(good));
    complex.writeInt16LE(32, 70);
    const complexPath = writeTemp(complex);
    await rejectsWith(readVolume(complexPath), 'UNSUPPORTED_DATATYPE', complexPath);
    const zeroSpacing = writeTemp(rawNifti({ ...good, pixdim: [1, 0, 1], sform: undefined }));
    await rejectsWith(readVolume(zeroSpacing), 'BAD_HEADER', zeroSpacing);
  });
});
