import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TumourLabels } from '../src/labels/tumours.js';
import {
  averagePrecisionAtK,
  evaluateLocalization,
  evaluateRegionRecall,
  evaluateTumourRetrieval,
  hitAtK,
  precisionAtK,
  randomAveragePrecision,
  randomHitAtK,
  randomPrecisionAtK,
  randomWindowIoU,
  slabOf,
  zIoU,
  type TumourQueryRun,
} from '../src/eval/metrics.js';
import { seededRng, shuffled } from './helpers/seeded-random.js';

const close = (actual: number, expected: number, tolerance = 1e-12, what = ''): void => {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what} ${actual} vs ${expected}`);
};

/** All permutations of 0…n−1 (n ≤ 7 here). */
function permutations(n: number): number[][] {
  if (n === 0) return [[]];
  return permutations(n - 1).flatMap((p) => Array.from({ length: n }, (_, at) => [...p.slice(0, at), n - 1, ...p.slice(at)]));
}

describe('P@k, AP@10, hit@k on hand-made rankings', () => {
  const ranking = [true, false, true, true, false, false, false, false, false, true, true];

  test('P@k divides by k; relevant items below rank k do not count', () => {
    close(precisionAtK(ranking, 3), 2 / 3);
    close(precisionAtK(ranking, 5), 3 / 5);
    close(precisionAtK(ranking, 10), 4 / 10);
    // A list shorter than k: the missing ranks are non-relevant.
    close(precisionAtK([true], 3), 1 / 3);
    close(precisionAtK([], 5), 0);
    assert.throws(() => precisionAtK(ranking, 0), RangeError);
  });

  test('AP@10 averages precision at the relevant ranks within the top 10 only', () => {
    // Relevant at 1, 3, 4, 10 (the one at 11 is outside): (1/1 + 2/3 + 3/4 + 4/10) / 4.
    close(averagePrecisionAtK(ranking), (1 + 2 / 3 + 3 / 4 + 4 / 10) / 4);
    // Nothing relevant in the top 10 → 0, even with a relevant item at 11.
    close(averagePrecisionAtK([...Array(10).fill(false), true]), 0);
    // Averaged over the relevant items found, not over all relevant ones: one hit at rank 2 → 1/2.
    close(averagePrecisionAtK([false, true, false]), 1 / 2);
    close(averagePrecisionAtK([true, true, true]), 1);
  });

  test('hit@k', () => {
    assert.equal(hitAtK([false, false, true], 2), 0);
    assert.equal(hitAtK([false, false, true], 3), 1);
    assert.equal(hitAtK([], 10), 0);
  });
});

describe('random-retrieval expectations (closed forms)', () => {
  test('P@k: the fraction of the pool sharing the label; shrinks when the pool is shorter than k', () => {
    close(randomPrecisionAtK(10, 4, 3), 0.4);
    close(randomPrecisionAtK(10, 4, 10), 0.4);
    close(randomPrecisionAtK(10, 4, 20), (10 / 20) * 0.4);
    close(randomPrecisionAtK(0, 0, 3), 0);
    assert.throws(() => randomPrecisionAtK(5, 6, 3), RangeError);
  });

  test('AP@10 by hand: N = 3 with one and with two relevant items', () => {
    // One relevant at position 1, 2 or 3 with equal chance: AP = 1, 1/2, 1/3.
    close(randomAveragePrecision(3, 1), (1 + 1 / 2 + 1 / 3) / 3);
    // Two relevant: positions {1,2} → 1; {1,3} → (1 + 2/3)/2; {2,3} → (1/2 + 2/3)/2.
    close(randomAveragePrecision(3, 2), (1 + (1 + 2 / 3) / 2 + (1 / 2 + 2 / 3) / 2) / 3);
    close(randomAveragePrecision(3, 3), 1);
    close(randomAveragePrecision(3, 0), 0);
    close(randomAveragePrecision(1, 1), 1);
  });

  test('AP@depth equals the mean over every ordering of small pools (exhaustive)', () => {
    for (const [N, m, depth] of [[6, 2, 4], [6, 3, 4], [7, 3, 10], [7, 1, 3], [5, 4, 2]] as const) {
      let sum = 0;
      const all = permutations(N);
      for (const order of all) sum += averagePrecisionAtK(order.map((item) => item < m), depth);
      close(randomAveragePrecision(N, m, depth), sum / all.length, 1e-12, `N=${N} m=${m} depth=${depth}`);
    }
  });

  test('AP@10 on a 3D-MIR-sized pool (N = 157, m = 52) agrees with a seeded Monte-Carlo within 4 SE', () => {
    const rng = seededRng(7);
    const pool = Array.from({ length: 157 }, (_, n) => n < 52);
    const draws = 20000;
    let sum = 0;
    let sumSq = 0;
    for (let d = 0; d < draws; d++) {
      const ap = averagePrecisionAtK(shuffled(rng, pool).slice(0, 10));
      sum += ap;
      sumSq += ap * ap;
    }
    const mean = sum / draws;
    const se = Math.sqrt((sumSq / draws - mean * mean) / draws);
    const exact = randomAveragePrecision(157, 52);
    assert.ok(Math.abs(mean - exact) < 4 * se, `Monte-Carlo ${mean} ± ${se} vs exact ${exact}`);
  });

  test('hit@k: 1 − C(N−m, k)/C(N, k)', () => {
    close(randomHitAtK(5, 1, 2), 2 / 5);
    close(randomHitAtK(5, 2, 2), 1 - 3 / 10, 1e-12);
    close(randomHitAtK(5, 5, 1), 1);
    close(randomHitAtK(5, 0, 3), 0);
    close(randomHitAtK(4, 1, 10), 1);
  });
});

describe('tumour retrieval evaluation', () => {
  const L = (cancerFlag: 0 | 1, lesionGroup: TumourLabels['lesionGroup']): TumourLabels => ({ cancerFlag, lesionGroup });
  const pool = [L(1, 2), L(1, 3), L(0, -1), L(1, 2), L(0, -1)];
  const runs: TumourQueryRun[] = [
    // Liver query, group 2: retrieved flags 1,1,0 and groups 2,3,−1.
    { queryId: 'q1', stratum: 'liver', query: L(1, 2), retrieved: [L(1, 2), L(1, 3), L(0, -1)], pool },
    // Liver query, no tumour: retrieved −1, 2, −1.
    { queryId: 'q2', stratum: 'liver', query: L(0, -1), retrieved: [L(0, -1), L(1, 2), L(0, -1)], pool },
    // Lung query, group 3: nothing retrieved shares the group.
    { queryId: 'q3', stratum: 'lung', query: L(1, 3), retrieved: [L(0, -1), L(1, 2)], pool },
  ];
  const evaluation = evaluateTumourRetrieval(runs, { ks: [1, 3] });

  test('per query, per stratum, overall and macro, by hand', () => {
    const [s1, s2, s3] = evaluation.perQuery;
    close(s1.flag.precisionAtK[3], 2 / 3);
    close(s1.group.precisionAtK[3], 1 / 3);
    close(s1.flag.ap10, 1); // relevant at 1, 2 → (1 + 1)/2
    close(s2.flag.precisionAtK[3], 2 / 3);
    close(s2.flag.ap10, (1 + 2 / 3) / 2);
    close(s3.flag.precisionAtK[1], 0);
    close(s3.flag.precisionAtK[3], 1 / 3); // rank 2 has a tumour, rank 3 is missing
    close(s3.flag.ap10, 1 / 2);
    close(s3.group.ap10, 0);
    close(evaluation.byStratum.liver.flag.precisionAtK[3], 2 / 3);
    close(evaluation.byStratum.liver.group.precisionAtK[1], 1);
    close(evaluation.byStratum.lung.group.precisionAtK[3], 0);
    close(evaluation.overall.flag.precisionAtK[3], (2 / 3 + 2 / 3 + 1 / 3) / 3);
    close(evaluation.macro.flag.precisionAtK[3], (2 / 3 + 1 / 3) / 2);
    assert.equal(evaluation.overall.queryCount, 3);
    assert.equal(evaluation.byStratum.liver.queryCount, 2);
  });

  test('chance levels: the share of the pool with the query\'s label, averaged over queries', () => {
    // Pool flags: three 1, two 0; groups: 2 ×2, 3 ×1, −1 ×2.
    close(evaluation.random.overall.flag.precisionAtK[3], (3 / 5 + 2 / 5 + 3 / 5) / 3);
    close(evaluation.random.overall.group.precisionAtK[3], (2 / 5 + 2 / 5 + 1 / 5) / 3);
    close(evaluation.random.byStratum.lung.group.ap10, randomAveragePrecision(5, 1));
  });
});

describe('region recall', () => {
  test('recall@k per region and overall, with its chance level', () => {
    const result = evaluateRegionRecall(
      [
        { queryId: 'a', region: 'liver', retrievedContains: [false, true, true], poolSize: 4, poolContaining: 2 },
        { queryId: 'b', region: 'liver', retrievedContains: [false, false, false], poolSize: 4, poolContaining: 2 },
        { queryId: 'c', region: 'brain', retrievedContains: [true], poolSize: 4, poolContaining: 1 },
      ],
      { ks: [1, 2] },
    );
    close(result.byRegion.liver.recallAtK[1], 0);
    close(result.byRegion.liver.recallAtK[2], 0.5);
    close(result.byRegion.brain.recallAtK[1], 1);
    close(result.overall.recallAtK[2], 2 / 3);
    close(result.macro.recallAtK[2], (0.5 + 1) / 2);
    // Chance: liver, 2 of 4 contain it: hit@2 = 1 − C(2,2)/C(4,2) = 5/6; brain, 1 of 4: hit@1 = 1/4.
    close(result.random.byRegion.liver.recallAtK[2], 5 / 6);
    close(result.random.byRegion.brain.recallAtK[1], 1 / 4);
  });
});

describe('localization IoU along z', () => {
  test('zIoU by hand', () => {
    close(zIoU({ zStartMm: 0, zEndMm: 10 }, { zStartMm: 5, zEndMm: 15 }), 5 / 15);
    close(zIoU({ zStartMm: 0, zEndMm: 10 }, { zStartMm: 2, zEndMm: 4 }), 0.2);
    close(zIoU({ zStartMm: 0, zEndMm: 10 }, { zStartMm: 10, zEndMm: 20 }), 0);
    close(zIoU({ zStartMm: 10, zEndMm: 0 }, { zStartMm: 0, zEndMm: 10 }), 1); // reversed ends
    close(zIoU({ zStartMm: 3, zEndMm: 3 }, { zStartMm: 3, zEndMm: 3 }), 1);
    close(zIoU({ zStartMm: 3, zEndMm: 3 }, { zStartMm: 4, zEndMm: 4 }), 0);
  });

  test('a one-slice region becomes a slab of one slice thickness', () => {
    assert.deepEqual(slabOf(12, 12, 3), { zStartMm: 10.5, zEndMm: 13.5 });
    assert.deepEqual(slabOf(20, 11, 2), { zStartMm: 10, zEndMm: 21 });
  });

  test('random window IoU: a 10 mm window in a 20 mm scan against [0, 10] is 2 ln 2 − 1', () => {
    close(randomWindowIoU({ zStartMm: 0, zEndMm: 10 }, { zStartMm: 0, zEndMm: 20 }, 10), 2 * Math.log(2) - 1, 1e-6);
    close(randomWindowIoU({ zStartMm: 0, zEndMm: 10 }, { zStartMm: 0, zEndMm: 10 }, 10), 1);
    close(randomWindowIoU({ zStartMm: 0, zEndMm: 10 }, { zStartMm: 0, zEndMm: 10 }, 30), 1);
  });

  test('per region and overall; no answer scores 0; no truth is not scored', () => {
    const result = evaluateLocalization([
      { queryId: '1', region: 'liver', returned: { zStartMm: 0, zEndMm: 10 }, truth: { zStartMm: 5, zEndMm: 15 }, scan: { zStartMm: 0, zEndMm: 30 } },
      { queryId: '2', region: 'liver', returned: undefined, truth: { zStartMm: 0, zEndMm: 10 } },
      { queryId: '3', region: 'liver', returned: { zStartMm: 0, zEndMm: 10 }, truth: undefined },
      { queryId: '4', region: 'spine', returned: { zStartMm: 0, zEndMm: 10 }, truth: { zStartMm: 0, zEndMm: 10 } },
    ]);
    assert.equal(result.byRegion.liver.scoredCount, 2);
    assert.equal(result.byRegion.liver.withoutTruthCount, 1);
    close(result.byRegion.liver.meanIoU, (1 / 3 + 0) / 2);
    close(result.overall.meanIoU, (1 / 3 + 0 + 1) / 3);
    close(result.byRegion.liver.randomMeanIoU, randomWindowIoU({ zStartMm: 5, zEndMm: 15 }, { zStartMm: 0, zEndMm: 30 }, 10));
    assert.ok(Number.isNaN(result.byRegion.spine.randomMeanIoU));
  });
});
