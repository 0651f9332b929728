import { similarityMatrix as computeSimilarityMatrix, typescriptSimilarity, type SimilarityKernel } from '../compute/index.js';
import { asSearchError } from './errors.js';

export type { SimilarityKernel };

/** The plain-TypeScript similarity kernel of src/compute (exact in float64, independent of matrix shapes). */
export const defaultSimilarityKernel: SimilarityKernel = typescriptSimilarity;

/** src/compute's TS kernel with search's error codes (bad shapes are a BAD_QUERY here). */
export function similarityMatrix(q: Float32Array, qCount: number, v: Float32Array, vCount: number, dim: number): Float32Array {
  try {
    return computeSimilarityMatrix(q, qCount, v, vCount, dim);
  } catch (error) {
    throw asSearchError(error);
  }
}
