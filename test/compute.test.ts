import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  computeSessions,
  ComputeError,
  createSession,
  exactTopK,
  maxSimilarityPerSegment,
  CUDA_PROVIDER_DIR_ENV,
  CUDA_PROVIDER_FILES,
  cudaProviderLibrary,
  linkCudaProviders,
  OnnxGraphBuilder,
  runSession,
  type RowBlock,
} from '../src/compute/index.js';
import { maxSimGroupSizes } from '../src/compute/graphs.js';
import { maxSimRuns } from '../src/compute/max-sim.js';
import { bruteForceTopK, randomUnitRows } from './helpers/vectors.js';

const DIM = 48;

/** Splits `data` into blocks of the given row counts, each with spare capacity behind its rows. */
function blocksOf(data: Float32Array, sizes: number[]): { blocks: RowBlock[]; firstRow: number[] } {
  const blocks: RowBlock[] = [];
  const firstRow: number[] = [];
  let row = 0;
  for (const rows of sizes) {
    const vectors = new Float32Array((rows + 5) * DIM).fill(9); // junk past `rows` must never be read
    vectors.set(data.subarray(row * DIM, (row + rows) * DIM));
    blocks.push({ vectors, rows });
    firstRow.push(row);
    row += rows;
  }
  return { blocks, firstRow };
}

describe('exactTopK (ONNX Gemm + TopK per block, merged in JS)', () => {
  const data = randomUnitRows(530, DIM, 1);
  const queries = randomUnitRows(7, DIM, 2);

  test('identical rows and similarities to a brute-force reference, across uneven blocks', async () => {
    const { blocks, firstRow } = blocksOf(data, [200, 17, 313]);
    const result = await exactTopK(queries, DIM, blocks, 10);
    const reference = bruteForceTopK(queries, data, DIM, 10);
    for (let q = 0; q < 7; q++) {
      assert.equal(result.counts[q], 10);
      for (let i = 0; i < 10; i++) {
        const slot = q * 10 + i;
        const row = firstRow[result.blockIndices[slot]] + result.rowIndices[slot];
        assert.equal(row, reference[q][i].row, `query ${q} rank ${i}`);
        assert.ok(Math.abs(result.similarities[slot] - reference[q][i].similarity) < 1e-5);
      }
    }
  });

  test('bias −∞ excludes rows; fewer allowed rows than k gives fewer hits', async () => {
    const { blocks, firstRow } = blocksOf(data, [265, 265]);
    const allowed = (row: number): boolean => row % 3 === 0;
    blocks.forEach((b, i) => {
      b.bias = Float32Array.from({ length: b.rows }, (_, r) => (allowed(firstRow[i] + r) ? 0 : -Infinity));
    });
    const result = await exactTopK(queries, DIM, blocks, 20);
    const reference = bruteForceTopK(queries, data, DIM, 20, allowed);
    for (let q = 0; q < 7; q++) {
      const rows = Array.from({ length: result.counts[q] }, (_, i) => firstRow[result.blockIndices[q * 20 + i]] + result.rowIndices[q * 20 + i]);
      assert.deepEqual(rows, reference[q].map((h) => h.row));
    }
    // Only 4 rows allowed in all: every query gets exactly those 4.
    blocks[0].bias = new Float32Array(265).fill(-Infinity);
    blocks[0].bias.set([0, 0], 100);
    blocks[1].bias = new Float32Array(265).fill(-Infinity);
    blocks[1].bias.set([0, 0], 7);
    const few = await exactTopK(queries, DIM, blocks, 20);
    for (let q = 0; q < 7; q++) {
      assert.equal(few.counts[q], 4);
      const rows = new Set(Array.from({ length: 4 }, (_, i) => firstRow[few.blockIndices[q * 20 + i]] + few.rowIndices[q * 20 + i]));
      assert.deepEqual([...rows].sort((a, b) => a - b), [100, 101, 272, 273]);
    }
  });

  test('k above a block size, and query splitting under a small score budget, change nothing', async () => {
    const { blocks, firstRow } = blocksOf(data, [3, 527]);
    const whole = await exactTopK(queries, DIM, blocks, 25);
    const split = await exactTopK(queries, DIM, blocks, 25, { maxScoreBytes: 4 * 527 * 2 });
    assert.deepEqual(split.rowIndices, whole.rowIndices);
    assert.deepEqual(split.blockIndices, whole.blockIndices);
    const reference = bruteForceTopK(queries, data, DIM, 25);
    const rows = Array.from({ length: 25 }, (_, i) => firstRow[whole.blockIndices[i]] + whole.rowIndices[i]);
    assert.deepEqual(rows, reference[0].map((h) => h.row));
  });

  test('rejects a query length that is not rows of dim, and k < 1', async () => {
    await assert.rejects(exactTopK(new Float32Array(DIM + 1), DIM, [], 5), ComputeError);
    await assert.rejects(exactTopK(queries, DIM, [], 0), ComputeError);
  });
});

