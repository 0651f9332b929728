import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { writeNifti } from '../src/io/nifti-writer.js';
import { readVolume } from '../src/io/read.js';
import { isMir3dError } from '../src/errors.js';
import { parseSliceTarget, SLICE_PRESENT, sliceLabelsFromMasks } from '../src/labels/slice-targets.js';
import { maskLabelExtent } from '../src/query/range.js';
import { loadSpace } from '../src/space/persist.js';
import { openStore } from '../src/store/index.js';
import { generatePhantom } from '../src/synth/index.js';
import { runCli } from './helpers/cli.js';
import { sharedPath, skipWithoutSharedData } from './helpers/shared-data.js';

/** The one line a bad input gives (ends in its code in brackets), and exit 2. */
function assertOneLineError(run: ReturnType<typeof runCli>, code: string, mentions?: string): void {
  assert.equal(run.status, 2, `${run.stdout}\n${run.stderr}`);
  const lines = run.stderr.trim().split('\n').filter((l) => l.startsWith('mir3d:'));
  assert.equal(lines.length, 1, run.stderr);
  assert.match(lines[0], new RegExp(`\\[${code}\\]$`), run.stderr);
  if (mentions) assert.ok(lines[0].includes(mentions), lines[0]);
}

describe('per-slice targets from masks on a real CT (3D-IRCADb-01 patient 17)', { skip: skipWithoutSharedData }, () => {
  const root = mkdtempSync(join(tmpdir(), 'mir3d-slice-targets-'));
  const db = join(root, 'idx');
  const ct = sharedPath('ircad17/ct.nii.gz');
  const labels = sharedPath('ircad17/labels.nii.gz');
  const dicom = sharedPath('ircad17/dicom');
  after(() => rmSync(root, { recursive: true, force: true }));
  before(() => {
    // Both copies of the scan are one patient; the 24-slice DICOM series is on another grid than the mask.
    writeFileSync(join(root, 'patients.csv'), `path,patient\n${ct},p17\n${dicom},p17\n`);
    const indexed = runCli(['index', ct, dicom, '--db', db, '--encoder', 'baseline', '--labels', join(root, 'patients.csv'), '--no-progress'], 180_000);
    assert.equal(indexed.status, 0, indexed.stderr);
  });

  test('each stored slice is labelled by its own canonical slice: tumour (labels 2, 3) on slices 78–113 exactly', async () => {
    const store = openStore(db);
    try {
      const record = store.listVolumes().find((r) => r.sourcePath === ct)!;
      const stored = store.getVectors([record.volumeId]).get(record.volumeId)!;
      const result = await sliceLabelsFromMasks(
        [{ volumeId: record.volumeId, what: ct, geometry: record, sliceIndices: stored.sliceIndices, maskPath: labels }],
        [parseSliceTarget('tumour=2,3'), parseSliceTarget('liver=1')],
      );
      const [tumour, liver] = result.byVolume.get(record.volumeId)!;
      const tumourSlices = Array.from(stored.sliceIndices).filter((_, row) => tumour[row] === SLICE_PRESENT);
      // The data README: tumour 1 on z 84–113, tumour 2 on z 78–105; the union is one run.
      assert.deepEqual(tumourSlices, Array.from({ length: 36 }, (_, i) => 78 + i));
      assert.deepEqual(result.counts.tumour, { present: 36, absent: 119 - 36 });
      // Tumours overwrite liver, so "liver" is the slices where label 1 is left: within its extent, z 1–113.
      const mask = await readVolume(labels);
      const extent = maskLabelExtent(mask, 1);
      const liverSlices = Array.from(stored.sliceIndices).filter((_, row) => liver[row] === SLICE_PRESENT);
      assert.equal(liverSlices[0], extent.firstSlice);
      assert.equal(liverSlices.at(-1), extent.lastSlice);
      assert.deepEqual([extent.firstSlice, extent.lastSlice], [1, 113]);
    } finally {
      store.close();
    }
  });

  test('bad input is one typed line and exit 2: mask on another grid, label in no mask, no mask, a bad spec, a missing companion', () => {
    const mismatched = join(root, 'mismatched.csv');
    writeFileSync(mismatched, `path,mask\n${ct},${labels}\n${dicom},${labels}\n`);
    assertOneLineError(runCli(['train', '--db', db, '--masks', mismatched, '--slice-target', 'tumour=2,3', '--group-by', 'patient', '--no-progress']), 'GRID_MISMATCH', labels);

    const good = join(root, 'good.csv');
    writeFileSync(good, `path,mask\n${ct},${labels}\n`);
    assertOneLineError(runCli(['train', '--db', db, '--masks', good, '--slice-target', 'tumour=9', '--group-by', 'patient', '--no-progress']), 'LABEL_ABSENT', 'label 9');

    const noMask = join(root, 'no-mask.csv');
    writeFileSync(noMask, `path,patient\n${ct},p17\n`);
    assertOneLineError(runCli(['train', '--db', db, '--masks', noMask, '--slice-target', 'tumour=2,3', '--group-by', 'patient', '--no-progress']), 'NO_MASK', noMask);

    assertOneLineError(runCli(['train', '--db', db, '--masks', good, '--slice-target', 'tumour', '--group-by', 'patient', '--no-progress']), 'BAD_SLICE_TARGET', 'tumour');
    const alone = runCli(['train', '--db', db, '--slice-target', 'tumour=2,3', '--group-by', 'patient', '--no-progress']);
    assert.equal(alone.status, 2, alone.stderr);
    assert.match(alone.stderr, /--masks/);
    // One patient cannot be split into training and validation groups: said so, nothing stored.
    assertOneLineError(runCli(['train', '--db', db, '--masks', good, '--slice-target', 'tumour=2,3', '--group-by', 'patient', '--no-progress']), 'BAD_LABELS', '1 group');
  });

  test('a missing mask file names the file', async () => {
    await assert.rejects(
      sliceLabelsFromMasks([{ volumeId: 'v', what: ct, geometry: { dims: [512, 512, 119], affineRas: [] }, sliceIndices: [0], maskPath: join(root, 'nowhere.nii.gz') }], [parseSliceTarget('tumour=2')]),
      (error: unknown) => isMir3dError(error) && error.code === 'NOT_FOUND' && error.message.includes('nowhere.nii.gz'),
    );
  });
});

