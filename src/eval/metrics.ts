import type { TumourLabels } from '../labels/tumours.js';

/**
 * Retrieval metrics exactly as DESIGN.md ("Evaluation (exact definitions)") defines them, with the
 * expected value of each under random retrieval, so every number can be read against its chance level.
 *
 * Everything here is pure: a run is the query's label, the judged labels of what was retrieved in rank
 * order, and the judged labels of everything that could have been retrieved (the pool, for the random
 * baseline). Which database items a query may retrieve, and how a label is judged relative to the query
 * (e.g. an other-organ volume counts as "no tumour" for a liver query), is the dataset's business
 * (datasets/relevance.ts), not the metric's.
 *
 * Conventions:
 * - P@k divides by k even when fewer than k items came back (missing ranks are non-relevant), as the
 *   definition's (1/k) Σ_{i ≤ k} says.
 * - AP@10 averages precision at each relevant rank within the top 10 over the relevant items found in
 *   the top 10 (not over all relevant items in the database); 0 when none is found.
 * - Overall numbers are means over queries; `byStratum` are means over the queries of one organ or
 *   region; `macro` is the unweighted mean of the strata.
 * - Random expectations are exact closed forms (no Monte-Carlo): P@k, AP@10 and hit@k under a uniformly
 *   random ordering of the pool; localization IoU under a uniformly placed window (numerical quadrature).
 */

/** Mean of per-query (or per-slice) scores; NaN for none. */
export const mean = (values: readonly number[]): number => (values.length ? values.reduce((a, b) => a + b, 0) / values.length : NaN);

/** Standard error of that mean (sample standard deviation / √n); NaN below two values. */
export const standardError = (values: readonly number[]): number => {
  if (values.length < 2) return NaN;
  const m = mean(values);
  return Math.sqrt(values.reduce((a, v) => a + (v - m) ** 2, 0) / (values.length - 1) / values.length);
};

export const DEFAULT_PRECISION_KS: readonly number[] = [3, 5, 10];
export const DEFAULT_RECALL_KS: readonly number[] = [1, 3, 5, 10];
export const AP_DEPTH = 10;

function checkK(k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`k = ${k} must be a positive integer`);
}

/** (1/k) Σ_{i ≤ k} [relevant(i)]; ranks beyond the list count as non-relevant. */
export function precisionAtK(relevant: readonly boolean[], k: number): number {
  checkK(k);
  let hits = 0;
  for (let i = 0; i < Math.min(k, relevant.length); i++) if (relevant[i]) hits++;
  return hits / k;
}

/** Average precision over the top `depth` (default 10) only; 0 when nothing relevant is found there. */
export function averagePrecisionAtK(relevant: readonly boolean[], depth: number = AP_DEPTH): number {
  checkK(depth);
  let hits = 0;
  let sum = 0;
  for (let i = 0; i < Math.min(depth, relevant.length); i++) {
    if (!relevant[i]) continue;
    hits++;
    sum += hits / (i + 1);
  }
  return hits === 0 ? 0 : sum / hits;
}

/** 1 when something relevant is among the top k, else 0. */
export function hitAtK(relevant: readonly boolean[], k: number): 0 | 1 {
  checkK(k);
  for (let i = 0; i < Math.min(k, relevant.length); i++) if (relevant[i]) return 1;
  return 0;
}

// ---------------------------------------------------------------------------------------------------
// Random retrieval, exact
// ---------------------------------------------------------------------------------------------------

function checkPool(poolSize: number, relevantInPool: number): void {
  if (!Number.isInteger(poolSize) || poolSize < 0) throw new RangeError(`pool size ${poolSize} must be a non-negative integer`);
  if (!Number.isInteger(relevantInPool) || relevantInPool < 0 || relevantInPool > poolSize) {
    throw new RangeError(`relevant count ${relevantInPool} must be an integer in [0, ${poolSize}]`);
  }
}