describe('maxSimilarityPerSegment (late interaction)', () => {
  test('max and argmax per (query row, segment) equal a brute-force reference', async () => {
    const queries = randomUnitRows(9, DIM, 3);
    const pool = randomUnitRows(1200, DIM, 4);
    // Adjacent views of one buffer (each its own run), large separate arrays, small ones (packed), an empty one.
    const segments: Float32Array[] = [
      pool.subarray(0, 300 * DIM),
      pool.subarray(300 * DIM, 600 * DIM),
      randomUnitRows(5, DIM, 5),
      new Float32Array(0),
      randomUnitRows(40, DIM, 6),
      pool.subarray(900 * DIM, 1200 * DIM),
      randomUnitRows(1, DIM, 7),
    ];
    const result = await maxSimilarityPerSegment(queries, DIM, segments);
    assert.equal(result.queryCount, 9);
    assert.equal(result.segmentCount, segments.length);
    for (let s = 0; s < segments.length; s++) {
      const reference = bruteForceTopK(queries, segments[s], DIM, 1);
      for (let q = 0; q < 9; q++) {
        const slot = q * segments.length + s;
        if (segments[s].length === 0) {
          assert.equal(result.maxSimilarity[slot], -Infinity);
          assert.equal(result.argmaxRow[slot], -1);
          continue;
        }
        assert.equal(result.argmaxRow[slot], reference[q][0].row, `segment ${s} query ${q}`);
        assert.ok(Math.abs(result.maxSimilarity[slot] - reference[q][0].similarity) < 1e-5);
      }
    }
  });

  test('more candidates than one grouped run takes (75 large in runs of 64, 8, 2 and 1; some small between): same as the TS kernel', async () => {
    assert.deepEqual(maxSimGroupSizes(75), [64, 8, 2, 1]);
    assert.deepEqual(maxSimGroupSizes(50), [32, 16, 2]);
    assert.deepEqual(maxSimGroupSizes(130), [64, 64, 2]);
    assert.deepEqual(maxSimGroupSizes(0), []);
    const queries = randomUnitRows(6, DIM, 31);
    const segments = Array.from({ length: 82 }, (_, i) => randomUnitRows(i % 12 === 5 ? 7 : 256 + (i % 3), DIM, 100 + i));
    const onnx = await maxSimilarityPerSegment(queries, DIM, segments);
    const ts = await maxSimilarityPerSegment(queries, DIM, segments, { backend: 'typescript' });
    assert.deepEqual(onnx.argmaxRow, ts.argmaxRow);
    for (let i = 0; i < ts.maxSimilarity.length; i++) assert.ok(Math.abs(onnx.maxSimilarity[i] - ts.maxSimilarity[i]) < 1e-5, `entry ${i}`);
  });

  test('a large call runs in one padded graph whose threads spin (50 candidates → one 64-input run): same as the TS kernel', async () => {
    const dim = 256;
    assert.deepEqual(maxSimRuns(Array<number>(50).fill(256), dim), [{ size: 64, used: 50, spinning: true }]);
    // Small runs never spin: 20 × 100 rows × 256 is under the threshold, and so is the 2-candidate remainder.
    assert.deepEqual(maxSimRuns(Array<number>(20).fill(100), dim), [
      { size: 16, used: 16, spinning: false },
      { size: 4, used: 4, spinning: false },
    ]);
    assert.deepEqual(maxSimRuns(Array<number>(130).fill(300), 512), [
      { size: 64, used: 64, spinning: true },
      { size: 64, used: 64, spinning: true },
      { size: 2, used: 2, spinning: false },
    ]);
    assert.deepEqual(maxSimRuns([], dim), []);
    const queries = randomUnitRows(5, dim, 41);
    const segments = Array.from({ length: 50 }, (_, i) => randomUnitRows(250 + (i % 7), dim, 200 + i));
    const onnx = await maxSimilarityPerSegment(queries, dim, segments);
    const ts = await maxSimilarityPerSegment(queries, dim, segments, { backend: 'typescript' });
    assert.deepEqual(onnx.argmaxRow, ts.argmaxRow);
    for (let i = 0; i < ts.maxSimilarity.length; i++) assert.ok(Math.abs(onnx.maxSimilarity[i] - ts.maxSimilarity[i]) < 1e-5, `entry ${i}`);
  });

  test('a small score budget splits the work without changing the result', async () => {
    const queries = randomUnitRows(4, DIM, 8);
    const segments = [randomUnitRows(700, DIM, 9), randomUnitRows(30, DIM, 10)];
    const a = await maxSimilarityPerSegment(queries, DIM, segments);
    const b = await maxSimilarityPerSegment(queries, DIM, segments, { maxScoreBytes: 1024 });
    assert.deepEqual(b.argmaxRow, a.argmaxRow);
    assert.deepEqual(b.maxSimilarity, a.maxSimilarity);
  });
});

