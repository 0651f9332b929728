import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { openStore, POOLINGS, poolVectors, StoreError, type Store, type VolumeFilter } from '../src/store/index.js';
import { AnnIndex } from '../src/store/ann.js';
import { HnswIndex } from '../src/store/usearch.js';
import { crashVolume, CRASH_ENCODER_ID } from './helpers/store-crash-volumes.js';
import { bruteForceTopK, randomUnitRows, rng, SliceLikeGenerator, testVolume, type TestVolume } from './helpers/vectors.js';

const ENCODER = 'test-encoder@sha256:abc|v1';
const DIM = 32;
const tempDirs: string[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mir3d-store-'));
  tempDirs.push(dir);
  return dir;
}

after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function isStoreError(code: string): (e: unknown) => boolean {
  return (e: unknown) => e instanceof StoreError && e.code === code;
}

function close(a: Float32Array | number[], b: number[], tolerance = 1e-6): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i] - b[i]) < tolerance, `[${i}] ${a[i]} vs ${b[i]}`);
}

/** Six volumes of random unit rows with varied metadata. */
function sampleVolumes(): TestVolume[] {
  const specs: Array<[string, number, string, string | undefined, Record<string, string | number>]> = [
    ['a', 40, 'CT', 'ABDOMEN', { organ: 'liver', cancer_flag: 1 }],
    ['b', 25, 'CT', 'CHEST', { organ: 'lung', cancer_flag: 0 }],
    ['c', 60, 'MR', 'ABDOMEN', { organ: 'liver', cancer_flag: 0 }],
    ['d', 33, 'CT', undefined, { organ: 'colon', cancer_flag: 1 }],
    ['e', 12, 'CT', 'ABDOMEN', { organ: 'pancreas', cancer_flag: '1' }],
    ['f', 51, 'ct', 'abdomen', { organ: 'liver', cancer_flag: 1 }],
  ];
  return specs.map(([name, rows, modality, bodyPart, labels], i) =>
    testVolume(name, randomUnitRows(rows, DIM, 100 + i), DIM, { modality, ...(bodyPart ? { bodyPart } : {}), labels, firstSlice: i * 3 }),
  );
}

/** Brute-force slice search over `volumes`, as (volumeId, sliceIndex, similarity) lists. */
function referenceSearch(volumes: TestVolume[], queries: Float32Array, k: number, allowedIds: Set<string>) {
  const rows: Array<{ volume: TestVolume; ordinal: number }> = [];
  const parts: Float32Array[] = [];
  for (const v of volumes) {
    for (let i = 0; i < v.record.sliceCount; i++) rows.push({ volume: v, ordinal: i });
    parts.push(v.vectors.vectors);
  }
  const data = new Float32Array(rows.length * DIM);
  let offset = 0;
  for (const p of parts) {
    data.set(p, offset);
    offset += p.length;
  }
  return bruteForceTopK(queries, data, DIM, k, (r) => allowedIds.has(rows[r].volume.record.volumeId)).map((list) =>
    list.map((h) => ({
      volumeId: rows[h.row].volume.record.volumeId,
      sliceIndex: rows[h.row].volume.vectors.sliceIndices[rows[h.row].ordinal],
      similarity: h.similarity,
    })),
  );
}

async function assertExactMatchesReference(store: Store, volumes: TestVolume[], queries: Float32Array, k: number, filter?: VolumeFilter, allowed?: string[]): Promise<void> {
  const hits = await store.searchSlices(queries, { k, mode: 'exact', ...(filter ? { filter } : {}) });
  const reference = referenceSearch(volumes, queries, k, new Set(allowed ?? volumes.map((v) => v.record.volumeId)));
  assert.equal(hits.length, reference.length);
  hits.forEach((list, q) => {
    assert.deepEqual(
      list.map((h) => `${h.volumeId}#${h.sliceIndex}`),
      reference[q].map((h) => `${h.volumeId}#${h.sliceIndex}`),
      `query ${q} (${JSON.stringify(filter)})`,
    );
    list.forEach((h, i) => assert.ok(Math.abs(h.similarity - reference[q][i].similarity) < 1e-5));
    for (const h of list) {
      const v = volumes.find((x) => x.record.volumeId === h.volumeId)!;
      const ordinal = h.sliceIndex - v.vectors.sliceIndices[0];
      assert.equal(h.zMm, v.vectors.zMm[ordinal]);
    }
  });
}

