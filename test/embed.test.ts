import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { EmbeddingsMetadata } from '../src/cli/embed.js';
import { embedVolume } from '../src/encode/embed-volume.js';
import { openEncoder } from '../src/encode/registry.js';
import { SliceFeeder } from '../src/encode/slice-feeder.js';
import { readNpyFloat32 } from '../src/io/npy.js';
import { writeNifti } from '../src/io/nifti-writer.js';
import { sliceZMm } from '../src/io/volume.js';
import { generatePhantom } from '../src/synth/index.js';
import { runCli } from './helpers/cli.js';
import { projectRoot } from './helpers/shared-data.js';
import { sharedPath, skipWithoutSharedData } from './helpers/shared-data.js';

const work = mkdtempSync(join(tmpdir(), 'mir3d-embed-'));
after(() => rmSync(work, { recursive: true, force: true }));

describe('embedVolume', () => {
  test('the worker thread and the main thread give the same vectors, in slice order, with their z', async () => {
    const { image } = generatePhantom({ seed: 5, matrix: [96, 96], coverage: 'liver' });
    const encoder = await openEncoder('baseline');
    const viaWorker = new SliceFeeder(true);
    const inline = new SliceFeeder(false);
    try {
      const sliceIndices = [30, 2, 17, 5, 40, 41];
      const a = await embedVolume(image, encoder, { feeder: viaWorker, sliceIndices, batchSize: 4 });
      const b = await embedVolume(image, encoder, { feeder: inline, sliceIndices, batchSize: 3 });
      assert.deepEqual(Array.from(a.sliceIndices), [2, 5, 17, 30, 40, 41]);
      assert.deepEqual(Array.from(a.vectors), Array.from(b.vectors));
      assert.deepEqual(Array.from(a.zMm), [2, 5, 17, 30, 40, 41].map((k) => sliceZMm(image, k)));
      for (let row = 0; row < 6; row++) {
        let norm = 0;
        for (let d = 0; d < a.dim; d++) norm += a.vectors[row * a.dim + d] ** 2;
        assert.ok(Math.abs(norm - 1) < 1e-5, `row ${row} norm ${norm}`);
      }
      // Adjacent slices are closer than distant ones even for the training-free baseline.
      const dot = (r: number, s: number): number => {
        let sum = 0;
        for (let d = 0; d < a.dim; d++) sum += a.vectors[r * a.dim + d] * a.vectors[s * a.dim + d];
        return sum;
      };
      assert.ok(dot(4, 5) > dot(0, 5), `adjacent ${dot(4, 5)} vs distant ${dot(0, 5)}`);
    } finally {
      await viaWorker.close();
      await inline.close();
      await encoder.close();
    }
  });
});

describe('mir3d embed', () => {
  test('writes a numpy-readable [slices, dim] array and its metadata for a phantom', async () => {
    const { image } = generatePhantom({ seed: 9, matrix: [64, 64], coverage: 'liver' });
    const ct = join(work, 'phantom.nii.gz');
    await writeNifti(ct, image);
    const out = join(work, 'out', 'phantom.npy');
    const run = runCli(['embed', ct, '--encoder', 'baseline', '--out', out, '--step', '5', '--json', '--no-progress']);
    assert.equal(run.status, 0, run.stderr);
    const printed = JSON.parse(run.stdout) as EmbeddingsMetadata;
    const metadata = JSON.parse(readFileSync(join(work, 'out', 'phantom.json'), 'utf8')) as EmbeddingsMetadata;
    assert.equal(printed.encoderId, metadata.encoderId);
    const { values, shape } = await readNpyFloat32(out);
    assert.deepEqual(shape, [metadata.count, metadata.dim]);
    assert.equal(values.length, metadata.count * 768);
    // One slice per 5 mm of a 2 mm-spaced phantom.
    const gaps = metadata.zMm.slice(1).map((z, n) => z - metadata.zMm[n]);
    assert.ok(gaps.every((g) => g >= 4 && g <= 6), `z gaps ${gaps.join(', ')}`);
    assert.equal(metadata.vectorsFile, 'phantom.npy');
    assert.match(metadata.source.sha256Int16, /^[0-9a-f]{64}$/);
  });

  test('two scans of one file name in different folders get their own outputs; an existing one needs --force', async () => {
    const root = join(work, 'layout');
    const scans = ['phantom-01', 'phantom-02'].map((folder) => join(root, folder, 'ct.nii.gz'));
    for (const [i, path] of scans.entries()) {
      mkdirSync(join(root, `phantom-0${i + 1}`), { recursive: true });
      await writeNifti(path, generatePhantom({ seed: 20 + i, matrix: [32, 32], coverage: 'liver' }).image);
    }
    const cwd = mkdtempSync(join(work, 'cwd-'));
    const embed = (path: string, ...extra: string[]) =>
      spawnSync(process.execPath, [join(projectRoot, 'dist/src/cli/main.js'), 'embed', path, '--encoder', 'baseline', '--step', '10', '--no-progress', ...extra], { cwd, encoding: 'utf8', timeout: 60_000 });
    for (const path of scans) assert.equal(embed(path).status, 0);
    const outputs = scans.map((path) => JSON.parse(readFileSync(path.replace(/\.nii\.gz$/, '.embeddings.json'), 'utf8')) as EmbeddingsMetadata);
    assert.deepEqual(outputs.map((m) => m.source.path), scans, 'each output describes its own scan');
    assert.notEqual(outputs[0].source.sha256Int16, outputs[1].source.sha256Int16);
    const firstNpy = scans[0].replace(/\.nii\.gz$/, '.embeddings.npy');
    const before = statSync(firstNpy).mtimeMs;
    const again = embed(scans[0]);
    assert.equal(again.status, 2, again.stderr);
    assert.equal(again.stderr.trim().split('\n').length, 1, again.stderr);
    assert.match(again.stderr, /exists.*--force.*\[OUTPUT_EXISTS\]/);
    assert.equal(statSync(firstNpy).mtimeMs, before, 'the existing output is untouched');
    assert.equal(embed(scans[0], '--force').status, 0);
    assert.equal(spawnSync('ls', [cwd], { encoding: 'utf8' }).stdout, '', 'nothing is written into the current folder');
  });

  test('a real CT with the default encoder; an unknown encoder fails before reading', { skip: skipWithoutSharedData }, async () => {
    const out = join(work, 'ts.npy');
    const run = runCli(['embed', sharedPath('totalseg/example_ct_sm.nii.gz'), '--out', out, '--no-progress'], 120_000);
    assert.equal(run.status, 0, run.stderr);
    const { shape } = await readNpyFloat32(out);
    assert.deepEqual(shape, [30, 1280]);
    const bad = runCli(['embed', join(work, 'missing.nii.gz'), '--encoder', 'nope']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /UNKNOWN_ENCODER/);
  });
});
