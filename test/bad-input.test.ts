import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { writeNifti } from '../src/io/nifti-writer.js';
import { generatePhantom } from '../src/synth/index.js';
import { openStore } from '../src/store/index.js';
import { HEADER_DEFECTS, RESOURCE_DEFECTS, writeCorpus, type BadInput } from './helpers/bad-inputs.js';
import { runCli, runCliMeasured } from './helpers/cli.js';
import { sharedPath, skipWithoutSharedData } from './helpers/shared-data.js';

/**
 * The bad-input corpus through every door: each input gets one typed line, no stack, within bounded
 * time (and, for inputs that cost memory in a careless reader, bounded peak memory of the child
 * process); good files beside them are indexed and the index stays consistent.
 */

const work = mkdtempSync(join(tmpdir(), 'mir3d-bad-input-'));
after(() => rmSync(work, { recursive: true, force: true }));

const STACK_LINE = /^\s+at .+[:(]\d+/m;
const TIME_BOUND_MS = 10_000;
/** The CLI's own footprint is ~100–200 MB; the bomb inflates to 1.5 GiB, /dev/zero to anything. */
const RSS_BOUND_BYTES = 400 * 1024 * 1024;
const CORPUS: BadInput[] = [...HEADER_DEFECTS, ...RESOURCE_DEFECTS];

function assertOneTypedLine(stderr: string, path: string, code: RegExp): void {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line, got:\n${stderr}`);
  assert.ok(lines[0].includes(path), `names the file: ${lines[0]}`);
  assert.match(lines[0], code);
  assert.match(lines[0], /\[[A-Z_]+\]$/, 'ends with the error code');
  assert.doesNotMatch(stderr, STACK_LINE, 'no stack trace');
}

/** A real DICOM series (linked, not copied) with a link to /dev/zero among its files. */
function dicomWithDevZero(dir: string): string {
  mkdirSync(dir);
  const source = sharedPath('ircad17/dicom');
  for (const name of readdirSync(source)) symlinkSync(join(source, name), join(dir, name));
  symlinkSync('/dev/zero', join(dir, 'image_zero'));
  return dir;
}

describe('bad input through mir3d info', () => {
  const dir = join(work, 'info');
  before(() => {
    mkdirSync(dir);
    writeCorpus(dir, CORPUS);
  });
  for (const input of CORPUS) {
    test(`${input.name}: one typed line, exit 2, under 10 s and 400 MB`, () => {
      const path = join(dir, input.file);
      const run = runCliMeasured(['info', path], TIME_BOUND_MS);
      assert.ok(run.wallMs < TIME_BOUND_MS, `bounded time: ${run.wallMs} ms`);
      assert.equal(run.status, 2, run.stderr);
      assertOneTypedLine(run.stderr, path, input.code);
      assert.ok(run.peakRssBytes < RSS_BOUND_BYTES, `peak RSS ${(run.peakRssBytes / 2 ** 20).toFixed(0)} MB`);
    });
  }

  test('a DICOM series with a link to /dev/zero among its files: read without it, bounded', { skip: skipWithoutSharedData }, () => {
    const series = dicomWithDevZero(join(work, 'dicom-zero-info'));
    const run = runCliMeasured(['info', series, '--json'], TIME_BOUND_MS);
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual((JSON.parse(run.stdout) as { dims: number[] }).dims, [512, 512, 24]);
    assert.ok(run.wallMs < TIME_BOUND_MS, `bounded time: ${run.wallMs} ms`);
    assert.ok(run.peakRssBytes < RSS_BOUND_BYTES, `peak RSS ${(run.peakRssBytes / 2 ** 20).toFixed(0)} MB`);
  });
});

interface IndexJson {
  added: number;
  failed: number;
  outcomes: { status: string; source: { path: string }; reason?: string }[];
  discoveryProblems: { path: string; reason: string }[];
}

describe('bad input mixed with good files in one folder through mir3d index', () => {
  const archive = join(work, 'archive');
  const db = join(work, 'db');
  const good: string[] = [];
  before(async () => {
    mkdirSync(archive);
    for (let n = 0; n < 3; n++) {
      const { image } = generatePhantom({ seed: 40 + n, matrix: [48, 48], spacingMm: [8, 8, 5], coverage: 'abdomen' });
      const path = join(archive, `good-${n}.nii.gz`);
      await writeNifti(path, image, { gzipLevel: 1 });
      good.push(path);
    }
    writeCorpus(archive, CORPUS);
    if (existsSync(sharedPath('ircad17/dicom'))) {
      good.push(dicomWithDevZero(join(archive, 'series')));
    }
  });

  test('every bad file is reported with its code, the run goes on, good files are indexed, the index is consistent', () => {
    const run = runCliMeasured(['index', archive, '--db', db, '--encoder', 'baseline', '--json', '--no-progress'], 120_000);
    assert.equal(run.status, 1, `exit 1: not everything named was indexed\n${run.stderr}`);
    assert.doesNotMatch(run.stderr, STACK_LINE);
    assert.ok(run.peakRssBytes < RSS_BOUND_BYTES + 300 * 1024 * 1024, `peak RSS ${(run.peakRssBytes / 2 ** 20).toFixed(0)} MB`);
    const summary = JSON.parse(run.stdout) as IndexJson;
    assert.equal(summary.added, good.length);
    const reasons = new Map<string, string>([
      ...summary.outcomes.filter((o) => o.status === 'failed').map((o): [string, string] => [o.source.path, o.reason ?? '']),
      ...summary.discoveryProblems.map((p): [string, string] => [p.path, p.reason]),
    ]);
    for (const input of CORPUS) {
      const reason = reasons.get(join(archive, input.file));
      assert.ok(reason !== undefined, `${input.name} is reported`);
      assert.match(reason, input.code, input.name);
      assert.doesNotMatch(reason, /\n/);
    }
    const store = openStore(db, { readOnly: true });
    try {
      const records = store.listVolumes();
      assert.deepEqual(records.map((r) => r.sourcePath).sort(), [...good].sort());
      assert.equal(store.stats().slices, records.reduce((sum, r) => sum + r.sliceCount, 0));
      const vectors = store.getVectors(records.map((r) => r.volumeId));
      for (const r of records) assert.equal(vectors.get(r.volumeId)?.sliceIndices.length, r.sliceCount, `${r.volumeId} whole`);
    } finally {
      store.close();
    }
  });

  test('a missing path or a folder with no volume is an error and creates no index', () => {
    const missingDb = join(work, 'never-created');
    const missing = runCli(['index', join(work, 'no-such-folder'), '--db', missingDb, '--encoder', 'baseline', '--no-progress']);
    assert.equal(missing.status, 2, missing.stderr);
    assert.match(missing.stderr, /NOTHING_TO_INDEX/);
    assert.match(missing.stderr, /no-such-folder: no such file or directory/);
    assert.equal(existsSync(missingDb), false, 'no index created');
    const empty = join(work, 'empty-folder');
    mkdirSync(empty);
    const none = runCli(['index', empty, '--db', missingDb, '--encoder', 'baseline', '--no-progress']);
    assert.equal(none.status, 2, none.stderr);
    assert.match(none.stderr, /NO_VOLUMES/);
    assert.equal(existsSync(missingDb), false, 'no index created');
    assert.equal(none.stderr.trim().split('\n').length, 1);
  });

  test('a bad file named on the command line is reported and the exit status says so', () => {
    const named = join(archive, 'photo.nii.gz');
    const run = runCli(['index', named, good[0], '--db', db, '--json', '--no-progress']);
    assert.equal(run.status, 1, run.stderr);
    const summary = JSON.parse(run.stdout) as IndexJson;
    assert.match(summary.outcomes.find((o) => o.source.path === named)?.reason ?? '', /BAD_HEADER/);
  });
});