describe('one MaxSim, two backends', () => {
  test('ONNX Runtime and the TypeScript kernel give the same argmax rows and maxima within float32 rounding', async () => {
    const queries = randomUnitRows(11, DIM, 21);
    const segments = [randomUnitRows(310, DIM, 22), new Float32Array(0), randomUnitRows(3, DIM, 23), randomUnitRows(64, DIM, 24)];
    const onnx = await maxSimilarityPerSegment(queries, DIM, segments);
    const ts = await maxSimilarityPerSegment(queries, DIM, segments, { backend: 'typescript' });
    assert.deepEqual(onnx.argmaxRow, ts.argmaxRow);
    for (let i = 0; i < ts.maxSimilarity.length; i++) {
      if (ts.maxSimilarity[i] === -Infinity) assert.equal(onnx.maxSimilarity[i], -Infinity);
      else assert.ok(Math.abs(onnx.maxSimilarity[i] - ts.maxSimilarity[i]) < 1e-5, `entry ${i}`);
    }
    await assert.rejects(maxSimilarityPerSegment(queries, DIM + 1, segments, { backend: 'typescript' }), (e: unknown) => e instanceof ComputeError && e.code === 'BAD_INPUT');
  });
});

describe('one session factory and one graph builder', () => {
  test('a graph written by the builder (several typed inputs and outputs) runs in a session from the factory', async () => {
    const g = new OnnxGraphBuilder();
    for (const name of ['x', 'k']) g.reserve(name);
    const doubled = g.node('Add', ['x', 'x'], 'doubled');
    g.namedNode({ opType: 'TopK', inputs: [doubled, 'k'], outputs: ['values', 'indices'], attributes: { axis: 1, largest: 1, sorted: 1 } });
    const bytes = g.toModelBytes({
      graphName: 'test',
      docString: 'test graph',
      input: [
        { name: 'x', dims: ['n', 4] },
        { name: 'k', dims: [1], type: 'int64' },
      ],
      output: [
        { name: 'values', dims: ['n', 'k'] },
        { name: 'indices', dims: ['n', 'k'], type: 'int64' },
      ],
    });
    const { session, provider } = await createSession(bytes, { provider: 'cpu', threads: 1 });
    assert.equal(provider, 'cpu');
    const out = await runSession(session, { x: { type: 'float32', data: Float32Array.of(1, 5, 2, 4), dims: [1, 4] }, k: { type: 'int64', data: BigInt64Array.of(2n), dims: [1] } });
    assert.deepEqual([...(out.values.data as Float32Array)], [10, 8]);
    assert.deepEqual([...(out.indices.data as BigInt64Array)], [1n, 3n]);
    await session.release();
    await assert.rejects(createSession(Uint8Array.of(1, 2, 3), { provider: 'cpu' }), (e: unknown) => e instanceof ComputeError && e.code === 'BAD_MODEL');
  });
});

describe('execution provider', () => {
  test('reports the provider that runs; an explicit CUDA request fails clearly where CUDA cannot run', async () => {
    const sessions = await computeSessions();
    assert.ok(sessions.provider === 'cpu' || sessions.provider === 'cuda');
    if (sessions.provider === 'cpu') {
      await assert.rejects(computeSessions({ provider: 'cuda' }), (e: unknown) => e instanceof ComputeError && e.code === 'PROVIDER_UNAVAILABLE');
    }
  });
});

describe('CUDA provider libraries from a folder of the user\'s (no install-time download)', () => {
  test('linkCudaProviders links both libraries into the binding folder; an incomplete folder is not used', () => {
    const root = mkdtempSync(join(tmpdir(), 'mir3d-cuda-'));
    try {
      const from = join(root, 'from');
      const binding = join(root, 'binding');
      for (const dir of [from, binding]) mkdirp(dir);
      for (const file of CUDA_PROVIDER_FILES) writeFileSync(join(from, file), 'not a real library');
      const linked = linkCudaProviders(from, binding);
      assert.equal(linked, join(binding, CUDA_PROVIDER_FILES[0]));
      for (const file of CUDA_PROVIDER_FILES) {
        assert.ok(lstatSync(join(binding, file)).isSymbolicLink(), file);
        assert.equal(readlinkSync(join(binding, file)), join(from, file));
      }
      // A folder that lacks one of the two is ignored rather than half-linked.
      const partial = join(root, 'partial');
      mkdirp(partial);
      writeFileSync(join(partial, CUDA_PROVIDER_FILES[0]), 'x');
      if (cudaProviderLibrary({}) === undefined) assert.equal(cudaProviderLibrary({ [CUDA_PROVIDER_DIR_ENV]: partial }), undefined);
      assert.ok(!existsSync(join(partial, 'linked')));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

function mkdirp(dir: string): void {
  mkdirSync(dir, { recursive: true });
}
