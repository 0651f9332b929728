import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Encoder } from '../src/encode/encoder.js';
import { indexVolumes } from '../src/ingest/indexer.js';
import { openIndex, type OpenedIndex } from '../src/ingest/open-index.js';
import { writeNifti } from '../src/io/nifti-writer.js';
import { readVolume } from '../src/io/read.js';
import { sliceZMm, type Volume } from '../src/io/volume.js';
import { generatePhantom, LABEL } from '../src/synth/index.js';
import { maskLabelExtent } from '../src/query/range.js';
import { queryRangeOf, searchRequestOf, SEARCH_FLAGS, type SearchParams } from '../src/query/request.js';
import { runSearch } from '../src/query/run.js';
import { resolveQuery, type QuerySource, type ResolvedQuery } from '../src/query/sources.js';
import { aggregateSliceHits } from '../src/search/aggregate.js';
import { SearchError } from '../src/search/errors.js';
import type { QueryRangeInput } from '../src/query/range.js';

/**
 * The query stage: one rule turns a source and a range into query rows, whether the scan comes as a
 * file, as a volume in memory (an upload) or as the id of its indexed copy; one builder turns every
 * front end's parameters into a request.
 */

const isSearchError = (code: string) => (error: unknown) => error instanceof SearchError && error.code === code;

function assertSameRows(a: ResolvedQuery, b: ResolvedQuery, what: string): void {
  assert.deepEqual(a.sliceIndices, b.sliceIndices, `${what}: slices`);
  assert.deepEqual(Array.from(a.query.sliceIndices), Array.from(b.query.sliceIndices), `${what}: row slices`);
  assert.equal(a.query.dim, b.query.dim);
  assert.equal(a.query.vectors.length, b.query.vectors.length, `${what}: rows`);
  let worst = 0;
  for (let n = 0; n < a.query.vectors.length; n++) worst = Math.max(worst, Math.abs(a.query.vectors[n] - b.query.vectors[n]));
  assert.ok(worst < 1e-5, `${what}: vectors differ by up to ${worst}`);
  const za = Array.from(a.query.zMm ?? []);
  const zb = Array.from(b.query.zMm ?? []);
  assert.equal(za.length, zb.length);
  za.forEach((z, n) => assert.ok(Math.abs(z - zb[n]) < 1e-6, `${what}: z of row ${n}`));
}

