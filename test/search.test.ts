import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Vec3, Volume, VoxelArray } from '../src/io/volume.js';
import { sliceRangeIndices } from '../src/preprocess/slices.js';
import type { SliceHit, VolumeVectors } from '../src/store/types.js';
import { poolVectors } from '../src/store/pooling.js';
import { aggregateSliceHits } from '../src/search/aggregate.js';
import { SearchError } from '../src/search/errors.js';
import { interleave, reciprocalRankFusion } from '../src/search/fusion.js';
import {
  lateInteractionScores,
  maxSimFromSimilarity,
  rerank,
  type MaxSimKernel,
  type LateInteractionQuery,
} from '../src/search/late-interaction.js';
import { consistentAlignment, localizeRegion, type AlignedPair, type LocalizationMethod } from '../src/search/localize.js';
import { maskLabelExtent, queryFromVolumeVectors, querySliceIndices } from '../src/query/range.js';
import { search, type SearchOptions } from '../src/search/search.js';
import { defaultSimilarityKernel, similarityMatrix, type SimilarityKernel } from '../src/search/similarity.js';
import { SEARCH_METHODS, type LocalizedRegion, type QueryVectors, type SearchResult } from '../src/search/types.js';
import { volumeHitsToResults } from '../src/search/volume.js';
import { FakeStore, fakeRecord, fakeVectors } from './helpers/fake-store.js';
import { randomInt, randomUnitRows, seededRng, shuffled, type Rng } from './helpers/seeded-random.js';

// ---------------------------------------------------------------------------------------------------
// helpers

