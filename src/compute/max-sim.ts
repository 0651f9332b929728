/**
 * The one late-interaction (MaxSim) kernel: for every query slice and every candidate volume, the highest
 * similarity to any of the candidate's slices and which slice gave it. Everything that ranks by late
 * interaction calls `maxSimilarityPerSegment`; its backends are ONNX Runtime's matrix product (the default,
 * and the GPU path) and a plain-TypeScript kernel, which is the CPU fallback when ONNX Runtime cannot start
 * and the exact, shape-independent reference the tests use.
 *
 * Measured on the 2-core dev box (100 query rows × 50 candidates × 300 rows, bench:search, paired with
 * numpy call by call): one Gemm + ReduceMax + ArgMax per candidate, up to MAXSIM_GROUP candidates a run, with
 * the threads of large runs spinning between operators and stopping when the run returns (maxSimRuns), is
 * 0.91–0.95 of numpy's time on the same separate arrays at 512-d and at parity with one product over a
 * contiguous matrix. Without that spinning ONNX Runtime's sleeping threads woke for each of the 150
 * operators and it was 1.03–1.09× numpy. Spinning that outlives the run is wrong here: each session has
 * a pool of its own, and a pool still spinning after its run took a core from the next session's (2×
 * slower). Tried and dropped: copying the candidates together (30 MB at 512-d, about 5 ms), one product
 * over adjacent views with a JS segment max (about 20 % slower at 512-d), ORT's parallel executor (1.4×),
 * TopK(1) in place of ReduceMax + ArgMax (slower with spinning), GatherElements and a transposed product
 * (within noise). So: no copies of large candidates; only small ones are packed together.
 */
import * as ort from 'onnxruntime-node';
import { ComputeError } from './errors.js';
import { MAXSIM_GROUP, maxSimGroupSizes } from './graphs.js';
import { computeSessions, type ComputeOptions } from './runtime.js';
import { typescriptSimilarity, type SimilarityKernel } from './similarity-ts.js';

export interface MaxSimResult {
  queryCount: number;
  segmentCount: number;
  /** queryCount × segmentCount: max over the segment's rows of ⟨query, row⟩; −Infinity for an empty segment. */
  maxSimilarity: Float32Array;
  /** queryCount × segmentCount: the row within the segment that gave the max (first on ties); −1 when empty. */
  argmaxRow: Int32Array;
}

/** MaxSim of `queries` (rows × dim) against each segment (rows × dim, row-major). */
export type MaxSimKernel = (queries: Float32Array, dim: number, segments: readonly Float32Array[]) => Promise<MaxSimResult>;

/** 'onnx': ONNX Runtime (CUDA when the sessions run there), falling back to 'typescript' when ONNX Runtime
 * cannot start. 'typescript': the plain-TS kernel (or `similarity` when given), exact in float64. */
export type MaxSimBackend = 'onnx' | 'typescript';

export interface MaxSimOptions extends ComputeOptions {
  /** Default 'onnx'; a `similarity` kernel implies 'typescript' (the segment max in TS on its matrices). */
  backend?: MaxSimBackend;
  /** A similarity-matrix kernel for the TS backend; default the blocked TS kernel. */
  similarity?: SimilarityKernel;
  /** ONNX backend: upper bound on one run's similarity matrix (query rows × rows × 4 B). Default 64 MiB. */
  maxScoreBytes?: number;
  /** TS backend: candidate rows per similarity-kernel call (default 8192), see `maxSimFromSimilarity`. */
  maxRowsPerCall?: number;
}

const DEFAULT_MAX_SCORE_BYTES = 64 * 1024 * 1024;
const DEFAULT_MAX_ROWS_PER_CALL = 8192;
/** Runs of at least this many candidate floats (rows × dim) spin (see maxSimRuns). Paired at 512-d against
 * the same graphs without spinning: 8 candidates of 300 rows (1.2 M floats) ran 1.7× slower with
 * spinning, 2 candidates 2×; 20 or more (3 M) ran faster. */
const SPIN_FROM_FLOATS = 3_000_000;
/** Candidates at least this long run on their own (no copy); shorter ones are packed, since per-run
 * overhead (~0.1–0.3 ms) then outweighs the copy. */
