import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { runEval, type EvalResults } from '../src/eval/run.js';
import { EVAL_HEAD_SPACE } from '../src/eval/head-stage.js';
import { listSpaces, loadSpace, saveSpace } from '../src/space/persist.js';
import { openStore } from '../src/store/index.js';
import { runCli } from './helpers/cli.js';
import { sharedPath, skipWithoutSharedData } from './helpers/shared-data.js';

/** The fine-tuned head inside the 3D-MIR protocol: fitted on the database split only, every method
 * scored raw and in the head's space against the same random levels. */
describe('eval with a fine-tuned head (--target) on the protocol datasets', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  test('demo: the head learns from database volumes only; its rows are what mir3d search --space gives', async () => {
    const outDir = await mkdtemp(join(tmpdir(), 'mir3d-eval-head-'));
    dirs.push(outDir);
    const { results } = await runEval({
      dataset: { kind: 'demo', count: 12, matrix: 64, regions: false },
      outDir,
      encoders: ['baseline'],
      methods: ['slice-count', 'volume-mean'],
      head: { targets: ['lesion_group'] },
    });
    assert.deepEqual(results.methods.map((m) => m.label), ['slice-count', 'volume-mean', 'slice-count@fine-tuned', 'volume-mean@fine-tuned']);
    const [task] = results.tasks;
    const encoder = results.encoders[0];
    // Demo queries are phantoms of their own: one head, patient-disjoint by construction.
    assert.equal(encoder.heads!.length, 1);
    const head = encoder.heads![0];
    assert.equal(head.space, EVAL_HEAD_SPACE);
    // Learned from the database split alone: every indexed volume is a database case, none a query.
    assert.equal(head.trainingVolumes, task.databaseSize);
    assert.equal(head.trainingRows, encoder.index.slices);
    assert.equal(head.queriesWithTrainingPatient, 0);
    const store = openStore(encoder.indexDir);
    try {
      const indexedCases = store.listVolumes().map((r) => String(r.labels.case));
      assert.deepEqual(indexedCases.sort(), [...task.databaseIds].sort());
      for (const q of task.queryKeys) assert.ok(!indexedCases.includes(q), `query ${q} is not in the index`);
      const record = loadSpace(store, EVAL_HEAD_SPACE).metadata.training as Record<string, unknown>;
      assert.deepEqual(record.targets, ['lesion_group']);
      assert.equal(record.groupBy, 'patient');
    } finally {
      store.close();
    }
    assert.ok(results.dataset.notes.some((n) => n.includes('fitted for lesion_group on the database split only') && n.includes('patient-disjoint')), results.dataset.notes.join('\n'));
    // Raw and fine-tuned are scored against the same exact random levels.
    const score = (method: string) => results.scores.find((s) => s.method === method && s.task === task.name)!;
    for (const method of ['slice-count', 'volume-mean']) {
      assert.deepEqual(score(`${method}@fine-tuned`).tumour!.random, score(method).tumour!.random);
      assert.equal(score(`${method}@fine-tuned`).tumour!.perQuery.length, task.queryCount);
    }
    // The same ranking as a user searching the eval index in that space.
    const query = results.cases[task.queryKeys[0]].imagePath;
    const ranking = results.rankings.find((r) => r.method === 'slice-count@fine-tuned')!.queries.find((q) => q.queryKey === task.queryKeys[0])!;
    const cli = runCli(['search', query, '--db', encoder.indexDir, '--space', EVAL_HEAD_SPACE, '--method', 'slice-count', '--k', String(results.settings.sliceK), '--top', '10', '--json'], 120_000);
    assert.equal(cli.status, 0, cli.stderr);
    const hits = (JSON.parse(cli.stdout) as { results: Array<{ volumeId: string; score: number }> }).results;
    assert.deepEqual(hits.map((h) => h.volumeId), ranking.results.map((r) => r.volumeId));
    const raw = results.rankings.find((r) => r.method === 'slice-count')!.queries.find((q) => q.queryKey === task.queryKeys[0])!;
    assert.notDeepEqual(raw.results.map((r) => r.score), ranking.results.map((r) => r.score), 'the space changes the scores');

    // A head left by an earlier run with more heads is dropped when the index is reused.
    const before = openStore(encoder.indexDir);
    try {
      const kept = loadSpace(before, EVAL_HEAD_SPACE);
      saveSpace(before, { ...kept.metadata, name: `${EVAL_HEAD_SPACE}-2` }, kept.model);
    } finally {
      before.close();
    }
    // Per-slice labels from the database cases' masks (tumour = 2) train the same way; the index is reused.
    const sliced = await runEval({
      dataset: { kind: 'demo', count: 12, matrix: 64, regions: false },
      outDir,
      encoders: ['baseline'],
      methods: ['volume-mean'],
      head: { targets: [], sliceTargets: [{ name: 'tumour', values: [2] }] },
    });
    const slicedHead = sliced.results.encoders[0].heads![0];
    assert.equal(sliced.results.encoders[0].index.added, 0);
    assert.deepEqual(slicedHead.targets, ['tumour (per slice, mask 2)']);
    assert.equal(slicedHead.trainingRows, encoder.index.slices);
    assert.ok(slicedHead.validation.queries > 0 && slicedHead.validation.randomP5 > 0 && slicedHead.validation.randomP5 < 1);
    const reopened = openStore(encoder.indexDir);
    try {
      const record = loadSpace(reopened, EVAL_HEAD_SPACE).metadata.training as Record<string, unknown>;
      assert.deepEqual(record.sliceTargets, [{ name: 'tumour', values: [2] }]);
      assert.deepEqual(listSpaces(reopened).map((sp) => sp.name), [EVAL_HEAD_SPACE]);
    } finally {
      reopened.close();
    }
    assert.deepEqual(sliced.results.scores.map((s) => s.method), ['volume-mean', 'volume-mean@fine-tuned']);
    // The query split's slices, labelled from their own masks, retrieve database slices raw and in the head.
    const [perSlice] = sliced.results.encoders[0].sliceRetrieval!;
    assert.equal(perSlice.target, 'tumour');
    assert.equal(perSlice.queryVolumes, task.queryCount);
    assert.equal(perSlice.querySlices, sliced.results.encoders[0].querySlices);
    for (const v of [perSlice.raw.mean, perSlice.fineTuned.mean, perSlice.random]) assert.ok(v >= 0 && v <= 1, String(v));
    assert.ok(Math.abs(perSlice.gain.mean - (perSlice.fineTuned.mean - perSlice.raw.mean)) < 1e-9);
    assert.ok(sliced.results.dataset.notes.some((n) => n.includes('per-slice retrieval on the query split, tumour')));
  });

  test('devbench: query patients have scans in the database, so each gets a head fitted without them', { skip: skipWithoutSharedData }, () => {
    const out = join(tmpdir(), `mir3d-eval-head-devbench-${process.pid}`);
    dirs.push(out);
    const run = runCli(['eval', 'devbench', '--shared-data', sharedPath(), '--profile', 'small', '--encoders', 'baseline', '--methods', 'volume-mean', '--skip-regions', '--examples', '0', '--target', 'lesion_group,cancer_flag', '--out', out, '--json', '--no-progress'], 300_000);
    assert.equal(run.status, 0, run.stderr);
    const printed = JSON.parse(run.stdout) as { scores: Array<{ method: string; groupP10: number }> };
    assert.deepEqual(printed.scores.map((s) => s.method), ['volume-mean', 'volume-mean@fine-tuned']);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as EvalResults;
    const [task] = results.tasks;
    const scanOf = (caseId: string): string => results.cases[caseId].scan!;
    const heads = results.encoders[0].heads!;
    const queryScans = new Set(task.queryKeys.map(scanOf));
    assert.equal(heads.length, queryScans.size, 'one head per query patient (every devbench query scan has variants in the database)');
    assert.equal(heads.reduce((n, h) => n + h.queries, 0), task.queryCount);
    for (const h of heads) {
      assert.ok(h.leftOutPatient !== undefined && queryScans.has(h.leftOutPatient));
      assert.equal(h.queriesWithTrainingPatient, 0);
      // Trained on every database volume except that patient's.
      assert.equal(h.trainingVolumes, task.databaseIds.filter((id) => scanOf(id) !== h.leftOutPatient).length);
    }
    const store = openStore(results.encoders[0].indexDir);
    try {
      for (const h of heads) assert.equal((loadSpace(store, h.space).metadata.training as Record<string, unknown>).leftOutPatient, h.leftOutPatient);
    } finally {
      store.close();
    }
    const report = readFileSync(join(out, 'report.md'), 'utf8');
    assert.match(report, /volume-mean@fine-tuned/);
    assert.match(report, /each fitted without any scan of that patient/);
    assert.match(report, /no query patient is in the data its head learned from \(patient-disjoint\)/);
  });

  test('an unknown target is one line and exit 2', () => {
    const run = runCli(['eval', 'demo', '--out', join(tmpdir(), 'never-written'), '--target', 'tumour_size']);
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /--target: lesion_group, cancer_flag, organ/);
  });
});
