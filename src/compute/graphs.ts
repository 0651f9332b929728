/**
 * The two tiny ONNX graphs behind exact search and late-interaction scoring, written with the project's one
 * graph builder. Every size (query rows, database rows, dimension, k) is symbolic, so one session per graph
 * serves every index and every k: nothing is re-created when the archive grows or a caller asks for another k.
 */
import { OnnxGraphBuilder } from './onnx-graph.js';

/**
 * scores = Q·Xᵀ + bias (Gemm, transB=1), then TopK(k) along the database axis.
 * The bias row is 0 for rows that may be returned and −∞ for rows excluded by a filter, deleted or unused,
 * so filtering rides on the Gemm's C input and costs nothing extra.
 *
 * Inputs: Q [q, d], X [n, d], bias [n], k [1] (int64). Outputs: values [q, k], indices [q, k] (int64).
 */
export function topKModel(): Uint8Array {
  const g = new OnnxGraphBuilder();
  for (const name of ['Q', 'X', 'bias', 'k']) g.reserve(name);
  const scores = g.node('Gemm', ['Q', 'X', 'bias'], 'scores', { transB: 1 });
  g.namedNode({ opType: 'TopK', inputs: [scores, 'k'], outputs: ['values', 'indices'], attributes: { axis: 1, largest: 1, sorted: 1 } });
  return g.toModelBytes({
    graphName: 'mir3d_exact_topk',
    producerName: 'mir3d-compute',
    docString: 'Exact inner-product top-k with an additive row mask.',
    input: [
      { name: 'Q', dims: ['q', 'd'] },
      { name: 'X', dims: ['n', 'd'] },
      { name: 'bias', dims: ['n'] },
      { name: 'k', dims: [1], type: 'int64' },
    ],
    output: [
      { name: 'values', dims: ['q', 'kk'] },
      { name: 'indices', dims: ['q', 'kk'], type: 'int64' },
    ],
  });
}

/** similarities = Q·Xᵀ (Gemm, transB=1). Inputs: Q [q, d], X [n, d]. Output: similarities [q, n]. */
export function similarityModel(): Uint8Array {
  const g = new OnnxGraphBuilder();
  g.reserve('Q');
  g.reserve('X');
  g.namedNode({ opType: 'Gemm', inputs: ['Q', 'X'], outputs: ['similarities'], attributes: { transB: 1 } });
  return g.toModelBytes({
    graphName: 'mir3d_similarity',
    producerName: 'mir3d-compute',
    docString: 'Inner products of every query row with every database row.',
    input: [
      { name: 'Q', dims: ['q', 'd'] },
      { name: 'X', dims: ['n', 'd'] },
    ],
    output: [{ name: 'similarities', dims: ['q', 'n'] }],
  });
}

/** Most candidates one maxSimModel run takes: per-run overhead is paid once for them all. */
export const MAXSIM_GROUP = 64;

/**
 * Group sizes with a graph of their own: powers of two up to MAXSIM_GROUP. A call's candidates split into
 * the largest sizes that fit (50 = 32 + 16 + 2), so no run carries unused inputs: with one 16-input graph,
 * the 14 placeholder candidates of a 50-candidate call's last run cost 5–7 % of the whole (bench:search).
 */
export function maxSimGroupSizes(candidates: number): number[] {
  const sizes: number[] = [];
  let left = candidates;
  for (let size = MAXSIM_GROUP; left > 0; size >>= 1) {
    while (left >= size) {
      sizes.push(size);
      left -= size;
    }
  }
  return sizes;
}

/**
 * MaxSim of Q against `group` candidates in one run: for each candidate Xi, Gemm(Q, Xi, transB=1)
 * then ReduceMax and ArgMax (first index on ties) along its rows, so neither the similarity matrices nor
 * a JS pass over them leave the runtime. Inputs: Q [q, d], X0 … X(group−1) [ni, d]. Outputs: M0 … [q]
 * (float), A0 … [q] (int64).
 */
export function maxSimModel(group: number): Uint8Array {
  const g = new OnnxGraphBuilder();
  g.reserve('Q');
  for (let i = 0; i < group; i++) g.reserve(`X${i}`);
  for (let i = 0; i < group; i++) {
    const scores = g.node('Gemm', ['Q', `X${i}`], `S${i}`, { transB: 1 });
    g.namedNode({ opType: 'ReduceMax', inputs: [scores], outputs: [`M${i}`], attributes: { axes: [1], keepdims: 0 } });
    g.namedNode({ opType: 'ArgMax', inputs: [scores], outputs: [`A${i}`], attributes: { axis: 1, keepdims: 0, select_last_index: 0 } });
  }
  return g.toModelBytes({
    graphName: 'mir3d_maxsim',
    producerName: 'mir3d-compute',
    docString: 'Per candidate: max and argmax over its rows of the inner products with every query row.',
    input: [{ name: 'Q', dims: ['q', 'd'] }, ...Array.from({ length: group }, (_, i) => ({ name: `X${i}`, dims: [`n${i}`, 'd'] }))],
    output: [
      ...Array.from({ length: group }, (_, i) => ({ name: `M${i}`, dims: ['q'] })),
      ...Array.from({ length: group }, (_, i) => ({ name: `A${i}`, dims: ['q'], type: 'int64' as const })),
    ],
  });
}
