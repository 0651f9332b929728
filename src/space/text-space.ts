/**
 * A text space learned from an archive's captions: a linear map from hashed text features
 * (encode/text-features.ts) into the archive's own image-vector space, trained contrastively so that a
 * caption's vector is nearer its own image(s) than any other image of the training archive.
 *
 * - Images are mean-centred with the training images' mean μ and not renormalized. For a text vector t,
 *   t·(x − μ) = t·x − t·μ differs from the stored cosine t·x by a constant per query, so searching the
 *   index's raw slice vectors ranks exactly as training scored: the space needs no change to the index.
 * - The map is restricted to the top-r principal directions of the centred training images (r = 128 by
 *   default): ~300 captions cannot fit 4096 × 1280 free weights, and the restriction makes a step ten
 *   times cheaper. W = V Bᵀ with B the d × r basis and V the learned featureDim × r matrix.
 * - Loss: text → image InfoNCE over all training images (captioned or not: uncaptioned images are
 *   negatives), with several positives per caption (the panels of one figure share a caption), temperature
 *   τ = 0.05, L2 weight decay, Adam. Full batch: the sets are small.
 * - Early stopping on captions of groups (patients) held out from the training groups, when asked.
 * Written by hand (not TensorFlow.js): the model is one sparse × dense product and a softmax, its gradient
 * is three lines, and a hand loop over sparse rows is faster than tfjs's CPU backend for it.
 */
import { randomStream } from '../synth/random.js';
import type { SparseFeatures } from '../encode/text-features.js';

export interface TextSpaceTrainingSet {
  /** One entry per caption. */
  features: SparseFeatures[];
  /** For each caption, the image rows it describes. */
  positives: number[][];
  /** n × dim image vectors (unit rows), all training images. */
  images: Float32Array;
  dim: number;
  featureDim: number;
}

export interface TextSpaceOptions {
  rank?: number;
  temperature?: number;
  learningRate?: number;
  weightDecay?: number;
  maxSteps?: number;
  /** Stop when the validation loss has not improved for this many steps. */
  patience?: number;
  seed?: number;
  /** Captions (with their positives among `images`) to stop on; never trained on. */
  validation?: { features: SparseFeatures[]; positives: number[][] };
  onProgress?: (step: number, maxSteps: number, loss: number, validationLoss: number | undefined) => void;
}

export interface LearnedTextProjection {
  featureDim: number;
  dim: number;
  /** featureDim × dim, row-major: text vector = normalize(features · weight). */
  weight: Float32Array;
  /** The training images' mean (kept for the record: scores against raw vectors differ by t·μ only). */
  imageMean: Float32Array;
  steps: number;
  trainLoss: number;
  validationLoss: number | undefined;
}

/** Unit text vectors (rows) of sparse features through a projection. */
export function projectText(features: SparseFeatures[], weight: Float32Array, dim: number): Float32Array {
  const out = new Float32Array(features.length * dim);
  features.forEach((f, n) => {
    const row = out.subarray(n * dim, (n + 1) * dim);
    for (let k = 0; k < f.indices.length; k++) {
      const base = f.indices[k] * dim;
      const v = f.values[k];
      for (let d = 0; d < dim; d++) row[d] += v * weight[base + d];
    }
    let norm = 0;
    for (let d = 0; d < dim; d++) norm += row[d] * row[d];
    norm = Math.sqrt(norm);
    if (norm > 0) for (let d = 0; d < dim; d++) row[d] /= norm;
  });
  return out;
}