const PACK_BELOW_ROWS = 256;

interface Run {
  /** Segment indices covered, in order. */
  segments: number[];
  /** Row offset of each covered segment inside the run's matrix. */
  offsets: number[];
  rows: number;
  /** Set when the run is a single view of the caller's memory. */
  view?: Float32Array;
}

function checkInputs(queries: Float32Array, dim: number, segments: readonly Float32Array[]): void {
  if (!Number.isInteger(dim) || dim <= 0 || queries.length % dim !== 0) {
    throw new ComputeError('BAD_INPUT', `queries hold ${queries.length} floats, not a multiple of dim ${dim}`);
  }
  segments.forEach((s, i) => {
    if (s.length % dim !== 0) throw new ComputeError('BAD_INPUT', `segment ${i} holds ${s.length} floats, not a multiple of dim ${dim}`);
  });
}

function emptyResult(queryCount: number, segmentCount: number): MaxSimResult {
  return {
    queryCount,
    segmentCount,
    maxSimilarity: new Float32Array(queryCount * segmentCount).fill(-Infinity),
    argmaxRow: new Int32Array(queryCount * segmentCount).fill(-1),
  };
}

/**
 * MaxSim for `queries` (rows × dim) against each of `segments` (each rows × dim, row-major).
 * The late-interaction score of candidate c is then the mean over query rows of maxSimilarity[q, c].
 */
export async function maxSimilarityPerSegment(queries: Float32Array, dim: number, segments: readonly Float32Array[], options: MaxSimOptions = {}): Promise<MaxSimResult> {
  checkInputs(queries, dim, segments);
  const backend = options.similarity ? 'typescript' : (options.backend ?? 'onnx');
  if (backend === 'typescript') return maxSimFromSimilarity(options.similarity, options.maxRowsPerCall)(queries, dim, segments);
  const queryCount = queries.length / dim;
  const result = emptyResult(queryCount, segments.length);
  if (queryCount === 0 || segments.length === 0) return result;
  let sessions;
  try {
    sessions = await computeSessions(options);
  } catch (error) {
    // The CPU fallback: an explicit CUDA request must still fail loudly.
    if (options.provider === 'cuda') throw error;
    return maxSimFromSimilarity(undefined, options.maxRowsPerCall)(queries, dim, segments);
  }
  const maxScoreBytes = options.maxScoreBytes ?? DEFAULT_MAX_SCORE_BYTES;
  const queriesPerRun = Math.min(queryCount, 1024);
  const maxRunRows = Math.max(PACK_BELOW_ROWS, Math.floor(maxScoreBytes / (4 * queriesPerRun)));

  const runs = planRuns(segments, dim, maxRunRows);
  // Candidates that are one run each (the usual case: one volume's slices) go through the graph that also
  // takes the max and argmax, as many a run as a graph size allows; packed runs keep one Gemm and a JS
  // segment max.
  const single = runs.filter((run) => run.segments.length === 1);
  const placeholder = new ort.Tensor('float32', new Float32Array(dim), [1, dim]);
  let g0 = 0;
  for (const { size, used, spinning } of maxSimRuns(single.map((run) => run.rows), dim)) {
    const group = single.slice(g0, g0 + used);
    g0 += used;
    const session = await sessions.maxSim(size, spinning);
    const feeds: Record<string, ort.Tensor> = {};
    group.forEach((run, i) => (feeds[`X${i}`] = new ort.Tensor('float32', run.view!, [run.rows, dim])));
    for (let i = used; i < size; i++) feeds[`X${i}`] = placeholder;
    for (let q0 = 0; q0 < queryCount; q0 += queriesPerRun) {
      const qn = Math.min(queriesPerRun, queryCount - q0);
      feeds.Q = new ort.Tensor('float32', queries.subarray(q0 * dim, (q0 + qn) * dim), [qn, dim]);
      const out = await session.run(feeds);
      group.forEach((run, i) => {
        const best = out[`M${i}`].data as Float32Array;
        const arg = lowWords(out[`A${i}`].data as BigInt64Array);
        const s = run.segments[0];
        for (let q = 0; q < qn; q++) {
          result.maxSimilarity[(q0 + q) * segments.length + s] = best[q];
          result.argmaxRow[(q0 + q) * segments.length + s] = arg[2 * q];
        }
      });
    }
  }
  for (const run of runs) {
    if (run.segments.length === 1) continue;
    const matrix = run.view ?? pack(segments, run, dim);
    const x = new ort.Tensor('float32', matrix, [run.rows, dim]);
    for (let q0 = 0; q0 < queryCount; q0 += queriesPerRun) {
      const qn = Math.min(queriesPerRun, queryCount - q0);
      const q = new ort.Tensor('float32', queries.subarray(q0 * dim, (q0 + qn) * dim), [qn, dim]);
      const out = await sessions.similarity.run({ Q: q, X: x });
      segmentMax(out.similarities.data as Float32Array, qn, run, q0, segments, dim, result);
    }
  }
  return result;
}