describe('query stage: rows of a source and a range', () => {
  let dir: string;
  let index: OpenedIndex;
  let encoder: Encoder;
  let ctPath: string;
  let maskPath: string;
  let volume: Volume;
  let volumeId: string;
  let liver: { firstSlice: number; lastSlice: number };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mir3d-query-'));
    const phantom = generatePhantom({ coverage: 'abdomen', matrix: [48, 48], spacingMm: [8, 8, 5], seed: 7, lesions: [{ diameterMm: 20 }] });
    const other = generatePhantom({ coverage: 'thorax-abdomen', matrix: [48, 48], spacingMm: [8, 8, 5], seed: 8 });
    ctPath = join(dir, 'a', 'ct.nii.gz');
    maskPath = join(dir, 'a', 'labels.nii.gz');
    const otherPath = join(dir, 'b', 'ct.nii.gz');
    await mkdir(join(dir, 'a'));
    await mkdir(join(dir, 'b'));
    await writeNifti(ctPath, phantom.image, { gzipLevel: 1 });
    await writeNifti(maskPath, phantom.labels, { gzipLevel: 1 });
    await writeNifti(otherPath, other.image, { gzipLevel: 1 });
    index = await openIndex(join(dir, 'index'), { spec: { encoder: 'baseline' } });
    encoder = await index.encoder();
    const summary = await indexVolumes([ctPath, otherPath].map((path) => ({ path, kind: 'nifti' as const })), { store: index.store, encoder, useWorker: false });
    const outcome = summary.outcomes.find((o) => o.source.path === ctPath);
    assert.ok(outcome && outcome.status !== 'failed');
    volumeId = outcome.volumeId;
    volume = await readVolume(ctPath);
    liver = maskLabelExtent(await readVolume(maskPath), LABEL.liver);
  });

  after(async () => {
    await index.close();
    await rm(dir, { recursive: true, force: true });
  });

  const sources = (): Record<string, QuerySource> => ({
    fresh: { kind: 'volume', volume, record: null },
    file: { kind: 'path', path: ctPath },
    indexed: { kind: 'indexed', volumeId },
  });

  test('a fresh volume, its file and its stored copy give the same rows for every kind of range', async () => {
    const nz = volume.dims[2];
    const ranges: Record<string, QueryRangeInput> = {
      volume: { kind: 'volume' },
      slices: { kind: 'slices', firstSlice: 4, lastSlice: 11 },
      mm: { kind: 'mm', zStartMm: sliceZMm(volume, 3), zEndMm: sliceZMm(volume, 9) },
      mask: { kind: 'mask', maskPath, label: LABEL.liver },
      slice: { kind: 'slice', slice: nz - 1 },
    };
    for (const [name, range] of Object.entries(ranges)) {
      const { fresh, file, indexed } = sources();
      const embedded = await resolveQuery(fresh, range, { store: index.store, encoder });
      const fromFile = await resolveQuery(file, range, { store: index.store });
      const stored = await resolveQuery(indexed, range, { store: index.store });
      assert.equal(embedded.reusedStoredVectors, false, `${name}: the fresh volume is embedded`);
      assert.equal(fromFile.reusedStoredVectors, true, `${name}: the indexed file uses its stored rows`);
      assert.equal(stored.reusedStoredVectors, true);
      assertSameRows(embedded, stored, `${name}, fresh vs stored`);
      assertSameRows(fromFile, stored, `${name}, file vs stored`);
      assert.equal(fromFile.query.volumeId, volumeId, `${name}: the file is recognised as its indexed copy`);
    }
  });

  test('ranges select slices by index, by mm (slabs that overlap), by a mask label’s extent, and one slice', async () => {
    const { indexed } = sources();
    const slicesOf = async (range: QueryRangeInput): Promise<number[]> => (await resolveQuery(indexed, range, { store: index.store })).sliceIndices;
    const span = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, n) => a + n);
    assert.deepEqual(await slicesOf({ kind: 'slices', firstSlice: 4, lastSlice: 11 }), span(4, 11));
    assert.deepEqual(await slicesOf({ kind: 'slices', firstSlice: -5, lastSlice: 2 }), span(0, 2), 'clamped to the volume');
    // 5 mm slices: a range from slice 3's centre to slice 9's takes 3..9; 1 mm past a centre takes no more.
    assert.deepEqual(await slicesOf({ kind: 'mm', zStartMm: sliceZMm(volume, 3), zEndMm: sliceZMm(volume, 9) }), span(3, 9));
    assert.deepEqual(await slicesOf({ kind: 'mm', zStartMm: sliceZMm(volume, 3) - 2, zEndMm: sliceZMm(volume, 9) + 2 }), span(3, 9));
    assert.deepEqual(await slicesOf({ kind: 'mm', zStartMm: sliceZMm(volume, 3) - 3, zEndMm: sliceZMm(volume, 9) + 3 }), span(2, 10));
    assert.deepEqual(await slicesOf({ kind: 'mask', maskPath, label: LABEL.liver }), span(liver.firstSlice, liver.lastSlice));
    assert.ok(liver.lastSlice > liver.firstSlice && liver.lastSlice - liver.firstSlice + 1 < volume.dims[2], 'the liver is a slab, not the whole scan');
    assert.deepEqual(await slicesOf({ kind: 'slice', slice: 6 }), [6]);
    await assert.rejects(slicesOf({ kind: 'slice', slice: volume.dims[2] }), isSearchError('SLICE_OUT_OF_RANGE'));
    await assert.rejects(slicesOf({ kind: 'slices', firstSlice: 500, lastSlice: 600 }), isSearchError('SLICE_OUT_OF_RANGE'));
    await assert.rejects(slicesOf({ kind: 'mask', maskPath, label: 99 }), isSearchError('LABEL_ABSENT'));
    await assert.rejects(resolveQuery({ kind: 'indexed', volumeId: 'v000000000000' }, { kind: 'volume' }, { store: index.store }), isSearchError('BAD_QUERY'));
    await assert.rejects(resolveQuery({ kind: 'volume', volume, record: null }, { kind: 'volume' }, { store: index.store }), isSearchError('BAD_QUERY'), 'embedding needs an encoder');
  });

  test('rows embedded once are cut into slabs by the same rule, and an upload embeds each slice once', async () => {
    const whole = await resolveQuery({ kind: 'indexed', volumeId }, { kind: 'volume' }, { store: index.store });
    const slab = await resolveQuery({ kind: 'vectors', rows: whole.query, geometry: volume }, { kind: 'mask', maskPath, label: LABEL.liver }, { store: index.store });
    const direct = await resolveQuery({ kind: 'indexed', volumeId }, { kind: 'mask', maskPath, label: LABEL.liver }, { store: index.store });
    assertSameRows(slab, direct, 'slab of embedded rows vs stored slab');
    const all = await resolveQuery({ kind: 'vectors', rows: whole.query, geometry: volume }, { kind: 'volume' }, { store: index.store });
    assert.equal(all.query, whole.query, 'a range that keeps every row returns the rows themselves');

    const cache = new Map<number, { vector: Float32Array; zMm: number }>();
    let opened = 0;
    const lazy = async (): Promise<Encoder> => {
      opened++;
      return encoder;
    };
    const upload: QuerySource = { kind: 'volume', volume, record: null, embedded: cache };
    await resolveQuery(upload, { kind: 'slices', firstSlice: 2, lastSlice: 5 }, { store: index.store, encoder: lazy });
    assert.deepEqual([...cache.keys()].sort((a, b) => a - b), [2, 3, 4, 5]);
    const wider = await resolveQuery(upload, { kind: 'slices', firstSlice: 0, lastSlice: 7 }, { store: index.store, encoder: lazy });
    assert.equal(cache.size, 8);
    assert.equal(opened, 2);
    assertSameRows(wider, await resolveQuery({ kind: 'indexed', volumeId }, { kind: 'slices', firstSlice: 0, lastSlice: 7 }, { store: index.store }), 'cached upload vs stored');
  });

  test('one request runs the same search from a file, an upload and an indexed id', async () => {
    const params: SearchParams = { mask: maskPath, label: LABEL.liver, method: 'rerank', top: 1 };
    const outcomes = await Promise.all(
      [{ kind: 'volume', volume } as const, sources().file, sources().indexed].map((source) => runSearch(searchRequestOf(source, params), { store: index.store, encoder })),
    );
    for (const { results, resolved } of outcomes) {
      assert.equal(resolved.query.volumeId, volumeId, 'an upload with the voxels of an indexed volume is that volume');
      assert.equal(results.length, 1, 'the query volume itself is excluded, the other phantom found');
      assert.notEqual(results[0].volumeId, volumeId);
      assert.deepEqual(resolved.sliceIndices, outcomes[2].resolved.sliceIndices);
      assert.ok(Math.abs(results[0].score - outcomes[2].results[0].score) < 1e-5);
    }
  });
});