describe('pooling (3D-MIR method 2)', () => {
  const rows3x2 = Float32Array.of(1, 2, 3, 0, 8, 5);

  test('mean, median, max, std of a 3 × 2 example, then L2-normalized', () => {
    close(poolVectors(rows3x2, 2, 'mean'), [12 / Math.sqrt(193), 7 / Math.sqrt(193)]); // mean (4, 7/3)
    close(poolVectors(rows3x2, 2, 'median'), [3 / Math.sqrt(13), 2 / Math.sqrt(13)]); // median (3, 2)
    close(poolVectors(rows3x2, 2, 'max'), [8 / Math.sqrt(89), 5 / Math.sqrt(89)]); // max (8, 5)
    // Population std: (√(26/3), √38/3); squared norm 78/9 + 38/9 = 116/9.
    close(poolVectors(rows3x2, 2, 'std'), [Math.sqrt(78 / 116), Math.sqrt(38 / 116)]);
  });

  test('median of an even count averages the two middle values; a zero statistic stays zero', () => {
    close(poolVectors(Float32Array.of(1, 0, 4, 1, 2, 5, 10, 3), 2, 'median'), [3 / Math.sqrt(13), 2 / Math.sqrt(13)]);
    close(poolVectors(Float32Array.of(0.6, 0.8), 2, 'std'), [0, 0]);
    close(poolVectors(Float32Array.of(0.6, 0.8), 2, 'mean'), [0.6, 0.8]);
  });
});

