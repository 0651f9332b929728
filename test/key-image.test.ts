import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import type { VolumeInfo } from '../src/cli/info.js';
import { isVolumeReadError } from '../src/io/errors.js';
import { readVolume } from '../src/io/read.js';
import { writeNifti } from '../src/io/nifti-writer.js';
import { generatePhantom } from '../src/synth/index.js';
import { runCli } from './helpers/cli.js';
import { sharedPath, skipWithoutSharedData } from './helpers/shared-data.js';

const dir = mkdtempSync(join(tmpdir(), 'mir3d-key-image-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const WIDTH = 8;
const HEIGHT = 4;

/** Grey level of pixel (x, y): a ramp over 0…255 so every mapping is checked at many values. */
const greyAt = (x: number, y: number): number => Math.round(((y * WIDTH + x) * 255) / (WIDTH * HEIGHT - 1));

function writePng(name: string, options: { colorType: 0 | 2 | 6; bitDepth: 8 | 16; value: (x: number, y: number) => number }): string {
  const png = new PNG({ width: WIDTH, height: HEIGHT, colorType: options.colorType, inputColorType: options.colorType === 0 ? 0 : 6, bitDepth: options.bitDepth, inputHasAlpha: options.colorType !== 0 });
  const channels = options.colorType === 0 ? 1 : 4;
  const data = options.bitDepth === 16 ? new Uint16Array(WIDTH * HEIGHT * channels) : Buffer.alloc(WIDTH * HEIGHT * channels);
  for (let y = 0; y < HEIGHT; y++) {
    for (let x = 0; x < WIDTH; x++) {
      const p = (y * WIDTH + x) * channels;
      const v = options.value(x, y);
      for (let c = 0; c < Math.min(channels, 3); c++) data[p + c] = v;
      if (channels === 4) data[p + 3] = 255;
    }
  }
  png.data = data as unknown as Buffer;
  const path = join(dir, name);
  writeFileSync(path, PNG.sync.write(png, { colorType: options.colorType, inputColorType: options.colorType === 0 ? 0 : 6, bitDepth: options.bitDepth, inputHasAlpha: options.colorType !== 0 }));
  return path;
}

function pixel(volume: { data: ArrayLike<number>; dims: number[] }, x: number, y: number): number {
  return volume.data[x + volume.dims[0] * y];
}

describe('key images (PNG, JPEG) as one-slice volumes', () => {
  test('8-bit grey PNG without a window: grey levels kept as they are, intensity "display", spacing unknown', async () => {
    const path = writePng('grey8.png', { colorType: 0, bitDepth: 8, value: greyAt });
    const volume = await readVolume(path);
    assert.deepEqual(volume.dims, [WIDTH, HEIGHT, 1]);
    assert.equal(volume.intensity, 'display');
    assert.equal(volume.source.format, 'png');
    assert.equal(volume.source.pixelSpacingKnown, false);
    for (let y = 0; y < HEIGHT; y++) for (let x = 0; x < WIDTH; x++) assert.equal(pixel(volume, x, y), greyAt(x, y));
  });

  test('8-bit grey PNG with --hu-window LOW:HIGH: grey 0 → LOW, 255 → HIGH, linear between', async () => {
    const path = writePng('grey8-window.png', { colorType: 0, bitDepth: 8, value: greyAt });
    const volume = await readVolume(path, { huWindow: { lowHu: -1350, highHu: 150 }, pixelSpacingMm: 0.7 });
    assert.equal(volume.intensity, 'hu');
    assert.equal(pixel(volume, 0, 0), -1350);
    assert.equal(pixel(volume, WIDTH - 1, HEIGHT - 1), 150);
    for (let y = 0; y < HEIGHT; y++) {
      for (let x = 0; x < WIDTH; x++) assert.ok(Math.abs(pixel(volume, x, y) - (-1350 + (greyAt(x, y) * 1500) / 255)) <= 0.5);
    }
    assert.deepEqual(volume.spacingMm, [0.7, 0.7, 0.7]);
    assert.equal(volume.source.pixelSpacingKnown, true);
  });

  test('RGB(A) PNG: grey channels give the same values as a grey PNG', async () => {
    const path = writePng('rgb.png', { colorType: 6, bitDepth: 8, value: greyAt });
    const volume = await readVolume(path, { huWindow: { lowHu: -160, highHu: 240 } });
    for (let y = 0; y < HEIGHT; y++) {
      for (let x = 0; x < WIDTH; x++) assert.ok(Math.abs(pixel(volume, x, y) - (-160 + (greyAt(x, y) * 400) / 255)) <= 1);
    }
  });

  test('16-bit grey PNG: HU = value − 32768 by default (DeepLesion), or − --hu-offset', async () => {
    const hu = (x: number, y: number): number => -1024 + (y * WIDTH + x) * 100;
    const path = writePng('grey16.png', { colorType: 0, bitDepth: 16, value: (x, y) => hu(x, y) + 32768 });
    const volume = await readVolume(path);
    assert.equal(volume.intensity, 'hu');
    for (let y = 0; y < HEIGHT; y++) for (let x = 0; x < WIDTH; x++) assert.equal(pixel(volume, x, y), hu(x, y));
    const shifted = await readVolume(path, { huOffset: 32768 + 1000 });
    assert.equal(pixel(shifted, 0, 0), hu(0, 0) - 1000);
    await assert.rejects(readVolume(path, { huWindow: { lowHu: 0, highHu: 100 } }), (e: unknown) => isVolumeReadError(e) && e.code === 'UNSUPPORTED_DATATYPE');
  });

  test('JPEG (grey content): decoded within JPEG error of the source grey levels', async () => {
    const rgba = Buffer.alloc(64 * 64 * 4);
    for (let p = 0; p < 64 * 64; p++) rgba.fill(p % 64 < 32 ? 40 : 200, p * 4, p * 4 + 3), (rgba[p * 4 + 3] = 255);
    const path = join(dir, 'slice.jpg');
    writeFileSync(path, jpeg.encode({ width: 64, height: 64, data: rgba }, 95).data);
    const volume = await readVolume(path);
    assert.equal(volume.source.format, 'jpeg');
    assert.equal(volume.intensity, 'display');
    assert.ok(Math.abs(pixel(volume, 8, 8) - 40) <= 3, `left half ${pixel(volume, 8, 8)}`);
    assert.ok(Math.abs(pixel(volume, 56, 8) - 200) <= 3, `right half ${pixel(volume, 56, 8)}`);
  });

  test('bad images: one typed error naming the file, through the CLI with exit 2', async () => {
    const truncated = join(dir, 'truncated.png');
    const good = readFileSync(writePng('good.png', { colorType: 0, bitDepth: 8, value: greyAt }));
    writeFileSync(truncated, good.subarray(0, 40));
    await assert.rejects(readVolume(truncated), (e: unknown) => isVolumeReadError(e) && e.path === truncated);
    const badJpeg = join(dir, 'bad.jpg');
    writeFileSync(badJpeg, Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 5, 6]));
    await assert.rejects(readVolume(badJpeg), (e: unknown) => isVolumeReadError(e) && e.code === 'BAD_HEADER');
    const run = runCli(['info', truncated]);
    assert.equal(run.status, 2, run.stderr);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, /truncated\.png/);
  });
});