/** E[P@k] when the pool (N items, m relevant) is ranked at random: min(k, N)/k · m/N. For k ≤ N that is
 * the fraction of the pool sharing the query's label, DESIGN's closed form. */
export function randomPrecisionAtK(poolSize: number, relevantInPool: number, k: number): number {
  checkK(k);
  checkPool(poolSize, relevantInPool);
  if (poolSize === 0) return 0;
  return (Math.min(k, poolSize) / k) * (relevantInPool / poolSize);
}

/** Hypergeometric P(R = r) for r = 0…n: r relevant among n drawn without replacement from N with m relevant. */
function hypergeometric(N: number, m: number, n: number): number[] {
  const logC = (a: number, b: number): number => (b < 0 || b > a ? -Infinity : logFactorial(a) - logFactorial(b) - logFactorial(a - b));
  const total = logC(N, n);
  return Array.from({ length: n + 1 }, (_, r) => {
    const l = logC(m, r) + logC(N - m, n - r) - total;
    return l === -Infinity ? 0 : Math.exp(l);
  });
}

const logFactorialCache: number[] = [0];
function logFactorial(n: number): number {
  for (let i = logFactorialCache.length; i <= n; i++) logFactorialCache[i] = logFactorialCache[i - 1] + Math.log(i);
  return logFactorialCache[n];
}

/**
 * E[AP@depth] under a random ranking of a pool of N items with m relevant. The list holds L = min(depth, N)
 * items; given that r of them are relevant, their positions are a uniform r-subset of 1…L, and
 *   E[AP | r] = (1/L) Σ_{i=1..L} [ 1/i + (i−1)(r−1) / (i(L−1)) ]   (r ≥ 1; = 1 when L = 1),
 * from E[Σ_{i∈S} c_i/i] with P(i ∈ S) = r/L and P(i, j ∈ S) = r(r−1)/(L(L−1)), divided by r. Then
 * E[AP] = Σ_r P(R = r) E[AP | r] with R hypergeometric. Exact; cross-checked by Monte-Carlo in the tests.
 */
export function randomAveragePrecision(poolSize: number, relevantInPool: number, depth: number = AP_DEPTH): number {
  checkK(depth);
  checkPool(poolSize, relevantInPool);
  if (poolSize === 0 || relevantInPool === 0) return 0;
  const L = Math.min(depth, poolSize);
  const probabilities = hypergeometric(poolSize, relevantInPool, L);
  let harmonic = 0;
  let tail = 0; // Σ (i−1)/i
  for (let i = 1; i <= L; i++) {
    harmonic += 1 / i;
    tail += (i - 1) / i;
  }
  let expected = 0;
  for (let r = 1; r <= L; r++) {
    if (probabilities[r] === 0) continue;
    const conditional = L === 1 ? 1 : (harmonic + ((r - 1) / (L - 1)) * tail) / L;
    expected += probabilities[r] * conditional;
  }
  return expected;
}

/** E[hit@k] = 1 − C(N−m, L)/C(N, L) with L = min(k, N): the chance a random top k holds a relevant item. */
export function randomHitAtK(poolSize: number, relevantInPool: number, k: number): number {
  checkK(k);
  checkPool(poolSize, relevantInPool);
  if (poolSize === 0 || relevantInPool === 0) return 0;
  return 1 - hypergeometric(poolSize, relevantInPool, Math.min(k, poolSize))[0];
}

// ---------------------------------------------------------------------------------------------------
// Tumour flag / group retrieval (3D-MIR, C-MIR)
// ---------------------------------------------------------------------------------------------------

export interface TumourQueryRun {
  queryId: string;
  /** Averaging stratum, e.g. the query's organ. */
  stratum: string;
  query: TumourLabels;
  /** Judged labels of the retrieved volumes, best first (already relative to the query). */
  retrieved: readonly TumourLabels[];
  /** Judged labels of every volume the query could have retrieved (the database minus the query
   * itself), for the random baseline. */
  pool: readonly TumourLabels[];
}

