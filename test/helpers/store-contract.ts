/**
 * The behaviour every `Store` implementation must show, as a suite of node:test tests. A new engine (a
 * remote vector database, a compressed index) is added by passing a factory for it to `storeContract` in
 * test/store-contract.test.ts; the embedded store and the test double both pass it.
 *
 * It checks what callers rely on, not how an engine gets there: exact search equals brute force; an
 * approximate search returns at most k hits, best first, inside the filter, with true similarities; every
 * refusal is a StoreError with its stable code; artifacts and state round-trip and are written atomically
 * with what they belong to.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { POOLINGS, poolVectors, StoreError, type Store, type StoreErrorCode, type VolumeFilter } from '../../src/store/index.js';
import { bruteForceTopK, randomUnitRows, testVolume, type TestVolume } from './vectors.js';

export interface StoreFactory {
  /** A new, empty index for this encoder id and dimension. */
  create(encoderId: string, dim: number): Store;
  /** The same index opened again after `close()`; omit for an engine that does not persist. */
  reopen?(closed: Store): Store;
  /** A read-only connection to the same index, while the writer stays open; omit when there is none. */
  openReadOnly?(store: Store): Store;
}

const ENCODER = 'contract-encoder@v1';
const DIM = 24;

function refusedWith(code: StoreErrorCode): (e: unknown) => boolean {
  return (e: unknown) => e instanceof StoreError && e.code === code;
}

/** Five volumes with varied metadata; two share a DICOM directory as two series. */
function volumes(): TestVolume[] {
  const specs: Array<[string, number, string, string | undefined, Record<string, string | number>]> = [
    ['a', 30, 'CT', 'ABDOMEN', { organ: 'liver', cancer_flag: 1 }],
    ['b', 17, 'CT', 'CHEST', { organ: 'lung', cancer_flag: 0 }],
    ['c', 41, 'MR', 'ABDOMEN', { organ: 'liver', cancer_flag: 0 }],
    ['d', 9, 'ct', undefined, { organ: 'colon', cancer_flag: '1' }],
    ['e', 23, 'CT', 'abdomen', { organ: 'liver', cancer_flag: 1 }],
  ];
  return specs.map(([name, rows, modality, bodyPart, labels], i) => {
    const v = testVolume(name, randomUnitRows(rows, DIM, 500 + i), DIM, { modality, ...(bodyPart ? { bodyPart } : {}), labels, firstSlice: 2 * i });
    if (name === 'c' || name === 'd') {
      v.record.sourcePath = '/dicom/study-1';
      v.record.seriesKey = `series-${name}`;
    }
    return v;
  });
}

function fill(store: Store, list: TestVolume[]): void {
  for (const v of list) store.addVolume(v.record, v.vectors, ENCODER);
}

function referenceSlices(list: TestVolume[], queries: Float32Array, k: number, allowed: Set<string>): string[][] {
  const owners: Array<{ v: TestVolume; ordinal: number }> = [];
  const data = new Float32Array(list.reduce((n, v) => n + v.vectors.vectors.length, 0));
  let at = 0;
  for (const v of list) {
    data.set(v.vectors.vectors, at);
    at += v.vectors.vectors.length;
    for (let i = 0; i < v.record.sliceCount; i++) owners.push({ v, ordinal: i });
  }
  return bruteForceTopK(queries, data, DIM, k, (r) => allowed.has(owners[r].v.record.volumeId)).map((hits) =>
    hits.map((h) => `${owners[h.row].v.record.volumeId}#${owners[h.row].v.vectors.sliceIndices[owners[h.row].ordinal]}`),
  );
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let j = 0; j < a.length; j++) s += a[j] * b[j];
  return s;
}

