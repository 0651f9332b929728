import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { bearerToken, ensureToken, hostHeaderName, isLoopbackHost, tokenMatches } from '../src/server/auth.js';
import { ApiError, toApiError } from '../src/server/errors.js';
import { Limiter } from '../src/server/limiter.js';
import { ByteLru } from '../src/server/lru.js';
import { middleMatch, rangeOf, searchOptionsOf } from '../src/server/search-service.js';
import { sniffUpload } from '../src/server/uploads.js';
import { publicVolume, thumbnailGeometry } from '../src/server/volumes.js';
import { VolumeReadError } from '../src/io/errors.js';
import { SearchError } from '../src/search/errors.js';
import { EncoderError } from '../src/encode/errors.js';
import type { VolumeRecord } from '../src/store/types.js';

/** The server's building blocks, without HTTP: caches, queues, tokens, request parsing. */

describe('ByteLru', () => {
  test('evicts the least recently used entries past its byte budget', () => {
    const lru = new ByteLru<Uint8Array>(10, (v) => v.byteLength);
    lru.set('a', new Uint8Array(4));
    lru.set('b', new Uint8Array(4));
    assert.ok(lru.get('a'), 'a is now the most recent');
    lru.set('c', new Uint8Array(4));
    assert.deepEqual([lru.has('a'), lru.has('b'), lru.has('c')], [true, false, true]);
    assert.equal(lru.bytes, 8);
    lru.set('huge', new Uint8Array(11));
    assert.equal(lru.has('huge'), false, 'a value over the whole budget is not kept');
    assert.equal(lru.bytes, 8);
  });

  test('shares one load between overlapping requests and does not cache failures', async () => {
    const lru = new ByteLru<string>(100, (v) => v.length, 2);
    let loads = 0;
    const load = async (): Promise<string> => {
      loads++;
      await new Promise((resolve) => setTimeout(resolve, 10));
      return 'value';
    };
    const [a, b] = await Promise.all([lru.getOrLoad('k', load), lru.getOrLoad('k', load)]);
    assert.equal(a, b);
    assert.equal(loads, 1);
    await assert.rejects(lru.getOrLoad('bad', async () => Promise.reject(new Error('nope'))));
    assert.equal(await lru.getOrLoad('bad', async () => 'fine'), 'fine');
    lru.set('x', 'x');
    assert.equal(lru.size, 2, 'the entry cap holds');
  });
});

describe('Limiter', () => {
  test('runs at most `concurrency` tasks and refuses past the queue with 503', async () => {
    const limiter = new Limiter('test', 1, 1);
    let running = 0;
    let peak = 0;
    const task = async (): Promise<number> => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((resolve) => setTimeout(resolve, 20));
      running--;
      return 1;
    };
    const first = limiter.run(task);
    const second = limiter.run(task);
    await assert.rejects(limiter.run(task), (error: unknown) => error instanceof ApiError && error.statusCode === 503 && error.code === 'BUSY');
    assert.deepEqual(await Promise.all([first, second]), [1, 1]);
    assert.equal(peak, 1);
    assert.equal(limiter.active, 0);
    await assert.rejects(limiter.run(async () => Promise.reject(new Error('task failed'))));
    assert.equal(await limiter.run(task), 1, 'a failed task frees its slot');
  });
});

