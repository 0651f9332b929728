import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { demoPlan } from '../src/synth/demo-plan.js';
import { writeNifti } from '../src/io/nifti-writer.js';
import { generatePhantom, LABEL } from '../src/synth/index.js';
import { openStore, type Store } from '../src/store/index.js';
import { runCli } from './helpers/cli.js';
import { projectRoot, sharedPath, skipWithoutSharedData } from './helpers/shared-data.js';

/**
 * `mir3d index` and `mir3d search` as a user runs them: phantom archives with the training-free encoder
 * (fast), a SIGKILLed indexer, and real CT with the default encoder.
 */

const work = mkdtempSync(join(tmpdir(), 'mir3d-index-search-'));
after(() => rmSync(work, { recursive: true, force: true }));

interface IndexJson {
  added: number;
  unchanged: number;
  failed: number;
  outcomes: { status: string; source: { path: string }; volumeId?: string; reason?: string }[];
  index: { volumes: number; slices: number };
}

interface SearchJson {
  query: { slices: number; volumeId?: string };
  results: { rank: number; volumeId: string; score: number; region?: { firstSlice: number; lastSlice: number; zStartMm: number; zEndMm: number }; source?: string; labels?: Record<string, string | number> }[];
}

/** Writes demo-plan phantoms (small matrix) as <dir>/phantom-XX/ct.nii.gz + labels.nii.gz. */
async function writePhantoms(dir: string, count: number, seed: number): Promise<string[]> {
  const paths: string[] = [];
  for (const { id, options } of demoPlan(count, seed)) {
    const phantom = generatePhantom({ ...options, matrix: [64, 64], spacingMm: [6, 6, options.spacingMm?.[2] ?? 2.5] });
    mkdirSync(join(dir, id), { recursive: true });
    await writeNifti(join(dir, id, 'ct.nii.gz'), phantom.image, { gzipLevel: 1 });
    await writeNifti(join(dir, id, 'labels.nii.gz'), phantom.labels, { dataType: 'uint8', intent: 'label', gzipLevel: 1 });
    paths.push(join(dir, id, 'ct.nii.gz'));
  }
  return paths;
}