describe('embedded store: lifecycle and metadata', () => {
  test('creates with an encoder id and dim, pins them, refuses another encoder, opens read-only to inspect', () => {
    const dir = join(tempDir(), 'index');
    assert.throws(() => openStore(dir), isStoreError('MISSING_ENCODER'));
    assert.throws(() => openStore(dir, { readOnly: true }), isStoreError('NOT_FOUND'));
    const store = openStore(dir, { encoderId: ENCODER, dim: DIM });
    assert.equal(store.encoderId, ENCODER);
    assert.equal(store.dim, DIM);
    store.close();
    assert.throws(
      () => openStore(dir, { encoderId: 'other-encoder@v2', dim: DIM }),
      (e: unknown) => e instanceof StoreError && e.code === 'ENCODER_MISMATCH' && e.message.includes(ENCODER) && e.message.includes('other-encoder@v2') && e.message.includes('read-only'),
    );
    assert.throws(() => openStore(dir, { encoderId: ENCODER, dim: 64 }), isStoreError('DIM_MISMATCH'));
    const inspect = openStore(dir, { readOnly: true });
    assert.equal(inspect.encoderId, ENCODER);
    assert.equal(inspect.dim, DIM);
    const v = sampleVolumes()[0];
    assert.throws(() => inspect.addVolume(v.record, v.vectors, ENCODER), isStoreError('READ_ONLY'));
    inspect.close();
    assert.throws(() => inspect.stats(), isStoreError('CLOSED'));
    // A file where a directory should be.
    const file = join(tempDir(), 'not-a-dir');
    writeFileSync(file, 'x');
    assert.throws(() => openStore(file, { encoderId: ENCODER, dim: DIM }), isStoreError('NOT_FOUND'));
  });

  test('add, get, list with filters, content-hash dedupe, replace, remove, and persistence across reopen', () => {
    const dir = tempDir();
    const volumes = sampleVolumes();
    const store = openStore(dir, { encoderId: ENCODER, dim: DIM });
    for (const v of volumes) store.addVolume(v.record, v.vectors, ENCODER);
    assert.deepEqual(store.stats(), { volumes: 6, slices: 40 + 25 + 60 + 33 + 12 + 51 });
    assert.equal(store.findByContent(volumes[2].record.contentSha256)?.volumeId, 'vol-c');
    assert.equal(store.findByContent('0'.repeat(64)), undefined);
    assert.deepEqual(store.getVolume('vol-b'), volumes[1].record);

    const ids = (filter: VolumeFilter): string[] => store.listVolumes(filter).map((r) => r.volumeId);
    assert.deepEqual(ids({ modalities: ['CT'] }), ['vol-a', 'vol-b', 'vol-d', 'vol-e', 'vol-f']);
    assert.deepEqual(ids({ bodyParts: ['Abdomen'] }), ['vol-a', 'vol-c', 'vol-e', 'vol-f']);
    assert.deepEqual(ids({ labels: { organ: 'liver', cancer_flag: 1 } }), ['vol-a', 'vol-f']);
    assert.deepEqual(ids({ labels: { cancer_flag: '1' } }), ['vol-a', 'vol-d', 'vol-e', 'vol-f']);
    assert.deepEqual(ids({ includeVolumeIds: ['vol-a', 'vol-c', 'nope'], excludeVolumeIds: ['vol-c'] }), ['vol-a']);

    // Wrong encoder, same content under another id, malformed vectors.
    assert.throws(() => store.addVolume(volumes[0].record, volumes[0].vectors, 'other'), (e: unknown) => e instanceof StoreError && e.code === 'ENCODER_MISMATCH' && e.message.includes('other') && e.message.includes(ENCODER));
    const clash = testVolume('a', randomUnitRows(4, DIM, 7), DIM);
    clash.record.volumeId = clash.vectors.volumeId = 'vol-a-copy';
    assert.throws(() => store.addVolume(clash.record, clash.vectors, ENCODER), isStoreError('DUPLICATE_CONTENT'));
    const notUnit = testVolume('g', randomUnitRows(3, DIM, 8).map((x) => x * 2), DIM);
    assert.throws(() => store.addVolume(notUnit.record, notUnit.vectors, ENCODER), isStoreError('BAD_VECTORS'));
    const short = testVolume('h', randomUnitRows(3, DIM, 9), DIM);
    short.record.sliceCount = 4;
    assert.throws(() => store.addVolume(short.record, short.vectors, ENCODER), isStoreError('BAD_VECTORS'));
    const wrongDim = testVolume('i', randomUnitRows(3, 16, 9), 16);
    assert.throws(() => store.addVolume(wrongDim.record, wrongDim.vectors, ENCODER), isStoreError('DIM_MISMATCH'));
    assert.equal(store.stats().volumes, 6);

    // Replace vol-b (same id and content) with new vectors.
    const b2 = testVolume('b', randomUnitRows(10, DIM, 11), DIM, { labels: { organ: 'lung', version: 2 } });
    store.addVolume(b2.record, b2.vectors, ENCODER);
    assert.equal(store.stats().volumes, 6);
    assert.equal(store.getVolume('vol-b')?.sliceCount, 10);
    assert.deepEqual(store.getVectors(['vol-b']).get('vol-b')?.vectors, b2.vectors.vectors);
    close(store.pooledVector('vol-b', 'mean')!, [...poolVectors(b2.vectors.vectors, DIM, 'mean')]);

    assert.equal(store.removeVolume('vol-d'), true);
    assert.equal(store.removeVolume('vol-d'), false);
    assert.equal(store.getVolume('vol-d'), undefined);
    assert.equal(store.findByContent(volumes[3].record.contentSha256), undefined);
    store.close();

    const reopened = openStore(dir, { encoderId: ENCODER });
    assert.deepEqual(reopened.stats(), { volumes: 5, slices: 40 + 10 + 60 + 12 + 51 });
    assert.deepEqual(reopened.getVolume('vol-b')?.labels, { organ: 'lung', version: 2 });
    const got = reopened.getVectors(['vol-c', 'vol-d', 'vol-a']);
    assert.deepEqual([...got.keys()], ['vol-c', 'vol-a']);
    assert.deepEqual(got.get('vol-c')!.vectors, volumes[2].vectors.vectors);
    assert.deepEqual(got.get('vol-c')!.sliceIndices, volumes[2].vectors.sliceIndices);
    assert.deepEqual(got.get('vol-c')!.zMm, volumes[2].vectors.zMm);
    for (const pooling of POOLINGS) close(reopened.pooledVector('vol-a', pooling)!, [...poolVectors(volumes[0].vectors.vectors, DIM, pooling)]);
    reopened.close();
  });

  test('a second connection sees another connection’s adds and removes', async () => {
    const dir = tempDir();
    const [a, b] = sampleVolumes();
    const writer = openStore(dir, { encoderId: ENCODER, dim: DIM });
    writer.addVolume(a.record, a.vectors, ENCODER);
    const reader = openStore(dir, { readOnly: true });
    const query = b.vectors.vectors.slice(0, DIM);
    await reader.searchSlices(query, { k: 3, mode: 'exact' }); // loads the reader's matrix before the add
    writer.addVolume(b.record, b.vectors, ENCODER);
    assert.equal(reader.stats().volumes, 2);
    const hits = await reader.searchSlices(query, { k: 1, mode: 'exact' });
    assert.equal(hits[0][0].volumeId, 'vol-b');
    assert.ok(hits[0][0].similarity > 0.9999);
    writer.removeVolume('vol-b');
    const after = await reader.searchSlices(query, { k: 5, mode: 'exact' });
    assert.ok(after[0].every((h) => h.volumeId === 'vol-a'));
    reader.close();
    writer.close();
  });
});