/**
 * The runs of a call's single-run candidates, given their row counts: `size` is the graph (a power of two),
 * `used` how many of its inputs are real candidates (the rest get a one-row placeholder whose outputs are
 * dropped), `spinning` whether its session's threads spin between operators (stopping when the run
 * returns). Spinning pays only on runs of SPIN_FROM_FLOATS or more: starting a spinning pool costs more than
 * a small run takes. A placeholder's three operators cost ~50 µs without spinning (the pool's thread wakes
 * for each) and next to nothing with it, while each run pays the pool's start: so the graphs fit
 * non-spinning runs exactly (20 = 16 + 4), and a spinning remainder takes one padded graph (50 → 64).
 * Paired runs at 512-d, 300-row candidates, against exact-fit graphs without spinning: 20–100 candidates
 * took 0.61–0.99 of the time; 20 candidates as 16 + 4 spinning runs took 1.19–1.29, hence one padded run.
 */
export function maxSimRuns(rows: readonly number[], dim: number): Array<{ size: number; used: number; spinning: boolean }> {
  const runs: Array<{ size: number; used: number; spinning: boolean }> = [];
  const floats = (from: number, to: number): number => {
    let sum = 0;
    for (let i = from; i < to; i++) sum += rows[i];
    return sum * dim;
  };
  let start = 0;
  for (; rows.length - start >= MAXSIM_GROUP; start += MAXSIM_GROUP) {
    runs.push({ size: MAXSIM_GROUP, used: MAXSIM_GROUP, spinning: floats(start, start + MAXSIM_GROUP) >= SPIN_FROM_FLOATS });
  }
  const left = rows.length - start;
  if (left === 0) return runs;
  if (floats(start, rows.length) >= SPIN_FROM_FLOATS) {
    let size = 1;
    while (size < left) size *= 2;
    runs.push({ size, used: left, spinning: true });
  } else {
    for (const size of maxSimGroupSizes(left)) runs.push({ size, used: size, spinning: false });
  }
  return runs;
}

/** ArgMax's int64 row indices as 32-bit words, read at even positions: the low word of a little-endian
 * int64 below 2³¹ is the value itself. Reading the BigInt64Array element by element makes a BigInt per
 * element, which cost ~3 % of a 50-candidate re-ranking (bench:search). */
function lowWords(indices: BigInt64Array): Int32Array {
  return new Int32Array(indices.buffer, indices.byteOffset, indices.length * 2);
}

/**
 * The TS backend as a kernel of its own, on top of any similarity-matrix kernel (default the blocked TS
 * one). Candidates are scored together in one kernel call while their rows add up to at most
 * `maxRowsPerCall` (a larger candidate goes alone, without a copy): fewer, larger calls suit an
 * accelerator, and the bound keeps the q × v matrix at tens of MB for a few hundred query slices.
 */
