import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { after, describe, test } from 'node:test';
import type { VolumeInfo } from '../src/cli/info.js';
import { runCli } from './helpers/cli.js';
import { sharedPath, skipWithoutSharedData } from './helpers/shared-data.js';

function infoJson(path: string, ...extra: string[]): VolumeInfo {
  const run = runCli(['info', path, '--json', ...extra]);
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout) as VolumeInfo;
}

describe('mir3d info on real CT', { skip: skipWithoutSharedData }, () => {
  test('IRCADb-17 NIfTI: 512×512×119 at 0.743×0.743×1.6 mm, LAS on disk', () => {
    const info = infoJson(sharedPath('ircad17/ct.nii.gz'));
    assert.deepEqual(info.dims, [512, 512, 119]);
    info.spacingMm.forEach((s, axis) => assert.ok(Math.abs(s - [0.743, 0.743, 1.6][axis]) < 1e-4, `spacing ${s}`));
    assert.equal(info.sourceOrientation, 'LAS');
    assert.equal(info.canonicalOrientation, 'LPS');
    assert.equal(info.dataType, 'int16');
    assert.ok(info.intensity.min < -900 && info.intensity.max === 1023, JSON.stringify(info.intensity));
    assert.match(info.sha256Int16, /^[0-9a-f]{64}$/);
  });

  test('IRCADb-17 DICOM directory: one series, 24 slices, no patient identifiers in the output', () => {
    const run = runCli(['info', sharedPath('ircad17/dicom'), '--json']);
    assert.equal(run.status, 0, run.stderr);
    const info = JSON.parse(run.stdout) as VolumeInfo;
    assert.deepEqual(info.dims, [512, 512, 24]);
    assert.equal(info.format, 'dicom');
    assert.equal(info.seriesCount, 1);
    assert.equal(info.modality, 'CT');
    assert.doesNotMatch(run.stdout, /patient|birth|1\.2\.840\.|\d+\.\d+\.\d+\.\d+\.\d+\.\d+/i);
  });

  test('GE head CT: gantry tilt and uneven spacing are reported', () => {
    const info = infoJson(sharedPath('ge-head-ct-dicom'));
    const tilt = info.corrections.find((c) => c.kind === 'gantry-tilt');
    assert.ok(tilt, JSON.stringify(info.corrections));
    assert.ok(Math.abs(tilt.details.tiltDeg - 18.5) < 0.5, `tilt ${tilt.details.tiltDeg}`);
    const human = runCli(['info', sharedPath('ge-head-ct-dicom')]);
    assert.match(human.stdout, /gantry-tilt/);
  });

  test('the same scan hashes the same from a file stored in another orientation', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mir3d-cli-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const source = sharedPath('totalseg/example_ct_sm.nii.gz');
    const flippedPath = join(dir, 'flipped_i.nii.gz');
    writeFileSync(flippedPath, gzipSync(flipFirstAxis(gunzipSync(readFileSync(source)))));
    const original = infoJson(source);
    const flipped = infoJson(flippedPath);
    assert.equal(original.sourceOrientation, 'RAS');
    assert.equal(flipped.sourceOrientation, 'LAS');
    assert.equal(flipped.sha256Int16, original.sha256Int16);
    assert.notEqual(infoJson(sharedPath('totalseg/example_ct.nii.gz')).sha256Int16, original.sha256Int16);
  });
});

/** Reverses voxel axis 0 of a NIfTI-1 file with an sform, and its sform column, so the file describes
 * the same scan stored the other way round. Done on raw bytes to be independent of the reader. */
function flipFirstAxis(nifti: Buffer): Buffer {
  const out = Buffer.from(nifti);
  const [nx, ny, nz] = [out.readInt16LE(42), out.readInt16LE(44), out.readInt16LE(46)];
  const bytesPerVoxel = out.readInt16LE(72) / 8;
  const offset = out.readFloatLE(108);
  for (let row = 0; row < 3; row++) {
    const base = 280 + 16 * row;
    const column0 = out.readFloatLE(base);
    out.writeFloatLE(-column0, base);
    out.writeFloatLE(out.readFloatLE(base + 12) + column0 * (nx - 1), base + 12);
  }
  out.writeInt16LE(0, 252); // qform off, so the flipped sform alone defines the geometry
  for (let line = 0; line < ny * nz; line++) {
    for (let i = 0; i < nx; i++) {
      const from = offset + bytesPerVoxel * (line * nx + i);
      const to = offset + bytesPerVoxel * (line * nx + (nx - 1 - i));
      nifti.copy(out, to, from, from + bytesPerVoxel);
    }
  }
  return out;
}

describe('mir3d info on bad input', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mir3d-cli-bad-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const expectFailure = (path: string, code: RegExp): void => {
    const run = runCli(['info', path]);
    assert.equal(run.status, 2, `exit status for ${path}: ${run.status}\n${run.stderr}`);
    assert.ok(run.stderr.includes(path), `stderr names the path: ${run.stderr}`);
    assert.match(run.stderr, code);
    assert.doesNotMatch(run.stderr, /at .*\.js:\d+/, 'no stack trace for input errors');
  };

  test('missing path', () => expectFailure(join(dir, 'nope.nii.gz'), /NOT_FOUND/));

  test('a text file posing as NIfTI', () => {
    const path = join(dir, 'notes.nii');
    writeFileSync(path, 'this is not an image\n'.repeat(40));
    expectFailure(path, /BAD_MAGIC|UNKNOWN_FORMAT|BAD_HEADER/);
  });

  test('truncated gzip of a real scan', { skip: skipWithoutSharedData }, () => {
    const path = join(dir, 'cut.nii.gz');
    const bytes = readFileSync(sharedPath('totalseg/example_ct_sm.nii.gz'));
    writeFileSync(path, bytes.subarray(0, Math.floor(bytes.length / 2)));
    expectFailure(path, /TRUNCATED|CORRUPT_GZIP/);
  });

  test('empty directory', () => {
    const empty = mkdtempSync(join(dir, 'empty-'));
    expectFailure(empty, /EMPTY_DIRECTORY/);
  });
});
