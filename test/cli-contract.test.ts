import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from './helpers/cli.js';
import { buildPhantomIndex, type PhantomIndex } from './helpers/phantom-index.js';

/**
 * The command-line error contract of issue 13 (item 10) on every example the issue names: one line (and
 * at most a hint), exit 2, no stack. And what the output says about ranges, scores and --approximate.
 */

let index: PhantomIndex;
let work: string;

before(async () => {
  index = await buildPhantomIndex({ count: 3 });
  work = mkdtempSync(join(tmpdir(), 'mir3d-contract-'));
});

after(async () => {
  await index?.cleanup();
});

function assertOneLine(args: string[], code: RegExp): void {
  const run = runCli(args, 60_000);
  assert.equal(run.status, 2, `${args.join(' ')}: exit ${run.status}\n${run.stderr}`);
  const lines = run.stderr.trim().split('\n');
  const message = lines.filter((line) => !line.startsWith('hint: '));
  assert.equal(message.length, 1, `${args.join(' ')}: ${run.stderr}`);
  assert.ok(lines.length <= 2, run.stderr);
  assert.ok(!/\n\s+at /.test(run.stderr) && !/unexpected error/.test(run.stderr), `no stack: ${run.stderr}`);
  assert.match(message[0], code);
}

describe('one line and exit 2 for every mistake the issue names', () => {
  test('search, index and eval mistakes', () => {
    const db = index.indexDir;
    const query = index.phantoms[0].path;
    assertOneLine(['search', query, '--db', db, '--fuse', 'volume-mean', '--fusion', 'nosuch'], /--fusion/);
    assertOneLine(['search', query, '--db', db, '--slices', '1:5', '--mm', '0:10'], /\[BAD_RANGE\]/);
    assertOneLine(['search', query, '--db', db, '--mask', query], /label.*\[BAD_RANGE\]/);
    assertOneLine(['index', query, '--db', join(work, 'x'), '--labels', join(work, 'missing.csv')], /missing\.csv.*\[BAD_LABELS\]/);
    assertOneLine(['search', query, '--db', query], /\[NOT_FOUND\]/);
    // A folder of scans that is not a dataset (the phantoms' own folder: subjects without segmentations).
    assertOneLine(['eval', index.dir, '--out', join(work, 'eval')], /\[BAD_DATASET\]|neither a Decathlon/);
    assertOneLine(['eval', 'devbench', '--out', join(work, 'devbench'), '--shared-data', join(work, 'no-shared-data')], /devbench needs the shared CT data/);
    const notCsv = join(work, 'not-a-dataset');
    writeFileSync(notCsv, 'hello');
    assertOneLine(['eval', notCsv, '--out', join(work, 'eval2')], /not-a-dataset/);
  });

  test('one rule for slice ranges: clamped to the volume, refused when none of it lies inside; one slice never clamped', () => {
    const db = index.indexDir;
    const query = index.phantoms[0].path;
    const clamped = runCli(['search', query, '--db', db, '--slices', '0:100000', '--top', '2', '--json'], 60_000);
    assert.equal(clamped.status, 0, clamped.stderr);
    const body = JSON.parse(clamped.stdout) as { query: { slices: number } };
    const whole = JSON.parse(runCli(['search', query, '--db', db, '--top', '2', '--json'], 60_000).stdout) as { query: { slices: number } };
    assert.equal(body.query.slices, whole.query.slices, 'a range reaching past the top is the volume up to its top');
    assertOneLine(['search', query, '--db', db, '--slices', '5000:6000'], /outside.*\[SLICE_OUT_OF_RANGE\]/);
    assertOneLine(['search', query, '--db', db, '--mm', '90000:91000'], /\[SLICE_OUT_OF_RANGE\]/);
    assertOneLine(['search', query, '--db', db, '--slice', '9999'], /\[SLICE_OUT_OF_RANGE\]/);
    const help = runCli(['search', '--help']);
    assert.match(help.stdout, /clamped to the volume/);
  });

  test('scores are explained per method; --approximate on a small archive says it was searched exactly', () => {
    const help = runCli(['search', '--help']);
    for (const method of ['slice-count', 'slice-sum', 'slice-max', 'volume-\\*', 'rerank', '--fuse … rrf', '--fuse … interleave']) assert.match(help.stdout, new RegExp(`\\n  ${method} `));
    const run = runCli(['search', index.phantoms[0].path, '--db', index.indexDir, '--approximate', '--top', '2'], 60_000);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /exact kNN \(--approximate: \d+ slices, below 32768, are searched exactly\)/);
    const json = runCli(['search', index.phantoms[0].path, '--db', index.indexDir, '--approximate', '--top', '2', '--json'], 60_000);
    assert.match((JSON.parse(json.stdout) as { searchedExactly?: string }).searchedExactly ?? '', /answered exactly/);
  });
});
