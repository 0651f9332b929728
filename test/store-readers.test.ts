/**
 * The embedded store under several readers: worker threads that open one index read-only at the same time
 * (a search server's worker pool) answer like the writer did, never change a file of the index, and share
 * the memory-mapped HNSW graph; a reader whose graph falls behind the catalogue loads a private copy.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { openStore, type SliceHit, type StoreInfo } from '../src/store/index.js';
import { SliceLikeGenerator, testVolume } from './helpers/vectors.js';

const ENCODER = 'readers-encoder@v1';
const dim = 32;
const work = mkdtempSync(join(tmpdir(), 'mir3d-readers-'));
after(() => rmSync(work, { recursive: true, force: true }));

interface WorkerAnswer {
  exact: SliceHit[][];
  approximate: SliceHit[][];
  memory: StoreInfo['memory'];
}

function runReader(dir: string, queries: Float32Array, k: number): Promise<WorkerAnswer> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./helpers/store-reader-worker.js', import.meta.url), { workerData: { dir, queries, k } });
    let answer: WorkerAnswer | undefined;
    worker.on('message', (m: WorkerAnswer) => (answer = m));
    worker.on('error', reject);
    worker.on('exit', (code) => (answer && code === 0 ? resolve(answer) : reject(new Error(`reader exited with ${code}`))));
  });
}

/** Name, size, mtime and a sampled checksum of every index file but SQLite’s WAL companions. */
function snapshot(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => !name.endsWith('-wal') && !name.endsWith('-shm'))
    .sort()
    .map((name) => {
      const st = statSync(join(dir, name));
      const bytes = readFileSync(join(dir, name));
      let sum = 0;
      for (let i = 0; i < bytes.length; i += 97) sum = (sum * 31 + bytes[i]) >>> 0;
      return `${name} ${st.size} ${st.mtimeMs} ${sum}`;
    });
}

test('three worker threads read one index at once: same answers as the writer, no file changed, the graph memory-mapped', async () => {
  const dir = join(work, 'index');
  const generator = new SliceLikeGenerator(dim, 200, 3);
  const writer = openStore(dir, { encoderId: ENCODER, dim, exactBelowSlices: 0 });
  for (let i = 0; i < 20; i++) {
    const v = testVolume(`r${i}`, generator.volume(i), dim);
    writer.addVolume(v.record, v.vectors, ENCODER);
  }
  const report = await writer.prepareForSearch();
  assert.equal(report?.slices, 4000, 'the store builds its graph when its size calls for one');
  const queries = generator.volume(500).subarray(0, 6 * dim).slice();
  const exact = await writer.searchSlices(queries, { k: 10, mode: 'exact' });
  const approximate = await writer.searchSlices(queries, { k: 10, mode: 'approximate' });
  writer.close();
  const before = snapshot(dir);

  const answers = await Promise.all([0, 1, 2].map(() => runReader(dir, queries, 10)));
  for (const answer of answers) {
    assert.deepEqual(answer.exact, exact);
    assert.deepEqual(answer.approximate, approximate);
    assert.equal(answer.memory.approximateIndexMapped, true);
  }
  assert.deepEqual(snapshot(dir), before, 'read-only opens changed the index files');

  // Behind the catalogue (a volume added by another connection): the reader repairs a private copy.
  const more = openStore(dir, { encoderId: ENCODER });
  const extra = testVolume('r-extra', generator.volume(99), dim);
  more.addVolume(extra.record, extra.vectors, ENCODER);
  more.close();
  const reader = openStore(dir, { readOnly: true, exactBelowSlices: 0 });
  const self = extra.vectors.vectors.subarray(5 * dim, 6 * dim);
  const hits = await reader.searchSlices(self, { k: 3, mode: 'approximate' });
  assert.equal(hits[0][0].volumeId, 'vol-r-extra');
  assert.equal(reader.info!().memory.approximateIndexMapped, false);
  reader.close();
});
