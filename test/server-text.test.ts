import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { SearchResponse } from '../src/api/contract.js';
import { startServer, type RunningServer } from '../src/server/app.js';
import { openStore } from '../src/store/index.js';
import { runCli } from './helpers/cli.js';
import { bearer, jsonRequest, type ErrorBody } from './helpers/http.js';
import { writeTissueArchive } from './helpers/text-archive.js';
import { CLIP_PROJECTION } from './helpers/tiny-clip.js';

/**
 * Text search through the HTTP API (POST /api/search with `text`) and the product's refusals of bad text
 * input, on real servers over the tiny CLIP-like pair and on a baseline index with a learned text space.
 */

const root = mkdtempSync(join(tmpdir(), 'mir3d-server-text-'));
const servers: RunningServer[] = [];
let clip: RunningServer;
let baseline: RunningServer;
/** Source file name (soft, lung2, …) of each indexed volume id, per index. */
const names = new Map<string, string>();
const idOf = (name: string): string => [...names].find(([, n]) => n === name)![0];

function index(dir: string, args: string[]): void {
  const run = runCli(['index', ...args, '--db', dir], 120_000);
  assert.equal(run.status, 0, run.stderr);
  const store = openStore(dir, { readOnly: true });
  try {
    for (const v of store.listVolumes()) names.set(v.volumeId, v.sourcePath.replace(/^.*\//, '').replace('.nii.gz', ''));
  } finally {
    store.close();
  }
}

async function post<T = SearchResponse>(server: RunningServer, body: Record<string, unknown>): Promise<{ status: number; body: T }> {
  return jsonRequest<T>(`${server.url}/api/search`, { method: 'POST', headers: { ...bearer(server.token!), 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
}

async function serve(dir: string): Promise<RunningServer> {
  const server = await startServer({ dbDir: dir, port: 0, limits: { searchWorkers: 1, searchThreads: 1 } });
  servers.push(server);
  return server;
}

before(async () => {
  const { archive, labels, clip: model } = await writeTissueArchive(join(root, 'tissues'));
  index(join(root, 'idx-clip'), [archive, '--encoder', model]);
  index(join(root, 'idx-base'), [archive, '--encoder', 'baseline', '--labels', labels]);
  clip = await serve(join(root, 'idx-clip'));
  baseline = await serve(join(root, 'idx-base'));
});

after(async () => {
  for (const server of servers) await server.close();
  rmSync(root, { recursive: true, force: true });
});

describe('POST /api/search with text', () => {
  test('the tiny CLIP-like pair: a text ranks the volumes it describes first, each with its matched region', async () => {
    for (const [text, tissue] of [['bone', 'bone'], ['lung', 'lung'], ['soft tissue', 'soft']] as const) {
      const reply = await post(clip, { text, top: 2 });
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      const { query, options, results } = reply.body;
      assert.equal(query.text, text);
      assert.equal(query.sliceCount, 0, 'a text is no slice of a volume');
      assert.deepEqual(query.warnings, []);
      assert.equal(options.method, 'slice-count', "3D-MIR's text method");
      assert.deepEqual(results.map((r) => names.get(r.volumeId)!.replace('2', '')), [tissue, tissue], `"${text}"`);
      for (const r of results) {
        assert.ok(r.region && r.region.lastSlice >= r.region.firstSlice, 'localized from the matched slices');
        assert.ok(r.middleMatch && r.middleMatch.querySlice === 0, 'the best-matching slice to show');
      }
    }
  });

  test('the CLI and HTTP give the same ranking for the same text', async () => {
    const cli = runCli(['search', '--text', 'air in the lungs', '--db', join(root, 'idx-clip'), '--json', '--top', '4']);
    assert.equal(cli.status, 0, cli.stderr);
    const http = await post(clip, { text: 'air in the lungs', top: 4 });
    assert.deepEqual(http.body.results.map((r) => r.volumeId), (JSON.parse(cli.stdout) as { results: Array<{ volumeId: string }> }).results.map((r) => r.volumeId));
  });

  test('a volume query fused with a text (interleave, RRF) holds both kinds; the query volume stays out', async () => {
    const lung = idOf('lung');
    const reply = await post(clip, { volumeId: lung, text: 'bone', method: 'slice-count', fusion: 'interleave', top: 2 });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(reply.body.query.text, 'bone');
    assert.equal(reply.body.options.fusion, 'interleave');
    assert.deepEqual(reply.body.results.map((r) => names.get(r.volumeId)), ['lung2', names.get(reply.body.results[1].volumeId)]);
    assert.match(names.get(reply.body.results[1].volumeId)!, /^bone2?$/);
    // RRF favours volumes found by both lists; with every other volume returned, both kinds are there.
    const rrf = await post(clip, { volumeId: lung, text: 'bone', method: 'slice-count', top: 5 });
    assert.equal(rrf.status, 200);
    assert.equal(rrf.body.options.fusion, 'rrf');
    const kinds = new Set(rrf.body.results.map((r) => names.get(r.volumeId)!.replace('2', '')));
    assert.ok(kinds.has('lung') && kinds.has('bone'), JSON.stringify(rrf.body.results.map((r) => [names.get(r.volumeId), r.score])));
    assert.ok(!rrf.body.results.some((r) => r.volumeId === lung));
    assert.equal(rrf.body.results.length, 5);
    const both = await post<ErrorBody>(clip, { volumeId: lung, text: 'bone', fuse: 'volume-mean' });
    assert.equal(both.status, 400);
    assert.match(both.body.error.message, /not both/);
  });

  test('bad text: empty or blank is 400, longer than the context is cut and said', async () => {
    const empty = await post<ErrorBody>(clip, { text: '' });
    assert.equal(empty.status, 400);
    const blank = await post<ErrorBody>(clip, { text: '   ' });
    assert.equal(blank.status, 400);
    assert.equal(blank.body.error.code, 'BAD_TEXT');
    assert.match(blank.body.error.message, /empty/);
    const long = await post(clip, { text: Array(20).fill('bone').join(' ') });
    assert.equal(long.status, 200);
    assert.match(long.body.query.warnings?.[0] ?? '', /more than the model's context of 16: only its first 16 were used/);
    const range = await post<ErrorBody>(clip, { text: 'bone', firstSlice: 0, lastSlice: 2 });
    assert.equal(range.status, 400);
    assert.match(range.body.error.message, /a text query has no slices/);
    const none = await post<ErrorBody>(clip, {});
    assert.equal(none.status, 400);
    assert.match(none.body.error.message, /volumeId.*uploadId.*text/);
  });

  test('an index without a text space: 409 naming what to add; after mir3d train --captions the same index answers, and fuses captions', async () => {
    const refused = await post<ErrorBody>(baseline, { text: 'lung' });
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.code, 'NO_TEXT_SPACE');
    assert.match(refused.body.error.message, /no text space.*mir3d train --db DB --captions COLUMN.*CLIP-style model folder/);
    assert.ok(!refused.body.error.message.includes(root), 'no server path in the message');
    const trained = runCli(['train', '--db', join(root, 'idx-base'), '--captions', 'caption', '--group-by', 'patient', '--steps', '60'], 120_000);
    assert.equal(trained.status, 0, trained.stderr);
    // A fresh server (its workers opened the index before the space existed).
    const fresh = await serve(join(root, 'idx-base'));
    const answered = await post(fresh, { text: 'dense bone', top: 1 });
    assert.equal(answered.status, 200, JSON.stringify(answered.body));
    assert.match(String(answered.body.results[0].labels.caption), /bone/);
    const baseStore = openStore(join(root, 'idx-base'), { readOnly: true });
    const lungId = baseStore.listVolumes().find((v) => v.labels.caption === 'lung with air')!.volumeId;
    baseStore.close();
    const captioned = await post(fresh, { volumeId: lungId, captionLabel: 'caption', method: 'slice-count', top: 3 });
    assert.equal(captioned.status, 200, JSON.stringify(captioned.body));
    assert.equal(captioned.body.query.text, 'lung with air', "the caption the query volume carries");
    const missing = await post<ErrorBody>(fresh, { volumeId: lungId, captionLabel: 'nothing' });
    assert.equal(missing.status, 400);
    assert.match(missing.body.error.message, /has no label 'nothing'/);
  });

  test('a tokenizer that does not match the text model, and a text tower of another width: one-line errors (CLI exit 2, HTTP 503), never a crash', async () => {
    const badTokenizer = await writeTissueArchive(join(root, 'bad-tokenizer'), { extraTokenizerWords: ['pneumothorax'] });
    const wide = await writeTissueArchive(join(root, 'bad-width'), { textProjection: CLIP_PROJECTION.map((row) => [...row, 1]) });
    for (const [folder, code, message] of [
      [badTokenizer, 'TOKENIZER_MISMATCH', /the tokenizer does not belong to this model/],
      [wide, 'DIM_MISMATCH', /text tower gives 5-d vectors but the image vectors are 4-d/],
    ] as const) {
      const db = join(folder.clip, '..', 'idx');
      index(db, [folder.archive, '--encoder', folder.clip]);
      const run = runCli(['search', '--text', 'bone', '--db', db]);
      assert.equal(run.status, 2, run.stderr);
      assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
      assert.match(run.stderr, new RegExp(`${message.source}.*\\[${code}\\]`));
      const server = await serve(db);
      const reply = await post<ErrorBody>(server, { text: 'bone' });
      assert.equal(reply.status, 503);
      assert.equal(reply.body.error.code, code);
      assert.match(reply.body.error.message, message);
      // The server still answers image queries.
      const image = await post(server, { volumeId: idOf('bone'), method: 'slice-count' });
      assert.equal(image.status, 200);
    }
  });
});