describe('embedded store: exact search', () => {
  test('equals brute force, with every filter kind, across small blocks and after removals refill freed rows', async () => {
    const dir = tempDir();
    const volumes = sampleVolumes();
    // 70-row blocks: volumes straddle blocks and some get blocks of their own.
    const store = openStore(dir, { encoderId: ENCODER, dim: DIM, blockBytes: 70 * DIM * 4 });
    for (const v of volumes) store.addVolume(v.record, v.vectors, ENCODER);
    const queries = randomUnitRows(5, DIM, 55);
    const all = volumes.map((v) => v.record.volumeId);
    await assertExactMatchesReference(store, volumes, queries, 20);
    await assertExactMatchesReference(store, volumes, queries, 20, { modalities: ['ct'] }, ['vol-a', 'vol-b', 'vol-d', 'vol-e', 'vol-f']);
    await assertExactMatchesReference(store, volumes, queries, 20, { bodyParts: ['ABDOMEN'], labels: { organ: 'liver' } }, ['vol-a', 'vol-c', 'vol-f']);
    await assertExactMatchesReference(store, volumes, queries, 20, { excludeVolumeIds: ['vol-a', 'vol-f'] }, all.filter((id) => id !== 'vol-a' && id !== 'vol-f'));
    await assertExactMatchesReference(store, volumes, queries, 20, { includeVolumeIds: ['vol-e'] }, ['vol-e']); // 12 rows < k
    const none = await store.searchSlices(queries, { k: 5, mode: 'exact', filter: { labels: { organ: 'brain' } } });
    assert.deepEqual(none, [[], [], [], [], []]);

    // Remove two, add two of other sizes (they reuse freed runs), then compare again.
    store.removeVolume('vol-c');
    store.removeVolume('vol-a');
    const extra = [testVolume('x', randomUnitRows(30, DIM, 70), DIM), testVolume('y', randomUnitRows(55, DIM, 71), DIM)];
    for (const v of extra) store.addVolume(v.record, v.vectors, ENCODER);
    const live = [...volumes.filter((v) => v.record.volumeId !== 'vol-c' && v.record.volumeId !== 'vol-a'), ...extra];
    await assertExactMatchesReference(store, live, queries, 20);
    await assertExactMatchesReference(store, live, queries, 7, { modalities: ['CT'], excludeVolumeIds: ['vol-x'] }, ['vol-b', 'vol-d', 'vol-e', 'vol-f', 'vol-y']);
    store.close();

    const reopened = openStore(dir, { readOnly: true });
    await assertExactMatchesReference(reopened, live, queries, 20);
    assert.equal(reopened.info?.().computeProvider !== undefined, true);
    reopened.close();
  });

  test('volume search by pooled vectors equals brute force and honours filters', async () => {
    const dir = tempDir();
    const volumes = sampleVolumes();
    const store = openStore(dir, { encoderId: ENCODER, dim: DIM });
    for (const v of volumes) store.addVolume(v.record, v.vectors, ENCODER);
    const query = poolVectors(randomUnitRows(20, DIM, 80), DIM, 'mean');
    for (const pooling of POOLINGS) {
      const pooled = volumes.map((v) => poolVectors(v.vectors.vectors, DIM, pooling));
      const data = new Float32Array(pooled.length * DIM);
      pooled.forEach((p, i) => data.set(p, i * DIM));
      const reference = bruteForceTopK(query, data, DIM, 4)[0];
      const hits = await store.searchVolumes(query, pooling, 4);
      assert.deepEqual(hits.map((h) => h.volumeId), reference.map((h) => volumes[h.row].record.volumeId), pooling);
      hits.forEach((h, i) => assert.ok(Math.abs(h.similarity - reference[i].similarity) < 1e-5));
    }
    const filtered = await store.searchVolumes(query, 'max', 10, { modalities: ['MR'] });
    assert.deepEqual(filtered.map((h) => h.volumeId), ['vol-c']);
    await assert.rejects(store.searchVolumes(randomUnitRows(2, DIM, 1), 'mean', 3), isStoreError('BAD_QUERY'));
    await assert.rejects(store.searchSlices(new Float32Array(DIM + 1), { k: 3, mode: 'exact' }), isStoreError('BAD_QUERY'));
    await assert.rejects(store.searchSlices(query, { k: 0, mode: 'exact' }), isStoreError('BAD_QUERY'));
    store.close();
  });
});

