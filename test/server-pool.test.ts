import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer, type RunningServer } from '../src/server/app.js';
import { ApiError } from '../src/server/errors.js';
import { runSearchJob, type SearchJob } from '../src/server/search-job.js';
import { SearchPool } from '../src/server/search-pool.js';
import { openStore } from '../src/store/index.js';
import { bearer, jsonRequest } from './helpers/http.js';
import { buildPhantomIndex, type PhantomIndex } from './helpers/phantom-index.js';

/**
 * The search pool: searches on worker threads give the same answers as on the main thread, run side by
 * side, wait in a bounded queue with a timeout, leave it when their client goes, and never hold up the
 * short requests (list, health) of the server.
 */

let index: PhantomIndex;
const pools: SearchPool[] = [];

function pool(options: Omit<ConstructorParameters<typeof SearchPool>[0], 'dbDir'>): SearchPool {
  const made = new SearchPool({ dbDir: index.indexDir, ...options });
  pools.push(made);
  return made;
}

const isApiError = (status: number, code: string) => (error: unknown) => {
  assert.ok(error instanceof ApiError, `an ApiError, got ${String(error)}`);
  assert.equal(error.statusCode, status, `${error.code}: ${error.message}`);
  assert.equal(error.code, code, error.message);
  return true;
};

function job(n: number, extra: Record<string, unknown> = {}): Extract<SearchJob, { kind: 'indexed' }> {
  return { kind: 'indexed', body: { volumeId: index.phantoms[n % index.phantoms.length].volumeId, method: 'rerank', top: 3, ...extra } };
}

before(async () => {
  index = await buildPhantomIndex({ count: 5, matrixPx: 64 });
});

after(async () => {
  await Promise.all(pools.map((p) => p.close()));
  await index?.cleanup();
});

describe('search pool', () => {
  test('workers answer exactly as a search on the main thread, several at once', { timeout: 60_000 }, async () => {
    const searches = pool({ workers: 2, threadsPerWorker: 1 });
    assert.equal(searches.info().workers, 2);
    const jobs = index.phantoms.map((_, n) => job(n));
    const running = jobs.map((j) => searches.run(j));
    // Two workers: two searches start at once, the rest wait.
    assert.equal(searches.info().busy, 2);
    assert.equal(searches.info().queued, jobs.length - 2);
    const answers = await Promise.all(running);
    const store = openStore(index.indexDir, { readOnly: true });
    try {
      for (const [n, j] of jobs.entries()) {
        const expected = await runSearchJob({ store, encoder: () => Promise.reject(new Error('no encoder needed')) }, j);
        const got = answers[n].response;
        assert.deepEqual(got.results.map((r) => r.volumeId), expected.response.results.map((r) => r.volumeId));
        got.results.forEach((r, i) => {
          assert.ok(Math.abs(r.score - expected.response.results[i].score) < 1e-5, `score of rank ${i + 1}`);
          assert.deepEqual(r.region, expected.response.results[i].region);
        });
        assert.ok(!got.results.some((r) => r.volumeId === j.body.volumeId), "the query's own volume is excluded");
      }
    } finally {
      store.close();
    }
    assert.equal(searches.info().completed, jobs.length);
  });

  test('a refusal inside a worker comes back with its status and code', { timeout: 60_000 }, async () => {
    const searches = pool({ workers: 1 });
    await assert.rejects(searches.run(job(0, { firstSlice: 99_990, lastSlice: 99_999 })), isApiError(400, 'SLICE_OUT_OF_RANGE'));
    // The worker survives it.
    assert.ok((await searches.run(job(1))).response.results.length > 0);
  });

  test('the queue is bounded: past its length 503 BUSY at once, past its timeout 503 QUEUE_TIMEOUT', { timeout: 60_000 }, async () => {
    const bounded = pool({ workers: 1, maxQueued: 1, queueTimeoutMs: 60_000 });
    const first = bounded.run(job(0));
    const second = bounded.run(job(1));
    await assert.rejects(bounded.run(job(2)), isApiError(503, 'BUSY'));
    await Promise.all([first, second]);
    assert.equal(bounded.info().refused, 1);

    // The first search of a fresh worker opens the index as well: far longer than 1 ms.
    const impatient = pool({ workers: 1, maxQueued: 4, queueTimeoutMs: 1 });
    const running = impatient.run(job(0));
    await assert.rejects(impatient.run(job(1)), isApiError(503, 'QUEUE_TIMEOUT'));
    await running;
    assert.equal(impatient.info().queued, 0);
    assert.equal(impatient.info().timedOut, 1);
  });

  test('a waiting search whose client went away leaves the queue', { timeout: 60_000 }, async () => {
    const searches = pool({ workers: 1 });
    const running = searches.run(job(0));
    const client = new AbortController();
    const waiting = searches.run(job(1), client.signal);
    assert.equal(searches.info().queued, 1);
    client.abort();
    await assert.rejects(waiting, isApiError(499, 'CANCELLED'));
    assert.equal(searches.info().queued, 0);
    await running;
    assert.equal(searches.info().cancelled, 1);
    assert.equal(searches.info().completed, 1, 'the cancelled search never ran');
  });
});

describe('server with a search pool', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ dbDir: index.indexDir, port: 0, limits: { searchWorkers: 1, searchQueueLength: 32 } });
  });
  after(async () => server?.close());

  test('list and health answer while the worker is busy and searches wait', { timeout: 60_000 }, async () => {
    const headers = { ...bearer(server.token!), 'Content-Type': 'application/json' };
    let settled = 0;
    const count = 8;
    const searches = Array.from({ length: count }, (_, n) =>
      jsonRequest<unknown>(`${server.url}/api/search`, { method: 'POST', headers, body: JSON.stringify(job(n).body) }).then((reply) => {
        settled++;
        return reply;
      }),
    );
    let health = await jsonRequest<{ searches: { workers: number; busy: number; queued: number } }>(`${server.url}/api/health`);
    for (let tries = 0; health.body.searches.queued === 0 && tries < 200; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      health = await jsonRequest(`${server.url}/api/health`);
    }
    assert.equal(health.body.searches.workers, 1);
    assert.equal(health.body.searches.busy, 1);
    assert.ok(health.body.searches.queued > 0, 'searches wait for the worker');
    const list = await jsonRequest<{ total: number }>(`${server.url}/api/volumes`, { headers: bearer(server.token!) });
    assert.equal(list.status, 200);
    assert.equal(list.body.total, index.phantoms.length);
    assert.ok(settled < count, `the listing came back while searches still waited (${settled} of ${count} done)`);
    const replies = await Promise.all(searches);
    assert.deepEqual(replies.map((r) => r.status), Array(count).fill(200));
  });
});