/** Metric values keyed by k (P@k) plus AP@10. */
export interface PrecisionSet {
  precisionAtK: Record<number, number>;
  ap10: number;
}

export interface TumourMetrics {
  queryCount: number;
  flag: PrecisionSet;
  group: PrecisionSet;
}

export interface TumourQueryScore extends TumourMetrics {
  queryId: string;
  stratum: string;
  random: TumourMetrics;
}

export interface TumourEvaluation {
  ks: number[];
  overall: TumourMetrics;
  macro: TumourMetrics;
  byStratum: Record<string, TumourMetrics>;
  random: { overall: TumourMetrics; macro: TumourMetrics; byStratum: Record<string, TumourMetrics> };
  perQuery: TumourQueryScore[];
}

const flagOf = (l: TumourLabels): number => l.cancerFlag;
const groupOf = (l: TumourLabels): number => l.lesionGroup;

function scoreOne(run: TumourQueryRun, ks: readonly number[]): TumourQueryScore {
  const side = (key: (l: TumourLabels) => number): { observed: PrecisionSet; random: PrecisionSet } => {
    const target = key(run.query);
    const relevant = run.retrieved.map((l) => key(l) === target);
    const m = run.pool.reduce((n, l) => n + (key(l) === target ? 1 : 0), 0);
    const N = run.pool.length;
    const observed: PrecisionSet = { precisionAtK: {}, ap10: averagePrecisionAtK(relevant, AP_DEPTH) };
    const random: PrecisionSet = { precisionAtK: {}, ap10: randomAveragePrecision(N, m, AP_DEPTH) };
    for (const k of ks) {
      observed.precisionAtK[k] = precisionAtK(relevant, k);
      random.precisionAtK[k] = randomPrecisionAtK(N, m, k);
    }
    return { observed, random };
  };
  const flag = side(flagOf);
  const group = side(groupOf);
  return {
    queryId: run.queryId,
    stratum: run.stratum,
    queryCount: 1,
    flag: flag.observed,
    group: group.observed,
    random: { queryCount: 1, flag: flag.random, group: group.random },
  };
}

function meanPrecision(sets: readonly PrecisionSet[], ks: readonly number[]): PrecisionSet {
  const out: PrecisionSet = { precisionAtK: {}, ap10: mean(sets.map((s) => s.ap10)) };
  for (const k of ks) out.precisionAtK[k] = mean(sets.map((s) => s.precisionAtK[k]));
  return out;
}