test('HNSW keys: contiguous ranges per volume, resolved back to (volume, slice) after removals and a reload', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mir3d-ann-keys-'));
  const dim = 8;
  const rowsOf = (n: number, seed: number): Float32Array => randomUnitRows(n, dim, seed);
  const ann = new AnnIndex(new HnswIndex({ dim, connectivity: 8, expansionAdd: 32 }), 'enc');
  ann.addVolumes([{ key: 7, vectors: rowsOf(3, 1) }, { key: 2, vectors: rowsOf(4, 2) }], 1);
  ann.addVolumes([{ key: 9, vectors: rowsOf(2, 3) }], 1);
  assert.ok(ann.removeVolume(2));
  ann.addVolumes([{ key: 2, vectors: rowsOf(5, 4) }], 1); // re-added: a fresh range, the old one stays unused
  const expected = { 0: [7, 0], 2: [7, 2], 3: [-1, -1], 6: [-1, -1], 7: [9, 0], 8: [9, 1], 9: [2, 0], 13: [2, 4], 14: [-1, -1], [2 ** 40]: [-1, -1] };
  const check = (index: AnnIndex): void => {
    const keys = new BigUint64Array(Object.keys(expected).map((k) => BigInt(k)));
    const { volumeKeys, ordinals } = index.resolve(keys);
    Object.values(expected).forEach(([volume, ordinal], i) => assert.deepEqual([volumeKeys[i], ordinals[i]], [volume, ordinal], `key ${keys[i]}`));
    // A vector's own key is its nearest neighbour.
    const query = rowsOf(5, 4).subarray(4 * dim, 5 * dim);
    const found = index.search(query, 1, 1, 16);
    assert.equal(found.keys[0], 13n);
  };
  check(ann);
  ann.save(dir);
  const loaded = AnnIndex.load(dir, 'enc', { dim, connectivity: 8, expansionAdd: 32 });
  assert.ok('index' in loaded, 'problem' in loaded ? loaded.problem : '');
  check(loaded.index);
  rmSync(dir, { recursive: true, force: true });
});

