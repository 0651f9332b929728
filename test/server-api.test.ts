import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { writeNifti } from '../src/io/nifti-writer.js';
import { readVolume } from '../src/io/read.js';
import { canonicalInt16Sha256 } from '../src/io/volume-stats.js';
import { generatePhantom } from '../src/synth/index.js';
import { search } from '../src/search/search.js';
import { SEARCH_METHODS } from '../src/search/types.js';
import { ServerConfigError, startServer, type RunningServer } from '../src/server/app.js';
import { TOKEN_FILE } from '../src/server/auth.js';
import { openStore } from '../src/store/index.js';
import { zipOf } from './helpers/zip.js';
import { runCli } from './helpers/cli.js';
import { bearer, jsonRequest, readPng, type ErrorBody } from './helpers/http.js';
import { buildPhantomIndex, type PhantomIndex } from './helpers/phantom-index.js';
import { sharedPath, skipWithoutSharedData } from './helpers/shared-data.js';

/**
 * The HTTP API over real HTTP on localhost: a small phantom index (baseline encoder), one server with
 * the default limits and one with tiny limits for the 413 paths.
 */

interface VolumeBody {
  volumeId: string;
  dims: [number, number, number];
  spacingMm: [number, number, number];
  labels: Record<string, string | number>;
  embeddedSlices: number;
  zRangeMm: [number, number];
  [key: string]: unknown;
}

interface SearchBody {
  query: { volumeId?: string; uploadId?: string; sliceCount: number; firstSlice: number; lastSlice: number; reusedStoredVectors: boolean };
  results: {
    rank: number;
    volumeId: string;
    score: number;
    region?: { firstSlice: number; lastSlice: number; zStartMm: number; zEndMm: number };
    middleMatch?: { querySlice: number; targetSlice: number; similarity: number };
    labels: Record<string, string | number>;
    dims: [number, number, number];
  }[];
}

const MiB = 1024 * 1024;
let index: PhantomIndex;
let server: RunningServer;
let small: RunningServer;
let token: string;
/** A phantom that is not in the index, as NIfTI bytes. */
let outsiderBytes: Buffer;
let outsiderDims: [number, number, number];

function url(path: string, on: RunningServer = server): string {
  return `${on.url}${path}`;
}

const auth = (): Record<string, string> => bearer(token);

async function getJson<T = unknown>(path: string, on: RunningServer = server): Promise<{ status: number; body: T; headers: Headers }> {
  return jsonRequest<T>(url(path, on), { headers: auth() });
}