describe('query stage: one request builder', () => {
  const source: QuerySource = { kind: 'indexed', volumeId: 'v1' };

  test('ranges, filters and options from parameters', () => {
    assert.deepEqual(queryRangeOf({}), { kind: 'volume' });
    assert.deepEqual(queryRangeOf({ mask: 'm.nii.gz', label: 1 }), { kind: 'mask', maskPath: 'm.nii.gz', label: 1 });
    for (const bad of [{ mask: 'm.nii.gz' }, { label: 1 }, { mask: 'm.nii.gz', label: 1, slice: 3 }, { zStartMm: 1, firstSlice: 1, lastSlice: 2 }]) {
      assert.throws(() => queryRangeOf(bad), isSearchError('BAD_RANGE'), JSON.stringify(bad));
    }
    const request = searchRequestOf(source, { where: ['cancer_flag=1', 'site=a=b'], modality: ['CT'], includeVolumeIds: ['v2', 'v3'], localize: false, fuse: 'volume-mean', fusion: 'interleave' });
    assert.deepEqual(request.options.filter, { modalities: ['CT'], labels: { cancer_flag: 1, site: 'a=b' }, includeVolumeIds: ['v2', 'v3'] });
    assert.equal(request.options.localize, false);
    assert.deepEqual(request.options.fuseWith, { method: 'volume-mean', fusion: 'interleave' });
    assert.equal(request.options.method, 'rerank');
    assert.equal(request.options.mode, 'exact');
    assert.throws(() => searchRequestOf(source, { fusion: 'sum' as 'rrf' }), isSearchError('BAD_OPTION'));
  });

  test('every command-line flag sets a parameter the builder reads', () => {
    const values: Record<string, unknown> = {
      method: 'slice-max', choice: undefined, positiveInteger: 7, integer: 3, pair: [2, 9], list: ['x=1'], text: 'mask.nii.gz', switch: true,
    };
    for (const flag of SEARCH_FLAGS) {
      const params: SearchParams = {};
      const value = flag.value === 'choice' ? flag.choices![1] : values[flag.value];
      flag.apply(value as never, params);
      assert.ok(Object.keys(params).length > 0, `${flag.flags} sets nothing`);
    }
    assert.equal(new Set(SEARCH_FLAGS.map((f) => f.flags.split(' ')[0])).size, SEARCH_FLAGS.length, 'no flag twice');
  });
});

describe('aggregation keeps the top volumes before localizing', () => {
  test('a cut list is the head of the full list, matches and regions included', () => {
    const hits = [0, 1, 2, 3].map((row) =>
      ['a', 'b', 'c', 'd', 'e'].flatMap((volumeId, v) => [{ volumeId, sliceIndex: row * 2 + v, zMm: (row * 2 + v) * 5, similarity: 0.9 - v * 0.05 - row * 0.01 }]),
    );
    const query = { querySliceIndices: [10, 11, 12, 13], queryZMm: [50, 55, 60, 65] };
    for (const method of ['count', 'sum', 'max'] as const) {
      const full = aggregateSliceHits(hits, method, query);
      const cut = aggregateSliceHits(hits, method, { ...query, top: 2 });
      assert.equal(cut.length, 2);
      assert.deepEqual(cut, full.slice(0, 2));
    }
    assert.throws(() => aggregateSliceHits(hits, 'count', { ...query, top: 0 }), isSearchError('BAD_OPTION'));
  });
});