function meanTumour(scores: readonly TumourMetrics[], ks: readonly number[], queryCount: number): TumourMetrics {
  return { queryCount, flag: meanPrecision(scores.map((s) => s.flag), ks), group: meanPrecision(scores.map((s) => s.group), ks) };
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const name = key(item);
    const list = out.get(name);
    if (list) list.push(item);
    else out.set(name, [item]);
  }
  return new Map([...out.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Flag and group P@k (k ∈ ks, default 3, 5, 10) and AP@10, per stratum and overall, with chance levels. */
export function evaluateTumourRetrieval(runs: readonly TumourQueryRun[], options: { ks?: readonly number[] } = {}): TumourEvaluation {
  const ks = [...(options.ks ?? DEFAULT_PRECISION_KS)];
  ks.forEach(checkK);
  const perQuery = runs.map((run) => scoreOne(run, ks));
  const strata = groupBy(perQuery, (s) => s.stratum);
  const byStratum: Record<string, TumourMetrics> = {};
  const randomByStratum: Record<string, TumourMetrics> = {};
  for (const [name, scores] of strata) {
    byStratum[name] = meanTumour(scores, ks, scores.length);
    randomByStratum[name] = meanTumour(scores.map((s) => s.random), ks, scores.length);
  }
  const strataValues = Object.values(byStratum);
  const randomStrataValues = Object.values(randomByStratum);
  return {
    ks,
    overall: meanTumour(perQuery, ks, perQuery.length),
    macro: meanTumour(strataValues, ks, perQuery.length),
    byStratum,
    random: {
      overall: meanTumour(perQuery.map((s) => s.random), ks, perQuery.length),
      macro: meanTumour(randomStrataValues, ks, perQuery.length),
      byStratum: randomByStratum,
    },
    perQuery,
  };
}

// ---------------------------------------------------------------------------------------------------
// Region recall (Khun Jush et al.)
// ---------------------------------------------------------------------------------------------------

export interface RegionQueryRun {
  queryId: string;
  /** The queried anatomy, e.g. 'liver' or the coarse 'spine'. */
  region: string;
  /** Per retrieved volume (or slice), best first: does it contain the region? */
  retrievedContains: readonly boolean[];
  /** Number of candidates the query could have retrieved, and how many of them contain the region. */
  poolSize: number;
  poolContaining: number;
}

export interface RecallMetrics {
  queryCount: number;
  recallAtK: Record<number, number>;
}

export interface RegionEvaluation {
  ks: number[];
  overall: RecallMetrics;
  macro: RecallMetrics;
  byRegion: Record<string, RecallMetrics>;
  random: { overall: RecallMetrics; macro: RecallMetrics; byRegion: Record<string, RecallMetrics> };
}

/** Region recall@k: the share of queries for which one of the top k contains the queried region. */
export function evaluateRegionRecall(runs: readonly RegionQueryRun[], options: { ks?: readonly number[] } = {}): RegionEvaluation {
  const ks = [...(options.ks ?? DEFAULT_RECALL_KS)];
  ks.forEach(checkK);
  const scored = runs.map((run) => {
    const observed: Record<number, number> = {};
    const random: Record<number, number> = {};
    for (const k of ks) {
      observed[k] = hitAtK(run.retrievedContains, k);
      random[k] = randomHitAtK(run.poolSize, run.poolContaining, k);
    }
    return { region: run.region, observed, random };
  });
  const meanOf = (items: readonly Record<number, number>[]): RecallMetrics => {
    const recallAtK: Record<number, number> = {};
    for (const k of ks) recallAtK[k] = mean(items.map((r) => r[k]));
    return { queryCount: items.length, recallAtK };
  };
  const byRegion: Record<string, RecallMetrics> = {};
  const randomByRegion: Record<string, RecallMetrics> = {};
  for (const [region, items] of groupBy(scored, (s) => s.region)) {
    byRegion[region] = meanOf(items.map((s) => s.observed));
    randomByRegion[region] = meanOf(items.map((s) => s.random));
  }
  const macroOf = (regions: Record<string, RecallMetrics>): RecallMetrics => {
    const values = Object.values(regions);
    const recallAtK: Record<number, number> = {};
    for (const k of ks) recallAtK[k] = mean(values.map((v) => v.recallAtK[k]));
    return { queryCount: scored.length, recallAtK };
  };
  return {
    ks,
    overall: meanOf(scored.map((s) => s.observed)),
    macro: macroOf(byRegion),
    byRegion,
    random: { overall: meanOf(scored.map((s) => s.random)), macro: macroOf(randomByRegion), byRegion: randomByRegion },
  };
}

// ---------------------------------------------------------------------------------------------------
// Localization along z
// ---------------------------------------------------------------------------------------------------

/** A z interval in patient mm, start ≤ end. */
export interface ZInterval {
  zStartMm: number;
  zEndMm: number;
}

function ordered(a: ZInterval): [number, number] {
  return a.zStartMm <= a.zEndMm ? [a.zStartMm, a.zEndMm] : [a.zEndMm, a.zStartMm];
}

/** Intersection over union of two z intervals; two identical points count as 1, disjoint as 0. */
export function zIoU(a: ZInterval, b: ZInterval): number {
  const [a0, a1] = ordered(a);
  const [b0, b1] = ordered(b);
  const inter = Math.max(0, Math.min(a1, b1) - Math.max(a0, b0));
  const union = a1 - a0 + (b1 - b0) - inter;
  if (union <= 0) return a0 === b0 ? 1 : 0;
  return inter / union;
}

/**
 * The slab a slice range covers: slice centres widened by half a slice at each end. Search reports a
 * region by its first and last slice centres, masks by slices; comparing slabs keeps a one-slice answer
 * from having zero length, so a correct one-slice match scores IoU 1, not 0.
 */
export function slabOf(firstCentreMm: number, lastCentreMm: number, sliceSpacingMm: number): ZInterval {
  const lo = Math.min(firstCentreMm, lastCentreMm);
  const hi = Math.max(firstCentreMm, lastCentreMm);
  return { zStartMm: lo - sliceSpacingMm / 2, zEndMm: hi + sliceSpacingMm / 2 };
}

/**
 * E[IoU] of a window of length `windowMm` placed uniformly inside `scan` against `truth` (midpoint rule
 * over the window's start, 2048 nodes; the integrand is piecewise smooth, so this is accurate to ~1e-6).
 * When the window is at least as long as the scan, the window is the scan.
 */
export function randomWindowIoU(truth: ZInterval, scan: ZInterval, windowMm: number): number {
  const [s0, s1] = ordered(scan);
  if (!(windowMm > 0)) return 0;
  const span = s1 - s0 - windowMm;
  if (span <= 0) return zIoU(truth, { zStartMm: s0, zEndMm: s1 });
  const nodes = 2048;
  let sum = 0;
  for (let n = 0; n < nodes; n++) {
    const start = s0 + ((n + 0.5) / nodes) * span;
    sum += zIoU(truth, { zStartMm: start, zEndMm: start + windowMm });
  }
  return sum / nodes;
}

export interface LocalizationRun {
  queryId: string;
  region: string;
  /** What the method returned for this retrieved volume (as a slab, see `slabOf`); absent = nothing. */
  returned?: ZInterval;
  /** The queried anatomy's true extent in the retrieved volume; absent when the volume lacks it (then the
   * run is not scored, only counted). */
  truth?: ZInterval;
  /** The retrieved volume's scanned slab, for the random baseline. */
  scan?: ZInterval;
}

export interface LocalizationMetrics {
  /** Runs scored (truth present). A missing `returned` scores 0. */
  scoredCount: number;
  /** Runs skipped because the retrieved volume does not contain the anatomy. */
  withoutTruthCount: number;
  meanIoU: number;
  /** Mean over scored runs of the IoU of a random window of the true extent's length placed in the scan
   * (runs without `scan` are left out of this mean). */
  randomMeanIoU: number;
}

export interface LocalizationEvaluation {
  overall: LocalizationMetrics;
  byRegion: Record<string, LocalizationMetrics>;
}

/** Mean z-IoU between returned and true extents, per region and overall. */
export function evaluateLocalization(runs: readonly LocalizationRun[]): LocalizationEvaluation {
  const summarize = (items: readonly LocalizationRun[]): LocalizationMetrics => {
    const scored = items.filter((r) => r.truth !== undefined);
    const ious = scored.map((r) => (r.returned ? zIoU(r.returned, r.truth!) : 0));
    const randoms = scored
      .filter((r) => r.scan !== undefined)
      .map((r) => {
        const [t0, t1] = ordered(r.truth!);
        return randomWindowIoU(r.truth!, r.scan!, t1 - t0);
      });
    return { scoredCount: scored.length, withoutTruthCount: items.length - scored.length, meanIoU: mean(ious), randomMeanIoU: mean(randoms) };
  };
  const byRegion: Record<string, LocalizationMetrics> = {};
  for (const [region, items] of groupBy(runs, (r) => r.region)) byRegion[region] = summarize(items);
  return { overall: summarize(runs), byRegion };
}