describe('tokens and hosts', () => {
  test('the token file is created owner-only, reused, and narrowed when others can read it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mir3d-token-'));
    try {
      const made = await ensureToken(dir);
      assert.equal(made.created, true);
      assert.match(made.token, /^[A-Za-z0-9_-]{43}$/);
      assert.equal((await stat(made.path)).mode & 0o777, 0o600);
      const again = await ensureToken(dir);
      assert.deepEqual([again.created, again.token], [false, made.token]);
      await chmod(made.path, 0o644);
      const fixed = await ensureToken(dir);
      assert.equal(fixed.permissionsFixed, true);
      assert.equal((await stat(made.path)).mode & 0o777, 0o600);
      const short = join(dir, 'short-token');
      await writeFile(short, 'abc\n', { mode: 0o600 });
      await assert.rejects(ensureToken(dir, short), /too short/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('bearer parsing, constant-time comparison, loopback names', () => {
    assert.equal(bearerToken('Bearer abc'), 'abc');
    assert.equal(bearerToken('bearer   abc  '), 'abc');
    assert.equal(bearerToken('Basic abc'), undefined);
    assert.equal(bearerToken('Bearer a b'), undefined);
    assert.equal(bearerToken(undefined), undefined);
    assert.ok(tokenMatches('secret-token', 'secret-token'));
    assert.ok(!tokenMatches('secret-token', 'secret-tokem'));
    assert.ok(!tokenMatches('secret-token', 'secret'));
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', 'app.localhost']) assert.ok(isLoopbackHost(host), host);
    for (const host of ['0.0.0.0', '::', '192.168.1.2', 'example.com', '127.0.0.1.evil.com', 'localhost.evil.com']) assert.ok(!isLoopbackHost(host), host);
    assert.equal(hostHeaderName('127.0.0.1:8765'), '127.0.0.1');
    assert.equal(hostHeaderName('[::1]:8765'), '::1');
    assert.equal(hostHeaderName('localhost'), 'localhost');
  });
});

describe('requests and answers', () => {
  test('query ranges and search options are built as mir3d search builds them', () => {
    assert.deepEqual(rangeOf({}), { kind: 'volume' });
    assert.deepEqual(rangeOf({ firstSlice: 2, lastSlice: 5 }), { kind: 'slices', firstSlice: 2, lastSlice: 5 });
    assert.deepEqual(rangeOf({ zStartMm: -10, zEndMm: 30 }), { kind: 'mm', zStartMm: -10, zEndMm: 30 });
    assert.deepEqual(rangeOf({ slice: 4 }), { kind: 'slice', slice: 4 });
    for (const bad of [{ firstSlice: 2 }, { lastSlice: 2 }, { firstSlice: 5, lastSlice: 2 }, { zEndMm: 3 }, { slice: 1, firstSlice: 0, lastSlice: 3 }]) {
      assert.throws(() => rangeOf(bad), (error: unknown) => error instanceof ApiError && error.statusCode === 400 && error.code === 'BAD_RANGE');
    }
    const options = searchOptionsOf({ method: 'slice-sum', k: 7, where: ['cancer_flag=1', 'coverage=abdomen'], fuse: 'volume-mean', exclude: ['v1'] });
    assert.equal(options.method, 'slice-sum');
    assert.deepEqual(options.filter?.labels, { cancer_flag: 1, coverage: 'abdomen' });
    assert.deepEqual(options.fuseWith, { method: 'volume-mean', fusion: 'rrf' });
    assert.deepEqual(options.excludeVolumeIds, ['v1']);
    assert.equal(searchOptionsOf({}).method, 'rerank');
    assert.throws(() => searchOptionsOf({ where: ['=x'] }), (error: unknown) => error instanceof ApiError && error.code === 'BAD_FILTER');
  });

  test('the axial slice shown is the match of the query slice nearest the middle', () => {
    const matches = [
      { querySlice: 10, targetSlice: 40, similarity: 0.9 },
      { querySlice: 15, targetSlice: 44, similarity: 0.8 },
      { querySlice: 15, targetSlice: 45, similarity: 0.95 },
      { querySlice: 20, targetSlice: 52, similarity: 0.99 },
    ];
    assert.deepEqual(middleMatch(matches, [10, 12, 14, 16, 18, 20]), matches[2]);
    assert.equal(middleMatch([], [1, 2]), undefined);
  });

  test('uploads are told apart by their bytes', () => {
    const nifti1 = Buffer.alloc(352);
    nifti1.writeInt32LE(348, 0);
    nifti1.write('n+1\0', 344, 'latin1');
    assert.equal(sniffUpload(nifti1), 'nifti');
    assert.equal(sniffUpload(Buffer.from([0x1f, 0x8b, 8, 0])), 'nifti');
    assert.equal(sniffUpload(Buffer.from('PK\u0003\u0004rest', 'latin1')), 'dicom-zip');
    const dicom = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM')]);
    assert.throws(() => sniffUpload(dicom), (error: unknown) => error instanceof ApiError && error.statusCode === 415 && /single DICOM file/.test(error.message));
    assert.throws(() => sniffUpload(Buffer.from('hello')), (error: unknown) => error instanceof ApiError && error.statusCode === 415);
  });

  test('library errors map to statuses without leaking paths', () => {
    const fromClient = toApiError(new VolumeReadError('TRUNCATED', '/tmp/mir3d-upload-x/upload', 'file ends early'), { volumeFromClient: true });
    assert.deepEqual([fromClient.statusCode, fromClient.code], [422, 'TRUNCATED']);
    assert.ok(!fromClient.message.includes('/tmp'));
    assert.equal(toApiError(new VolumeReadError('BAD_MAGIC', '/x', 'no'), { volumeFromClient: true }).statusCode, 415);
    assert.equal(toApiError(new VolumeReadError('NOT_FOUND', '/archive/DOE^JOHN/ct.nii', 'gone')).message.includes('DOE'), false);
    assert.equal(toApiError(new SearchError('BAD_OPTION', 'k must be positive')).statusCode, 400);
    assert.equal(toApiError(new SearchError('LABEL_ABSENT', 'label 3 absent')).statusCode, 422);
    assert.equal(toApiError(new EncoderError('BAD_BATCH', 'model.onnx', 'bad batch')).statusCode, 422);
    assert.equal(toApiError(new EncoderError('CORRUPT_MODEL', '/models/x.onnx', 'broken')).statusCode, 503);
    const internal = toApiError(new Error('at /secret/path'));
    assert.deepEqual([internal.statusCode, internal.message], [500, 'internal error']);
  });

  test('records lose their source path and date of care; thumbnails keep square pixels within maxPx', () => {
    const record: VolumeRecord = {
      volumeId: 'vabc',
      sourcePath: '/archive/DOE^JOHN/ct.nii.gz',
      contentSha256: 'f'.repeat(64),
      dims: [100, 100, 50],
      spacingMm: [0.8, 0.8, 5],
      affineRas: [-0.8, 0, 0, 40, 0, -0.8, 0, 40, 0, 0, 5, -100, 0, 0, 0, 1],
      modality: 'CT',
      studyDate: '20190412',
      labels: { organ: 'liver' },
      sliceCount: 50,
      addedAt: '2024-01-01T00:00:00.000Z',
    };
    const shown = publicVolume(record);
    const text = JSON.stringify(shown);
    assert.ok(!text.includes('DOE') && !text.includes('20190412') && !text.includes('fff'));
    assert.equal(shown.studyYear, 2019);
    assert.deepEqual(shown.zRangeMm, [-100, 145]);
    assert.deepEqual(thumbnailGeometry([100, 100, 50], [0.8, 0.8, 5], 'axial', 512), { pixelMm: 0.8, widthPx: 100, heightPx: 100 });
    const coronal = thumbnailGeometry([100, 100, 50], [0.8, 0.8, 5], 'coronal', 128);
    assert.deepEqual([coronal.widthPx, coronal.heightPx], [41, 128], '250 mm tall, 80 mm wide, at most 128 px');
  });
});