export function trainTextProjection(set: TextSpaceTrainingSet, options: TextSpaceOptions = {}): LearnedTextProjection {
  const { dim, featureDim, images } = set;
  const n = images.length / dim;
  const rank = Math.min(options.rank ?? 128, n - 1, dim);
  const tau = options.temperature ?? 0.05;
  const lr = options.learningRate ?? 0.01;
  const decay = options.weightDecay ?? 1e-4;
  const maxSteps = options.maxSteps ?? 300;
  const patience = options.patience ?? 30;
  if (set.features.length === 0) throw new RangeError('no captions to learn from');
  if (set.features.length !== set.positives.length) throw new RangeError('one list of positive images per caption');

  const mean = new Float32Array(dim);
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) mean[d] += images[i * dim + d] / n;
  const centred = new Float32Array(images.length);
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) centred[i * dim + d] = images[i * dim + d] - mean[d];
  const basis = principalBasis(centred, n, dim, rank, options.seed ?? 1);
  // Z = X_c B: the images in the r principal coordinates.
  const z = new Float64Array(n * rank);
  for (let i = 0; i < n; i++)
    for (let r = 0; r < rank; r++) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += centred[i * dim + d] * basis[r * dim + d];
      z[i * rank + r] = s;
    }

  const random = randomStream(options.seed ?? 1, 'text-space');
  const v = new Float64Array(featureDim * rank);
  for (let i = 0; i < v.length; i++) v[i] = random.gaussian() * 0.01;
  const m1 = new Float64Array(v.length);
  const m2 = new Float64Array(v.length);
  const grad = new Float64Array(v.length);
  let best = { loss: Number.POSITIVE_INFINITY, v: v.slice(), step: 0, train: Number.NaN };
  let trainLoss = Number.NaN;
  let step = 0;
  for (; step < maxSteps; step++) {
    grad.fill(0);
    trainLoss = lossAndGradient(set.features, set.positives, v, z, n, rank, tau, grad);
    for (let i = 0; i < v.length; i++) grad[i] += decay * v[i];
    // Adam (β1 0.9, β2 0.999).
    const t = step + 1;
    const c1 = 1 - 0.9 ** t;
    const c2 = 1 - 0.999 ** t;
    for (let i = 0; i < v.length; i++) {
      const g = grad[i];
      if (g === 0 && m1[i] === 0) continue;
      m1[i] = 0.9 * m1[i] + 0.1 * g;
      m2[i] = 0.999 * m2[i] + 0.001 * g * g;
      v[i] -= (lr * (m1[i] / c1)) / (Math.sqrt(m2[i] / c2) + 1e-8);
    }
    const validationLoss = options.validation ? lossAndGradient(options.validation.features, options.validation.positives, v, z, n, rank, tau, undefined) : undefined;
    options.onProgress?.(step + 1, maxSteps, trainLoss, validationLoss);
    const watched = validationLoss ?? trainLoss;
    if (watched < best.loss - 1e-4) best = { loss: watched, v: v.slice(), step: step + 1, train: trainLoss };
    else if (options.validation && step + 1 - best.step >= patience) break;
  }
  const chosen = options.validation ? best : { loss: trainLoss, v, step, train: trainLoss };
  // W = V Bᵀ: featureDim × dim.
  const weight = new Float32Array(featureDim * dim);
  for (let f = 0; f < featureDim; f++) {
    const row = weight.subarray(f * dim, (f + 1) * dim);
    for (let r = 0; r < rank; r++) {
      const c = chosen.v[f * rank + r];
      if (c === 0) continue;
      for (let d = 0; d < dim; d++) row[d] += c * basis[r * dim + d];
    }
  }
  return { featureDim, dim, weight, imageMean: mean, steps: chosen.step, trainLoss: chosen.train, validationLoss: options.validation ? chosen.loss : undefined };
}