describe('embedded store: approximate search (HNSW)', () => {
  const dim = 64;
  const generator = new SliceLikeGenerator(dim, 300, 5);

  function sliceLikeVolumes(from: number, to: number): TestVolume[] {
    const out: TestVolume[] = [];
    for (let i = from; i < to; i++) out.push(testVolume(`s${i}`, generator.volume(i), dim, { labels: { half: i % 2 } }));
    return out;
  }

  function recall(exact: { volumeId: string; sliceIndex: number }[][], approx: { volumeId: string; sliceIndex: number }[][]): number {
    let found = 0;
    let total = 0;
    exact.forEach((list, q) => {
      const got = new Set(approx[q].map((h) => `${h.volumeId}#${h.sliceIndex}`));
      for (const h of list) if (got.has(`${h.volumeId}#${h.sliceIndex}`)) found++;
      total += list.length;
    });
    return found / total;
  }

  test('recall@20 ≥ 0.9 against exact on slice-like volumes (300 slices each); filters respected', async () => {
    const dir = tempDir();
    const store = openStore(dir, { encoderId: ENCODER, dim, exactBelowSlices: 0 });
    for (const v of sliceLikeVolumes(0, 40)) store.addVolume(v.record, v.vectors, ENCODER);
    const report = await store.buildApproximateIndex!();
    assert.equal(report.rebuilt, true);
    assert.equal(report.added, 40);
    assert.equal(report.slices, 12000);
    const query = generator.volume(1000).subarray(100 * dim, 140 * dim); // 40 slices of an unseen volume
    const exact = await store.searchSlices(query, { k: 20, mode: 'exact' });
    const approx = await store.searchSlices(query, { k: 20, mode: 'approximate' });
    const r = recall(exact, approx);
    assert.ok(r >= 0.9, `recall@20 ${r}`);
    approx.flat().forEach((h) => assert.ok(h.similarity <= 1 + 1e-5 && h.similarity > 0));

    const filter = { labels: { half: 1 } };
    const exactHalf = await store.searchSlices(query, { k: 20, mode: 'exact', filter });
    const approxHalf = await store.searchSlices(query, { k: 20, mode: 'approximate', filter });
    assert.ok(approxHalf.every((list) => list.length === 20 && list.every((h) => Number(h.volumeId.slice(5)) % 2 === 1)));
    assert.ok(recall(exactHalf, approxHalf) >= 0.9);
    // A filter leaving one volume (< 5 % of slices) is answered exactly.
    const one = { includeVolumeIds: ['vol-s7'] };
    assert.deepEqual(await store.searchSlices(query, { k: 20, mode: 'approximate', filter: one }), await store.searchSlices(query, { k: 20, mode: 'exact', filter: one }));
    store.close();
  });

  test('calibration: the narrowest ef reaching the target recall, kept in the sidecar, measured again when asked for more or when the graph grows', async () => {
    const dir = tempDir();
    let store = openStore(dir, { encoderId: ENCODER, dim, exactBelowSlices: 0 });
    for (const v of sliceLikeVolumes(0, 40)) store.addVolume(v.record, v.vectors, ENCODER);
    const first = (await store.buildApproximateIndex!()).calibration!;
    assert.ok(first, 'a searched-approximately index is calibrated');
    assert.equal(first.reached, true);
    assert.ok(first.recall >= 0.95 && first.recall <= 1);
    assert.equal(first.ladder[first.ladder.length - 1].ef, first.ef);
    first.ladder.slice(0, -1).forEach((step) => assert.ok(step.recall < 0.95, `ef ${step.ef} already reached ${step.recall}`));
    assert.ok(first.ladder.every((step, i) => i === 0 || step.ef > first.ladder[i - 1].ef));
    assert.equal(first.slices, 12000);
    assert.equal(first.queries, 25 * 8);
    assert.equal(first.sample, 'held-out volumes', 'a build holds some new volumes out as unseen queries');
    // What the calibration promises holds, on average, for queries from outside the index (ten unseen
    // volumes, 20 slices each; a single volume varies more than the mean the calibration estimates).
    const query = new Float32Array(10 * 20 * dim);
    for (let v = 0; v < 10; v++) {
      const rows = generator.volume(2000 + v);
      for (let i = 0; i < 20; i++) query.set(rows.subarray(i * 15 * dim, (i * 15 + 1) * dim), (v * 20 + i) * dim);
    }
    const exact = await store.searchSlices(query, { k: 20, mode: 'exact' });
    const approx = await store.searchSlices(query, { k: 20, mode: 'approximate' });
    assert.ok(recall(exact, approx) >= 0.9, `recall@20 ${recall(exact, approx)} at ef ${first.ef}`);
    store.close();

    // Reopened: the sidecar's calibration is used as it is (no new measurement).
    store = openStore(dir, { encoderId: ENCODER, exactBelowSlices: 0 });
    await store.searchSlices(query.subarray(0, dim), { k: 5, mode: 'approximate' });
    assert.deepEqual(store.info!().approximateIndex?.calibration, first);
    store.close();

    // A stricter target measures again and can only widen the search.
    store = openStore(dir, { encoderId: ENCODER, exactBelowSlices: 0, hnsw: { targetRecall: 0.999 } });
    const strict = (await store.buildApproximateIndex!()).calibration!;
    assert.equal(strict.targetRecall, 0.999);
    assert.equal(strict.sample, 'indexed slices, own volume excluded', 'nothing new to hold out');
    assert.ok(strict.ef >= first.ef);
    store.close();

    // Growing the graph by a quarter makes its calibration stale.
    store = openStore(dir, { encoderId: ENCODER, exactBelowSlices: 0, hnsw: { targetRecall: 0.999 } });
    for (const v of sliceLikeVolumes(40, 50)) store.addVolume(v.record, v.vectors, ENCODER);
    const grown = (await store.buildApproximateIndex!()).calibration!;
    assert.equal(grown.slices, 15000);
    assert.equal(grown.sample, 'held-out volumes');
    assert.equal(store.stats().slices, 15000);
    assert.equal(store.info!().approximateIndex?.slices, 15000, 'held-out volumes are in the graph afterwards');
    store.close();

    // Below the exact threshold searches are exact, and nothing is calibrated.
    const small = openStore(tempDir(), { encoderId: ENCODER, dim });
    for (const v of sliceLikeVolumes(0, 3)) small.addVolume(v.record, v.vectors, ENCODER);
    assert.equal((await small.buildApproximateIndex!()).calibration, undefined);
    small.close();
  });

  test('a stale HNSW file is repaired on use: missing volumes added, deleted ones removed; a damaged one is rebuilt', async () => {
    const dir = tempDir();
    let store = openStore(dir, { encoderId: ENCODER, dim });
    for (const v of sliceLikeVolumes(0, 12)) store.addVolume(v.record, v.vectors, ENCODER);
    await store.buildApproximateIndex!();
    store.close();
    const sidecar = (): { volumes: unknown[]; file: string } => JSON.parse(readFileSync(join(dir, 'ann.json'), 'utf8')) as { volumes: unknown[]; file: string };
    assert.equal(sidecar().volumes.length, 12);

    // Changes made without touching the HNSW file (no approximate search in this session).
    store = openStore(dir, { encoderId: ENCODER });
    const added = sliceLikeVolumes(12, 15);
    for (const v of added) store.addVolume(v.record, v.vectors, ENCODER);
    store.removeVolume('vol-s3');
    store.close();
    assert.equal(sidecar().volumes.length, 12, 'the HNSW file was left stale');

    store = openStore(dir, { encoderId: ENCODER, exactBelowSlices: 0 });
    const selfQuery = added[1].vectors.vectors.subarray(50 * dim, 51 * dim);
    const hits = await store.searchSlices(selfQuery, { k: 10, mode: 'approximate' });
    assert.equal(hits[0][0].volumeId, 'vol-s13');
    assert.equal(hits[0][0].sliceIndex, 50);
    assert.ok(hits[0][0].similarity > 0.9999);
    const deletedQuery = generator.volume(3).subarray(0, 20 * dim);
    const nearDeleted = await store.searchSlices(deletedQuery, { k: 20, mode: 'approximate' });
    assert.ok(nearDeleted.flat().every((h) => h.volumeId !== 'vol-s3'));
    const info = store.info!();
    assert.deepEqual({ ...info.approximateIndex, slices: 0 }, { added: 3, removed: 1, rebuilt: false, slices: 0 });
    store.close();
    assert.equal(sidecar().volumes.length, 14, 'saved at close after the repair');

    // A graph file left by a save that was killed before its rename is deleted at the next writable open.
    writeFileSync(join(dir, 'ann-killed-mid-save.usearch.tmp'), 'partial');
    openStore(dir, { encoderId: ENCODER }).close();
    assert.ok(!readdirSync(dir).includes('ann-killed-mid-save.usearch.tmp'));

    // Damage: a truncated file (usearch would abort the process on it), then flipped bytes of the right length.
    const annFile = join(dir, sidecar().file);
    truncateSync(annFile, 10);
    store = openStore(dir, { encoderId: ENCODER });
    let report = await store.buildApproximateIndex!();
    assert.equal(report.rebuilt, true);
    assert.match(report.reason ?? '', /length/);
    assert.equal(report.slices, 14 * 300);
    store.close();
    const second = join(dir, sidecar().file);
    const bytes = readFileSync(second);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    writeFileSync(second, bytes);
    store = openStore(dir, { encoderId: ENCODER });
    report = await store.buildApproximateIndex!();
    assert.equal(report.rebuilt, true);
    assert.match(report.reason ?? '', /checksum/);
    store.close();
    // Only the current graph file remains.
    assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('ann-')), [sidecar().file]);

    // Deleting over 30 % of the graph's slices makes the next sync rebuild it rather than keep tombstones.
    store = openStore(dir, { encoderId: ENCODER });
    for (const id of ['vol-s0', 'vol-s1', 'vol-s2', 'vol-s4', 'vol-s5']) store.removeVolume(id);
    report = await store.buildApproximateIndex!();
    assert.equal(report.rebuilt, true);
    assert.match(report.reason ?? '', /1500 of its 4200 slices were deleted/);
    assert.equal(report.slices, 9 * 300);
    store.close();
  });
});