describe('key images through index, search and info', () => {
  test('a folder of 8-bit images gets the grey pass-through encoder; an HU volume is refused there', () => {
    const images = join(dir, 'images');
    mkdirSync(images);
    for (let n = 0; n < 4; n++) writePng(`images/slice-${n}.png`, { colorType: 0, bitDepth: 8, value: (x, y) => (greyAt(x, y) + n * 40) % 256 });
    const db = join(dir, 'db');
    const run = runCli(['index', images, '--db', db, '--encoder', 'baseline', '--no-progress', '--json']);
    assert.equal(run.status, 0, run.stderr);
    const summary = JSON.parse(run.stdout) as { added: number; encoderId: string };
    assert.equal(summary.added, 4);
    assert.match(summary.encoderId, /display,display,display/);
    assert.match(summary.encoderId, /full-fov/);
    const search = runCli(['search', join(images, 'slice-1.png'), '--db', db, '--method', 'slice-max', '--json', '--include-self']);
    assert.equal(search.status, 0, search.stderr);
    const results = (JSON.parse(search.stdout) as { results: { volumeId: string; score: number }[] }).results;
    assert.ok(results[0].score > 0.999, 'the image itself comes first');
    const windowed = runCli(['index', images, '--db', join(dir, 'db-hu'), '--encoder', 'baseline', '--hu-window', '-1350:150', '--no-progress', '--json']);
    assert.equal(windowed.status, 0, windowed.stderr);
    assert.doesNotMatch((JSON.parse(windowed.stdout) as { encoderId: string }).encoderId, /display/);
  });

  test('pictures beside CT volumes in a folder walk are left out and counted; a picture named on the command line is read', async () => {
    const mixed = join(dir, 'mixed');
    mkdirSync(mixed);
    const { image } = generatePhantom({ seed: 3, matrix: [32, 32], spacingMm: [10, 10, 5], coverage: 'abdomen' });
    await writeNifti(join(mixed, 'scan.nii.gz'), image, { gzipLevel: 1 });
    const preview = writePng('mixed/preview.png', { colorType: 0, bitDepth: 8, value: greyAt });
    const walked = runCli(['index', mixed, '--db', join(dir, 'db-mixed'), '--encoder', 'baseline', '--no-progress', '--json']);
    assert.equal(walked.status, 0, walked.stderr);
    const summary = JSON.parse(walked.stdout) as { added: number; failed: number; picturesIgnored: number };
    assert.deepEqual([summary.added, summary.failed, summary.picturesIgnored], [1, 0, 1]);
    const human = runCli(['index', mixed, '--db', join(dir, 'db-mixed'), '--no-progress']);
    assert.match(human.stdout, /1 picture\(s\) beside the scans ignored/);
    const named = runCli(['index', preview, join(mixed, 'scan.nii.gz'), '--db', join(dir, 'db-mixed'), '--no-progress']);
    assert.notEqual(named.status, 0, 'a named 8-bit picture cannot go into an HU index');
    assert.match(named.stdout + named.stderr, /preview\.png: .*INTENSITY_MISMATCH/);
  });

  test('info on a real COVID-CT key slice: grey levels, spacing unknown; with a window and spacing: HU', { skip: skipWithoutSharedData }, () => {
    const path = sharedPath('keyslices/covid-ct/images/covid_2020.01.24.919183-p27-132.png');
    if (!existsSync(path)) return;
    const plain = runCli(['info', path, '--json']);
    assert.equal(plain.status, 0, plain.stderr);
    const info = JSON.parse(plain.stdout) as VolumeInfo;
    assert.equal(info.intensityUnit, 'display');
    assert.equal(info.spacingKnown, false);
    assert.ok(info.intensity.min >= 0 && info.intensity.max <= 255);
    const windowed = JSON.parse(runCli(['info', path, '--json', '--hu-window', '-1350:150', '--pixel-spacing', '0.7']).stdout) as VolumeInfo;
    assert.equal(windowed.intensityUnit, 'hu');
    assert.equal(windowed.spacingKnown, true);
    assert.ok(windowed.intensity.min >= -1350 && windowed.intensity.max <= 150);
    assert.ok(Math.abs(windowed.intensity.mean - (-1350 + (info.intensity.mean * 1500) / 255)) < 1);
  });

  test('a real IQ-OTH/NCCD JPEG reads as a 512×512 one-slice volume', { skip: skipWithoutSharedData }, async () => {
    const path = sharedPath('keyslices/iq-othnccd/images/Bengin_case_1_.jpg');
    if (!existsSync(path)) return;
    const volume = await readVolume(path);
    assert.deepEqual(volume.dims, [512, 512, 1]);
    assert.equal(volume.source.format, 'jpeg');
  });
});