export function storeContract(name: string, factory: StoreFactory): void {
  describe(`Store contract: ${name}`, () => {
    test('an empty index: identity, no volumes, searches answer with empty lists', async () => {
      const store = factory.create(ENCODER, DIM);
      try {
        assert.equal(store.encoderId, ENCODER);
        assert.equal(store.dim, DIM);
        assert.deepEqual(store.stats(), { volumes: 0, slices: 0 });
        assert.deepEqual(store.listVolumes(), []);
        const q = randomUnitRows(2, DIM, 1);
        assert.deepEqual(await store.searchSlices(q, { k: 3, mode: 'exact' }), [[], []]);
        assert.deepEqual(await store.searchSlices(q, { k: 3, mode: 'approximate' }), [[], []]);
        assert.deepEqual(await store.searchVolumes(q.subarray(0, DIM), 'mean', 3), []);
        assert.deepEqual(store.artifacts.list(), []);
        assert.deepEqual(store.state.list('any'), []);
      } finally {
        store.close();
      }
    });

    test('volumes: add, get, list with filters, find by content and by source, replace, remove', () => {
      const store = factory.create(ENCODER, DIM);
      try {
        const list = volumes();
        fill(store, list);
        assert.deepEqual(store.stats(), { volumes: 5, slices: 30 + 17 + 41 + 9 + 23 });
        assert.deepEqual(store.getVolume('vol-b'), list[1].record);
        assert.equal(store.getVolume('vol-zz'), undefined);
        assert.equal(store.findByContent(list[2].record.contentSha256)?.volumeId, 'vol-c');
        assert.equal(store.findByContent('f'.repeat(64)), undefined);

        // Sources: a file, and a directory holding two series (absent series key matches only absent).
        assert.deepEqual(store.findBySource('/data/a.nii.gz').map((r) => r.volumeId), ['vol-a']);
        assert.deepEqual(store.findBySource('/dicom/study-1', 'series-d').map((r) => r.volumeId), ['vol-d']);
        assert.deepEqual(store.findBySource('/dicom/study-1'), []);
        assert.deepEqual(store.findBySource('/data/a.nii.gz', 'series-x'), []);

        const ids = (filter?: VolumeFilter): string[] => store.listVolumes(filter).map((r) => r.volumeId).sort();
        assert.deepEqual(ids(), ['vol-a', 'vol-b', 'vol-c', 'vol-d', 'vol-e']);
        assert.deepEqual(ids({ modalities: ['CT'] }), ['vol-a', 'vol-b', 'vol-d', 'vol-e']);
        assert.deepEqual(ids({ bodyParts: ['Abdomen'] }), ['vol-a', 'vol-c', 'vol-e']);
        assert.deepEqual(ids({ labels: { organ: 'liver', cancer_flag: '1' } }), ['vol-a', 'vol-e']);
        assert.deepEqual(ids({ labels: { cancer_flag: 1 } }), ['vol-a', 'vol-d', 'vol-e']);
        assert.deepEqual(ids({ includeVolumeIds: ['vol-a', 'vol-c', 'nope'], excludeVolumeIds: ['vol-c'] }), ['vol-a']);

        // The same volume id again replaces it (here: new vectors and labels, same content).
        const b2 = testVolume('b', randomUnitRows(6, DIM, 77), DIM, { labels: { organ: 'lung', version: 2 } });
        store.addVolume(b2.record, b2.vectors, ENCODER);
        assert.deepEqual(store.stats(), { volumes: 5, slices: 30 + 6 + 41 + 9 + 23 });
        assert.deepEqual(store.getVolume('vol-b')?.labels, { organ: 'lung', version: 2 });
        assert.deepEqual([...store.getVectors(['vol-b']).get('vol-b')!.vectors], [...b2.vectors.vectors]);

        // A changed file: its new content under a new id, then the old entry removed.
        const a2 = testVolume('a-changed', randomUnitRows(5, DIM, 78), DIM);
        a2.record.sourcePath = '/data/a.nii.gz';
        store.addVolume(a2.record, a2.vectors, ENCODER);
        assert.deepEqual(store.findBySource('/data/a.nii.gz').map((r) => r.volumeId).sort(), ['vol-a', 'vol-a-changed']);
        assert.equal(store.removeVolume('vol-a'), true);
        assert.equal(store.removeVolume('vol-a'), false);
        assert.deepEqual(store.findBySource('/data/a.nii.gz').map((r) => r.volumeId), ['vol-a-changed']);
        assert.equal(store.getVolume('vol-a'), undefined);
        assert.equal(store.findByContent(list[0].record.contentSha256), undefined);
        assert.equal(store.stats().volumes, 5);
      } finally {
        store.close();
      }
    });

    test('refusals are StoreErrors with stable codes and change nothing', async () => {
      const store = factory.create(ENCODER, DIM);
      try {
        const [a, b] = volumes();
        store.addVolume(a.record, a.vectors, ENCODER);
        assert.throws(() => store.addVolume(b.record, b.vectors, 'another-encoder'), refusedWith('ENCODER_MISMATCH'));
        const wide = testVolume('w', randomUnitRows(3, DIM * 2, 3), DIM * 2);
        assert.throws(() => store.addVolume(wide.record, wide.vectors, ENCODER), refusedWith('DIM_MISMATCH'));
        const twin = testVolume('a', randomUnitRows(4, DIM, 4), DIM);
        twin.record.volumeId = twin.vectors.volumeId = 'vol-a-twin';
        assert.throws(() => store.addVolume(twin.record, twin.vectors, ENCODER), refusedWith('DUPLICATE_CONTENT'));
        const short = testVolume('s', randomUnitRows(3, DIM, 5), DIM);
        short.record.sliceCount = 4;
        assert.throws(() => store.addVolume(short.record, short.vectors, ENCODER), refusedWith('BAD_VECTORS'));
        assert.deepEqual(store.stats(), { volumes: 1, slices: 30 });
        await assert.rejects(store.searchSlices(randomUnitRows(1, DIM, 6), { k: 0, mode: 'exact' }), refusedWith('BAD_QUERY'));
        await assert.rejects(store.searchSlices(new Float32Array(DIM + 1), { k: 3, mode: 'exact' }), refusedWith('BAD_QUERY'));
        await assert.rejects(store.searchVolumes(randomUnitRows(1, DIM, 6), 'mean', 0), refusedWith('BAD_QUERY'));
      } finally {
        store.close();
      }
    });

    test('exact slice search equals brute force, with filters, k beyond the allowed rows, and after removals', async () => {
      const store = factory.create(ENCODER, DIM);
      try {
        let list = volumes();
        fill(store, list);
        const queries = randomUnitRows(4, DIM, 900);
        const check = async (k: number, filter: VolumeFilter | undefined, allowed: string[]): Promise<void> => {
          const hits = await store.searchSlices(queries, { k, mode: 'exact', ...(filter ? { filter } : {}) });
          const reference = referenceSlices(list, queries, k, new Set(allowed));
          assert.deepEqual(hits.map((l) => l.map((h) => `${h.volumeId}#${h.sliceIndex}`)), reference, JSON.stringify(filter));
          for (const [q, l] of hits.entries()) {
            for (const h of l) {
              const v = list.find((x) => x.record.volumeId === h.volumeId)!;
              const ordinal = h.sliceIndex - v.vectors.sliceIndices[0];
              assert.equal(h.zMm, v.vectors.zMm[ordinal]);
              const expected = dot(queries.subarray(q * DIM, (q + 1) * DIM), v.vectors.vectors.subarray(ordinal * DIM, (ordinal + 1) * DIM));
              assert.ok(Math.abs(h.similarity - expected) < 1e-5);
            }
          }
        };
        const all = list.map((v) => v.record.volumeId);
        await check(15, undefined, all);
        await check(10, { modalities: ['ct'], excludeVolumeIds: ['vol-e'] }, ['vol-a', 'vol-b', 'vol-d']);
        await check(20, { includeVolumeIds: ['vol-d'] }, ['vol-d']); // 9 rows < k
        assert.deepEqual(await store.searchSlices(queries, { k: 5, mode: 'exact', filter: { labels: { organ: 'brain' } } }), [[], [], [], []]);
        store.removeVolume('vol-c');
        list = list.filter((v) => v.record.volumeId !== 'vol-c');
        await check(15, undefined, list.map((v) => v.record.volumeId));
      } finally {
        store.close();
      }
    });

    test('approximate slice search: at most k hits, best first, inside the filter, with true similarities', async () => {
      const store = factory.create(ENCODER, DIM);
      try {
        const list = volumes();
        fill(store, list);
        await store.prepareForSearch();
        const self = list[2].vectors.vectors.subarray(7 * DIM, 8 * DIM);
        const queries = new Float32Array([...self, ...randomUnitRows(2, DIM, 901)]);
        for (const filter of [undefined, { bodyParts: ['abdomen'] }]) {
          for (const ef of [undefined, 64]) {
            const hits = await store.searchSlices(queries, { k: 8, mode: 'approximate', ...(filter ? { filter } : {}), ...(ef ? { ef } : {}) });
            assert.equal(hits.length, 3);
            assert.equal(hits[0][0].volumeId, 'vol-c');
            assert.equal(hits[0][0].sliceIndex, list[2].vectors.sliceIndices[7]);
            for (const [q, l] of hits.entries()) {
              assert.ok(l.length <= 8);
              l.forEach((h, i) => i === 0 || assert.ok(h.similarity <= l[i - 1].similarity + 1e-3, 'best first'));
              for (const h of l) {
                const v = list.find((x) => x.record.volumeId === h.volumeId)!;
                if (filter) assert.equal(v.record.bodyPart?.toLowerCase(), 'abdomen');
                const ordinal = h.sliceIndex - v.vectors.sliceIndices[0];
                // Approximate engines may keep reduced-precision vectors (the embedded graph keeps f16).
                const expected = dot(queries.subarray(q * DIM, (q + 1) * DIM), v.vectors.vectors.subarray(ordinal * DIM, (ordinal + 1) * DIM));
                assert.ok(Math.abs(h.similarity - expected) < 1e-2, `${h.similarity} vs ${expected}`);
              }
            }
          }
        }
        await assert.rejects(store.searchSlices(queries, { k: 3, mode: 'approximate', ef: 0 }), refusedWith('BAD_QUERY'));
      } finally {
        store.close();
      }
    });

    test('pooled vectors and volume search equal brute force over the four poolings, filters honoured', async () => {
      const store = factory.create(ENCODER, DIM);
      try {
        const list = volumes();
        fill(store, list);
        const query = poolVectors(randomUnitRows(10, DIM, 902), DIM, 'mean');
        for (const pooling of POOLINGS) {
          const pooled = list.map((v) => poolVectors(v.vectors.vectors, DIM, pooling));
          for (const [i, v] of list.entries()) {
            const got = store.pooledVector(v.record.volumeId, pooling)!;
            pooled[i].forEach((x, j) => assert.ok(Math.abs(got[j] - x) < 1e-6));
          }
          const data = new Float32Array(pooled.length * DIM);
          pooled.forEach((p, i) => data.set(p, i * DIM));
          const expected = bruteForceTopK(query, data, DIM, 3)[0].map((h) => list[h.row].record.volumeId);
          assert.deepEqual((await store.searchVolumes(query, pooling, 3)).map((h) => h.volumeId), expected, pooling);
          const ct = (await store.searchVolumes(query, pooling, 10, { modalities: ['MR'] })).map((h) => h.volumeId);
          assert.deepEqual(ct, ['vol-c']);
        }
        assert.equal(store.pooledVector('vol-none', 'mean'), undefined);
        const got = store.getVectors(['vol-e', 'vol-none', 'vol-a']);
        assert.deepEqual([...got.keys()], ['vol-e', 'vol-a']);
        assert.deepEqual([...got.get('vol-e')!.sliceIndices], [...list[4].vectors.sliceIndices]);
        assert.deepEqual([...got.get('vol-e')!.zMm], [...list[4].vectors.zMm]);
        assert.deepEqual([...got.get('vol-e')!.vectors], [...list[4].vectors.vectors]);
      } finally {
        store.close();
      }
    });

    test('artifacts: put, get, info, list, replace, delete; bad names and metadata refused', () => {
      const store = factory.create(ENCODER, DIM);
      try {
        const head = Uint8Array.from({ length: 1000 }, (_, i) => (i * 37) % 256);
        const info = store.artifacts.put('projection-head', 'liver-fold-1', head, { inputDim: DIM, outputDim: 8, folds: [1, 2], note: null });
        assert.equal(info.byteLength, 1000);
        assert.equal(info.sha256, createHash('sha256').update(head).digest('hex'));
        assert.ok(!Number.isNaN(Date.parse(info.updatedAt)));
        store.artifacts.put('space', 'whiten', new Uint8Array(0), { mean: [0.5, -0.25] });
        store.artifacts.put('space', 'center', Uint8Array.of(1, 2, 3));
        const got = store.artifacts.get('projection-head', 'liver-fold-1')!;
        assert.deepEqual([...got.bytes], [...head]);
        assert.deepEqual(got.metadata, { inputDim: DIM, outputDim: 8, folds: [1, 2], note: null });
        assert.deepEqual(store.artifacts.info('space', 'whiten')?.metadata, { mean: [0.5, -0.25] });
        assert.equal(store.artifacts.get('space', 'whiten')?.bytes.length, 0);
        assert.equal(store.artifacts.get('space', 'missing'), undefined);
        assert.deepEqual(store.artifacts.list().map((a) => `${a.kind}/${a.name}`), ['projection-head/liver-fold-1', 'space/center', 'space/whiten']);
        assert.deepEqual(store.artifacts.list('space').map((a) => a.name), ['center', 'whiten']);

        store.artifacts.put('space', 'center', Uint8Array.of(9), { version: 2 });
        const replaced = store.artifacts.get('space', 'center')!;
        assert.deepEqual([...replaced.bytes], [9]);
        assert.deepEqual(replaced.metadata, { version: 2 });
        assert.equal(store.artifacts.list('space').length, 2);

        assert.equal(store.artifacts.delete('space', 'center'), true);
        assert.equal(store.artifacts.delete('space', 'center'), false);
        assert.deepEqual(store.artifacts.list().map((a) => a.name), ['liver-fold-1', 'whiten']);

        assert.throws(() => store.artifacts.put('Space', 'x', new Uint8Array(1)), refusedWith('BAD_ARGUMENT'));
        assert.throws(() => store.artifacts.put('space', '', new Uint8Array(1)), refusedWith('BAD_ARGUMENT'));
        assert.throws(() => store.artifacts.put('space', 'bad\nname', new Uint8Array(1)), refusedWith('BAD_ARGUMENT'));
        assert.throws(() => store.artifacts.put('space', 'nan', new Uint8Array(1), { scale: Number.NaN }), refusedWith('BAD_ARGUMENT'));
        assert.equal(store.artifacts.info('space', 'nan'), undefined);
      } finally {
        store.close();
      }
    });

    test('state: set, get, list by prefix, setMany, delete, clear; written with a volume atomically', () => {
      const store = factory.create(ENCODER, DIM);
      try {
        const ns = 'dicomweb:pacs-a';
        store.state.set(ns, 'series:1a2b', { lastSeen: '2025-02-01T10:00:00Z', instances: 120 });
        store.state.setMany(ns, [
          ['series:3c4d', { lastSeen: '2025-02-02T10:00:00Z', instances: 80 }],
          ['cursor', '20250202'],
        ]);
        store.state.set('other', 'series:1a2b', true);
        assert.deepEqual(store.state.get(ns, 'series:1a2b'), { lastSeen: '2025-02-01T10:00:00Z', instances: 120 });
        assert.equal(store.state.get(ns, 'missing'), undefined);
        assert.deepEqual(store.state.list(ns).map((e) => e.key), ['cursor', 'series:1a2b', 'series:3c4d']);
        assert.deepEqual(store.state.list(ns, 'series:').map((e) => e.key), ['series:1a2b', 'series:3c4d']);
        store.state.set(ns, 'cursor', '20250203');
        assert.equal(store.state.get(ns, 'cursor'), '20250203');
        assert.equal(store.state.delete(ns, 'cursor'), true);
        assert.equal(store.state.delete(ns, 'cursor'), false);
        assert.throws(() => store.state.set(ns, '', 1), refusedWith('BAD_ARGUMENT'));
        assert.throws(() => store.state.set(ns, 'k', Number.POSITIVE_INFINITY), refusedWith('BAD_ARGUMENT'));

        const [a, b] = volumes();
        store.addVolume(a.record, a.vectors, ENCODER, { state: [{ namespace: ns, key: 'series:a', value: { volumeId: 'vol-a' } }] });
        assert.deepEqual(store.state.get(ns, 'series:a'), { volumeId: 'vol-a' });
        // A refused volume writes none of its state.
        const twin = testVolume('a', randomUnitRows(4, DIM, 4), DIM);
        twin.record.volumeId = twin.vectors.volumeId = 'vol-a-twin';
        assert.throws(() => store.addVolume(twin.record, twin.vectors, ENCODER, { state: [{ namespace: ns, key: 'series:twin', value: 1 }] }), refusedWith('DUPLICATE_CONTENT'));
        assert.equal(store.state.get(ns, 'series:twin'), undefined);
        // A bad state entry refuses the volume too.
        assert.throws(() => store.addVolume(b.record, b.vectors, ENCODER, { state: [{ namespace: ns, key: '', value: 1 }] }), refusedWith('BAD_ARGUMENT'));
        assert.equal(store.getVolume('vol-b'), undefined);

        assert.equal(store.state.clear(ns), 3);
        assert.deepEqual(store.state.list(ns), []);
        assert.equal(store.state.get('other', 'series:1a2b'), true);
      } finally {
        store.close();
      }
    });

    if (factory.reopen) {
      const reopen = factory.reopen;
      test('everything persists across close and reopen', async () => {
        const store = factory.create(ENCODER, DIM);
        const list = volumes();
        fill(store, list);
        store.removeVolume('vol-b');
        store.artifacts.put('space', 'whiten', Uint8Array.of(4, 5, 6), { dim: DIM });
        store.state.set('sync', 'cursor', { page: 3 });
        const queries = randomUnitRows(2, DIM, 903);
        const before = await store.searchSlices(queries, { k: 6, mode: 'exact' });
        await store.prepareForSearch();
        store.close();
        const again = reopen(store);
        try {
          assert.deepEqual(again.stats(), { volumes: 4, slices: 30 + 41 + 9 + 23 });
          assert.deepEqual(again.getVolume('vol-c'), list[2].record);
          assert.deepEqual(again.findBySource('/dicom/study-1', 'series-c').map((r) => r.volumeId), ['vol-c']);
          assert.deepEqual(await again.searchSlices(queries, { k: 6, mode: 'exact' }), before);
          assert.deepEqual([...again.artifacts.get('space', 'whiten')!.bytes], [4, 5, 6]);
          assert.deepEqual(again.state.get('sync', 'cursor'), { page: 3 });
        } finally {
          again.close();
        }
      });
    }

    if (factory.openReadOnly) {
      const openReadOnly = factory.openReadOnly;
      test('a read-only connection sees the writer’s commits and refuses writes', async () => {
        const store = factory.create(ENCODER, DIM);
        const [a, b] = volumes();
        store.addVolume(a.record, a.vectors, ENCODER);
        const reader = openReadOnly(store);
        try {
          const q = b.vectors.vectors.slice(0, DIM);
          await reader.searchSlices(q, { k: 2, mode: 'exact' });
          store.addVolume(b.record, b.vectors, ENCODER);
          store.artifacts.put('space', 's', Uint8Array.of(1));
          store.state.set('ns', 'k', 1);
          assert.equal(reader.stats().volumes, 2);
          assert.equal((await reader.searchSlices(q, { k: 1, mode: 'exact' }))[0][0].volumeId, 'vol-b');
          assert.deepEqual([...reader.artifacts.get('space', 's')!.bytes], [1]);
          assert.equal(reader.state.get('ns', 'k'), 1);
          assert.throws(() => reader.addVolume(b.record, b.vectors, ENCODER), refusedWith('READ_ONLY'));
          assert.throws(() => reader.removeVolume('vol-a'), refusedWith('READ_ONLY'));
          assert.throws(() => reader.artifacts.put('space', 't', Uint8Array.of(1)), refusedWith('READ_ONLY'));
          assert.throws(() => reader.artifacts.delete('space', 's'), refusedWith('READ_ONLY'));
          assert.throws(() => reader.state.set('ns', 'k', 2), refusedWith('READ_ONLY'));
          assert.throws(() => reader.state.clear('ns'), refusedWith('READ_ONLY'));
          assert.equal(store.stats().volumes, 2);
        } finally {
          reader.close();
          store.close();
        }
      });
    }
  });
}