describe('mir3d index and search on a phantom archive', () => {
  const archive = join(work, 'archive');
  const db = join(work, 'db');
  let phantoms: string[] = [];
  before(async () => {
    phantoms = await writePhantoms(archive, 6, 3);
    // One broken file among them: it must be reported and must not stop the run.
    writeFileSync(join(archive, 'broken.nii.gz'), readFileSync(phantoms[0]).subarray(0, 2000));
  });

  test('indexes a folder, reports the bad file, and a rerun changes nothing', () => {
    const first = runCli(['index', archive, '--db', db, '--encoder', 'baseline', '--label', 'site=demo', '--json', '--no-progress']);
    assert.equal(first.status, 1, 'exit 1 when a file failed');
    const summary = JSON.parse(first.stdout) as IndexJson;
    assert.equal(summary.added, 6);
    assert.equal(summary.failed, 1);
    const broken = summary.outcomes.find((o) => o.status === 'failed');
    assert.ok(broken?.source.path.endsWith('broken.nii.gz'));
    assert.match(broken?.reason ?? '', /TRUNCATED|CORRUPT_GZIP/);
    assert.equal(summary.index.volumes, 6);
    // labels.nii.gz files are masks and left out.
    assert.ok(summary.outcomes.every((o) => !o.source.path.endsWith('labels.nii.gz')));

    rmSync(join(archive, 'broken.nii.gz'));
    const again = runCli(['index', archive, '--db', db, '--json', '--no-progress']);
    assert.equal(again.status, 0, again.stderr);
    const second = JSON.parse(again.stdout) as IndexJson;
    assert.deepEqual([second.added, second.unchanged, second.failed], [0, 6, 0]);
    assert.equal(second.index.slices, summary.index.slices);
  });

  test('a changed file replaces its old entry instead of adding a second one', async () => {
    const target = phantoms[1];
    const before = openStore(db, { readOnly: true });
    const oldId = before.listVolumes().find((v) => v.sourcePath === target)?.volumeId;
    before.close();
    assert.ok(oldId);
    const { image } = generatePhantom({ seed: 999, matrix: [64, 64], spacingMm: [6, 6, 2.5], coverage: 'abdomen' });
    await writeNifti(target, image, { gzipLevel: 1 });
    const run = runCli(['index', archive, '--db', db, '--json', '--no-progress']);
    assert.equal(run.status, 0, run.stderr);
    const summary = JSON.parse(run.stdout) as IndexJson;
    assert.equal(summary.added, 1);
    const store = openStore(db, { readOnly: true });
    const entries = store.listVolumes().filter((v) => v.sourcePath === target);
    store.close();
    assert.equal(entries.length, 1);
    assert.notEqual(entries[0].volumeId, oldId);
    assert.equal(entries[0].labels.site, 'demo', 'the replaced entry’s labels carry over');
  });

  test('search by a liver slab (mask label) localizes the liver in the other phantoms', () => {
    const query = phantoms[4]; // the 'liver' coverage plan with two lesions
    const run = runCli(['search', query, '--db', db, '--mask', join(query, '..', 'labels.nii.gz'), '--label', String(LABEL.liver), '--json']);
    assert.equal(run.status, 0, run.stderr);
    const result = JSON.parse(run.stdout) as SearchJson;
    assert.ok(result.query.volumeId, 'the query file is indexed, so it is recognised');
    assert.ok(result.results.length >= 3);
    assert.ok(result.results.every((r) => r.volumeId !== result.query.volumeId), 'own volume excluded');
    for (const r of result.results) assert.ok(r.region && r.region.firstSlice <= r.region.lastSlice, `region of ${r.volumeId}`);
    const table = runCli(['search', query, '--db', db, '--slices', '10:40', '--method', 'slice-count', '--top', '3']);
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /rank\s+volume\s+score\s+localized region/);
    assert.equal(table.stdout.trim().split('\n').filter((line) => /^\s+\d+\s+v[0-9a-f]{12}/.test(line)).length, 3);
  });

  test('search by an indexed id, with filters and fusion; errors are one clear line', () => {
    const store = openStore(db, { readOnly: true });
    const ids = store.listVolumes().map((v) => v.volumeId);
    store.close();
    const run = runCli(['search', ids[0], '--db', db, '--method', 'volume-mean', '--fuse', 'rerank', '--fusion', 'interleave', '--where', 'site=demo', '--json']);
    assert.equal(run.status, 0, run.stderr);
    const result = JSON.parse(run.stdout) as SearchJson;
    assert.ok(result.results.length > 0);
    assert.ok(result.results.every((r) => r.labels?.site === 'demo'));
    const nothing = runCli(['search', ids[0], '--db', db, '--where', 'site=elsewhere', '--json']);
    assert.equal(nothing.status, 0, nothing.stderr);
    assert.equal((JSON.parse(nothing.stdout) as SearchJson).results.length, 0);
    const badRange = runCli(['search', ids[0], '--db', db, '--slice', '100000']);
    assert.equal(badRange.status, 2);
    assert.match(badRange.stderr, /SLICE_OUT_OF_RANGE/);
    const noIndex = runCli(['search', ids[0], '--db', join(work, 'nowhere')]);
    assert.equal(noIndex.status, 2);
    assert.match(noIndex.stderr, /NOT_FOUND/);
    const otherEncoder = runCli(['index', archive, '--db', db, '--encoder', 'mobilenet_v2', '--no-progress']);
    assert.equal(otherEncoder.status, 2);
    assert.match(otherEncoder.stderr, /ENCODER_MISMATCH/);
  });
});