describe('embedded store: crash safety', () => {
  const writer = fileURLToPath(new URL('./helpers/store-crash-writer.js', import.meta.url));
  const count = 150;
  const dim = 96;
  const rows = 160;

  function runWriter(dir: string, killAfterMs: number | undefined): Promise<{ done: boolean; lines: string[] }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [writer, dir, String(count), String(dim), String(rows)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (killAfterMs !== undefined && out.startsWith('open\n') && !child.killed) {
          setTimeout(() => child.kill('SIGKILL'), killAfterMs);
          killAfterMs = undefined;
        }
      });
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', reject);
      child.on('exit', (code, signal) => {
        const lines = out.trim().split('\n');
        if (signal === 'SIGKILL' || code === 0) resolve({ done: lines.includes('done'), lines });
        else reject(new Error(`writer exited with ${code}: ${err}`));
      });
    });
  }

  async function checkIndex(dir: string): Promise<number> {
    const db = new Database(join(dir, 'index.sqlite'), { readonly: true });
    assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    const counts = db.prepare('SELECT (SELECT count(*) FROM volumes) v, (SELECT count(*) FROM slices) s, (SELECT count(*) FROM vectors) x, (SELECT count(*) FROM pooled) p').get() as { v: number; s: number; x: number; p: number };
    db.close();
    assert.equal(counts.s, counts.v);
    assert.equal(counts.x, counts.v);
    assert.equal(counts.p, 4 * counts.v);

    // A fixed wide ef: this test is about a consistent graph after kills, not about the calibrated recall.
    const store = openStore(dir, { encoderId: CRASH_ENCODER_ID, exactBelowSlices: 0, hnsw: { expansionSearch: 256 } });
    const records = store.listVolumes();
    assert.equal(new Set(records.map((r) => r.volumeId)).size, records.length, 'duplicate volume ids');
    assert.equal(new Set(records.map((r) => r.contentSha256)).size, records.length, 'duplicate contents');
    const indices = records.map((r) => Number(r.labels.index)).sort((a, b) => a - b);
    assert.deepEqual(indices, indices.map((_, i) => i), 'volumes are added in order, so the survivors are a prefix');
    const vectors = store.getVectors(records.map((r) => r.volumeId));
    for (const record of records) {
      const expected = crashVolume(Number(record.labels.index), dim, rows);
      const got = vectors.get(record.volumeId)!;
      assert.equal(got.sliceIndices.length, record.sliceCount);
      assert.deepEqual(got.vectors, expected.vectors.vectors);
      for (const pooling of POOLINGS) assert.equal(store.pooledVector(record.volumeId, pooling)?.length, dim);
    }
    if (records.length > 0) {
      // The HNSW file may have been cut off mid-save or be behind: it must still load or rebuild and answer.
      await store.buildApproximateIndex!();
      const last = vectors.get(records[records.length - 1].volumeId)!;
      const hits = await store.searchSlices(last.vectors.subarray(0, dim), { k: 3, mode: 'approximate' });
      assert.equal(hits[0][0].volumeId, records[records.length - 1].volumeId);
    }
    store.close();
    return records.length;
  }

  test('SIGKILL at random moments leaves every volume whole or absent; a rerun completes the set', { timeout: 60_000 }, async (t) => {
    const dir = tempDir();
    const random = rng(2024);
    let kills = 0;
    let previous = 0;
    for (let attempt = 0; attempt < 12 && kills < 6; attempt++) {
      const { done } = await runWriter(dir, 30 + Math.floor(random() * 170));
      if (!done) kills++;
      const interrupted = readdirSync(dir).filter((n) => n.endsWith('.tmp') || n.endsWith('-wal'));
      const present = await checkIndex(dir);
      t.diagnostic(`run ${attempt}: ${done ? 'finished' : 'killed'}, ${present} volumes present; left behind: ${interrupted.join(' ') || 'nothing'}`);
      assert.ok(present >= previous, 'committed volumes never disappear');
      previous = present;
      if (done) break;
    }
    assert.ok(kills >= 3, `only ${kills} runs were killed before finishing`);
    const final = await runWriter(dir, undefined);
    assert.equal(final.done, true);
    assert.equal(await checkIndex(dir), count);
    const leftovers = readdirSync(dir).filter((n) => n.endsWith('.tmp'));
    assert.deepEqual(leftovers, []);
    assert.ok(statSync(join(dir, 'index.sqlite')).size > 0);
  });
});
