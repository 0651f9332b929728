import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runGroupedCv } from '../src/eval/grouped-cv.js';
import { openIndex } from '../src/ingest/open-index.js';
import { writeNifti } from '../src/io/nifti-writer.js';
import { readVolume } from '../src/io/read.js';
import type { Volume } from '../src/io/volume.js';
import { searchRequestOf } from '../src/query/request.js';
import { runSearch } from '../src/query/run.js';
import { resolveQuery } from '../src/query/sources.js';
import { groupedFolds } from '../src/space/fit.js';
import { listSpaces, loadSpace, SPACE_ARTIFACT_KIND } from '../src/space/persist.js';
import { SpaceStore } from '../src/space/space-store.js';
import { openStore } from '../src/store/index.js';
import type { JsonObject } from '../src/store/types.js';
import { parse as parseCsv } from 'csv-parse/sync';
import { startServer } from '../src/server/app.js';
import type { SearchResponse } from '../src/api/contract.js';
import { runCli } from './helpers/cli.js';
import { bearer, jsonRequest, type ErrorBody } from './helpers/http.js';
import { sharedPath, skipWithoutSharedData } from './helpers/shared-data.js';
import { seededRng } from './helpers/seeded-random.js';

/**
 * Learned spaces on generated CT-like volumes (runs anywhere, baseline encoder, seconds): two tissue
 * classes of noisy blocks, eight patients with two scans each, so a head has something to learn and
 * grouped folds have groups to keep apart.
 */
function scan(seed: number, tissueHu: number): Volume {
  const dims: [number, number, number] = [32, 32, 6];
  const rng = seededRng(seed);
  const data = new Int16Array(dims[0] * dims[1] * dims[2]);
  // A body disc of the tissue, with a bright off-centre blob whose place varies per scan (nuisance).
  const bx = 8 + Math.floor(rng() * 16);
  const by = 8 + Math.floor(rng() * 16);
  for (let k = 0; k < dims[2]; k++) {
    for (let j = 0; j < dims[1]; j++) {
      for (let i = 0; i < dims[0]; i++) {
        const inBody = (i - 16) ** 2 + (j - 16) ** 2 < 14 ** 2;
        const blob = (i - bx) ** 2 + (j - by) ** 2 < 16;
        data[i + dims[0] * (j + dims[1] * k)] = !inBody ? -1000 : blob ? 300 : Math.round(tissueHu + (rng() - 0.5) * 120);
      }
    }
  }
  return {
    data,
    dims,
    spacingMm: [2, 2, 3],
    affineRas: [-2, 0, 0, 30, 0, -2, 0, 30, 0, 0, 3, 0, 0, 0, 0, 1],
    modality: 'CT',
    source: { path: 'memory', format: 'generated', orientation: 'LPS', storedDataType: 'int16' },
    corrections: [],
  };
}