async function postJson<T = unknown>(path: string, body: unknown, on: RunningServer = server): Promise<{ status: number; body: T; headers: Headers }> {
  return jsonRequest<T>(url(path, on), { method: 'POST', headers: { ...auth(), 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
}

function assertError(reply: { status: number; body: unknown }, status: number, code?: string): void {
  const body = reply.body as ErrorBody;
  assert.equal(reply.status, status, `expected ${status}${code ? ` ${code}` : ''}, got ${reply.status} ${JSON.stringify(body)}`);
  assert.equal(typeof body?.error?.message, 'string', `error body ${JSON.stringify(body)}`);
  if (code) assert.equal(body.error.code, code, body.error.message);
}

function multipart(bytes: Uint8Array, name = 'ct.nii.gz'): FormData {
  const form = new FormData();
  form.append('file', new Blob([bytes]), name);
  return form;
}

async function upload(bytes: Uint8Array, on: RunningServer = server, path = '/api/uploads'): Promise<{ status: number; body: unknown }> {
  return jsonRequest(url(path, on), { method: 'POST', headers: auth(), body: multipart(bytes) });
}


/** Renames an entry in a built zip (local header and central directory), for names yazl refuses. */
function renameEntry(zip: Buffer, from: string, to: string): Buffer {
  assert.equal(from.length, to.length, 'a patched name must keep its length');
  const out = Buffer.from(zip);
  const needle = Buffer.from(from, 'utf8');
  let at = out.indexOf(needle);
  let replaced = 0;
  while (at >= 0) {
    Buffer.from(to, 'utf8').copy(out, at);
    replaced++;
    at = out.indexOf(needle, at + needle.length);
  }
  assert.equal(replaced, 2, 'the name should occur in the local header and the central directory');
  return out;
}

before(async () => {
  index = await buildPhantomIndex({ count: 6 });
  server = await startServer({ dbDir: index.indexDir, port: 0 });
  small = await startServer({
    dbDir: index.indexDir,
    port: 0,
    limits: { maxUploadBytes: 256 * 1024, maxUnzippedBytes: 1 * MiB, maxZipEntries: 8, maxJsonBytes: 4096 },
  });
  token = server.token!;
  const outsider = generatePhantom({ seed: 4242, matrix: [64, 64], spacingMm: [6, 6, 5], coverage: 'abdomen', lesions: [{ diameterMm: 30 }] });
  const path = join(index.dir, 'outsider.nii.gz');
  await writeNifti(path, outsider.image);
  outsiderBytes = await readFile(path);
  outsiderDims = outsider.image.dims;
});

after(async () => {
  await small?.close();
  await server?.close();
  await index?.cleanup();
});

describe('service routes and the OpenAPI description', () => {
  test('health and version answer without a token; the token file is owner-only', async () => {
    const health = await jsonRequest<{ status: string }>(url('/api/health'));
    assert.equal(health.status, 200);
    assert.equal(health.body.status, 'ok');
    const version = await jsonRequest<{ name: string; version: string }>(url('/api/version'));
    assert.equal(version.status, 200);
    assert.equal(version.body.name, 'mir3d');
    const mode = (await stat(join(index.indexDir, TOKEN_FILE))).mode & 0o777;
    assert.equal(mode, 0o600);
    assert.equal(small.token, token, 'a second server over the same index reuses its token');
    assert.match(server.pageUrl, /\/#token=[A-Za-z0-9_-]{40,}$/);
  });

  test('/openapi.json describes every API route, with bearer security; /docs is served locally', async () => {
    const spec = await jsonRequest<{ openapi: string; paths: Record<string, Record<string, { security?: unknown[] }>>; components: { securitySchemes: Record<string, unknown> } }>(url('/openapi.json'));
    assert.equal(spec.status, 200);
    assert.match(spec.body.openapi, /^3\./);
    for (const path of ['/api/health', '/api/version', '/api/index', '/api/volumes', '/api/volumes/{volumeId}', '/api/volumes/{volumeId}/thumbnail.png', '/api/volumes/{volumeId}/volume.nii.gz', '/api/uploads', '/api/uploads/{uploadId}', '/api/uploads/{uploadId}/thumbnail.png', '/api/search', '/api/search/upload']) {
      assert.ok(spec.body.paths[path], `${path} is described`);
    }
    assert.ok(spec.body.components.securitySchemes.bearer);
    assert.deepEqual(spec.body.paths['/api/health'].get.security, []);
    const docs = await fetch(url('/docs'));
    assert.equal(docs.status, 200);
    const html = await docs.text();
    assert.doesNotMatch(html, /https?:\/\/(?!127\.0\.0\.1|localhost)[a-z]/i, 'the docs UI loads nothing from other hosts');
  });

  test('the page and its scripts are served from this process, with a strict content security policy', async () => {
    const page = await fetch(url('/'));
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    const html = await page.text();
    assert.doesNotMatch(html, /<script[^>]+src="https?:/i);
    for (const asset of ['/app/main.js', '/styles.css', '/vendor/niivue/index.js']) {
      const response = await fetch(url(asset));
      assert.equal(response.status, 200, asset);
      await response.arrayBuffer();
    }
    assert.equal((await fetch(url('/vendor/niivue/index.min.js'))).status, 404, 'only the one NiiVue bundle is exposed');
  });
});

describe('authentication', () => {
  test('every data route refuses a missing or wrong token with 401', async () => {
    const { volumeId } = index.phantoms[0];
    const routes: [string, RequestInit][] = [
      ['/api/index', {}],
      ['/api/volumes', {}],
      [`/api/volumes/${volumeId}`, {}],
      [`/api/volumes/${volumeId}/thumbnail.png`, {}],
      [`/api/volumes/${volumeId}/volume.nii.gz`, {}],
      ['/api/search', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ volumeId }) }],
      ['/api/uploads', { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body: outsiderBytes }],
      ['/api/nothing-here', {}],
      ['/%61pi/volumes', {}],
    ];
    for (const [path, init] of routes) {
      const missing = await jsonRequest(url(path), init);
      assertError(missing, 401, 'UNAUTHORIZED');
      assert.match(missing.headers.get('www-authenticate') ?? '', /^Bearer/);
      const wrong = await jsonRequest(url(path), { ...init, headers: { ...(init.headers as Record<string, string>), Authorization: `Bearer ${token.slice(0, -2)}xx` } });
      assertError(wrong, 401, 'UNAUTHORIZED');
    }
    assertError(await jsonRequest(url('/api/volumes'), { headers: { Authorization: `Basic ${Buffer.from(`x:${token}`).toString('base64')}` } }), 401);
    const lowercase = await jsonRequest(url('/api/volumes'), { headers: { Authorization: `bearer ${token}` } });
    assert.equal(lowercase.status, 200);
  });

  test('--no-auth is refused on a non-local address, and on localhost only answers localhost names', async () => {
    await assert.rejects(startServer({ dbDir: index.indexDir, port: 0, auth: false, host: '0.0.0.0' }), (error: unknown) => error instanceof ServerConfigError && error.code === 'NO_AUTH_NOT_LOCAL');
    const cli = runCli(['serve', '--db', index.indexDir, '--no-auth', '--host', '0.0.0.0', '--port', '0'], 30_000);
    assert.equal(cli.status, 2, cli.stderr);
    assert.match(cli.stderr, /NO_AUTH_NOT_LOCAL/);

    const open = await startServer({ dbDir: index.indexDir, port: 0, auth: false });
    try {
      assert.equal(open.token, undefined);
      const list = await jsonRequest<{ total: number }>(`${open.url}/api/volumes`);
      assert.equal(list.status, 200);
      // A page on another site reaching us through DNS rebinding arrives with its own Host header.
      const port = new URL(open.url).port;
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path: '/api/volumes', headers: { Host: 'attacker.example' } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(status, 403);
    } finally {
      await open.close();
    }
  });
});

describe('volumes', () => {
  test('lists volumes with filters and paging, without source paths or hashes', async () => {
    const all = await getJson<{ total: number; volumes: VolumeBody[] }>('/api/volumes');
    assert.equal(all.status, 200);
    assert.equal(all.body.total, index.phantoms.length);
    assert.deepEqual(new Set(all.body.volumes.map((v) => v.volumeId)), new Set(index.phantoms.map((p) => p.volumeId)));
    const text = JSON.stringify(all.body);
    assert.ok(!text.includes(index.dir), 'no server path leaks');
    for (const key of ['sourcePath', 'contentSha256', 'studyDate']) assert.ok(!text.includes(key), `${key} is not exposed`);
    assert.equal(all.headers.get('cache-control'), 'no-store');

    const abdomen = await getJson<{ total: number; volumes: VolumeBody[] }>('/api/volumes?where=coverage=abdomen');
    assert.ok(abdomen.body.total > 0 && abdomen.body.total < index.phantoms.length);
    assert.ok(abdomen.body.volumes.every((v) => v.labels.coverage === 'abdomen'));
    const flagged = await getJson<{ volumes: VolumeBody[] }>('/api/volumes?where=cancer_flag=1&modality=CT');
    assert.ok(flagged.body.volumes.length > 0 && flagged.body.volumes.every((v) => v.labels.cancer_flag === 1));
    const none = await getJson<{ total: number }>('/api/volumes?modality=MR');
    assert.equal(none.body.total, 0);
    const page = await getJson<{ total: number; volumes: VolumeBody[]; offset: number; limit: number }>('/api/volumes?offset=2&limit=2');
    assert.equal(page.body.volumes.length, 2);
    assert.deepEqual(page.body.volumes.map((v) => v.volumeId), all.body.volumes.slice(2, 4).map((v) => v.volumeId));

    assertError(await getJson('/api/volumes?limit=0'), 400, 'BAD_REQUEST');
    assertError(await getJson('/api/volumes?bogus=1'), 400, 'BAD_REQUEST');
    assertError(await getJson('/api/volumes?where=nokey'), 400, 'BAD_FILTER');
  });

  test('source names only with --show-source-names: the last two path parts, in lists, records and results', async () => {
    const named = await startServer({ dbDir: index.indexDir, port: 0, showSourceNames: true });
    try {
      const headers = bearer(named.token!);
      const plain = await getJson<{ volumes: VolumeBody[] }>('/api/volumes');
      assert.ok(plain.body.volumes.every((v) => !('sourceName' in v)), 'no source names by default');
      const listed = await jsonRequest<{ volumes: (VolumeBody & { sourceName?: string })[] }>(url('/api/volumes', named), { headers });
      const expected = new Map(index.phantoms.map((p) => [p.volumeId, `${p.name}/ct.nii.gz`]));
      for (const v of listed.body.volumes) assert.equal(v.sourceName, expected.get(v.volumeId));
      assert.ok(!JSON.stringify(listed.body).includes(index.dir), 'never the whole path');
      const first = index.phantoms[0];
      const one = await jsonRequest<{ sourceName?: string }>(url(`/api/volumes/${first.volumeId}`, named), { headers });
      assert.equal(one.body.sourceName, `${first.name}/ct.nii.gz`);
      const found = await jsonRequest<{ results: { volumeId: string; sourceName?: string }[] }>(url('/api/search', named), { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify({ volumeId: first.volumeId, method: 'volume-mean' }) });
      assert.equal(found.status, 200, JSON.stringify(found.body));
      assert.ok(found.body.results.length > 0);
      for (const r of found.body.results) assert.equal(r.sourceName, expected.get(r.volumeId));
      const unnamed = await postJson<{ results: object[] }>('/api/search', { volumeId: first.volumeId, method: 'volume-mean' });
      assert.ok(unnamed.body.results.every((r) => !('sourceName' in r)));
    } finally {
      await named.close();
    }
  });

  test('inspects one volume; unknown ids are 404, ids that look like paths are 400', async () => {
    const { volumeId, options } = index.phantoms[1];
    const one = await getJson<VolumeBody>(`/api/volumes/${volumeId}`);
    assert.equal(one.status, 200);
    assert.equal(one.body.volumeId, volumeId);
    assert.equal(one.body.dims[0], options.matrix![0]);
    assert.equal(one.body.embeddedSlices, one.body.dims[2]);
    assert.ok(one.body.zRangeMm[0] < one.body.zRangeMm[1]);
    assert.equal(one.body.labels.phantom, index.phantoms[1].name);
    assertError(await getJson('/api/volumes/v000000000000'), 404, 'VOLUME_NOT_FOUND');
    for (const evil of ['..%2F..%2Fetc%2Fpasswd', '%2e%2e', '..', '%2Fetc%2Fpasswd', '.hidden', 'a%00b', `${'x'.repeat(300)}`]) {
      const reply = await getJson(`/api/volumes/${evil}`);
      assert.ok([400, 404, 414].includes(reply.status), `${evil}: ${reply.status}`);
      assert.ok(!JSON.stringify(reply.body).includes('root:'), 'nothing of /etc/passwd comes back');
    }
    // A client that normalizes the path ends at a route that does not exist.
    assertError(await getJson(`/api/volumes/${volumeId}/../../../etc/passwd`), 404);
    assertError(await getJson(`/api/volumes/..%2F${volumeId}/thumbnail.png`), 400, 'BAD_REQUEST');
    assertError(await getJson(`/api/volumes/${volumeId}%2F..%2F..%2Fserver-token/thumbnail.png`), 400, 'BAD_REQUEST');
  });

  test('thumbnails are PNGs of the expected size in every plane, with window and band options', async () => {
    const { volumeId } = index.phantoms[0];
    const record = (await getJson<VolumeBody>(`/api/volumes/${volumeId}`)).body;
    const [nx, ny, nz] = record.dims;
    const [sx, sy, sz] = record.spacingMm;
    const expected = (u: number, su: number, v: number, sv: number, maxPx: number): [number, number] => {
      const pixelMm = Math.max(Math.min(su, sv), Math.max(u * su, v * sv) / maxPx);
      return [Math.round((u * su) / pixelMm), Math.round((v * sv) / pixelMm)];
    };
    const cases: [string, [number, number]][] = [
      ['plane=coronal', expected(nx, sx, nz, sz, 512)],
      ['plane=axial&index=10&window=lung', expected(nx, sx, ny, sy, 512)],
      ['plane=sagittal&levelHu=400&widthHu=1800&bandFirst=5&bandLast=20&tint=query', expected(ny, sy, nz, sz, 512)],
      ['plane=coronal&maxPx=64', expected(nx, sx, nz, sz, 64)],
      ['', expected(nx, sx, nz, sz, 512)],
    ];
    for (const [params, [width, height]] of cases) {
      const response = await fetch(url(`/api/volumes/${volumeId}/thumbnail.png?${params}`), { headers: auth() });
      assert.equal(response.status, 200, params);
      assert.equal(response.headers.get('content-type'), 'image/png');
      const png = readPng(new Uint8Array(await response.arrayBuffer()));
      assert.deepEqual([png.width, png.height], [width, height], params);
      if (params.includes('maxPx=64')) assert.ok(Math.max(png.width, png.height) <= 64);
    }
    // The band tints the rows of its slices, and only those.
    const plain = readPng(new Uint8Array(await (await fetch(url(`/api/volumes/${volumeId}/thumbnail.png?plane=coronal&maxPx=128`), { headers: auth() })).arrayBuffer()));
    const banded = readPng(new Uint8Array(await (await fetch(url(`/api/volumes/${volumeId}/thumbnail.png?plane=coronal&maxPx=128&bandFirst=0&bandLast=${Math.floor(nz / 4)}`), { headers: auth() })).arrayBuffer()));
    const rowDiffers = (row: number): boolean => !plain.data.subarray(row * plain.width * 4, (row + 1) * plain.width * 4).equals(banded.data.subarray(row * banded.width * 4, (row + 1) * banded.width * 4));
    assert.ok(rowDiffers(plain.height - 2), 'the inferior rows are tinted');
    assert.ok(!rowDiffers(1), 'the superior rows are not');

    for (const [params, code] of [
      ['plane=oblique', 'BAD_REQUEST'],
      ['plane=axial&index=100000', 'SLICE_OUT_OF_RANGE'],
      ['plane=axial&bandFirst=1&bandLast=3', 'BAD_BAND'],
      ['plane=coronal&bandFirst=3', 'BAD_BAND'],
      ['plane=coronal&bandFirst=9&bandLast=3', 'BAD_BAND'],
      [`plane=coronal&bandFirst=0&bandLast=${nz}`, 'SLICE_OUT_OF_RANGE'],
      ['levelHu=40', 'BAD_WINDOW'],
      ['window=lung&levelHu=40&widthHu=400', 'BAD_WINDOW'],
      ['widthHu=0&levelHu=1', 'BAD_REQUEST'],
      ['window=rainbow', 'BAD_REQUEST'],
      ['maxPx=5', 'BAD_REQUEST'],
      ['index=-1', 'BAD_REQUEST'],
      ['index=abc', 'BAD_REQUEST'],
      ['size=12', 'BAD_REQUEST'],
    ] as const) {
      assertError(await getJson(`/api/volumes/${volumeId}/thumbnail.png?${params}`), 400, code);
    }
    assertError(await getJson('/api/volumes/vffffffffffff/thumbnail.png'), 404, 'VOLUME_NOT_FOUND');
  });

  test('the volume as NIfTI carries the indexed voxels on their grid', async () => {
    const phantom = index.phantoms[2];
    const response = await fetch(url(`/api/volumes/${phantom.volumeId}/volume.nii.gz`), { headers: auth() });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/gzip');
    const bytes = Buffer.from(await response.arrayBuffer());
    const raw = gunzipSync(bytes);
    assert.equal(raw.readInt32LE(0), 348);
    const dir = await mkdtemp(join(tmpdir(), 'mir3d-nifti-'));
    try {
      const path = join(dir, 'served.nii.gz');
      await writeFile(path, bytes);
      const served = await readVolume(path);
      const source = await readVolume(phantom.path);
      assert.deepEqual(served.dims, source.dims);
      assert.equal(canonicalInt16Sha256(served), canonicalInt16Sha256(source));
      for (let n = 0; n < 12; n++) assert.ok(Math.abs(served.affineRas[n] - source.affineRas[n]) < 1e-3, `affine entry ${n}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('search by indexed volume', () => {
  test('whole volume, slice range, mm range and one slice; results match the library', async () => {
    const query = index.phantoms[1];
    const record = (await getJson<VolumeBody>(`/api/volumes/${query.volumeId}`)).body;
    const nz = record.dims[2];
    const first = Math.floor(nz / 4);
    const last = Math.floor(nz / 2);
    const store = openStore(index.indexDir, { readOnly: true });
    try {
      const whole = await postJson<SearchBody>('/api/search', { volumeId: query.volumeId });
      assert.equal(whole.status, 200, JSON.stringify(whole.body));
      assert.equal(whole.body.query.sliceCount, nz);
      assert.equal(whole.body.query.reusedStoredVectors, true);
      assert.equal(whole.body.results.length, index.phantoms.length - 1, 'the query volume itself is excluded');
      assert.ok(!whole.body.results.some((r) => r.volumeId === query.volumeId));

      const slab = await postJson<SearchBody>('/api/search', { volumeId: query.volumeId, firstSlice: first, lastSlice: last, method: 'rerank', top: 3 });
      assert.equal(slab.status, 200);
      assert.deepEqual([slab.body.query.firstSlice, slab.body.query.lastSlice, slab.body.query.sliceCount], [first, last, last - first + 1]);
      assert.equal(slab.body.results.length, 3);
      for (const result of slab.body.results) {
        assert.ok(result.region, 'every result is localized');
        assert.ok(result.region.firstSlice >= 0 && result.region.lastSlice < result.dims[2] && result.region.firstSlice <= result.region.lastSlice);
        assert.ok(result.middleMatch && result.middleMatch.targetSlice >= 0 && result.middleMatch.targetSlice < result.dims[2]);
        assert.ok(result.middleMatch.querySlice >= first && result.middleMatch.querySlice <= last);
      }
      // The same question asked of the library directly gives the same answer.
      const vectors = store.getVectors([query.volumeId]).get(query.volumeId)!;
      const { queryFromVolumeVectors } = await import('../src/query/range.js');
      const direct = await search(store, queryFromVolumeVectors(vectors, Array.from({ length: last - first + 1 }, (_, n) => first + n)), { method: 'rerank', top: 3 });
      assert.deepEqual(slab.body.results.map((r) => r.volumeId), direct.map((r) => r.volumeId));
      slab.body.results.forEach((r, n) => {
        assert.ok(Math.abs(r.score - direct[n].score) < 1e-9);
        assert.deepEqual(r.region, { firstSlice: direct[n].region!.firstSlice, lastSlice: direct[n].region!.lastSlice, zStartMm: direct[n].region!.zStartMm, zEndMm: direct[n].region!.zEndMm });
      });

      const [z0, z1] = record.zRangeMm;
      const mm = await postJson<SearchBody>('/api/search', { volumeId: query.volumeId, zStartMm: z0 + 20, zEndMm: z0 + 60, top: 2 });
      assert.equal(mm.status, 200);
      assert.ok(mm.body.query.sliceCount > 1 && mm.body.query.sliceCount < nz);
      assert.ok(z1 > z0);
      const one = await postJson<SearchBody>('/api/search', { volumeId: query.volumeId, slice: first, method: 'slice-count' });
      assert.equal(one.status, 200);
      assert.equal(one.body.query.sliceCount, 1);
    } finally {
      store.close();
    }
  });

  test('every method, fusion, filters, exclusions and the query itself', async () => {
    const query = index.phantoms[0];
    for (const method of SEARCH_METHODS) {
      const reply = await postJson<SearchBody>('/api/search', { volumeId: query.volumeId, method, top: 3, k: 10, candidates: 4, mode: method.startsWith('slice') ? 'approximate' : 'exact' });
      assert.equal(reply.status, 200, `${method}: ${JSON.stringify(reply.body)}`);
      assert.ok(reply.body.results.length > 0 && reply.body.results.length <= 3, method);
      assert.deepEqual(reply.body.results.map((r) => r.rank), reply.body.results.map((_, n) => n + 1));
    }
    const fused = await postJson<SearchBody>('/api/search', { volumeId: query.volumeId, method: 'rerank', fuse: 'volume-mean', fusion: 'interleave', top: 4 });
    assert.equal(fused.status, 200);
    assert.equal(fused.body.results.length, 4);
    const flagged = await postJson<SearchBody>('/api/search', { volumeId: query.volumeId, where: ['cancer_flag=1'] });
    assert.ok(flagged.body.results.length > 0 && flagged.body.results.every((r) => r.labels.cancer_flag === 1));
    const excluded = index.phantoms[3].volumeId;
    const without = await postJson<SearchBody>('/api/search', { volumeId: query.volumeId, exclude: [excluded] });
    assert.ok(!without.body.results.some((r) => r.volumeId === excluded));
    const self = await postJson<SearchBody>('/api/search', { volumeId: query.volumeId, includeSelf: true });
    assert.equal(self.body.results[0].volumeId, query.volumeId, 'a volume is its own best match');
    const matches = await postJson<{ results: { matches?: unknown[]; matchCount: number }[] }>('/api/search', { volumeId: query.volumeId, top: 1, matches: true });
    assert.equal(matches.body.results[0].matches?.length, matches.body.results[0].matchCount);
  });

  test('bad search requests are 400, unknown volumes and uploads 404, wrong media 415', async () => {
    const { volumeId } = index.phantoms[0];
    const bad: [unknown, string][] = [
      [{}, 'BAD_QUERY'],
      [{ volumeId, uploadId: 'u0123456789abcdef01234567' }, 'BAD_QUERY'],
      [{ volumeId, method: 'telepathy' }, 'BAD_REQUEST'],
      [{ volumeId, firstStage: 'rerank' }, 'BAD_REQUEST'],
      [{ volumeId, firstSlice: 3 }, 'BAD_RANGE'],
      [{ volumeId, firstSlice: 9, lastSlice: 3 }, 'BAD_RANGE'],
      [{ volumeId, firstSlice: 1, lastSlice: 3, slice: 2 }, 'BAD_RANGE'],
      [{ volumeId, zStartMm: 10 }, 'BAD_RANGE'],
      [{ volumeId, firstSlice: 5000, lastSlice: 5001 }, 'SLICE_OUT_OF_RANGE'],
      [{ volumeId, slice: 5000 }, 'SLICE_OUT_OF_RANGE'],
      [{ volumeId, k: 0 }, 'BAD_REQUEST'],
      [{ volumeId, top: 1.5 }, 'BAD_REQUEST'],
      [{ volumeId, metod: 'rerank' }, 'BAD_REQUEST'],
      [{ volumeId, where: ['novalue'] }, 'BAD_FILTER'],
      [{ volumeId: '../../etc/passwd' }, 'BAD_REQUEST'],
      [{ volumeId, exclude: ['../x'] }, 'BAD_REQUEST'],
      [[1, 2], 'BAD_REQUEST'],
    ];
    for (const [body, code] of bad) assertError(await postJson('/api/search', body), 400, code);
    assertError(await postJson('/api/search', { volumeId: 'v000000000000' }), 404, 'VOLUME_NOT_FOUND');
    assertError(await postJson('/api/search', { uploadId: 'u0123456789abcdef01234567' }), 404, 'UPLOAD_NOT_FOUND');
    assertError(await jsonRequest(url('/api/search'), { method: 'POST', headers: { ...auth(), 'Content-Type': 'application/json' }, body: '{"volumeId": ' }), 400, 'BAD_JSON');
    assertError(await jsonRequest(url('/api/search'), { method: 'POST', headers: { ...auth(), 'Content-Type': 'text/plain' }, body: 'volumeId' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    assertError(await jsonRequest(url('/api/search'), { method: 'POST', headers: auth(), body: multipart(outsiderBytes) }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    assertError(await postJson('/api/search', { volumeId, where: ['x='.padEnd(5000, 'y')] }, small), 413, 'BODY_TOO_LARGE');
  });
});

describe('search by uploaded volume', () => {
  test('an uploaded NIfTI is kept, viewable, searchable by range, and deletable', async () => {
    const created = await upload(outsiderBytes);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const info = created.body as { uploadId: string; dims: number[]; indexedAs?: string };
    assert.match(info.uploadId, /^u[0-9a-f]{24}$/);
    assert.deepEqual(info.dims, outsiderDims);
    assert.equal(info.indexedAs, undefined);
    assert.ok(!JSON.stringify(info).includes('ct.nii.gz'), 'the client file name is not echoed');

    const nz = outsiderDims[2];
    const first = await postJson<SearchBody>('/api/search', { uploadId: info.uploadId, firstSlice: 5, lastSlice: nz - 5, top: 3 });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.query.uploadId, info.uploadId);
    assert.equal(first.body.query.reusedStoredVectors, false);
    assert.equal(first.body.query.sliceCount, nz - 9);
    assert.equal(first.body.results.length, 3);
    assert.ok(first.body.results.every((r) => r.region));

    const again = await postJson<SearchBody>('/api/search', { uploadId: info.uploadId, method: 'volume-mean', top: 2 });
    assert.equal(again.status, 200);
    assert.equal(again.body.query.sliceCount, nz);

    const meta = await getJson<{ uploadId: string }>(`/api/uploads/${info.uploadId}`);
    assert.equal(meta.body.uploadId, info.uploadId);
    const picture = await fetch(url(`/api/uploads/${info.uploadId}/thumbnail.png?plane=coronal&bandFirst=5&bandLast=20&tint=query`), { headers: auth() });
    assert.equal(picture.status, 200);
    readPng(new Uint8Array(await picture.arrayBuffer()));
    const nifti = await fetch(url(`/api/uploads/${info.uploadId}/volume.nii.gz`), { headers: auth() });
    assert.equal(nifti.status, 200);
    assert.equal(gunzipSync(Buffer.from(await nifti.arrayBuffer())).readInt16LE(42), outsiderDims[0]);

    const removed = await fetch(url(`/api/uploads/${info.uploadId}`), { method: 'DELETE', headers: auth() });
    assert.equal(removed.status, 204);
    assertError(await getJson(`/api/uploads/${info.uploadId}`), 404, 'UPLOAD_NOT_FOUND');
    assertError(await getJson('/api/uploads/../../etc'), 404);
    assertError(await getJson('/api/uploads/notanid'), 400, 'BAD_REQUEST');
  });

  test('one-shot search with raw bytes; an upload of an indexed scan reuses its vectors and excludes it', async () => {
    const indexed = index.phantoms[2];
    const bytes = await readFile(indexed.path);
    const oneShot = await jsonRequest<SearchBody>(url('/api/search/upload?top=2&firstSlice=3&lastSlice=30&method=rerank'), {
      method: 'POST',
      headers: { ...auth(), 'Content-Type': 'application/gzip' },
      body: bytes,
    });
    assert.equal(oneShot.status, 200, JSON.stringify(oneShot.body));
    assert.equal(oneShot.body.query.volumeId, indexed.volumeId);
    assert.equal(oneShot.body.query.reusedStoredVectors, true);
    assert.equal(oneShot.body.query.uploadId, undefined, 'a one-shot upload is not kept');
    assert.ok(!oneShot.body.results.some((r) => r.volumeId === indexed.volumeId));

    const kept = await upload(bytes);
    assert.equal(kept.status, 201);
    assert.equal((kept.body as { indexedAs?: string }).indexedAs, indexed.volumeId);

    const multipartShot = await jsonRequest<SearchBody>(url('/api/search/upload?method=volume-max&top=1'), { method: 'POST', headers: auth(), body: multipart(outsiderBytes) });
    assert.equal(multipartShot.status, 200, JSON.stringify(multipartShot.body));
    assert.equal(multipartShot.body.results.length, 1);
    assertError(await jsonRequest(url('/api/search/upload?method=nope'), { method: 'POST', headers: { ...auth(), 'Content-Type': 'application/octet-stream' }, body: outsiderBytes }), 400, 'BAD_REQUEST');
    assertError(await jsonRequest(url('/api/search/upload?firstSlice=900&lastSlice=901'), { method: 'POST', headers: { ...auth(), 'Content-Type': 'application/octet-stream' }, body: outsiderBytes }), 400, 'SLICE_OUT_OF_RANGE');
  });

  test('a zipped DICOM series (real CT) is unpacked, read and searched', { skip: skipWithoutSharedData }, async () => {
    const dicomDir = sharedPath('ircad17', 'dicom');
    const names = (await readdir(dicomDir)).sort();
    const entries: { name: string; bytes?: Buffer; directory?: boolean; mode?: number }[] = [{ name: 'export/', directory: true }];
    for (const [n, name] of names.entries()) entries.push({ name: `export/series ${n % 2}/${name}`, bytes: await readFile(join(dicomDir, name)) });
    entries.push({ name: '__MACOSX/export/._image_76', bytes: Buffer.from('resource fork') });
    entries.push({ name: 'export/link-to-passwd', bytes: Buffer.from('/etc/passwd'), mode: 0o120777 });
    const zip = await zipOf(entries);
    const created = await upload(zip);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const info = created.body as { uploadId: string; dims: number[]; modality: string };
    const direct = await readVolume(dicomDir);
    assert.deepEqual(info.dims, direct.dims);
    assert.equal(info.modality, 'CT');
    const found = await postJson<SearchBody>('/api/search', { uploadId: info.uploadId, top: 3 });
    assert.equal(found.status, 200, JSON.stringify(found.body));
    assert.equal(found.body.query.sliceCount, direct.dims[2]);
    // Slice-count candidates are the volumes some nearest slice fell in: a real CT against phantoms may
    // gather them in fewer than `top` volumes.
    assert.ok(found.body.results.length >= 1 && found.body.results.length <= 3);
    const raw = await jsonRequest(url('/api/uploads'), { method: 'POST', headers: { ...auth(), 'Content-Type': 'application/zip' }, body: zip });
    assert.equal(raw.status, 201);
  });

  test('files that are not volumes: 415 for unknown kinds, 422 for broken volumes and archives', async () => {
    const truncated = outsiderBytes.subarray(0, Math.floor(outsiderBytes.length / 2));
    const notNifti = gzipSync(Buffer.from('this is text, not a NIfTI header'.repeat(20)));
    const textZip = await zipOf([{ name: 'notes/readme.txt', bytes: Buffer.from('no DICOM here') }]);
    const dicomHeaderOnly = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), Buffer.alloc(64)]);
    const cases: [Buffer, number, string][] = [
      [Buffer.from('GIF89a, clearly not a volume'.repeat(20)), 415, 'UNSUPPORTED_MEDIA_TYPE'],
      [dicomHeaderOnly, 415, 'UNSUPPORTED_MEDIA_TYPE'],
      [notNifti, 415, 'BAD_MAGIC'],
      [truncated, 422, ''],
      [textZip, 422, 'NO_DICOM'],
      [Buffer.from('PK\u0003\u0004 broken zip'), 422, 'BAD_ARCHIVE'],
    ];
    for (const [bytes, status, code] of cases) {
      const reply = await upload(bytes);
      assertError(reply, status, code || undefined);
      assert.ok(!(reply.body as ErrorBody).error.message.includes(tmpdir()), 'no temp path in the message');
    }
    assertError(await upload(Buffer.alloc(0)), 400, 'EMPTY_UPLOAD');
    assertError(await jsonRequest(url('/api/uploads'), { method: 'POST', headers: { ...auth(), 'Content-Type': 'image/png' }, body: outsiderBytes }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    const form = new FormData();
    form.append('note', 'no file here');
    assertError(await jsonRequest(url('/api/uploads'), { method: 'POST', headers: auth(), body: form }), 400, 'NO_FILE');
    assertError(await jsonRequest(url('/api/uploads?series=../../x'), { method: 'POST', headers: auth(), body: multipart(outsiderBytes) }), 400, 'BAD_REQUEST');
  });

  test('zip entry names cannot reach outside the extraction folder', async () => {
    const before = new Set(await readdir(tmpdir()));
    const payload = Buffer.from('not dicom');
    const variants: [string, string][] = [
      ['aa/aa/evil.dcm', '../../evil.dcm'],
      ['aaaa/evil.dcm', '/tmp/evil.dcm'.slice(0, 13)],
      ['aa\\aa\\evil.dcm'.replace(/\\/g, '/'), '..\\..\\evil.dcm'],
      ['a/aa/evil.dcm', 'a/../evil.dcm'],
    ];
    for (const [safe, evil] of variants) {
      const zip = renameEntry(await zipOf([{ name: safe, bytes: payload }]), safe, evil);
      const reply = await upload(zip);
      assertError(reply, 422, 'BAD_ARCHIVE');
    }
    // Percent-encoded names are just names: flattened under generated names, nothing escapes.
    const encoded = await zipOf([{ name: '..%2F..%2Fevil.dcm', bytes: payload }]);
    assertError(await upload(encoded), 422, 'NO_DICOM');
    const created = [...(await readdir(tmpdir()))].filter((name) => !before.has(name));
    assert.ok(!created.some((name) => name.includes('evil')), `nothing escaped into ${tmpdir()}: ${created.join(', ')}`);
    assert.ok(!existsSync('/tmp/evil.dcm') && !existsSync(join(tmpdir(), '..', 'evil.dcm')));
    assert.ok(!created.some((name) => name.startsWith('mir3d-upload-')), 'upload folders are removed');
  });
});

describe('limits', () => {
  test('oversized uploads, zip bombs and archives with too many entries are 413', async () => {
    const big = Buffer.alloc(300 * 1024, 7);
    assertError(await upload(big, small), 413);
    assertError(await jsonRequest(url('/api/uploads', small), { method: 'POST', headers: { ...auth(), 'Content-Type': 'application/octet-stream' }, body: big }), 413, 'UPLOAD_TOO_LARGE');
    assertError(await jsonRequest(url('/api/search/upload', small), { method: 'POST', headers: { ...auth(), 'Content-Type': 'application/octet-stream' }, body: big }), 413, 'UPLOAD_TOO_LARGE');
    const bomb = await zipOf([{ name: 'zeros.dcm', bytes: Buffer.alloc(4 * MiB) }]);
    assert.ok(bomb.length < 64 * 1024, 'the bomb is small when packed');
    assertError(await upload(bomb, small), 413, 'ARCHIVE_TOO_LARGE');
    const many = await zipOf(Array.from({ length: 20 }, (_, n) => ({ name: `f${n}.dcm`, bytes: Buffer.from('x') })));
    assertError(await upload(many, small), 413, 'ARCHIVE_TOO_LARGE');
    // The server is still healthy after every refusal.
    assert.equal((await jsonRequest(url('/api/health', small))).status, 200);
  });

  test('a burst of concurrent requests is served or refused with 503, never a crash', async () => {
    const { volumeId } = index.phantoms[0];
    const thumbnail = async (n: number): Promise<{ status: number; body: unknown; headers: Headers }> => {
      // Not the last phantom: the next test changes its source and must find it uncached.
      const response = await fetch(url(`/api/volumes/${index.phantoms[n % (index.phantoms.length - 1)].volumeId}/thumbnail.png?plane=axial&index=${n}&maxPx=64`), { headers: auth() });
      const isJson = (response.headers.get('content-type') ?? '').includes('json');
      return { status: response.status, headers: response.headers, body: isJson ? await response.json() : await response.arrayBuffer() };
    };
    const requests = Array.from({ length: 40 }, (_, n) =>
      n % 2 === 0 ? postJson<SearchBody>('/api/search', { volumeId, method: 'rerank', firstSlice: n % 10, lastSlice: 20 + (n % 10), top: 3 }) : thumbnail(n),
    );
    const replies = await Promise.all(requests);
    for (const reply of replies) {
      assert.ok(reply.status === 200 || reply.status === 503, `status ${reply.status} ${reply.body instanceof ArrayBuffer ? '' : JSON.stringify(reply.body)}`);
      if (reply.status === 503) assert.equal(reply.headers.get('retry-after'), '1');
    }
    assert.ok(replies.filter((r) => r.status === 200).length >= 17);
    assert.equal((await jsonRequest(url('/api/health'))).status, 200);
  });

  test('a source changed or removed after indexing is reported, not shown', async () => {
    const victim = index.phantoms[index.phantoms.length - 1];
    const replacement = generatePhantom({ seed: 999, matrix: [64, 64], spacingMm: [6, 6, 5] });
    await writeNifti(victim.path, replacement.image);
    assertError(await getJson(`/api/volumes/${victim.volumeId}/thumbnail.png?plane=axial&index=2`), 409, 'SOURCE_CHANGED');
    await unlink(victim.path);
    assertError(await getJson(`/api/volumes/${victim.volumeId}/volume.nii.gz`), 410, 'SOURCE_GONE');
  });
});