describe('mir3d train --slice-target on generated phantoms with lesion masks (runs anywhere)', () => {
  const root = mkdtempSync(join(tmpdir(), 'mir3d-slice-phantoms-'));
  const db = join(root, 'idx');
  /** Truth: per phantom, the canonical slices its lesion mask covers. */
  const lesionSlices = new Map<string, Set<number>>();
  after(() => rmSync(root, { recursive: true, force: true }));
  before(async () => {
    const rows: string[] = [];
    for (let p = 0; p < 6; p++) {
      for (let s = 0; s < 2; s++) {
        const name = `p${p}s${s}`;
        const phantom = generatePhantom({
          seed: `slice-${name}`,
          matrix: [48, 48],
          spacingMm: [8, 8, 6],
          coverage: 'abdomen',
          lesions: (p + s) % 3 === 0 ? [] : [{ diameterMm: 40, contrastHu: 80 }],
          noiseSigmaHu: 5,
        });
        mkdirSync(join(root, name));
        await writeNifti(join(root, name, 'ct.nii.gz'), phantom.image, { gzipLevel: 1 });
        await writeNifti(join(root, name, 'labels.nii.gz'), phantom.labels, { gzipLevel: 1 });
        const covered = new Set<number>();
        for (const lesion of phantom.truth.lesions) if (lesion.sliceRange) for (let k = lesion.sliceRange[0]; k <= lesion.sliceRange[1]; k++) covered.add(k);
        lesionSlices.set(name, covered);
        rows.push(`${name}/ct.nii.gz,${name}/labels.nii.gz,patient${p}`);
      }
    }
    writeFileSync(join(root, 'labels.csv'), `path,mask,patient\n${rows.join('\n')}\n`);
    const indexed = runCli(['index', root, '--db', db, '--encoder', 'baseline', '--labels', join(root, 'labels.csv'), '--no-progress'], 180_000);
    assert.equal(indexed.status, 0, indexed.stderr);
  });

  test('a head learns lesion / no-lesion slices, validated per slice on held-out patients, and searches with --space', () => {
    const run = runCli(['train', '--db', db, '--masks', join(root, 'labels.csv'), '--slice-target', 'lesion=2', '--group-by', 'patient', '--name', 'lesion-slices', '--no-progress'], 180_000);
    assert.equal(run.status, 0, run.stderr);
    // Every stored slice labelled from its mask: the count of lesion slices is the phantoms' truth.
    const store = openStore(db);
    let expectedPresent = 0;
    let total = 0;
    try {
      for (const record of store.listVolumes()) {
        const name = record.sourcePath.split('/').at(-2)!;
        const stored = store.getVectors([record.volumeId]).get(record.volumeId)!;
        total += stored.sliceIndices.length;
        for (const k of stored.sliceIndices) if (lesionSlices.get(name)!.has(k)) expectedPresent++;
      }
      const saved = loadSpace(store, 'lesion-slices').metadata.training as Record<string, unknown>;
      assert.deepEqual(saved.targets, ['lesion']);
      assert.deepEqual(saved.sliceTargets, [{ name: 'lesion', values: [2] }]);
      assert.equal(saved.trainingRows, total);
    } finally {
      store.close();
    }
    assert.ok(expectedPresent > 0 && expectedPresent < total);
    assert.match(run.stderr, new RegExp(`slice target lesion \\(mask label 2\\): present in ${expectedPresent} of ${total} slices of 12 masked volume\\(s\\)`));
    // Validation is per slice: its queries are slices of held-out patients, with the raw and random levels.
    // On 12 volumes one held-out fifth is a few hundred slices, so the held-out groups rotate: every slice
    // is validated once at most, each time against the other groups only (space-fit.test.ts checks the split).
    const validation = /validation \((\d+) slices of held-out patient groups against the other training groups(?:, the held-out groups rotated (\d) times)?\): P@5 ([\d.]+), raw ([\d.]+), random ([\d.]+)/.exec(run.stdout);
    assert.ok(validation, run.stdout);
    assert.ok(Number(validation[1]) > 0 && Number(validation[1]) <= total);
    assert.ok(validation[2] === undefined ? Number(validation[1]) < total : Number(validation[2]) > 1, run.stdout);
    validation.splice(2, 1);
    const random = Number(validation[4]);
    assert.ok(random > 0 && random < 1);

    const list = runCli(['train', '--db', db, '--list']);
    assert.match(list.stdout, /lesion-slices {2}head \(lda\) for lesion \(per slice, mask 2\)/);
    const search = runCli(['search', join(root, 'p1s0', 'ct.nii.gz'), '--db', db, '--space', 'lesion-slices', '--json']);
    assert.equal(search.status, 0, search.stderr);
    assert.match(JSON.parse(search.stdout).space as string, /^space:lesion-slices@/);
  });

  test('mir3d eval <labels.csv> --slice-target: grouped folds scored per query slice, raw / normalized / fine-tuned, exact random level', () => {
    const out = join(root, 'cv');
    const run = runCli(['eval', join(root, 'labels.csv'), '--slice-target', 'lesion=2', '--group-by', 'patient', '--folds', '3', '--encoders', 'baseline', '--out', out, '--json', '--no-progress'], 240_000);
    assert.equal(run.status, 0, run.stderr);
    const printed = JSON.parse(run.stdout) as { sliceMetrics: Record<string, { k: number; slices: number; spaces: Record<string, { mean: number; se: number }>; random: number; gains: Record<string, { mean: number }> }> };
    const lesion = printed.sliceMetrics.lesion;
    const store = openStore(join(out, 'index-baseline'));
    try {
      // Every volume is a query in exactly one fold, so every stored slice is scored once.
      assert.equal(lesion.slices, store.stats().slices);
    } finally {
      store.close();
    }
    for (const space of ['raw', 'normalized', 'fine-tuned']) assert.ok(lesion.spaces[space].mean >= 0 && lesion.spaces[space].mean <= 1, space);
    assert.ok(lesion.random > 0 && lesion.random < 1);
    assert.ok(Math.abs(lesion.gains['fine-tuned'].mean - (lesion.spaces['fine-tuned'].mean - lesion.spaces.raw.mean)) < 1e-9);
    assert.match(readFileSync(join(out, 'report.md'), 'utf8'), /## lesion, per slice \(P@5\)/);
  });

  test('a volume without a mask row keeps its slices unlabelled, and says so', () => {
    const partial = join(root, 'partial.csv');
    const rows = ['p0s0', 'p1s0', 'p2s0', 'p3s1', 'p4s1'].map((n) => `${n}/ct.nii.gz,${n}/labels.nii.gz`);
    writeFileSync(partial, `path,mask\n${rows.join('\n')}\n`);
    const run = runCli(['train', '--db', db, '--masks', partial, '--slice-target', 'lesion=2', '--group-by', 'patient', '--name', 'partial', '--no-progress'], 180_000);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /of 5 masked volume\(s\)/);
    assert.match(run.stderr, /7 volume\(s\) without a mask: their slices are unlabelled/);
  });
});
