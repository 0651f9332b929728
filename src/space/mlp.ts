/**
 * A small MLP head trained with a supervised contrastive loss (SupCon, Khosla et al. 2020): backbone
 * vectors are PCA-whitened to p dims (on ONNX Runtime, once), then z → ReLU(z·W1 + b1) → ·W2 + b2 → unit
 * rows, trained so that each slice is nearer the other slices of its label than any other slice of the
 * batch. Early stopping on validation P@5 of held-out groups (the same split as the linear head); the
 * best checkpoint is kept. Exported as the same ONNX chain of affine layers (whitening folded into W1).
 *
 * Written by hand, not with TensorFlow.js: tfjs's Node CPU backend is plain JavaScript too (tfjs-node,
 * the native one, cannot install here), the network is two matrix products and a softmax whose gradients
 * are a few lines, and a loop over Float32Arrays avoids tfjs's tensor bookkeeping. The batch, not the
 * archive, sets the cost of a step, so 100k slices train as fast as 1k (only the PCA grows with them).
 */
import { uniformStream } from '../synth/random.js';
import { SpaceError } from './errors.js';
import { randomP5, spaceP5, validationSplit, whiteningOf, type LabelledRows } from './fit.js';
import type { AffineLayer } from './graph.js';

export interface MlpOptions {
  seed?: number;
  rows?: readonly number[];
  /** Whitened input dimension (default 128). */
  inputDim?: number;
  hidden?: number;
  outputDim?: number;
  temperature?: number;
  learningRate?: number;
  weightDecay?: number;
  batch?: number;
  /** Most epochs-worth of steps (an epoch: as many rows as the training set). Default 60. */
  maxEpochs?: number;
  /** Most steps whatever the epochs (default 600): a step's cost is the batch's, so this bounds training
   * time on any archive size (SupCon on 256-row batches converges in a few hundred steps here). */
  maxSteps?: number;
  /** Evaluate validation P@5 every this many steps (default 25). */
  evalEvery?: number;
  /** Stop after this many evaluations without improvement (default 6). */
  patience?: number;
  onProgress?: (p: { step: number; steps: number; loss: number; validationP5: number; bestP5: number }) => void;
}

export interface MlpFit {
  layers: AffineLayer[];
  method: 'mlp';
  settings: { inputDim: number; hidden: number; outputDim: number; temperature: number; learningRate: number; weightDecay: number; batch: number; steps: number; bestStep: number };
  validation: { p5: number; rawP5: number; randomP5: number; queries: number; databaseRows: number; groups: number };
  trainingRows: number;
  seconds: number;
}

/** C (m×n) = A (m×k) · B (k×n), row-major; i-k-j order keeps the inner loop contiguous. */
function matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number, c = new Float32Array(m * n)): Float32Array {
  c.fill(0);
  for (let i = 0; i < m; i++) {
    const ci = i * n;
    for (let t = 0; t < k; t++) {
      const av = a[i * k + t];
      if (av === 0) continue;
      const bt = t * n;
      for (let j = 0; j < n; j++) c[ci + j] += av * b[bt + j];
    }
  }
  return c;
}