describe('mir3d index killed with SIGKILL', () => {
  test('at random moments, each reopening is consistent and a rerun completes the archive', { timeout: 120_000 }, async () => {
    const archive = join(work, 'crash-archive');
    const db = join(work, 'crash-db');
    await writePhantoms(archive, 8, 11);
    let seed = 12345;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const kills = 5;
    let killedMidway = 0;
    for (let n = 0; n < kills; n++) {
      // The learned encoder takes a second or two per phantom, so kills land while volumes are being
      // embedded and written, not only between runs.
      const child = spawn(process.execPath, [join(projectRoot, 'dist/src/cli/main.js'), 'index', archive, '--db', db, '--encoder', 'mobilenet_v2', '--no-progress'], { stdio: 'ignore' });
      const delayMs = 1200 + random() * 2500;
      let killed = false;
      const timer = setTimeout(() => {
        killed = true;
        child.kill('SIGKILL');
      }, delayMs);
      // Wait for the exit itself (not only the kill) so that the next run does not meet a dying writer.
      await new Promise<void>((resolve) => child.on('exit', () => resolve()));
      clearTimeout(timer);
      const exited = !killed;
      if (!exited) killedMidway++;
      await new Promise((resolve) => setTimeout(resolve, 50));
      // Opened inside the try: a kill before the index was created leaves nothing to open (NOT_FOUND below).
      let store: Store | undefined;
      try {
        store = openStore(db, { readOnly: true });
        const records = store.listVolumes();
        assert.equal(new Set(records.map((r) => r.contentSha256)).size, records.length, 'no duplicate content');
        assert.equal(new Set(records.map((r) => r.sourcePath)).size, records.length, 'no duplicate source');
        const vectors = store.getVectors(records.map((r) => r.volumeId));
        for (const record of records) {
          const v = vectors.get(record.volumeId);
          assert.ok(v, `vectors of ${record.volumeId}`);
          assert.equal(v.sliceIndices.length, record.sliceCount, 'complete volume');
          assert.equal(v.vectors.length, record.sliceCount * store.dim);
          assert.ok(store.pooledVector(record.volumeId, 'mean'), 'pooled vectors present');
        }
        assert.equal(store.stats().slices, records.reduce((sum, r) => sum + r.sliceCount, 0));
      } catch (error) {
        // The index may not exist yet when the kill came before its creation.
        if (!(error instanceof Error && ((error as { code?: string }).code === 'NOT_FOUND' || /NOT_FOUND/.test(error.message)))) throw error;
      } finally {
        store?.close();
      }
    }
    assert.ok(killedMidway >= 2, `only ${killedMidway} of ${kills} runs were killed before finishing`);
    const rerun = runCli(['index', archive, '--db', db, '--json', '--no-progress']);
    assert.equal(rerun.status, 0, rerun.stderr);
    const summary = JSON.parse(rerun.stdout) as IndexJson;
    assert.equal(summary.added + summary.unchanged, 8);
    assert.equal(summary.index.volumes, 8);
  });
});

describe('retrieval on real CT with the default encoder', { skip: skipWithoutSharedData }, () => {
  const db = join(work, 'real-db');
  const phantomDir = join(work, 'real-phantoms');
  before(async () => {
    await writePhantoms(phantomDir, 3, 5);
    const run = runCli(
      ['index', sharedPath('ircad17/ct.nii.gz'), sharedPath('totalseg/example_ct.nii.gz'), sharedPath('totalseg/example_ct_sm.nii.gz'), sharedPath('totalseg/dicom'), sharedPath('ge-head-ct-dicom'), phantomDir, '--db', db, '--json', '--no-progress'],
      300_000,
    );
    assert.equal(run.status, 0, run.stderr);
  });

  test('an IRCADb-17 liver slab finds the abdominal scans before the head CT and localizes the liver', () => {
    const run = runCli(['search', sharedPath('ircad17/ct.nii.gz'), '--db', db, '--mask', sharedPath('ircad17/labels.nii.gz'), '--label', '1', '--top', '10', '--json'], 120_000);
    assert.equal(run.status, 0, run.stderr);
    const { results } = JSON.parse(run.stdout) as SearchJson;
    const rankOf = (suffix: string): number => results.find((r) => r.source?.endsWith(suffix))?.rank ?? Infinity;
    const head = rankOf('ge-head-ct-dicom');
    for (const abdominal of ['totalseg/example_ct.nii.gz', 'totalseg/example_ct_sm.nii.gz']) {
      assert.ok(rankOf(abdominal) < head, `${abdominal} (rank ${rankOf(abdominal)}) before the head CT (rank ${head})`);
    }
    // TotalSegmentator's full scan: its 30-slice crop (slices 82–111) is liver on every slice
    // (example_seg.nii.gz, class 5), and the scan runs on down to the pelvis at slice 0.
    const full = results.find((r) => r.source?.endsWith('totalseg/example_ct.nii.gz'));
    assert.ok(full?.region, 'the full TotalSegmentator scan is retrieved with a region');
    const { firstSlice, lastSlice } = full.region;
    const inLiver = Math.max(0, Math.min(lastSlice, 111) - Math.max(firstSlice, 82) + 1);
    assert.ok(inLiver / (lastSlice - firstSlice + 1) >= 0.5, `region ${firstSlice}–${lastSlice}: ${inLiver} slices in the known liver 82–111`);
    assert.ok(firstSlice >= 55, `region ${firstSlice}–${lastSlice} stays above the lower abdomen and pelvis`);
    // The crop itself is liver on every slice: the region lies inside it by construction, and covers most of it.
    const crop = results.find((r) => r.source?.endsWith('totalseg/example_ct_sm.nii.gz'));
    assert.ok(crop?.region && crop.region.lastSlice - crop.region.firstSlice + 1 >= 15, JSON.stringify(crop?.region));
  });
});