/** Mean multi-positive InfoNCE of captions against all images; adds ∂loss/∂V into `grad` when given. */
function lossAndGradient(features: SparseFeatures[], positives: number[][], v: Float64Array, z: Float64Array, n: number, rank: number, tau: number, grad: Float64Array | undefined): number {
  let total = 0;
  const u = new Float64Array(rank);
  const scores = new Float64Array(n);
  const gt = new Float64Array(rank);
  for (let c = 0; c < features.length; c++) {
    const f = features[c];
    u.fill(0);
    for (let k = 0; k < f.indices.length; k++) {
      const base = f.indices[k] * rank;
      for (let r = 0; r < rank; r++) u[r] += f.values[k] * v[base + r];
    }
    let norm = 0;
    for (let r = 0; r < rank; r++) norm += u[r] * u[r];
    norm = Math.sqrt(norm) + 1e-12;
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let r = 0; r < rank; r++) s += u[r] * z[i * rank + r];
      scores[i] = s / norm / tau;
      if (scores[i] > max) max = scores[i];
    }
    let sum = 0;
    for (let i = 0; i < n; i++) sum += Math.exp(scores[i] - max);
    const logZ = max + Math.log(sum);
    const pos = positives[c];
    for (const p of pos) total += (logZ - scores[p]) / pos.length;
    if (!grad) continue;
    // ∂/∂s_i = softmax_i − [i ∈ pos]/|pos|; s_i = (u/|u|)·z_i/τ.
    const gs = new Float64Array(n);
    for (let i = 0; i < n; i++) gs[i] = Math.exp(scores[i] - logZ);
    for (const p of pos) gs[p] -= 1 / pos.length;
    const t = new Float64Array(rank);
    for (let r = 0; r < rank; r++) t[r] = u[r] / norm;
    gt.fill(0);
    for (let i = 0; i < n; i++) {
      const g = gs[i] / tau;
      if (g === 0) continue;
      for (let r = 0; r < rank; r++) gt[r] += g * z[i * rank + r];
    }
    // Through the normalization: ∂/∂u = (g − t (t·g)) / |u|.
    let dot = 0;
    for (let r = 0; r < rank; r++) dot += t[r] * gt[r];
    for (let r = 0; r < rank; r++) gt[r] = (gt[r] - t[r] * dot) / norm / features.length;
    for (let k = 0; k < f.indices.length; k++) {
      const base = f.indices[k] * rank;
      const value = f.values[k];
      for (let r = 0; r < rank; r++) grad[base + r] += value * gt[r];
    }
  }
  return total / features.length;
}

/** Top-r principal directions (rows of a r × dim array) of centred rows, by subspace iteration. */
function principalBasis(centred: Float32Array, n: number, dim: number, rank: number, seed: number): Float64Array {
  const random = randomStream(seed, 'text-space-basis');
  let q = new Float64Array(rank * dim);
  for (let i = 0; i < q.length; i++) q[i] = random.gaussian();
  orthonormalizeRows(q, rank, dim);
  const projected = new Float64Array(n * rank);
  for (let iteration = 0; iteration < 8; iteration++) {
    // Q ← orth(Xᵀ X Q)
    for (let i = 0; i < n; i++)
      for (let r = 0; r < rank; r++) {
        let s = 0;
        for (let d = 0; d < dim; d++) s += centred[i * dim + d] * q[r * dim + d];
        projected[i * rank + r] = s;
      }
    const next = new Float64Array(rank * dim);
    for (let i = 0; i < n; i++)
      for (let r = 0; r < rank; r++) {
        const c = projected[i * rank + r];
        for (let d = 0; d < dim; d++) next[r * dim + d] += c * centred[i * dim + d];
      }
    orthonormalizeRows(next, rank, dim);
    q = next;
  }
  return q;
}

function orthonormalizeRows(rows: Float64Array, count: number, dim: number): void {
  for (let a = 0; a < count; a++) {
    const row = rows.subarray(a * dim, (a + 1) * dim);
    for (let b = 0; b < a; b++) {
      const other = rows.subarray(b * dim, (b + 1) * dim);
      let dot = 0;
      for (let d = 0; d < dim; d++) dot += row[d] * other[d];
      for (let d = 0; d < dim; d++) row[d] -= dot * other[d];
    }
    let norm = 0;
    for (let d = 0; d < dim; d++) norm += row[d] * row[d];
    norm = Math.sqrt(norm);
    if (norm < 1e-12) row.fill(0);
    else for (let d = 0; d < dim; d++) row[d] /= norm;
  }
}