export function maxSimFromSimilarity(kernel: SimilarityKernel = typescriptSimilarity, maxRowsPerCall: number = DEFAULT_MAX_ROWS_PER_CALL): MaxSimKernel {
  if (!Number.isInteger(maxRowsPerCall) || maxRowsPerCall < 1) {
    throw new ComputeError('BAD_INPUT', `maxRowsPerCall must be a positive integer, got ${maxRowsPerCall}`);
  }
  return async (queries, dim, segments) => {
    checkInputs(queries, dim, segments);
    const queryCount = queries.length / dim;
    const result = emptyResult(queryCount, segments.length);
    for (const chunk of chunkByRows(segments, dim, maxRowsPerCall)) {
      const vCount = chunk.rows;
      const v = chunk.segments.length === 1 ? segments[chunk.segments[0]] : pack(segments, chunk, dim);
      const matrix = await kernel(queries, queryCount, v, vCount, dim);
      if (!(matrix instanceof Float32Array) || matrix.length !== queryCount * vCount) {
        const got = matrix instanceof Float32Array ? String(matrix.length) : `a non-Float32Array (${typeof matrix}) instead of`;
        throw new ComputeError('KERNEL_OUTPUT', `similarity kernel returned ${got} values, expected ${queryCount} × ${vCount}`);
      }
      segmentMax(matrix, queryCount, chunk, 0, segments, dim, result);
    }
    return result;
  };
}

function* chunkByRows(segments: readonly Float32Array[], dim: number, maxRows: number): Generator<Run> {
  let chunk: Run = { segments: [], offsets: [], rows: 0 };
  for (let s = 0; s < segments.length; s++) {
    const rows = segments[s].length / dim;
    if (rows === 0) continue;
    if (chunk.segments.length > 0 && chunk.rows + rows > maxRows) {
      yield chunk;
      chunk = { segments: [], offsets: [], rows: 0 };
    }
    chunk.segments.push(s);
    chunk.offsets.push(chunk.rows);
    chunk.rows += rows;
  }
  if (chunk.segments.length > 0) yield chunk;
}

/**
 * Groups segments into runs. A candidate of at least PACK_BELOW_ROWS rows is a run of its own, a view of the
 * caller's memory, even when the next candidate lies right after it in the same buffer: one product over
 * both would leave their similarity matrix to the JS segment max, which costs more than the max graph's
 * reductions (bench:search's "views of one buffer" row, 512-d). Smaller candidates are packed together.
 */
function planRuns(segments: readonly Float32Array[], dim: number, maxRunRows: number): Run[] {
  const runs: Run[] = [];
  let packed: Run | undefined;
  for (let s = 0; s < segments.length; s++) {
    const seg = segments[s];
    const rows = seg.length / dim;
    if (rows === 0) continue;
    if (rows >= PACK_BELOW_ROWS) {
      runs.push({ segments: [s], offsets: [0], rows, view: seg });
      continue;
    }
    if (packed && packed.rows + rows > maxRunRows) {
      runs.push(packed);
      packed = undefined;
    }
    packed ??= { segments: [], offsets: [], rows: 0 };
    packed.segments.push(s);
    packed.offsets.push(packed.rows);
    packed.rows += rows;
  }
  if (packed) runs.push(packed);
  // A packed run of a single segment needs no copy either.
  for (const run of runs) if (!run.view && run.segments.length === 1) run.view = segments[run.segments[0]];
  return runs;
}

function pack(segments: readonly Float32Array[], run: Run, dim: number): Float32Array {
  const matrix = new Float32Array(run.rows * dim);
  run.segments.forEach((s, i) => matrix.set(segments[s], run.offsets[i] * dim));
  return matrix;
}

function segmentMax(similarities: Float32Array, queryRows: number, run: Run, q0: number, segments: readonly Float32Array[], dim: number, result: MaxSimResult): void {
  const segmentCount = result.segmentCount;
  for (let i = 0; i < queryRows; i++) {
    const rowBase = i * run.rows;
    const outBase = (q0 + i) * segmentCount;
    for (let j = 0; j < run.segments.length; j++) {
      const start = rowBase + run.offsets[j];
      const length = segments[run.segments[j]].length / dim;
      let best = -Infinity;
      let arg = -1;
      for (let r = 0; r < length; r++) {
        const v = similarities[start + r];
        if (v > best) {
          best = v;
          arg = r;
        }
      }
      result.maxSimilarity[outBase + run.segments[j]] = best;
      result.argmaxRow[outBase + run.segments[j]] = arg;
    }
  }
}