/** C (k×n) = Aᵀ · B with A m×k, B m×n. */
function matmulTA(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array {
  const c = new Float32Array(k * n);
  for (let i = 0; i < m; i++) {
    for (let t = 0; t < k; t++) {
      const av = a[i * k + t];
      if (av === 0) continue;
      const ct = t * n;
      const bi = i * n;
      for (let j = 0; j < n; j++) c[ct + j] += av * b[bi + j];
    }
  }
  return c;
}

/** C (m×k) = A · Bᵀ with A m×n, B k×n. */
function matmulTB(a: Float32Array, b: Float32Array, m: number, n: number, k: number): Float32Array {
  const c = new Float32Array(m * k);
  for (let i = 0; i < m; i++) {
    for (let t = 0; t < k; t++) {
      let s = 0;
      const ai = i * n;
      const bt = t * n;
      for (let j = 0; j < n; j++) s += a[ai + j] * b[bt + j];
      c[i * k + t] = s;
    }
  }
  return c;
}

class Adam {
  private readonly m: Float32Array;
  private readonly v: Float32Array;
  private t = 0;
  constructor(
    private readonly w: Float32Array,
    private readonly rate: number,
    private readonly decay: number,
  ) {
    this.m = new Float32Array(w.length);
    this.v = new Float32Array(w.length);
  }

  step(grad: Float32Array): void {
    this.t++;
    const b1 = 0.9;
    const b2 = 0.999;
    const c1 = 1 - b1 ** this.t;
    const c2 = 1 - b2 ** this.t;
    for (let i = 0; i < this.w.length; i++) {
      const g = grad[i] + this.decay * this.w[i];
      this.m[i] = b1 * this.m[i] + (1 - b1) * g;
      this.v[i] = b2 * this.v[i] + (1 - b2) * g * g;
      this.w[i] -= (this.rate * this.m[i]) / c1 / (Math.sqrt(this.v[i] / c2) + 1e-8);
    }
  }
}

/** Folds the whitening layer (dim → p) into the first MLP layer (p → h): one layer dim → h. */
function fold(whiten: AffineLayer, w1: Float32Array, b1: Float32Array, p: number, h: number): AffineLayer {
  const dim = whiten.inDim;
  const weight = matmul(whiten.weight!, w1, dim, p, h);
  const bias = matmul(whiten.bias, w1, 1, p, h);
  for (let j = 0; j < h; j++) bias[j] += b1[j];
  return { inDim: dim, outDim: h, weight, bias };
}

export async function fitMlpHead(data: LabelledRows, options: MlpOptions = {}): Promise<MlpFit> {
  const started = performance.now();
  const seed = options.seed ?? 1;
  const { inner, validation, database, groupCount } = validationSplit(data, { seed, ...(options.rows ? { rows: options.rows } : {}) });
  const random = uniformStream(seed + 17);
  const { layer: whiten, z } = await whiteningOf(data, inner, options.inputDim ?? 128);
  const p = whiten.outDim;
  const h = options.hidden ?? 256;
  const m = options.outputDim ?? 64;
  const tau = options.temperature ?? 0.1;
  const batch = Math.min(options.batch ?? 256, inner.length);
  const maxSteps = Math.max(1, Math.min(options.maxSteps ?? 600, Math.ceil(((options.maxEpochs ?? 60) * inner.length) / batch)));
  const evalEvery = options.evalEvery ?? 25;
  const patience = options.patience ?? 6;
  const n = inner.length;
  // Labels of the training rows per target, as small integers (−1: unlabelled).
  const labels = data.targets.map((target) => {
    const ids = new Map<string, number>();
    return Int32Array.from(inner, (r) => {
      const v = target[r];
      if (v === undefined || v === '') return -1;
      const key = String(v);
      if (!ids.has(key)) ids.set(key, ids.size);
      return ids.get(key)!;
    });
  });
  if (n < 4) throw new SpaceError('BAD_LABELS', 'training rows', `${n} rows cannot train an MLP head`);

  // He initialization, seeded.
  const gauss = (): number => Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());
  const w1 = Float32Array.from({ length: p * h }, () => gauss() * Math.sqrt(2 / p));
  const b1 = new Float32Array(h);
  const w2 = Float32Array.from({ length: h * m }, () => gauss() * Math.sqrt(1 / h));
  const b2 = new Float32Array(m);
  const rate = options.learningRate ?? 1e-3;
  const decay = options.weightDecay ?? 1e-4;
  const opt = [new Adam(w1, rate, decay), new Adam(b1, rate, 0), new Adam(w2, rate, decay), new Adam(b2, rate, 0)];

  const layersNow = (): AffineLayer[] => [fold(whiten, w1, b1, p, h), { inDim: h, outDim: m, weight: Float32Array.from(w2), bias: Float32Array.from(b2) }];
  const rawP5 = await spaceP5(data, undefined, validation, database);
  let best = { p5: -1, step: 0, layers: layersNow() };
  let sinceBest = 0;
  let lossSum = 0;
  let lossCount = 0;
  const order = Int32Array.from({ length: n }, (_, i) => i);
  let cursor = n;
  const xb = new Float32Array(batch * p);
  let step = 0;
  for (step = 1; step <= maxSteps; step++) {
    // Batches drawn without replacement from a reshuffled order, so every row is seen once per epoch.
    const picks = new Int32Array(batch);
    for (let b = 0; b < batch; b++) {
      if (cursor >= n) {
        for (let i = n - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [order[i], order[j]] = [order[j], order[i]];
        }
        cursor = 0;
      }
      picks[b] = order[cursor++];
      xb.set(z.subarray(picks[b] * p, picks[b] * p + p), b * p);
    }
    // Forward.
    const a = matmul(xb, w1, batch, p, h);
    for (let b = 0; b < batch; b++) for (let j = 0; j < h; j++) a[b * h + j] += b1[j];
    const r = Float32Array.from(a, (v) => (v > 0 ? v : 0));
    const o = matmul(r, w2, batch, h, m);
    const norms = new Float32Array(batch);
    const y = new Float32Array(batch * m);
    for (let b = 0; b < batch; b++) {
      let s = 0;
      for (let j = 0; j < m; j++) {
        o[b * m + j] += b2[j];
        s += o[b * m + j] ** 2;
      }
      norms[b] = Math.sqrt(s) + 1e-12;
      for (let j = 0; j < m; j++) y[b * m + j] = o[b * m + j] / norms[b];
    }
    const sim = matmulTB(y, y, batch, m, batch);
    // SupCon loss and its gradient with respect to the similarities, summed over targets.
    const dS = new Float32Array(batch * batch);
    let loss = 0;
    let anchors = 0;
    for (const target of labels) {
      for (let i = 0; i < batch; i++) {
        const li = target[picks[i]];
        if (li < 0) continue;
        let positives = 0;
        let max = -Infinity;
        for (let k = 0; k < batch; k++) if (k !== i) max = Math.max(max, sim[i * batch + k] / tau);
        let denom = 0;
        for (let k = 0; k < batch; k++) {
          if (k === i) continue;
          denom += Math.exp(sim[i * batch + k] / tau - max);
          if (target[picks[k]] === li) positives++;
        }
        if (positives === 0) continue;
        anchors++;
        const logDenom = Math.log(denom) + max;
        for (let k = 0; k < batch; k++) {
          if (k === i) continue;
          const q = Math.exp(sim[i * batch + k] / tau - logDenom);
          const pos = target[picks[k]] === li ? 1 / positives : 0;
          if (pos > 0) loss -= (sim[i * batch + k] / tau - logDenom) * pos;
          dS[i * batch + k] += (q - pos) / tau;
        }
      }
    }
    if (anchors === 0) continue;
    for (let i = 0; i < dS.length; i++) dS[i] /= anchors;
    lossSum += loss / anchors;
    lossCount++;
    // Backward: S = Y·Yᵀ → dY = (dS + dSᵀ)·Y; through the normalization; then the two layers.
    const sym = new Float32Array(batch * batch);
    for (let i = 0; i < batch; i++) for (let k = 0; k < batch; k++) sym[i * batch + k] = dS[i * batch + k] + dS[k * batch + i];
    const dY = matmul(sym, y, batch, batch, m);
    const dO = new Float32Array(batch * m);
    for (let b = 0; b < batch; b++) {
      let dot = 0;
      for (let j = 0; j < m; j++) dot += y[b * m + j] * dY[b * m + j];
      for (let j = 0; j < m; j++) dO[b * m + j] = (dY[b * m + j] - y[b * m + j] * dot) / norms[b];
    }
    const gW2 = matmulTA(r, dO, batch, h, m);
    const gB2 = new Float32Array(m);
    for (let b = 0; b < batch; b++) for (let j = 0; j < m; j++) gB2[j] += dO[b * m + j];
    const dR = matmulTB(dO, w2, batch, m, h);
    for (let i = 0; i < dR.length; i++) if (a[i] <= 0) dR[i] = 0;
    const gW1 = matmulTA(xb, dR, batch, p, h);
    const gB1 = new Float32Array(h);
    for (let b = 0; b < batch; b++) for (let j = 0; j < h; j++) gB1[j] += dR[b * h + j];
    opt[0].step(gW1);
    opt[1].step(gB1);
    opt[2].step(gW2);
    opt[3].step(gB2);

    if (step % evalEvery === 0 || step === maxSteps) {
      const layers = layersNow();
      const p5 = await spaceP5(data, layers, validation, database);
      if (p5 > best.p5 + 1e-9) {
        best = { p5, step, layers };
        sinceBest = 0;
      } else {
        sinceBest++;
      }
      options.onProgress?.({ step, steps: maxSteps, loss: lossSum / Math.max(lossCount, 1), validationP5: p5, bestP5: best.p5 });
      lossSum = 0;
      lossCount = 0;
      if (sinceBest >= patience) break;
    }
  }
  return {
    layers: best.layers,
    method: 'mlp',
    settings: { inputDim: p, hidden: h, outputDim: m, temperature: tau, learningRate: rate, weightDecay: decay, batch, steps: Math.min(step, maxSteps), bestStep: best.step },
    validation: { p5: best.p5, rawP5, randomP5: randomP5(data, validation, database), queries: validation.length, databaseRows: database.length, groups: groupCount },
    trainingRows: inner.length,
    seconds: (performance.now() - started) / 1000,
  };
}