function assertClose(actual: number, expected: number, tolerance: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} is not within ${tolerance} of ${expected}`);
}

function assertSearchError(fn: () => unknown, code: string): void {
  assert.throws(fn, (error: unknown) => error instanceof SearchError && error.code === code);
}

async function assertSearchErrorAsync(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => error instanceof SearchError && error.code === code);
}

/** Target slice z in the hand-made hit lists below: 100 mm + 2.5 mm per slice. */
function hit(volumeId: string, sliceIndex: number, similarity: number): SliceHit {
  return { volumeId, sliceIndex, zMm: 100 + 2.5 * sliceIndex, similarity };
}

function region(firstSlice: number, lastSlice: number, zStartMm: number, zEndMm: number): LocalizedRegion {
  return { firstSlice, lastSlice, zStartMm, zEndMm };
}

function ids(results: readonly SearchResult[]): string[] {
  return results.map((r) => r.volumeId);
}

function fakeResult(volumeId: string, withRegion?: LocalizedRegion): SearchResult {
  const r: SearchResult = { volumeId, score: 0, rank: 0, matches: [] };
  if (withRegion) r.region = withRegion;
  return r;
}

/** Rows as plain arrays → a query (slices `sliceIndices`, z 5 mm per slice), rows used as given. */
function queryOf(rows: number[][], sliceIndices: number[], zMm?: number[], volumeId?: string): QueryVectors {
  const dim = rows[0].length;
  const q: QueryVectors = { vectors: Float32Array.from(rows.flat()), dim, sliceIndices: Int32Array.from(sliceIndices) };
  if (zMm) q.zMm = Float64Array.from(zMm);
  if (volumeId) q.volumeId = volumeId;
  return q;
}

/** Rows used as given (no normalization), slice indices 0.., z given. */
function volumeOf(volumeId: string, rows: number[][], zMm: number[]): VolumeVectors {
  return {
    volumeId,
    dim: rows[0].length,
    sliceIndices: Int32Array.from(rows, (_, r) => r),
    zMm: Float64Array.from(zMm),
    vectors: Float32Array.from(rows.flat()),
  };
}

function randomVolume(rng: Rng, volumeId: string, rows: number, dim: number): VolumeVectors {
  const firstSlice = randomInt(rng, 0, 20);
  return {
    volumeId,
    dim,
    sliceIndices: Int32Array.from({ length: rows }, (_, r) => firstSlice + r),
    zMm: Float64Array.from({ length: rows }, (_, r) => -50 + 3 * (firstSlice + r)),
    vectors: randomUnitRows(rng, rows, dim),
  };
}

function randomQuery(rng: Rng, rows: number, dim: number): LateInteractionQuery {
  return {
    vectors: randomUnitRows(rng, rows, dim),
    dim,
    sliceIndices: Int32Array.from({ length: rows }, (_, r) => 40 + r),
    zMm: Float64Array.from({ length: rows }, (_, r) => 2 * (40 + r)),
  };
}

// ---------------------------------------------------------------------------------------------------
// slice-based aggregation

describe('slice-based aggregation (3D-MIR method 1)', () => {
  // Three query slices (canonical 10, 11, 12 at z 0, 2, 4 mm) and their hits. Similarities are dyadic
  // fractions, so every sum below is exact. Ids are chosen so that every tie-break below disagrees with
  // plain id order (E before C).
  //   A: 0.875 (q10→5), 0.625 (q10→6), 0.75 (q11→7), 0.5 (q12→8)  count 4, sum 2.75,  max 0.875
  //   E: 0.75 (q10→3), 0.875 (q11→4), 0.5 (q12→5)                  count 3, sum 2.125, max 0.875
  //   C: 0.5 (q10→1), 0.375 (q11→1), 0.875 (q12→9)                 count 3, sum 1.75,  max 0.875
  //   D: 0.5 (q11→2), 0.5 (q12→2)                                  count 2, sum 1.0,   max 0.5
  const hits: SliceHit[][] = [
    [hit('A', 5, 0.875), hit('E', 3, 0.75), hit('A', 6, 0.625), hit('C', 1, 0.5)],
    [hit('E', 4, 0.875), hit('A', 7, 0.75), hit('D', 2, 0.5), hit('C', 1, 0.375)],
    [hit('A', 8, 0.5), hit('E', 5, 0.5), hit('C', 9, 0.875), hit('D', 2, 0.5)],
  ];
  const query = { querySliceIndices: [10, 11, 12], queryZMm: [0, 2, 4] };

  test('count: number of hits; the E/C tie on count goes to the higher sum', () => {
    const results = aggregateSliceHits(hits, 'count', query);
    assert.deepEqual(
      results.map((r) => [r.volumeId, r.score, r.rank]),
      [
        ['A', 4, 1],
        ['E', 3, 2],
        ['C', 3, 3],
        ['D', 2, 4],
      ],
    );
  });

  test('sum: summed similarity', () => {
    const results = aggregateSliceHits(hits, 'sum', query);
    assert.deepEqual(
      results.map((r) => [r.volumeId, r.score]),
      [
        ['A', 2.75],
        ['E', 2.125],
        ['C', 1.75],
        ['D', 1],
      ],
    );
  });

  test('max: highest single similarity; the three-way tie at 0.875 goes by sum', () => {
    const results = aggregateSliceHits(hits, 'max', query);
    assert.deepEqual(
      results.map((r) => [r.volumeId, r.score]),
      [
        ['A', 0.875],
        ['E', 0.875],
        ['C', 0.875],
        ['D', 0.5],
      ],
    );
  });

  test('matches: per query slice the best hit in the volume, sorted by query slice', () => {
    const byId = new Map(aggregateSliceHits(hits, 'count', query).map((r) => [r.volumeId, r]));
    assert.deepEqual(byId.get('A')?.matches, [
      { querySlice: 10, targetSlice: 5, similarity: 0.875 }, // beats A/6 at 0.625
      { querySlice: 11, targetSlice: 7, similarity: 0.75 },
      { querySlice: 12, targetSlice: 8, similarity: 0.5 },
    ]);
    assert.deepEqual(byId.get('D')?.matches, [
      { querySlice: 11, targetSlice: 2, similarity: 0.5 },
      { querySlice: 12, targetSlice: 2, similarity: 0.5 },
    ]);
  });

  test('regions: consistent alignments give min..max of the matched slices; a stray is dropped by default', () => {
    const byId = new Map(aggregateSliceHits(hits, 'count', query).map((r) => [r.volumeId, r]));
    assert.deepEqual(byId.get('A')?.region, region(5, 8, 112.5, 120));
    assert.deepEqual(byId.get('E')?.region, region(3, 5, 107.5, 112.5));
    assert.deepEqual(byId.get('D')?.region, region(2, 2, 105, 105));
    // C: q10→1, q11→1, q12→9. q12 lies 2 mm above q11 in the query, slice 9 lies 20 mm above slice 1: more
    // than 2 × 2 mm + 2 slices (5 mm). The consistent part is q10,q11→1.
    assert.deepEqual(byId.get('C')?.region, region(1, 1, 102.5, 102.5));
    const extent = aggregateSliceHits(hits, 'count', { ...query, localization: { method: 'extent' } });
    assert.deepEqual(extent.find((r) => r.volumeId === 'C')?.region, region(1, 9, 102.5, 122.5));
  });

  test('count tie with equal sums goes to the lower volume id', () => {
    const tied = [[hit('x', 0, 0.5), hit('w', 0, 0.5)], [hit('x', 1, 0.25), hit('w', 1, 0.25)]];
    const results = aggregateSliceHits(tied, 'count', { querySliceIndices: [0, 1] });
    assert.deepEqual(ids(results), ['w', 'x']);
  });

  test('sum ties go to more hits, then the lower id', () => {
    // S: 0.5 + 0.25 = 0.75 from two hits; Q and R: 0.75 from one hit each.
    const tied = [[hit('R', 0, 0.75), hit('Q', 0, 0.75), hit('S', 0, 0.5)], [hit('S', 1, 0.25)]];
    const results = aggregateSliceHits(tied, 'sum', { querySliceIndices: [0, 1] });
    assert.deepEqual(
      results.map((r) => [r.volumeId, r.score]),
      [
        ['S', 0.75],
        ['Q', 0.75],
        ['R', 0.75],
      ],
    );
  });

  test('max ties go to the higher sum, then more hits, then the lower id', () => {
    // All reach 0.875. M1: sum 1 (2 hits); M3: sum 1 (3 hits); M4: sum 0.96875 (4 hits); M0, M2: 0.875 (1 hit).
    const tied = [
      [hit('M2', 0, 0.875), hit('M1', 0, 0.875), hit('M3', 0, 0.875), hit('M0', 0, 0.875), hit('M4', 0, 0.875)],
      [hit('M1', 1, 0.125), hit('M3', 1, 0.0625), hit('M4', 1, 0.03125)],
      [hit('M3', 2, 0.0625), hit('M4', 2, 0.03125), hit('M4', 3, 0.03125)],
    ];
    const results = aggregateSliceHits(tied, 'max', { querySliceIndices: [0, 1, 2] });
    assert.deepEqual(ids(results), ['M3', 'M1', 'M4', 'M0', 'M2']);
  });

  test('a query slice’s best hit in a volume: higher similarity, then the lower slice', () => {
    const tied = [[hit('v', 9, 0.5), hit('v', 4, 0.5), hit('v', 6, 0.25)]];
    const [result] = aggregateSliceHits(tied, 'count', { querySliceIndices: [3] });
    assert.deepEqual(result.matches, [{ querySlice: 3, targetSlice: 4, similarity: 0.5 }]);
    assert.equal(result.score, 3);
  });

  test('excluded volumes get no votes; top cuts the list', () => {
    const results = aggregateSliceHits(hits, 'count', { ...query, excludeVolumeIds: ['A'], top: 2 });
    assert.deepEqual(
      results.map((r) => [r.volumeId, r.rank]),
      [
        ['E', 1],
        ['C', 2],
      ],
    );
  });

  test('query positions must match the hit rows; an unknown method is refused', () => {
    assertSearchError(() => aggregateSliceHits(hits, 'count', { querySliceIndices: [10, 11] }), 'BAD_QUERY');
    assertSearchError(() => aggregateSliceHits(hits, 'count', { querySliceIndices: [10, 11, 12], queryZMm: [0] }), 'BAD_QUERY');
    assertSearchError(() => aggregateSliceHits(hits, 'mean' as 'count', query), 'BAD_OPTION');
    assert.deepEqual(aggregateSliceHits([], 'count', { querySliceIndices: [] }), []);
  });

  test('property: the ranking does not depend on the order of the query slices', () => {
    const rng = seededRng(11);
    for (let trial = 0; trial < 25; trial++) {
      const rows = randomInt(rng, 1, 12);
      const volumes = ['v0', 'v1', 'v2', 'v3', 'v4', 'v5'];
      const hitRows: SliceHit[][] = [];
      for (let r = 0; r < rows; r++) {
        const k = randomInt(rng, 0, 8);
        // Quantized similarities make ties on count, sum and max common, so the tie rules are exercised.
        hitRows.push(Array.from({ length: k }, () => hit(volumes[randomInt(rng, 0, 5)], randomInt(rng, 0, 30), randomInt(rng, 0, 8) / 8 + rng() * 1e-3 * randomInt(rng, 0, 1))));
      }
      const sliceIndices = Array.from({ length: rows }, (_, r) => 3 * r + 1);
      const zMm = sliceIndices.map((k) => 1.5 * k);
      const order = shuffled(rng, Array.from({ length: rows }, (_, r) => r));
      for (const method of ['count', 'sum', 'max'] as const) {
        const straight = aggregateSliceHits(hitRows, method, { querySliceIndices: sliceIndices, queryZMm: zMm });
        const permuted = aggregateSliceHits(
          order.map((r) => hitRows[r]),
          method,
          { querySliceIndices: order.map((r) => sliceIndices[r]), queryZMm: order.map((r) => zMm[r]) },
        );
        assert.deepEqual(permuted, straight, `trial ${trial}, ${method}`);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// volume-based

describe('volume-based ranking (3D-MIR method 2)', () => {
  test('ranks pooled-vector hits by cosine, ties by id, a duplicate keeps its best, exclusions and top apply', () => {
    const results = volumeHitsToResults(
      [
        { volumeId: 'b', similarity: 0.7 },
        { volumeId: 'e', similarity: 0.5 },
        { volumeId: 'c', similarity: 0.9 },
        { volumeId: 'a', similarity: 0.5 },
        { volumeId: 'q', similarity: 1 },
        { volumeId: 'b', similarity: 0.6 },
        { volumeId: 'f', similarity: 0.1 },
      ],
      { excludeVolumeIds: ['q'], top: 4 },
    );
    assert.deepEqual(
      results.map((r) => [r.volumeId, r.score, r.rank]),
      [
        ['c', 0.9, 1],
        ['b', 0.7, 2],
        ['a', 0.5, 3],
        ['e', 0.5, 4],
      ],
    );
    assert.ok(results.every((r) => r.matches.length === 0 && r.region === undefined));
  });
});

// ---------------------------------------------------------------------------------------------------
// late interaction

describe('late interaction (C-MIR)', () => {
  // 2-d query: q0 = (1, 0) at slice 3, q1 = (0, 1) at slice 4.
  const query2d: LateInteractionQuery = queryOf(
    [
      [1, 0],
      [0, 1],
    ],
    [3, 4],
    [30, 35],
  );
  // V1: q0 · V1 = [1, 0.6, 0] → max 1 at row 0; q1 · V1 = [0, 0.8, −1] → max 0.8 at row 1; S = (1 + 0.8)/2 = 0.9.
  const v1 = volumeOf('V1', [[1, 0], [0.6, 0.8], [0, -1]], [0, 5, 10]);
  // V2: q0 · V2 = [−1, 0.8] → 0.8 at row 1; q1 · V2 = [0, 0.6] → 0.6 at row 1; S = 0.7.
  const v2 = volumeOf('V2', [[-1, 0], [0.8, 0.6]], [0, 3]);
  // V3: q0 · V3 = [−1, 0] → 0 at row 1; q1 · V3 = [0, −1] → 0 at row 0; S = 0, alignment crosses over.
  const v3 = volumeOf('V3', [[-1, 0], [0, -1]], [7, 9]);

  test('2-d: max per query slice, the mean, and the argmax rows', async () => {
    const scores = await lateInteractionScores(query2d, [v1, v2, v3]);
    assert.deepEqual(scores.map((s) => s.volumeId), ['V1', 'V2', 'V3']);
    const expected = [
      { max: [1, 0.8], argmax: [0, 1], score: 0.9 },
      { max: [0.8, 0.6], argmax: [1, 1], score: 0.7 },
      { max: [0, 0], argmax: [1, 0], score: 0 },
    ];
    scores.forEach((s, c) => {
      assert.deepEqual([...s.argmaxRows], expected[c].argmax, `${s.volumeId} argmax`);
      expected[c].max.forEach((m, i) => assertClose(s.maxSimilarities[i], m, 1e-6, `${s.volumeId} max q${i}`));
      assertClose(s.score, expected[c].score, 1e-6, `${s.volumeId} S`);
    });
    assert.deepEqual(
      scores[0].matches.map((m) => [m.querySlice, m.targetSlice]),
      [
        [3, 0],
        [4, 1],
      ],
    );
    assert.deepEqual(scores[0].region, region(0, 1, 0, 5));
    assert.deepEqual(scores[1].region, region(1, 1, 3, 3));
  });

  test('3-d: S = (0.8 + 0.8 + 1)/3', async () => {
    const q = queryOf(
      [
        [1, 0, 0],
        [0, 0.6, 0.8],
        [0, 0, 1],
      ],
      [0, 1, 2],
    );
    // q0 · V = [0, 0.8, 0] → 0.8 at 1; q1 · V = [0.8, 0.36, 0.6] → 0.8 at 0; q2 · V = [1, 0, 0] → 1 at 0.
    const v = volumeOf('V', [[0, 0, 1], [0.8, 0.6, 0], [0, 1, 0]], [10, 20, 30]);
    const [s] = await lateInteractionScores(q, [v]);
    assert.deepEqual([...s.argmaxRows], [1, 0, 0]);
    [0.8, 0.8, 1].forEach((m, i) => assertClose(s.maxSimilarities[i], m, 1e-6, `max q${i}`));
    assertClose(s.score, 2.6 / 3, 1e-6, 'S');
    // Without query z only the order is checked: q0→1 then q1→0 goes back 10 mm, within the
    // 2-slice tolerance (2 × 10 mm), so all three are kept: slices 0..1.
    assert.deepEqual(s.region, region(0, 1, 10, 20));
  });

  test('the argmax is the first row among equal maxima', async () => {
    // Rows 1 and 2 are the same vector; both query slices peak there.
    const twin = volumeOf('T', [[0, -1], [0.6, 0.8], [0.6, 0.8]], [0, 5, 10]);
    const [s] = await lateInteractionScores(query2d, [twin]);
    assert.deepEqual([...s.argmaxRows], [1, 1]);
  });

  test('rerank orders by S (ties by id), keeps the alignment as matches and cuts to top', async () => {
    const v1Twin: VolumeVectors = { ...v1, volumeId: 'A-twin' };
    const results = await rerank(query2d, [v3, v2, v1, v1Twin], { top: 3 });
    assert.deepEqual(
      results.map((r) => [r.volumeId, r.rank]),
      [
        ['A-twin', 1],
        ['V1', 2],
        ['V2', 3],
      ],
    );
    assertClose(results[1].score, 0.9, 1e-6, 'S(V1)');
    assert.deepEqual(
      results[2].matches.map((m) => [m.querySlice, m.targetSlice]),
      [
        [3, 1],
        [4, 1],
      ],
    );
  });

  test('candidates without slices are left out; dimension and shape errors are reported', async () => {
    const empty: VolumeVectors = { volumeId: 'E', dim: 2, sliceIndices: new Int32Array(0), zMm: new Float64Array(0), vectors: new Float32Array(0) };
    const scores = await lateInteractionScores(query2d, [empty, v2]);
    assert.deepEqual(
      scores.map((s) => s.volumeId),
      ['V2'],
    );
    await assertSearchErrorAsync(lateInteractionScores(query2d, [volumeOf('W', [[1, 0, 0]], [0])]), 'DIM_MISMATCH');
    await assertSearchErrorAsync(lateInteractionScores({ ...query2d, sliceIndices: [1] }, [v1]), 'BAD_QUERY');
    await assertSearchErrorAsync(lateInteractionScores({ ...query2d, vectors: new Float32Array(0), sliceIndices: [] }, [v1]), 'BAD_QUERY');
  });

  test('property: S(Q, V) ∈ [−1, 1] for unit vectors, and S is the mean of the per-slice maxima', async () => {
    const rng = seededRng(3);
    for (let trial = 0; trial < 20; trial++) {
      const dim = randomInt(rng, 2, 9);
      const q = randomQuery(rng, randomInt(rng, 1, 7), dim);
      const candidates = Array.from({ length: 4 }, (_, c) => randomVolume(rng, `c${c}`, randomInt(rng, 1, 9), dim));
      for (const s of await lateInteractionScores(q, candidates)) {
        assert.ok(s.score >= -1 - 1e-6 && s.score <= 1 + 1e-6, `S = ${s.score}`);
        const mean = s.maxSimilarities.reduce((a, b) => a + b, 0) / s.maxSimilarities.length;
        assertClose(s.score, mean, 1e-6, 'S vs mean of maxima');
      }
    }
  });

  test('property: S(Q, Q) = 1 for unit vectors, each slice aligned to itself', async () => {
    const rng = seededRng(5);
    for (let trial = 0; trial < 10; trial++) {
      const q = randomQuery(rng, randomInt(rng, 1, 15), 16);
      const self: VolumeVectors = {
        volumeId: 'self',
        dim: q.dim,
        sliceIndices: Int32Array.from(q.sliceIndices),
        zMm: Float64Array.from(q.zMm ?? []),
        vectors: q.vectors,
      };
      const [s] = await lateInteractionScores(q, [self]);
      assertClose(s.score, 1, 1e-6, 'S(Q, Q)');
      assert.deepEqual([...s.argmaxRows], Array.from({ length: s.argmaxRows.length }, (_, r) => r));
      const rows = s.argmaxRows.length;
      assert.deepEqual(s.region, region(40, 40 + rows - 1, 80, 2 * (40 + rows - 1)));
    }
  });

  test('property: re-ranking does not depend on the order of the candidates', async () => {
    const rng = seededRng(7);
    for (let trial = 0; trial < 8; trial++) {
      const q = randomQuery(rng, randomInt(rng, 1, 10), 6);
      const candidates = Array.from({ length: 12 }, (_, c) => randomVolume(rng, `c${String(c).padStart(2, '0')}`, randomInt(rng, 1, 20), 6));
      // A duplicate under another id forces a score tie.
      candidates.push({ ...candidates[3], volumeId: 'c99' });
      const straight = await rerank(q, candidates);
      const permuted = await rerank(q, shuffled(rng, candidates));
      assert.deepEqual(permuted, straight);
      // …and neither on how candidates are batched into kernel calls.
      const batched = await rerank(q, candidates, { maxRowsPerCall: 7 });
      assert.deepEqual(batched, straight);
    }
  });
});

describe('similarity kernels', () => {
  function naive(q: Float32Array, qCount: number, v: Float32Array, vCount: number, dim: number): Float32Array {
    const out = new Float32Array(qCount * vCount);
    for (let i = 0; i < qCount; i++) {
      for (let j = 0; j < vCount; j++) {
        let s = 0;
        for (let x = 0; x < dim; x++) s += q[i * dim + x] * v[j * dim + x];
        out[i * vCount + j] = s;
      }
    }
    return out;
  }

  test('the blocked default kernel equals the naive triple loop (ragged sizes, several blocks)', () => {
    const rng = seededRng(13);
    // dim 1024 → 32 v rows per block, so 70 rows span three blocks and end on a partial group of four.
    for (const [qCount, vCount, dim] of [
      [1, 1, 1],
      [3, 5, 7],
      [5, 70, 1024],
      [2, 9, 3],
      [0, 4, 3],
    ]) {
      const q = randomUnitRows(rng, qCount, dim);
      const v = randomUnitRows(rng, vCount, dim);
      assert.deepEqual(similarityMatrix(q, qCount, v, vCount, dim), naive(q, qCount, v, vCount, dim), `${qCount}×${vCount}×${dim}`);
    }
    assertSearchError(() => similarityMatrix(new Float32Array(5), 2, new Float32Array(4), 2, 2), 'BAD_QUERY');
  });

  test('a plugged-in similarity kernel is used and its output checked', async () => {
    const rng = seededRng(17);
    const q = randomQuery(rng, 4, 5);
    const candidates = [randomVolume(rng, 'a', 6, 5), randomVolume(rng, 'b', 3, 5)];
    let calls = 0;
    const counting: SimilarityKernel = async (...args) => {
      calls++;
      return naive(...args);
    };
    const viaPlugged = await lateInteractionScores(q, candidates, { similarity: counting });
    const viaDefault = await lateInteractionScores(q, candidates);
    assert.equal(calls, 1, 'both small candidates go in one call');
    assert.deepEqual(viaPlugged, viaDefault);
    const broken: SimilarityKernel = async () => new Float32Array(3);
    await assertSearchErrorAsync(lateInteractionScores(q, candidates, { similarity: broken }), 'KERNEL_OUTPUT');
  });

  test('a MaxSim kernel laid out like src/compute (query-major, −1/−Infinity for empty) plugs in', async () => {
    const rng = seededRng(19);
    const q = randomQuery(rng, 3, 4);
    const candidates = [randomVolume(rng, 'a', 5, 4), randomVolume(rng, 'b', 2, 4)];
    let sawSegments = 0;
    const maxSim: MaxSimKernel = async (queries, dim, segments) => {
      sawSegments = segments.length;
      return maxSimFromSimilarity(async (...args) => naive(...args))(queries, dim, segments);
    };
    assert.deepEqual(await lateInteractionScores(q, candidates, { maxSim }), await lateInteractionScores(q, candidates));
    assert.equal(sawSegments, 2);
    // Direct check of the layout: entry q · segmentCount + c, an empty segment gives −Infinity and −1.
    const empty = new Float32Array(0);
    const result = await maxSimFromSimilarity(defaultSimilarityKernel, 2)(Float32Array.from([1, 0, 0, 1]), 2, [
      Float32Array.from([0, 1, 1, 0]),
      empty,
      Float32Array.from([0.5, 0, 0, -1, 0, 0.25]),
    ]);
    assert.deepEqual([...result.maxSimilarity], [1, -Infinity, 0.5, 1, -Infinity, 0.25]);
    assert.deepEqual([...result.argmaxRow], [1, -1, 0, 0, -1, 2]);
  });

  test('a MaxSim kernel’s output is checked: size and argmax rows', async () => {
    const rng = seededRng(31);
    const q = randomQuery(rng, 3, 4);
    const candidates = [randomVolume(rng, 'a', 5, 4), randomVolume(rng, 'b', 2, 4)];
    const short: MaxSimKernel = async () => ({ queryCount: 3, segmentCount: 1, maxSimilarity: new Float32Array(3), argmaxRow: new Int32Array(3) });
    await assertSearchErrorAsync(lateInteractionScores(q, candidates, { maxSim: short }), 'KERNEL_OUTPUT');
    const outOfRange: MaxSimKernel = async () => ({ queryCount: 3, segmentCount: 2, maxSimilarity: new Float32Array(6), argmaxRow: new Int32Array(6).fill(4) });
    await assertSearchErrorAsync(lateInteractionScores(q, candidates, { maxSim: outOfRange }), 'KERNEL_OUTPUT');
  });
});

// ---------------------------------------------------------------------------------------------------
// localization

describe('localization of the alignment', () => {
  // Query slices 20..25 at z 40..50 mm (2 mm); target z = 2.5 mm × slice. The true alignment maps them to
  // target slices 10..15 (z 25..37.5 mm, scale 1.25).
  function pairs(targets: number[], withQueryZ = true): AlignedPair[] {
    return targets.map((t, n) => {
      const p: AlignedPair = { querySlice: 20 + n, targetSlice: t, targetZMm: 2.5 * t, similarity: 0.9 };
      if (withQueryZ) p.queryZMm = 40 + 2 * n;
      return p;
    });
  }
  const both: LocalizationMethod[] = ['extent', 'consistent'];

  test('a clean alignment gives the same min..max with both variants', () => {
    for (const method of both) assert.deepEqual(localizeRegion(pairs([10, 11, 12, 13, 14, 15]), { method }), region(10, 15, 25, 37.5));
  });

  test('jitter of a slice backwards stays within the tolerance: nothing is dropped', () => {
    for (const method of both) assert.deepEqual(localizeRegion(pairs([10, 12, 11, 13, 14, 15]), { method }), region(10, 15, 25, 37.5));
  });

  test('a stray in the middle of the query: extent stretches to it, consistent drops it', () => {
    const stray = pairs([10, 11, 12, 60, 14, 15]);
    assert.deepEqual(localizeRegion(stray, { method: 'extent' }), region(10, 60, 25, 150));
    assert.deepEqual(localizeRegion(stray), region(10, 15, 25, 37.5));
    assert.deepEqual(
      consistentAlignment(stray).map((p) => p.targetSlice),
      [10, 11, 12, 14, 15],
    );
  });

  test('a stray at the end, in order but too far for the query’s 2 mm step, is dropped', () => {
    // 14 → 80 is 165 mm for 2 mm of query (allowed: 2 × 2 + 2 × 2.5 = 9 mm).
    const stray = pairs([10, 11, 12, 13, 14, 80]);
    assert.deepEqual(localizeRegion(stray, { method: 'extent' }), region(10, 80, 25, 200));
    assert.deepEqual(localizeRegion(stray, { method: 'consistent' }), region(10, 14, 25, 35));
  });

  test('a stray before the start (far below) is dropped', () => {
    assert.deepEqual(localizeRegion(pairs([0, 11, 12, 13, 14, 15])), region(11, 15, 27.5, 37.5));
  });

  test('without query z only the order is checked: a far stray at the end stays, one out of order goes', () => {
    assert.deepEqual(localizeRegion(pairs([10, 11, 12, 13, 14, 80], false)), region(10, 80, 25, 200));
    assert.deepEqual(localizeRegion(pairs([10, 11, 12, 60, 14, 15], false)), region(10, 15, 25, 37.5));
  });

  test('maxScale bounds how much faster the target may advance than the query', () => {
    // Target advances 5 mm per 2 mm of query (scale 2.5): within 2 × 2 + tolerance, so kept by default…
    const stretched = [10, 12, 14, 16].map((t, n): AlignedPair => ({ querySlice: n, queryZMm: 2 * n, targetSlice: t, targetZMm: 2.5 * t, similarity: 1 }));
    assert.deepEqual(localizeRegion(stretched), region(10, 16, 25, 40));
    // …but not with no slack and scale ≤ 1.5: each step of 5 mm exceeds 1.5 × 2 mm, so one pair remains.
    assert.equal(consistentAlignment(stretched, { maxScale: 1.5, toleranceSlices: 0 }).length, 1);
  });

  test('between equally long consistent runs the better-matching one wins', () => {
    const split: AlignedPair[] = [
      { querySlice: 0, queryZMm: 0, targetSlice: 10, targetZMm: 25, similarity: 0.5 },
      { querySlice: 1, queryZMm: 2, targetSlice: 80, targetZMm: 200, similarity: 0.9 },
    ];
    assert.deepEqual(localizeRegion(split), region(80, 80, 200, 200));
  });

  test('a query slice reachable from two equally long runs joins the better-matching one', () => {
    // q0→10 and q1→14 cannot both be kept (10 mm apart for 2 mm of query; 9 mm allowed), but either can
    // precede q2→12. The run through q1 (similarity 0.9) beats the one through q0 (0.1).
    const fork: AlignedPair[] = [
      { querySlice: 0, queryZMm: 0, targetSlice: 10, targetZMm: 25, similarity: 0.1 },
      { querySlice: 1, queryZMm: 2, targetSlice: 14, targetZMm: 35, similarity: 0.9 },
      { querySlice: 2, queryZMm: 4, targetSlice: 12, targetZMm: 30, similarity: 0.5 },
    ];
    assert.deepEqual(
      consistentAlignment(fork).map((p) => p.targetSlice),
      [14, 12],
    );
    assert.deepEqual(localizeRegion(fork), region(12, 14, 30, 35));
  });

  test('many query slices on one thick target slice, and no pairs at all', () => {
    assert.deepEqual(localizeRegion(pairs([7, 7, 7, 7])), region(7, 7, 17.5, 17.5));
    assert.equal(localizeRegion([]), undefined);
    assertSearchError(() => localizeRegion(pairs([1, 2]), { method: 'middle' as LocalizationMethod }), 'BAD_OPTION');
    assertSearchError(() => localizeRegion(pairs([1, 2]), { maxScale: 0 }), 'BAD_OPTION');
  });

  test('simulation: with stray matches consistent localizes better than extent, and as well without them', () => {
    // Each trial: a query slab of 30 slices (2 mm) maps onto a target (1–5 mm slices) with a random scale
    // 0.8–1.25 and offset; every argmax jitters by up to one slice, and with probability `strayRate` is a
    // random slice of the target instead. Score: IoU (in slices) with the true mapped range.
    function meanIoU(method: LocalizationMethod, strayRate: number): number {
      const rng = seededRng(23);
      let total = 0;
      const trials = 300;
      for (let trial = 0; trial < trials; trial++) {
        const targetSpacingMm = 1 + 4 * rng();
        const targetSlices = 200;
        const scale = 0.8 + 0.45 * rng();
        const startMm = 50 + 200 * rng() * (targetSpacingMm / 5);
        const trueSlices: number[] = [];
        const list: AlignedPair[] = [];
        for (let n = 0; n < 30; n++) {
          const targetMm = startMm + scale * 2 * n;
          const trueSlice = Math.min(targetSlices - 1, Math.round(targetMm / targetSpacingMm));
          trueSlices.push(trueSlice);
          let observed = Math.max(0, Math.min(targetSlices - 1, trueSlice + randomInt(rng, -1, 1)));
          if (rng() < strayRate) observed = randomInt(rng, 0, targetSlices - 1);
          list.push({ querySlice: n, queryZMm: 2 * n, targetSlice: observed, targetZMm: observed * targetSpacingMm, similarity: 0.8 + 0.1 * rng() });
        }
        const r = localizeRegion(list, { method });
        assert.ok(r);
        const lo = Math.min(...trueSlices);
        const hi = Math.max(...trueSlices);
        const overlap = Math.max(0, Math.min(hi, r.lastSlice) - Math.max(lo, r.firstSlice) + 1);
        total += overlap / (Math.max(hi, r.lastSlice) - Math.min(lo, r.firstSlice) + 1);
      }
      return total / trials;
    }
    const clean = { extent: meanIoU('extent', 0), consistent: meanIoU('consistent', 0) };
    const noisy = { extent: meanIoU('extent', 0.1), consistent: meanIoU('consistent', 0.1) };
    assert.ok(clean.consistent >= clean.extent - 0.02, `clean: consistent ${clean.consistent} vs extent ${clean.extent}`);
    assert.ok(clean.consistent > 0.85, `clean consistent IoU ${clean.consistent}`);
    assert.ok(noisy.consistent > noisy.extent + 0.3, `with strays: consistent ${noisy.consistent} vs extent ${noisy.extent}`);
    assert.ok(noisy.consistent > 0.8, `with strays consistent IoU ${noisy.consistent}`);
  });
});

// ---------------------------------------------------------------------------------------------------
// fusion

describe('fusion', () => {
  const list = (...volumeIds: string[]): SearchResult[] => volumeIds.map((id) => fakeResult(id));

  test('interleave: x1, y1, x2, y2, … with duplicates dropped and the top kept', () => {
    const first = list('a', 'b', 'c', 'd');
    const second = list('b', 'e', 'a', 'f');
    // a, b | b (dup), e | c, a (dup) | d, f
    assert.deepEqual(ids(interleave(first, second)), ['a', 'b', 'e', 'c', 'd', 'f']);
    const top4 = interleave(first, second, 4);
    assert.deepEqual(
      top4.map((r) => [r.volumeId, r.rank, r.score]),
      [
        ['a', 1, 1],
        ['b', 2, 1 / 2],
        ['e', 3, 1 / 3],
        ['c', 4, 1 / 4],
      ],
    );
    // The longer list's tail follows when the shorter runs out; the default top is 10.
    assert.deepEqual(ids(interleave(list('a'), list('b', 'c', 'd'))), ['a', 'b', 'c', 'd']);
    assert.equal(interleave(list(...'abcdefghijkl'), list(...'mnopqrstuvwx')).length, 10);
  });

  test('a fused result carries a region from whichever list has one', () => {
    const r = region(3, 5, 10, 20);
    const fused = interleave([fakeResult('a')], [fakeResult('a', r)]);
    assert.deepEqual(fused[0].region, r);
  });

  test('RRF: exact scores Σ 1/(60 + rank)', () => {
    const fused = reciprocalRankFusion([list('a', 'b', 'c'), list('b', 'c', 'd')]);
    // a: 1/61; b: 1/62 + 1/61; c: 1/63 + 1/62; d: 1/63 (summed list by list, as here).
    assert.deepEqual(
      fused.map((r) => [r.volumeId, r.score, r.rank]),
      [
        ['b', 0 + 1 / 62 + 1 / 61, 1],
        ['c', 0 + 1 / 63 + 1 / 62, 2],
        ['a', 1 / 61, 3],
        ['d', 1 / 63, 4],
      ],
    );
  });

  test('RRF: k0 and top options, three lists, duplicates within a list count once', () => {
    const fused = reciprocalRankFusion([list('a', 'b', 'a'), list('c'), list('b')], { k0: 0, top: 2 });
    // a: 1; b: 1/2 + 1; c: 1.
    assert.deepEqual(
      fused.map((r) => [r.volumeId, r.score]),
      [
        ['b', 1.5],
        ['a', 1],
      ],
    );
    assertSearchError(() => reciprocalRankFusion([], { k0: -1 }), 'BAD_OPTION');
    assertSearchError(() => interleave([], [], 0), 'BAD_OPTION');
  });

  test('RRF ties: better best rank first, then id', () => {
    // k0 = 0: a = 1 (rank 1), c = 1 (rank 1), b = 1/2 + 1/2 = 1 (best rank 2).
    const fused = reciprocalRankFusion([list('c', 'b'), list('a', 'b')], { k0: 0 });
    assert.deepEqual(
      fused.map((r) => [r.volumeId, r.score]),
      [
        ['a', 1],
        ['c', 1],
        ['b', 1],
      ],
    );
  });

  test('property: RRF of a list with itself keeps its order', () => {
    const rng = seededRng(29);
    for (let trial = 0; trial < 20; trial++) {
      const names = shuffled(rng, Array.from({ length: randomInt(rng, 1, 30) }, (_, n) => `v${n}`));
      const fused = reciprocalRankFusion([list(...names), list(...names)], { top: names.length, k0: randomInt(rng, 0, 100) });
      assert.deepEqual(ids(fused), names);
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// query ranges

describe('query ranges', () => {
  /** 4 × 3 × 10 voxels, 2.5 mm slices, slice k at z = 100 + 2.5 k mm. */
  function makeVolume(valueAt: (i: number, j: number, k: number) => number, options: { dims?: Vec3; zOriginMm?: number } = {}): Volume {
    const dims = options.dims ?? [4, 3, 10];
    const data: VoxelArray = new Int16Array(dims[0] * dims[1] * dims[2]);
    for (let k = 0, p = 0; k < dims[2]; k++) for (let j = 0; j < dims[1]; j++) for (let i = 0; i < dims[0]; i++, p++) data[p] = valueAt(i, j, k);
    return {
      data,
      dims,
      spacingMm: [1, 1, 2.5],
      // z row: 2.5 k + origin, independent of i and j, so every slice centre has that z.
      affineRas: [-1, 0, 0, 10, 0, -1, 0, 20, 0, 0, 2.5, options.zOriginMm ?? 100, 0, 0, 0, 1],
      modality: 'CT',
      source: { path: 'memory', format: 'generated', orientation: 'LPS', storedDataType: 'int16' },
      corrections: [],
    };
  }
  const ct = makeVolume((i, j, k) => 10 * k + i);
  // Label 3: a few voxels on slices 2, 3 and 4; label 5: one voxel on slice 7; the rest 0.
  const mask = makeVolume((i, j, k) => ((k === 2 && i === 1 && j === 0) || (k === 3 && j === 2) || (k === 4 && i === 3 && j === 1) ? 3 : k === 7 && i === 0 && j === 0 ? 5 : 0));

  test('mask z-extent of a label', () => {
    // Slice 2: one voxel, slice 3: a row of 4, slice 4: one voxel.
    assert.deepEqual(maskLabelExtent(mask, 3), { firstSlice: 2, lastSlice: 4, zStartMm: 105, zEndMm: 110, voxelCount: 6 });
    assert.deepEqual(querySliceIndices(ct, { kind: 'mask', mask, label: 3 }), [2, 3, 4]);
    assert.deepEqual(querySliceIndices(ct, { kind: 'mask', mask, label: 5 }), [7]);
  });

  test('mask errors: absent label, other dims, shifted grid; a tiny header difference is the same grid', () => {
    assertSearchError(() => querySliceIndices(ct, { kind: 'mask', mask, label: 9 }), 'LABEL_ABSENT');
    assertSearchError(() => querySliceIndices(ct, { kind: 'mask', mask: makeVolume(() => 3, { dims: [4, 3, 11] }), label: 3 }), 'GRID_MISMATCH');
    assertSearchError(() => querySliceIndices(ct, { kind: 'mask', mask: makeVolume(() => 3, { zOriginMm: 100.5 }), label: 3 }), 'GRID_MISMATCH');
    assert.deepEqual(querySliceIndices(ct, { kind: 'mask', mask: makeVolume((i, j, k) => (k === 9 ? 1 : 0), { zOriginMm: 100.0000004 }), label: 1 }), [9]);
  });

  test('whole volume, slice range (either order, clamped), mm range, single slice', () => {
    assert.deepEqual(querySliceIndices(ct, { kind: 'volume' }), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(querySliceIndices(ct, { kind: 'slices', firstSlice: 6, lastSlice: 3 }), [3, 4, 5, 6]);
    assert.deepEqual(querySliceIndices(ct, { kind: 'slices', firstSlice: 8, lastSlice: 40 }), [8, 9]);
    // Slabs of 2.5 mm around 100 + 2.5 k; [105, 110] overlaps the slabs of slices 2, 3 and 4 only.
    assert.deepEqual(querySliceIndices(ct, { kind: 'mm', zStartMm: 105, zEndMm: 110 }), [2, 3, 4]);
    assert.deepEqual(querySliceIndices(ct, { kind: 'mm', zStartMm: 105, zEndMm: 110 }), sliceRangeIndices(ct, { zStartMm: 105, zEndMm: 110 }));
    assert.deepEqual(querySliceIndices(ct, { kind: 'slice', slice: 7 }), [7]);
    assert.deepEqual(querySliceIndices(ct, { kind: 'slice', slice: 7 }, { stepMm: 5 }), [7]);
  });

  test('a step in mm thins the selection', () => {
    assert.deepEqual(querySliceIndices(ct, { kind: 'volume' }, { stepMm: 5 }), [0, 2, 4, 6, 8]);
    assert.deepEqual(querySliceIndices(ct, { kind: 'slices', firstSlice: 3, lastSlice: 9 }, { stepMm: 5 }), [3, 5, 7, 9]);
  });

  test('ranges outside the volume are errors', () => {
    assertSearchError(() => querySliceIndices(ct, { kind: 'slice', slice: 10 }), 'SLICE_OUT_OF_RANGE');
    assertSearchError(() => querySliceIndices(ct, { kind: 'slice', slice: 1.5 }), 'SLICE_OUT_OF_RANGE');
    assertSearchError(() => querySliceIndices(ct, { kind: 'mm', zStartMm: 300, zEndMm: 320 }), 'SLICE_OUT_OF_RANGE');
    assertSearchError(() => querySliceIndices(ct, { kind: 'slices', firstSlice: 12, lastSlice: 20 }), 'SLICE_OUT_OF_RANGE');
  });

  test('a query from an indexed volume’s vectors keeps only the requested embedded slices', () => {
    // Indexed every other slice: 0, 2, 4, 6.
    const indexed: VolumeVectors = {
      volumeId: 'vol',
      dim: 2,
      sliceIndices: Int32Array.from([0, 2, 4, 6]),
      zMm: Float64Array.from([100, 105, 110, 115]),
      vectors: Float32Array.from([1, 0, 0, 1, -1, 0, 0, -1]),
    };
    const q = queryFromVolumeVectors(indexed, [1, 2, 3, 4]);
    assert.deepEqual(Array.from(q.sliceIndices), [2, 4]);
    assert.deepEqual(Array.from(q.zMm ?? []), [105, 110]);
    assert.deepEqual([...q.vectors], [0, 1, -1, 0]);
    assert.equal(q.volumeId, 'vol');
    assert.equal(queryFromVolumeVectors(indexed).sliceIndices.length, 4);
    assertSearchError(() => queryFromVolumeVectors(indexed, [1, 3]), 'SLICE_OUT_OF_RANGE');
  });
});

// ---------------------------------------------------------------------------------------------------
// the orchestrator

describe('search orchestrator (fake brute-force store)', () => {
  const e1 = [1, 0, 0];
  const e2 = [0, 1, 0];
  const e3 = [0, 0, 1];
  const u = [1, 1, 0.2]; // cos with e1 and e2: 1/√2.04 ≈ 0.700
  // The query: e1 at slice 4 (z 20 mm), e2 at slice 6 (z 30 mm), cut from the indexed volume 'self'.
  const query = queryOf([e1, e2], [4, 6], [20, 30], 'self');

  function archive(): FakeStore {
    const store = new FakeStore(3);
    const add = (v: VolumeVectors, labels: Record<string, string | number> = {}): void =>
      store.addVolume(fakeRecord(v.volumeId, v.sliceIndices.length, { labels }), v, store.encoderId);
    // 'many': four slices that are all mediocre matches for both query slices.
    add(fakeVectors('many', [u, u, u, u]), { organ: 'liver' });
    // 'exact': slice 0 is q0, slice 1 is q1.
    add(fakeVectors('exact', [e1, e2, e3]), { organ: 'liver' });
    // 'noise': unrelated.
    add(fakeVectors('noise', [e3, e3, e3]), { organ: 'lung' });
    // 'self': the query's own volume (its slices 4 and 6 are the query).
    add(fakeVectors('self', [e3, e1, e3, e2], 5, 3));
    return store;
  }

  test('slice-count with k = 4: many mediocre hits outvote two exact ones; own volume excluded in the store', async () => {
    const store = archive();
    const results = await search(store, query, { method: 'slice-count', k: 4 });
    // Each query slice: exact (1.0) then many/0,1,2 (0.70; ties by slice); 'self' never competes.
    assert.deepEqual(
      results.map((r) => [r.volumeId, r.score]),
      [
        ['many', 6],
        ['exact', 2],
      ],
    );
    assert.deepEqual(store.calls.searchSlices[0].options, { k: 4, mode: 'exact', filter: { excludeVolumeIds: ['self'] } });
    const exact = results[1];
    assert.deepEqual(
      exact.matches.map((m) => [m.querySlice, m.targetSlice]),
      [
        [4, 0],
        [6, 1],
      ],
    );
    assert.deepEqual(exact.region, region(0, 1, 0, 5));
  });

  test('includeQueryVolume lets the query’s own volume compete', async () => {
    const results = await search(archive(), query, { method: 'slice-max', k: 4, includeQueryVolume: true });
    assert.ok(ids(results).includes('self'));
    assert.equal(results.find((r) => r.volumeId === 'self')?.region?.firstSlice, 4);
  });

  test('rerank: exact matches beat many mediocre ones; only the first-stage candidates are read', async () => {
    const store = archive();
    const results = await search(store, query, { method: 'rerank', k: 4 });
    assert.deepEqual(ids(results), ['exact', 'many']);
    assertClose(results[0].score, 1, 1e-6, 'S(exact)');
    assertClose(results[1].score, 1 / Math.sqrt(2.04), 1e-6, 'S(many)');
    assert.deepEqual(results[0].region, region(0, 1, 0, 5));
    assert.deepEqual(store.calls.getVectors, [['many', 'exact']]);

    const narrow = archive();
    const one = await search(narrow, query, { method: 'rerank', k: 4, candidates: 1 });
    assert.deepEqual(ids(one), ['many']);
    assert.deepEqual(narrow.calls.getVectors, [['many']]);
  });

  test('rerank after a volume-based first stage', async () => {
    const store = archive();
    const results = await search(store, query, { method: 'rerank', firstStage: 'volume-mean', candidates: 3 });
    // volume-mean candidates: many (0.99), exact (0.82), noise (0); late interaction: exact 1, many 0.7, noise 0.
    assert.deepEqual(ids(results), ['exact', 'many', 'noise']);
    assert.equal(store.calls.searchVolumes[0].k, 4, 'depth plus the excluded volume');
  });

  test('volume-mean: the query is pooled with poolVectors; results are localized by alignment unless disabled', async () => {
    const store = archive();
    const results = await search(store, query, { method: 'volume-mean' });
    assert.deepEqual(ids(results), ['many', 'exact', 'noise']);
    assertClose(results[0].score, 2 / Math.sqrt(2 * 2.04), 1e-6, 'cos(mean query, mean many)');
    assertClose(results[1].score, 2 / Math.sqrt(6), 1e-6, 'cos(mean query, mean exact)');
    assert.deepEqual([...store.calls.searchVolumes[0].query], [...poolVectors(query.vectors, 3, 'mean')]);
    assert.deepEqual(results[1].region, region(0, 1, 0, 5));
    assert.deepEqual(
      results[1].matches.map((m) => [m.querySlice, m.targetSlice]),
      [
        [4, 0],
        [6, 1],
      ],
    );
    // 'many' has four identical slices: each query slice aligns to the first of them.
    assert.deepEqual(results[0].region, region(0, 0, 0, 0));
    const bare = await search(archive(), query, { method: 'volume-mean', localize: false });
    assert.ok(bare.every((r) => r.region === undefined && r.matches.length === 0));
  });

  test('every method runs, ranks from 1 and gives every result a region', async () => {
    for (const method of SEARCH_METHODS) {
      const results = await search(archive(), query, { method, k: 8 });
      assert.ok(results.length > 0, method);
      results.forEach((r, n) => {
        assert.equal(r.rank, n + 1, method);
        assert.ok(r.region, `${method}: ${r.volumeId} has no region`);
        assert.notEqual(r.volumeId, 'self', method);
      });
    }
  });

  test('filter and excludeVolumeIds reach the store and hold in the results', async () => {
    const store = archive();
    const results = await search(store, query, { method: 'slice-sum', k: 8, filter: { labels: { organ: 'liver' } }, excludeVolumeIds: ['many'] });
    assert.deepEqual(ids(results), ['exact']);
    const filter = store.calls.searchSlices[0].options.filter;
    assert.deepEqual(filter?.labels, { organ: 'liver' });
    assert.deepEqual(new Set(filter?.excludeVolumeIds), new Set(['many', 'self']));
  });

  test('fusion: interleave and RRF of two methods equal fusing their separate lists; one kNN for two slice methods', async () => {
    const base: SearchOptions = { method: 'slice-count', k: 4, localize: false };
    const count = await search(archive(), query, { ...base, top: 50 });
    const mean = await search(archive(), query, { ...base, method: 'volume-mean', top: 50 });
    const viaRrf = await search(archive(), query, { ...base, fuseWith: { method: 'volume-mean', fusion: 'rrf' } });
    assert.deepEqual(viaRrf, reciprocalRankFusion([count, mean]));
    // slice-count says many, exact; rerank says exact, many: the interleaving starts with the first method.
    const reranked = await search(archive(), query, { ...base, method: 'rerank', top: 50 });
    assert.deepEqual(ids(reranked), ['exact', 'many']);
    const viaInterleave = await search(archive(), query, { ...base, fuseWith: { method: 'rerank', fusion: 'interleave' } });
    assert.deepEqual(viaInterleave, interleave(count, reranked));
    assert.deepEqual(ids(viaInterleave), ['many', 'exact']);

    const store = archive();
    await search(store, query, { method: 'slice-count', fuseWith: { method: 'slice-sum', fusion: 'rrf', k0: 10 } });
    assert.equal(store.calls.searchSlices.length, 1);
  });

  test('errors: dimension mismatch, unknown method, rerank as its own first stage, bad numbers', async () => {
    const store = archive();
    await assertSearchErrorAsync(search(store, queryOf([[1, 0]], [0]), { method: 'slice-count' }), 'DIM_MISMATCH');
    await assertSearchErrorAsync(search(store, query, { method: 'slice-mean' as 'slice-count' }), 'BAD_OPTION');
    await assertSearchErrorAsync(search(store, query, { method: 'rerank', firstStage: 'rerank' as 'slice-count' }), 'BAD_OPTION');
    await assertSearchErrorAsync(search(store, query, { method: 'slice-count', k: 0 }), 'BAD_OPTION');
    await assertSearchErrorAsync(search(store, query, { method: 'slice-count', fuseWith: { method: 'volume-max', fusion: 'borda' as 'rrf' } }), 'BAD_OPTION');
    assert.equal(store.calls.searchSlices.length, 0, 'bad options are refused before the store is asked');
    await assertSearchErrorAsync(search(store, query, { method: 'slice-count', top: 2.5 }), 'BAD_OPTION');
    await assertSearchErrorAsync(search(store, { ...query, sliceIndices: [4] }, { method: 'slice-count' }), 'BAD_QUERY');
  });
});
