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
