import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { writeNifti } from '../src/io/nifti-writer.js';
import { generatePhantom } from '../src/synth/index.js';
import { openStore } from '../src/store/index.js';
import { runCli } from './helpers/cli.js';

/** `--labels` on the demo's own layout, where every scan is called ct.nii.gz in its own folder. */
describe('mir3d index --labels matches rows by path', () => {
  const work = mkdtempSync(join(tmpdir(), 'mir3d-labels-'));
  after(() => rmSync(work, { recursive: true, force: true }));
  const archive = join(work, 'archive');
  before(async () => {
    for (const [n, id] of ['phantom-01', 'phantom-02', 'phantom-03'].entries()) {
      mkdirSync(join(archive, id), { recursive: true });
      const { image } = generatePhantom({ seed: 70 + n, matrix: [40, 40], spacingMm: [9, 9, 6], coverage: 'abdomen' });
      await writeNifti(join(archive, id, 'ct.nii.gz'), image, { gzipLevel: 1 });
    }
  });

  test('each scan gets its own row; unmatched rows and unlabelled files are counted', () => {
    const csv = join(archive, 'labels.csv');
    writeFileSync(csv, 'path,cancer_flag,site\nphantom-01/ct.nii.gz,0,a\nphantom-02/ct.nii.gz,1,b\nphantom-09/ct.nii.gz,1,c\n');
    const db = join(work, 'db');
    const run = runCli(['index', archive, '--db', db, '--encoder', 'baseline', '--labels', csv, '--json', '--no-progress']);
    assert.equal(run.status, 0, run.stderr);
    const summary = JSON.parse(run.stdout) as { labels: { rows: number; unmatchedRows: string[]; sourcesWithoutRow: number } };
    assert.deepEqual(summary.labels, { rows: 3, unmatchedRows: ['phantom-09/ct.nii.gz'], sourcesWithoutRow: 1 });
    const store = openStore(db, { readOnly: true });
    const labelsOf = (id: string): Record<string, string | number> | undefined => store.listVolumes().find((v) => v.sourcePath === join(archive, id, 'ct.nii.gz'))?.labels;
    try {
      assert.deepEqual(labelsOf('phantom-01'), { cancer_flag: 0, site: 'a' });
      assert.deepEqual(labelsOf('phantom-02'), { cancer_flag: 1, site: 'b' });
      assert.deepEqual(labelsOf('phantom-03'), {});
    } finally {
      store.close();
    }
    const text = runCli(['index', archive, '--db', db, '--labels', csv, '--no-progress']);
    assert.match(text.stdout, /2 of 3 rows matched a volume of this run; 1 matched no file \(phantom-09\/ct\.nii\.gz\); 1 volume\(s\) had no row/);
  });

  test('a bare name that fits several files is refused before any index is made', () => {
    const csv = join(work, 'by-name.csv');
    writeFileSync(csv, 'name,cancer_flag\nct.nii.gz,1\n');
    const db = join(work, 'db-ambiguous');
    const run = runCli(['index', archive, '--db', db, '--encoder', 'baseline', '--labels', csv, '--no-progress']);
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /"ct\.nii\.gz" names 3 files.*\[BAD_LABELS\]$/m);
    assert.equal(run.stderr.trim().split('\n').length, 1);
    assert.equal(existsSync(db), false);
  });

  test('a labels file that does not exist: one line, exit 2', () => {
    const run = runCli(['index', archive, '--db', join(work, 'db-x'), '--labels', join(work, 'nope.csv'), '--no-progress']);
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /nope\.csv: no such file \[BAD_LABELS\]/);
  });
});