describe('learned spaces: mir3d train --target, --space, grouped evaluation', () => {
  const root = mkdtempSync(join(tmpdir(), 'mir3d-space-'));
  const archive = join(root, 'archive');
  const db = join(root, 'idx');
  const names: string[] = [];
  after(() => rmSync(root, { recursive: true, force: true }));
  before(async () => {
    mkdirSync(archive, { recursive: true });
    const rows: string[] = [];
    for (let p = 0; p < 8; p++) {
      for (let s = 0; s < 2; s++) {
        const tissue = (p + s) % 2 === 0 ? 'soft' : 'fat';
        const name = `p${p}-s${s}.nii.gz`;
        await writeNifti(join(archive, name), scan(100 * p + s, tissue === 'soft' ? 45 : -90));
        names.push(name);
        rows.push(`${name},archive/${name},${tissue},patient${p}`);
      }
    }
    writeFileSync(join(root, 'labels.csv'), `name,path,tissue,patient\n${rows.join('\n')}\n`);
    const indexed = runCli(['index', archive, '--db', db, '--encoder', 'baseline', '--labels', join(root, 'labels.csv')], 180_000);
    assert.equal(indexed.status, 0, indexed.stderr);
  });

  test('train --target stores a head; --list shows it, raw stays the default; a fixed seed reproduces the graph', () => {
    const first = runCli(['train', '--db', db, '--target', 'tissue', '--group-by', 'patient', '--seed', '7', '--no-progress'], 120_000);
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, /space head: .* on 96 slice vectors of 8 patient groups/);
    assert.match(first.stdout, /validation .*P@5 \d\.\d{3}, raw \d\.\d{3}, random \d\.\d{3}/);
    const again = runCli(['train', '--db', db, '--target', 'tissue', '--group-by', 'patient', '--seed', '7', '--name', 'head-again', '--no-progress'], 120_000);
    assert.equal(again.status, 0, again.stderr);
    const mlp = ['train', '--db', db, '--target', 'tissue', '--group-by', 'patient', '--method', 'mlp', '--seed', '5', '--steps', '20', '--no-progress'];
    const mlpFirst = runCli([...mlp, '--name', 'mlp'], 120_000);
    assert.equal(mlpFirst.status, 0, mlpFirst.stderr);
    assert.match(mlpFirst.stdout, /space mlp: MLP head 768 → PCA \d+ → 256 → 64 \(supervised contrastive/);
    assert.equal(runCli([...mlp, '--name', 'mlp-again'], 120_000).status, 0);
    const list = runCli(['train', '--db', db, '--list']);
    assert.equal(list.status, 0, list.stderr);
    assert.match(list.stdout, /^raw {2}\(default\)/m);
    assert.match(list.stdout, /^head {2}head \(lda\) for tissue/m);
    const store = openStore(db, { readOnly: true });
    try {
      const spaces = Object.fromEntries(listSpaces(store).map((s) => [s.name, s]));
      assert.equal(spaces.head.modelSha256, spaces['head-again'].modelSha256, 'same seed, same data: byte-identical head');
      assert.equal(spaces.mlp.modelSha256, spaces['mlp-again'].modelSha256, 'same seed: byte-identical MLP head');
    } finally {
      store.close();
    }
  });

  test('a saved head survives reopening and searches through the CLI with --space; a missing one is a one-line error', () => {
    const found = runCli(['search', join(archive, names[0]), '--db', db, '--space', 'head', '--method', 'volume-mean', '--json'], 120_000);
    assert.equal(found.status, 0, found.stderr);
    const out = JSON.parse(found.stdout) as { space: string; results: Array<{ labels: Record<string, string> }> };
    assert.match(out.space, /^space:head@[0-9a-f]{12}$/);
    assert.ok(out.results.length > 0);
    const missing = runCli(['search', join(archive, names[0]), '--db', db, '--space', 'nope']);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /no space "nope" in this index \(spaces: raw, head, head-again, mlp, mlp-again\).*\[UNKNOWN_SPACE\]/);
    assert.equal(missing.stderr.trim().split('\n').length, 1);
  });

  test('HTTP: POST /api/search takes space, names it in the response, refuses an unknown one and a text in a head', async () => {
    const server = await startServer({ dbDir: db, port: 0, limits: { searchWorkers: 1, searchThreads: 1 } });
    try {
      const store = openStore(db, { readOnly: true });
      const volumeId = store.listVolumes()[0].volumeId;
      store.close();
      const post = <T>(body: Record<string, unknown>) => jsonRequest<T>(`${server.url}/api/search`, { method: 'POST', headers: { ...bearer(server.token!), 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      const inHead = await post<SearchResponse>({ volumeId, space: 'head', method: 'volume-mean', top: 3 });
      assert.equal(inHead.status, 200, JSON.stringify(inHead.body));
      assert.match(inHead.body.options.space ?? '', /^space:head@[0-9a-f]{12}$/);
      const raw = await post<SearchResponse>({ volumeId, method: 'volume-mean', top: 3 });
      assert.equal(raw.body.options.space, 'raw', 'raw until a default is chosen');
      const unknown = await post<ErrorBody>({ volumeId, space: 'nope' });
      assert.equal(unknown.status, 400);
      assert.equal(unknown.body.error.code, 'UNKNOWN_SPACE');
      const text = await post<ErrorBody>({ text: 'soft tissue', space: 'head' });
      assert.equal(text.status, 400);
      assert.match(text.body.error.message, /raw space only/);
    } finally {
      await server.close();
    }
  });

  test('the head gives a new scan the vectors its stored copy has: query path = index path', async () => {
    const index = await openIndex(db, { readOnly: true });
    try {
      const view = await SpaceStore.open(index.store, 'head');
      try {
        const volume = await readVolume(join(archive, names[3]));
        const record = index.store.findBySource(join(archive, names[3]))[0] ?? index.store.listVolumes().find((r) => r.sourcePath.endsWith(names[3]))!;
        // record: null tells the resolver the volume is not indexed, so it is embedded afresh.
        const fresh = await resolveQuery({ kind: 'volume', volume, record: null }, { kind: 'volume' }, { store: index.store, encoder: () => index.encoder() });
        assert.equal(fresh.reusedStoredVectors, false);
        const projected = await view.project(fresh.query.vectors);
        const stored = view.getVectors([record.volumeId]).get(record.volumeId)!;
        assert.equal(projected.length, stored.vectors.length);
        let worst = 0;
        for (let i = 0; i < projected.length; i++) worst = Math.max(worst, Math.abs(projected[i] - stored.vectors[i]));
        assert.ok(worst < 1e-4, `largest difference ${worst}`);
        // And through the product's query stage: the fresh scan finds its own stored copy first, at cosine 1.
        const request = searchRequestOf({ kind: 'volume', volume, record: null }, { space: 'head', method: 'volume-mean', includeSelf: true, top: 3 });
        const outcome = await runSearch(request, { store: index.store, encoder: () => index.encoder() });
        assert.equal(outcome.results[0].volumeId, record.volumeId);
        assert.ok(outcome.results[0].score > 0.9999, `score ${outcome.results[0].score}`);
        assert.match(outcome.space, /^space:head@/);
      } finally {
        view.close();
      }
    } finally {
      await index.close();
    }
  });

  test('a corrupted head artifact is a clear one-line error, never a crash or a silent raw search', () => {
    const store = openStore(db);
    try {
      const stored = loadSpace(store, 'head-again');
      const damaged = Uint8Array.from(stored.model);
      damaged[damaged.length >> 1] ^= 0xff;
      store.artifacts.put(SPACE_ARTIFACT_KIND, 'head-again', damaged, stored.metadata as unknown as JsonObject);
      // Bytes that are not ONNX at all, with a matching hash recorded: caught by the loader, not by the hash.
      const junk = new TextEncoder().encode('not an onnx graph');
      store.artifacts.put(SPACE_ARTIFACT_KIND, 'junk', junk, { ...(stored.metadata as unknown as JsonObject), name: 'junk', modelSha256: createHash('sha256').update(junk).digest('hex') });
    } finally {
      store.close();
    }
    const hashed = runCli(['search', join(archive, names[0]), '--db', db, '--space', 'head-again']);
    assert.equal(hashed.status, 2);
    assert.match(hashed.stderr.trim(), /^mir3d: space head-again: its ONNX graph does not match the SHA-256 recorded when it was trained .*\[CORRUPT_SPACE\]$/);
    assert.equal(hashed.stderr.trim().split('\n').length, 1);
    const junk = runCli(['search', join(archive, names[0]), '--db', db, '--space', 'junk']);
    assert.equal(junk.status, 2);
    assert.match(junk.stderr.trim(), /^mir3d: space junk: its ONNX graph cannot be loaded .*\[CORRUPT_SPACE\]$/);
    assert.equal(junk.stderr.trim().split('\n').length, 1);
  });

  test('grouped folds keep every group on one side; no query patient is ever in its fold’s training data', async () => {
    const groups = Array.from({ length: 200 }, (_, i) => `g${i % 37}`);
    const folds = groupedFolds(groups, 5, 3);
    const foldOf = new Map<string, number>();
    groups.forEach((g, i) => {
      assert.equal(foldOf.get(g) ?? folds[i], folds[i], `group ${g} split across folds`);
      foldOf.set(g, folds[i]);
    });
    assert.equal(new Set(folds).size, 5);

    const results = await runGroupedCv({ csvPath: join(root, 'labels.csv'), targets: ['tissue'], groupBy: 'patient', folds: 4, seed: 2, outDir: join(root, 'cv'), encoder: 'baseline' });
    assert.equal(results.folds.length, 4);
    assert.equal(results.queries.length, 16);
    for (const fold of results.folds) {
      const training = new Set(fold.trainingGroups);
      for (const g of fold.queryGroups) assert.ok(!training.has(g), `fold ${fold.fold}: query patient ${g} was in the training data`);
      assert.equal(fold.queryGroups.length + fold.trainingGroups.length, 8);
    }
    for (const q of results.queries) assert.ok(results.folds[q.fold - 1].queryGroups.includes(q.group));
    // Every space is scored with the exact random level of each query's own database (7 of 8 patients:
    // 14 scans, 7 of them the query's tissue, one of them the query's own patient's other scan).
    const random = results.metrics.raw.tissue['P@5'].random;
    assert.ok(random > 0.4 && random < 0.6, `random P@5 ${random}`);
    for (const space of ['raw', 'normalized', 'fine-tuned'] as const) assert.ok(Number.isFinite(results.metrics[space].tissue['P@5'].mean));
  });
});

describe('mir3d eval <labels.csv> on real key images (COVID-CT subset)', () => {
  const root = mkdtempSync(join(tmpdir(), 'mir3d-cv-real-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  test('grouped folds by patient: raw, normalized and fine-tuned P@k with exact random levels, in report.md/html/results.json', { skip: skipWithoutSharedData }, () => {
    const folder = sharedPath('keyslices', 'covid-ct');
    const all = parseCsv(readFileSync(join(folder, 'labels.csv'), 'utf8'), { columns: true, skip_empty_lines: true }) as Array<Record<string, string>>;
    // Every 12th row: 62 images of both classes and many patients, absolute paths so the CSV may live anywhere.
    const rows = all.filter((_, i) => i % 12 === 0).map((r) => `${join(folder, r.path)},${r.covid},"${r.patient.replace(/"/g, '""')}"`);
    writeFileSync(join(root, 'labels.csv'), `path,covid,patient\n${rows.join('\n')}\n`);
    const run = runCli(['eval', join(root, 'labels.csv'), '--target', 'covid', '--group-by', 'patient', '--folds', '3', '--encoders', 'baseline', '--out', join(root, 'out'), '--no-progress'], 300_000);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /covid: \d+ queries, 3 folds by patient/);
    assert.match(run.stdout, /^raw +\d\.\d{3} ± \d\.\d{3}/m);
    assert.match(run.stdout, /^fine-tuned +\d\.\d{3} ± \d\.\d{3}/m);
    assert.match(run.stdout, /^random \(exact\) +\d\.\d{3}/m);
    for (const file of ['report.md', 'report.html', 'results.json']) assert.ok(existsSync(join(root, 'out', file)), file);
    const results = JSON.parse(readFileSync(join(root, 'out', 'results.json'), 'utf8')) as { queries: Array<{ group: string; fold: number }>; folds: Array<{ fold: number; queryGroups: string[]; trainingGroups: string[] }>; metrics: Record<string, Record<string, Record<string, { mean: number; random: number }>>> };
    for (const fold of results.folds) {
      const training = new Set(fold.trainingGroups);
      assert.ok(fold.queryGroups.every((g) => !training.has(g)), `fold ${fold.fold} trained on a query patient`);
    }
    // The exact random level: the share of COVID images among the other folds' images, per query.
    const random = results.metrics.raw.covid['P@5'].random;
    assert.ok(random > 0.3 && random < 0.7, `random ${random}`);
    assert.match(readFileSync(join(root, 'out', 'report.md'), 'utf8'), /\| fine-tuned \| .*\(random \d\.\d{3}\)/);
  });
});

