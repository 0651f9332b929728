import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { encodeNifti, writeNifti, type WritableVolume } from '../src/io/nifti-writer.js';
import { orientationCode } from '../src/io/orientation.js';
import { readVolume } from '../src/io/read.js';
import type { Mat4, Vec3, Volume } from '../src/io/volume.js';
import { canonicalInt16Sha256 } from '../src/io/volume-stats.js';
import { sharedPath, skipWithoutSharedData } from './helpers/shared-data.js';

const dir = mkdtempSync(join(tmpdir(), 'mir3d-nifti-writer-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Canonical (i → L, j → P, k → S) grid with an off-centre origin, like a real scan. */
function lpsAffine(spacingMm: Vec3, originMm: Vec3): Mat4 {
  return [-spacingMm[0], 0, 0, originMm[0], 0, -spacingMm[1], 0, originMm[1], 0, 0, spacingMm[2], originMm[2], 0, 0, 0, 1];
}

function int16Volume(dims: Vec3, spacingMm: Vec3): Volume {
  const data = new Int16Array(dims[0] * dims[1] * dims[2]);
  // Values spanning the whole int16 range and differing voxel to voxel, so any reordering shows.
  for (let n = 0; n < data.length; n++) data[n] = ((n * 7919) % 65536) - 32768;
  return {
    data,
    dims,
    spacingMm,
    affineRas: lpsAffine(spacingMm, [112.5, 98.25, -301.75]),
    modality: 'CT',
    source: { path: 'memory', format: 'generated', orientation: 'LPS', storedDataType: 'int16' },
    corrections: [],
  };
}

function assertAffineClose(actual: Mat4, expected: Mat4, what: string): void {
  for (let n = 0; n < 16; n++) {
    // float32 keeps ~7 significant digits: compare relative to the number's size.
    const tolerance = 1e-5 * Math.max(1, Math.abs(expected[n]));
    assert.ok(Math.abs(actual[n] - expected[n]) <= tolerance, `${what}: affine[${n}] is ${actual[n]}, expected ${expected[n]}`);
  }
}

function assertSameVolume(read: Volume, written: WritableVolume, what: string): void {
  assert.deepEqual(read.dims, written.dims, `${what}: dims`);
  assertAffineClose(read.affineRas, written.affineRas, what);
  const spacing = [0, 1, 2].map((c) => Math.hypot(written.affineRas[c], written.affineRas[4 + c], written.affineRas[8 + c]));
  read.spacingMm.forEach((s, axis) => assert.ok(Math.abs(s - spacing[axis]) < 1e-5 * spacing[axis], `${what}: spacing ${s} vs ${spacing[axis]}`));
  assert.equal(read.data.length, written.data.length);
  for (let n = 0; n < read.data.length; n++) {
    if (read.data[n] !== written.data[n]) assert.fail(`${what}: voxel ${n} is ${read.data[n]}, written ${written.data[n]}`);
  }
}

/** The header (first 352 bytes) of a written file, gunzipped when needed. */
function headerOf(path: string): Buffer {
  const raw = readFileSync(path);
  return (raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw).subarray(0, 352);
}

describe('writeNifti round trip through readVolume', () => {
  test('int16 .nii.gz: identical voxels, dims, spacing and affine; header as specified', async () => {
    const volume = int16Volume([7, 5, 4], [0.7421875, 0.7421875, 1.6]);
    const path = join(dir, 'int16.nii.gz');
    assert.equal(await writeNifti(path, volume), path);
    const raw = readFileSync(path);
    assert.deepEqual([raw[0], raw[1]], [0x1f, 0x8b], 'a .gz path is gzip-compressed');
    const read = await readVolume(path);
    assert.ok(read.data instanceof Int16Array);
    assert.equal(read.source.format, 'nifti-1');
    assert.equal(read.source.storedDataType, 'int16');
    assert.equal(read.source.orientation, 'LPS');
    assertSameVolume(read, volume, 'int16');

    const h = headerOf(path);
    assert.equal(h.readInt32LE(0), 348);
    assert.equal(h.toString('latin1', 344, 348), 'n+1\0');
    assert.equal(h.readFloatLE(108), 352, 'vox_offset');
    assert.equal(h.readUInt8(123) & 0x07, 2, 'xyzt_units: mm');
    assert.equal(h.readInt16LE(252), 1, 'qform_code scanner');
    assert.equal(h.readInt16LE(254), 1, 'sform_code scanner');
    assert.deepEqual([1, 2, 3].map((n) => h.readFloatLE(76 + 4 * n)), [0.7421875, 0.7421875, Math.fround(1.6)], 'pixdim = spacing');
    assert.deepEqual([0, 1, 2, 3].map((n) => h.readInt16LE(40 + 2 * n)), [3, 7, 5, 4], 'dim');
  });

  test('float32 .nii: fractional values come back bit for bit, uncompressed', async () => {
    const dims: Vec3 = [6, 4, 3];
    const data = Float32Array.from({ length: 72 }, (_, n) => Math.fround(Math.sin(n) * 1234.5678 + n / 7));
    const volume: WritableVolume = { data, dims, affineRas: lpsAffine([1.25, 1.25, 3], [-10.5, 20.25, 5]) };
    const path = join(dir, 'float.nii');
    await writeNifti(path, volume);
    const raw = readFileSync(path);
    assert.equal(raw.length, 352 + 72 * 4, 'header, extension flag and voxels, nothing else');
    const read = await readVolume(path);
    assert.ok(read.data instanceof Float32Array);
    assert.equal(read.source.storedDataType, 'float32');
    assertSameVolume(read, volume, 'float32');
  });

  test('a label map stored as uint8 with the label intent', async () => {
    const dims: Vec3 = [5, 5, 3];
    const labels = Int16Array.from({ length: 75 }, (_, n) => (n * 37) % 10);
    const path = join(dir, 'labels.nii.gz');
    await writeNifti(path, { data: labels, dims, affineRas: lpsAffine([2, 2, 2], [0, 0, 0]) }, { dataType: 'uint8', intent: 'label' });
    const h = headerOf(path);
    assert.equal(h.readInt16LE(70), 2, 'datatype uint8');
    assert.equal(h.readInt16LE(72), 8, 'bitpix');
    assert.equal(h.readInt16LE(68), 1002, 'intent_code NIFTI_INTENT_LABEL');
    const read = await readVolume(path);
    assert.equal(read.source.storedDataType, 'uint8');
    assert.deepEqual(Array.from(read.data), Array.from(labels));

    const uint8 = Uint8Array.from(labels);
    await writeNifti(join(dir, 'labels-u8.nii'), { data: uint8, dims, affineRas: lpsAffine([2, 2, 2], [0, 0, 0]) });
    assert.deepEqual(Array.from((await readVolume(join(dir, 'labels-u8.nii'))).data), Array.from(labels));
  });

  test('values a narrower type cannot hold are refused, not wrapped', async () => {
    const bad = Int16Array.from([0, 1, 300, 2]);
    assert.throws(() => encodeNifti({ data: bad, dims: [4, 1, 1], affineRas: lpsAffine([1, 1, 1], [0, 0, 0]) }, { dataType: 'uint8' }), /300/);
    const fractional = Float32Array.from([0, 1.5, 2, 3]);
    assert.throws(() => encodeNifti({ data: fractional, dims: [4, 1, 1], affineRas: lpsAffine([1, 1, 1], [0, 0, 0]) }, { dataType: 'int16' }), /1\.5/);
    assert.throws(() => encodeNifti({ data: new Int16Array(5), dims: [2, 2, 1], affineRas: lpsAffine([1, 1, 1], [0, 0, 0]) }), /voxels/);
    assert.throws(() => encodeNifti({ data: new Int16Array(4), dims: [2, 2, 1], affineRas: [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1] }), /singular/);
  });

  for (const stored of ['LAS', 'RAS', 'LPI']) {
    test(`stored as ${stored}: the reader brings it back to the same canonical voxels and affine`, async () => {
      const volume = int16Volume([6, 5, 4], [0.9, 0.8, 2.5]);
      const path = join(dir, `stored-${stored}.nii.gz`);
      await writeNifti(path, volume, { storedOrientation: stored });
      const read = await readVolume(path);
      assert.equal(read.source.orientation, stored);
      assertSameVolume(read, volume, stored);
    });
  }

  test('storing in a permuted orientation is refused (only flips are supported)', () => {
    assert.throws(() => encodeNifti(int16Volume([3, 3, 3], [1, 1, 1]), { storedOrientation: 'SPL' }), /only axis flips/);
  });

  // The sform alone decides what nibabel and our reader see, so the qform is checked on its own:
  // sform_code is zeroed in the written bytes and the file read again.
  const qformCases: { name: string; affine: Mat4; stored?: string }[] = [
    { name: 'canonical LPS', affine: lpsAffine([0.75, 0.75, 2], [190, 170, -400]) },
    { name: 'left-handed LAS (qfac −1)', affine: lpsAffine([0.75, 0.75, 2], [190, 170, -400]), stored: 'LAS' },
    {
      name: 'oblique, 20° about z and 10° about x',
      affine: (() => {
        const [a, b] = [(20 * Math.PI) / 180, (10 * Math.PI) / 180];
        const rz = [[Math.cos(a), -Math.sin(a), 0], [Math.sin(a), Math.cos(a), 0], [0, 0, 1]];
        const rx = [[1, 0, 0], [0, Math.cos(b), -Math.sin(b)], [0, Math.sin(b), Math.cos(b)]];
        const r = rz.map((row) => [0, 1, 2].map((c) => row[0] * rx[0][c] + row[1] * rx[1][c] + row[2] * rx[2][c]));
        const s = [-1.5, -1.2, 3];
        return [...r[0].map((v, c) => v * s[c]), 12, ...r[1].map((v, c) => v * s[c]), -7, ...r[2].map((v, c) => v * s[c]), 33, 0, 0, 0, 1];
      })(),
    },
  ];
  for (const { name, affine, stored } of qformCases) {
    test(`qform alone gives the same affine: ${name}`, async () => {
      const volume: WritableVolume = { data: new Int16Array(4 * 3 * 2).map((_, n) => n), dims: [4, 3, 2], affineRas: affine };
      const path = join(dir, `qform-${name.replace(/\W+/g, '-')}.nii`);
      await writeNifti(path, volume, stored ? { storedOrientation: stored } : {});
      const bytes = readFileSync(path);
      bytes.writeInt16LE(0, 254);
      const qformOnly = join(dir, `qform-only-${name.replace(/\W+/g, '-')}.nii`);
      writeFileSync(qformOnly, bytes);
      const [withSform, withQform] = [await readVolume(path), await readVolume(qformOnly)];
      assertAffineClose(withQform.affineRas, withSform.affineRas, `qform (${name})`);
      assert.equal(orientationCode(withQform.affineRas), orientationCode(withSform.affineRas));
    });
  }

  test('a failed write leaves neither a half file nor a temp file behind', async () => {
    const parent = join(dir, 'atomic');
    mkdirSync(parent);
    // The target is a non-empty directory: the data is written, but renaming onto it fails.
    const target = join(parent, 'ct.nii.gz');
    mkdirSync(target);
    writeFileSync(join(target, 'keep'), 'x');
    await assert.rejects(writeNifti(target, int16Volume([4, 4, 4], [1, 1, 1])));
    assert.deepEqual(readdirSync(parent), ['ct.nii.gz'], 'only the pre-existing directory is left');
    await assert.rejects(writeNifti(join(dir, 'no-such-dir', 'ct.nii.gz'), int16Volume([4, 4, 4], [1, 1, 1])), /ENOENT/);

    // And a successful write replaces an existing file whole.
    const path = join(parent, 'replace.nii');
    writeFileSync(path, 'old contents');
    await writeNifti(path, int16Volume([4, 4, 4], [1, 1, 1]));
    assert.equal(readFileSync(path).length, 352 + 64 * 2);
    assert.deepEqual(readdirSync(parent).sort(), ['ct.nii.gz', 'replace.nii']);
  });
});

describe('writeNifti round trip of real CT', { skip: skipWithoutSharedData }, () => {
  for (const file of ['ircad17/ct.nii.gz', 'totalseg/example_ct.nii.gz']) {
    test(`${file}: same canonical voxels, grid and affine after write and read`, async () => {
      const original = await readVolume(sharedPath(file));
      const path = join(dir, `real-${file.replace(/\W+/g, '-')}`);
      await writeNifti(path, original, { gzipLevel: 1 });
      const copy = await readVolume(path);
      assert.equal(copy.data.constructor, original.data.constructor);
      assert.equal(canonicalInt16Sha256(copy), canonicalInt16Sha256(original));
      assertSameVolume(copy, original, file);
      assert.ok(existsSync(path));
    });
  }
});
