/**
 * Learning spaces from backbone vectors. Generic over where the vectors come from (an index, an eval
 * fold, a text tower): inputs are a row-major matrix, row labels and row groups.
 *
 * - Archive statistics: mean-centring, optionally PCA-whitening to a chosen dimension.
 * - A supervised head, LDA-like: PCA-whiten to p dims, then rotate onto the eigenvectors of the
 *   between-class scatter and weight each direction by its between/within ratio, plus a floor β that keeps
 *   the rest of the whitened space (pure LDA keeps only C − 1 directions: one for a yes/no label, which
 *   reduces retrieval to a coin with two faces). p and β are chosen on a validation split of whole groups
 *   (patients), by P@5 there; the head is then refitted on all the training rows with them. Whether the
 *   backbone values enter power-normalized (signed root, graph.ts) is chosen the same way.
 *
 * Every space is one chain of affine layers from the raw vectors, so applying it is a single graph.
 */
import { exactTopK } from '../compute/topk.js';
import { computeSessions } from '../compute/runtime.js';
import { runSession } from '../compute/session.js';
import { symmetricEigen } from './eigen.js';
import { uniformStream } from '../synth/random.js';
import { SpaceError } from './errors.js';
import { signedRootOf, spaceModel, SPACE_INPUTS, type AffineLayer, type SpaceInput } from './graph.js';
import { SpaceKernel } from './kernel.js';
import { encodeClasses, principalAxesOf, type PrincipalAxes } from './statistics.js';

export interface LabelledRows {
  /** rows × dim backbone vectors. */
  vectors: Float32Array;
  dim: number;
  /** One array per target: each row's label (undefined: unlabelled for that target). */
  targets: ReadonlyArray<ReadonlyArray<string | number | undefined>>;
  /** Each row's group (patient): a group is wholly in training or in validation. */
  groups: ReadonlyArray<string>;
}

// ---------------------------------------------------------------------------------------------------
// Archive statistics
// ---------------------------------------------------------------------------------------------------

export interface NormalizationFit {
  layers: AffineLayer[];
  /** Rows the statistics were computed from. */
  sampleRows: number;
  whitenDim?: number;
}

/** Relative floor on eigenvalues when whitening, so directions of no variance are not blown up. */
const WHITEN_FLOOR = 1e-6;

function pcaWhitening(axes: PrincipalAxes, p: number): Float64Array {
  const { dim, count } = axes;
  if (p > axes.values.length) throw new RangeError(`whitening to ${p} dims needs ${p} principal axes, ${axes.values.length} computed`);
  const w = new Float64Array(dim * p);
  const variance = (j: number): number => Math.max(axes.values[j], 0) / Math.max(count - 1, 1);
  const floor = variance(0) * WHITEN_FLOOR + 1e-12;
  for (let j = 0; j < p; j++) {
    const scale = 1 / Math.sqrt(variance(j) + floor);
    for (let i = 0; i < dim; i++) w[i * p + j] = axes.vectors[j * dim + i] * scale;
  }
  return w;
}

/** The affine layer x ↦ (x − mean)·W, as W and b = −mean·W. */
function centredLayer(mean: Float64Array, w: Float64Array, inDim: number, outDim: number): AffineLayer {
  const bias = new Float32Array(outDim);
  for (let j = 0; j < outDim; j++) {
    let s = 0;
    for (let i = 0; i < inDim; i++) s += mean[i] * w[i * outDim + j];
    bias[j] = -s;
  }
  return { inDim, outDim, weight: Float32Array.from(w), bias };
}

/** Mean-centring (whitenDim undefined) or PCA-whitening onto the top `whitenDim` directions. */
export async function fitNormalization(vectors: Float32Array, dim: number, options: { whitenDim?: number; rows?: readonly number[] } = {}): Promise<NormalizationFit> {
  const rows = options.rows;
  const count = rows ? rows.length : vectors.length / dim;
  if (count < 2) throw new SpaceError('BAD_LABELS', 'normalization', `${count} vector(s) cannot give archive statistics; index more first`);
  if (options.whitenDim === undefined) {
    const mean = new Float64Array(dim);
    for (let r = 0; r < count; r++) {
      const base = (rows ? rows[r] : r) * dim;
      for (let j = 0; j < dim; j++) mean[j] += vectors[base + j];
    }
    const bias = new Float32Array(dim);
    for (let j = 0; j < dim; j++) bias[j] = -mean[j] / count;
    return { layers: [{ inDim: dim, outDim: dim, weight: null, bias }], sampleRows: count };
  }
  const p = Math.min(options.whitenDim, dim, count - 1);
  const axes = await principalAxesOf(vectors, dim, rows, p);
  return { layers: [centredLayer(axes.mean, pcaWhitening(axes, p), dim, p)], sampleRows: count, whitenDim: p };
}

// ---------------------------------------------------------------------------------------------------
// Grouped split
// ---------------------------------------------------------------------------------------------------


/** Groups shuffled with the seed and dealt into `folds` folds of about equal row counts; returns each
 * row's fold. Rows of one group always share a fold. */
export function groupedFolds(groups: ReadonlyArray<string>, folds: number, seed: number): Int32Array {
  const sizes = new Map<string, number>();
  for (const g of groups) sizes.set(g, (sizes.get(g) ?? 0) + 1);
  if (sizes.size < folds) throw new SpaceError('BAD_LABELS', 'groups', `${sizes.size} group(s) cannot fill ${folds} folds; every fold needs groups of its own`);
  const random = uniformStream(seed);
  const names = [...sizes.keys()].sort();
  for (let i = names.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [names[i], names[j]] = [names[j], names[i]];
  }
  // Largest groups first onto the currently smallest fold: balanced rows without breaking a group.
  const order = names.map((name, n) => ({ name, n })).sort((a, b) => sizes.get(b.name)! - sizes.get(a.name)! || a.n - b.n);
  const load = new Array<number>(folds).fill(0);
  const foldOf = new Map<string, number>();
  for (const { name } of order) {
    let best = 0;
    for (let f = 1; f < folds; f++) if (load[f] < load[best]) best = f;
    foldOf.set(name, best);
    load[best] += sizes.get(name)!;
  }
  return Int32Array.from(groups, (g) => foldOf.get(g)!);
}

// ---------------------------------------------------------------------------------------------------
// Supervised head
// ---------------------------------------------------------------------------------------------------

export interface HeadCandidate {
  input: SpaceInput;
  pcaDim: number;
  floor: number;
}

export interface HeadTrainingProgress {
  step: number;
  steps: number;
  candidate: HeadCandidate;
  /** Fisher criterion of the candidate on its training rows: share of whitened variance within classes
   * (lower is better separated); the "loss" of a closed-form fit. */
  withinShare: number;
  validationP5: number;
  best: { candidate: HeadCandidate; validationP5: number };
}

export interface HeadFit {
  layers: AffineLayer[];
  method: 'lda';
  chosen: HeadCandidate;
  /** Pooled over `rounds` rotations of the held-out groups (see validationSplits). */
  validation: { p5: number; rawP5: number; randomP5: number; queries: number; databaseRows: number; groups: number; rounds: number };
  tried: Array<HeadCandidate & { validationP5: number; withinShare: number }>;
  trainingRows: number;
  seconds: number;
}

export interface HeadOptions {
  seed?: number;
  /** Share of groups held out for validation (default 0.2). */
  validationShare?: number;
  pcaDims?: readonly number[];
  floors?: readonly number[];
  /** How backbone values may enter (default both; the validation split chooses). */
  inputs?: readonly SpaceInput[];
  /** Most validation queries scored per candidate (sampled with the seed). */
  maxValidationQueries?: number;
  /** Most database rows those queries search (sampled with the seed). */
  maxValidationDatabase?: number;
  onProgress?: (progress: HeadTrainingProgress) => void;
}

const DEFAULT_PCA_DIMS = [32, 64, 128, 256];
const DEFAULT_FLOORS = [0.1, 0.3, 1];
const DEFAULT_VALIDATION_QUERIES = 2000;
const DEFAULT_VALIDATION_DATABASE = 20000;

interface WhitenedBasis {
  axes: PrincipalAxes;
  maxDim: number;
  /** rows × maxDim: the training rows in the whitened PCA basis (largest variance first). */
  z: Float32Array;
}

/** X·W for many rows on ONNX Runtime (Gemm with Wᵀ as the "database" side), then minus mean·W. */
async function projectRows(vectors: Float32Array, dim: number, rows: readonly number[], layer: AffineLayer): Promise<Float32Array> {
  const { outDim } = layer;
  const w = layer.weight!;
  const wt = new Float32Array(outDim * dim);
  for (let i = 0; i < dim; i++) for (let j = 0; j < outDim; j++) wt[j * dim + i] = w[i * outDim + j];
  const sessions = await computeSessions();
  const out = new Float32Array(rows.length * outDim);
  const chunk = 4096;
  const buffer = new Float32Array(Math.min(chunk, Math.max(rows.length, 1)) * dim);
  for (let r0 = 0; r0 < rows.length; r0 += chunk) {
    const n = Math.min(chunk, rows.length - r0);
    for (let r = 0; r < n; r++) buffer.set(vectors.subarray(rows[r0 + r] * dim, rows[r0 + r] * dim + dim), r * dim);
    const result = await runSession(sessions.similarity, { Q: { type: 'float32', data: buffer.subarray(0, n * dim), dims: [n, dim] }, X: { type: 'float32', data: wt, dims: [outDim, dim] } });
    const product = result.similarities.data as Float32Array;
    for (let r = 0; r < n; r++) for (let j = 0; j < outDim; j++) out[(r0 + r) * outDim + j] = product[r * outDim + j] + layer.bias[j];
  }
  return out;
}

async function whitenedBasis(data: LabelledRows, rows: readonly number[], maxDim: number): Promise<WhitenedBasis> {
  const axes = await principalAxesOf(data.vectors, data.dim, rows, maxDim);
  const layer = centredLayer(axes.mean, pcaWhitening(axes, maxDim), data.dim, maxDim);
  const z = await projectRows(data.vectors, data.dim, rows, layer);
  return { axes, maxDim, z };
}

/** Between-class scatter of the first p whitened coordinates, summed over targets (each normalized by
 * its labelled rows), p × p. */
function betweenClass(basis: WhitenedBasis, data: LabelledRows, rows: readonly number[], p: number): Float64Array {
  const b = new Float64Array(p * p);
  const stride = basis.maxDim;
  for (const target of data.targets) {
    const { classes, names } = encodeClasses(rows.map((r) => target[r]));
    const sums = new Float64Array(names.length * p);
    const counts = new Float64Array(names.length);
    let labelled = 0;
    const grand = new Float64Array(p);
    rows.forEach((_, i) => {
      const c = classes[i];
      if (c < 0) return;
      counts[c]++;
      labelled++;
      for (let j = 0; j < p; j++) {
        sums[c * p + j] += basis.z[i * stride + j];
        grand[j] += basis.z[i * stride + j];
      }
    });
    if (labelled === 0) continue;
    for (let j = 0; j < p; j++) grand[j] /= labelled;
    for (let c = 0; c < names.length; c++) {
      if (counts[c] === 0) continue;
      const weight = counts[c] / labelled;
      const m = new Float64Array(p);
      for (let j = 0; j < p; j++) m[j] = sums[c * p + j] / counts[c] - grand[j];
      for (let i = 0; i < p; i++) for (let j = 0; j < p; j++) b[i * p + j] += weight * m[i] * m[j];
    }
  }
  return b;
}

/** The head's single layer from raw vectors for one candidate, and its within-class share. */
function headLayer(basis: WhitenedBasis, data: LabelledRows, rows: readonly number[], candidate: HeadCandidate): { layer: AffineLayer; withinShare: number } {
  const p = Math.min(candidate.pcaDim, basis.maxDim);
  const between = symmetricEigen(betweenClass(basis, data, rows, p), p);
  const targets = Math.max(data.targets.length, 1);
  // Directions in the whitened p-space, each scaled by sqrt(between / within) + floor.
  const rotation = new Float64Array(p * p);
  let within = 0;
  for (let k = 0; k < p; k++) {
    const lambda = Math.min(Math.max(between.values[k] / targets, 0), 0.999);
    within += 1 - lambda;
    const scale = Math.sqrt(lambda / (1 - lambda)) + candidate.floor;
    for (let i = 0; i < p; i++) rotation[i * p + k] = between.vectors[k * p + i] * scale;
  }
  const whiten = pcaWhitening(basis.axes, p);
  const dim = data.dim;
  const w = new Float64Array(dim * p);
  for (let i = 0; i < dim; i++) {
    for (let m = 0; m < p; m++) {
      const a = whiten[i * p + m];
      if (a === 0) continue;
      for (let k = 0; k < p; k++) w[i * p + k] += a * rotation[m * p + k];
    }
  }
  return { layer: centredLayer(basis.axes.mean, w, dim, p), withinShare: within / p };
}

/** Mean over targets of P@5 (same label) of each query row against the database rows, in a space. */
export async function spaceP5(data: LabelledRows, layers: readonly AffineLayer[] | undefined, queries: readonly number[], database: readonly number[], k = 5, input: SpaceInput = 'identity'): Promise<number> {
  const gather = (rows: readonly number[]): Float32Array => {
    const out = new Float32Array(rows.length * data.dim);
    rows.forEach((r, i) => out.set(data.vectors.subarray(r * data.dim, r * data.dim + data.dim), i * data.dim));
    return out;
  };
  let q = gather(queries);
  let x = gather(database);
  let dim = data.dim;
  if (layers) {
    const kernel = await SpaceKernel.open(spaceModel(layers, 'validation candidate', input), 'validation candidate');
    try {
      q = await kernel.apply(q);
      x = await kernel.apply(x);
      dim = kernel.outputDim;
    } finally {
      await kernel.close();
    }
  }
  const top = await exactTopK(q, dim, [{ vectors: x, rows: database.length }], k);
  let total = 0;
  let scored = 0;
  for (const target of data.targets) {
    for (let i = 0; i < queries.length; i++) {
      const label = target[queries[i]];
      if (label === undefined || label === '') continue;
      let same = 0;
      for (let h = 0; h < top.counts[i]; h++) if (String(target[database[top.rowIndices[i * k + h]]]) === String(label)) same++;
      total += same / k;
      scored++;
    }
  }
  return scored > 0 ? total / scored : 0;
}

/** P@k expected at random for the same queries and database: each query's share of same-label rows
 * (exact for any k when drawing without replacement), averaged as spaceP5 averages. */
export function randomP5(data: LabelledRows, queries: readonly number[], database: readonly number[]): number {
  let total = 0;
  let scored = 0;
  for (const target of data.targets) {
    const counts = new Map<string, number>();
    for (const r of database) {
      const v = target[r];
      if (v !== undefined && v !== '') counts.set(String(v), (counts.get(String(v)) ?? 0) + 1);
    }
    for (const q of queries) {
      const label = target[q];
      if (label === undefined || label === '') continue;
      total += (counts.get(String(label)) ?? 0) / Math.max(database.length, 1);
      scored++;
    }
  }
  return scored > 0 ? total / scored : 0;
}

function checkLabels(data: LabelledRows, rows: readonly number[]): void {
  if (data.targets.length === 0) throw new SpaceError('BAD_LABELS', 'targets', 'no target given');
  data.targets.forEach((target, t) => {
    const values = new Set(rows.map((r) => target[r]).filter((v) => v !== undefined && v !== '').map(String));
    if (values.size < 2) throw new SpaceError('BAD_LABELS', `target ${t + 1}`, `needs at least two label values among the training rows, found ${values.size}`);
  });
}

/** Trains the LDA-like head on `rows` (default all), choosing p and β on a grouped validation split. */
export interface ValidationSplit {
  all: number[];
  /** Rows a candidate learns from: the training rows of the groups not held out. */
  inner: number[];
  /** Rows of the held-out groups (sampled to at most maxValidationQueries), queried against `inner`. */
  validation: number[];
  /** What validation queries search: `inner`, sampled to at most maxValidationDatabase rows (P@5 on a
   * 20k-row sample ranks candidates as the whole would, at a fraction of the cost on 100k archives). */
  database: number[];
  groupCount: number;
  /** How many disjoint held-out parts the groups were dealt into (`round` picks one). */
  folds: number;
}

/** The grouped validation split every head method uses: whole groups held out, fixed by the seed. */
export function validationSplit(data: LabelledRows, options: Pick<HeadOptions, 'seed' | 'validationShare' | 'maxValidationQueries' | 'maxValidationDatabase'> & { rows?: readonly number[]; round?: number } = {}): ValidationSplit {
  const all = options.rows ? [...options.rows] : Array.from({ length: data.groups.length }, (_, i) => i);
  checkLabels(data, all);
  const seed = options.seed ?? 1;
  const share = options.validationShare ?? 0.2;
  const folds = Math.max(2, Math.round(1 / share));
  const groupCount = new Set(all.map((r) => data.groups[r])).size;
  if (groupCount < 2) throw new SpaceError('BAD_LABELS', 'groups', `the training rows come from ${groupCount} group; validation needs groups of its own`);
  const foldCount = Math.min(folds, groupCount);
  const heldOut = (options.round ?? 0) % foldCount;
  const fold = groupedFolds(all.map((r) => data.groups[r]), foldCount, seed);
  const inner = all.filter((_, i) => fold[i] !== heldOut);
  let validation = all.filter((_, i) => fold[i] === heldOut);
  const maxQueries = options.maxValidationQueries ?? DEFAULT_VALIDATION_QUERIES;
  if (validation.length > maxQueries) {
    const random = uniformStream(seed + 1);
    validation = validation.map((r) => ({ r, key: random() })).sort((a, b) => a.key - b.key).slice(0, maxQueries).map((v) => v.r).sort((a, b) => a - b);
  }
  const maxDatabase = options.maxValidationDatabase ?? DEFAULT_VALIDATION_DATABASE;
  let database = inner;
  if (inner.length > maxDatabase) {
    const random = uniformStream(seed + 2);
    database = inner.map((r) => ({ r, key: random() })).sort((a, b) => a.key - b.key).slice(0, maxDatabase).map((v) => v.r).sort((a, b) => a - b);
  }
  return { all, inner, validation, database, groupCount, folds: foldCount };
}

/**
 * The validation splits a head's settings are chosen on: one when its held-out part already gives
 * maxValidationQueries queries, else as many rotations of the held-out part as it takes to reach them (at
 * most every part once). On a few hundred labelled images one held-out fifth scores each candidate on
 * ~120 queries, whose P@5 varies by ±0.03, more than the candidates differ; rotating scores every
 * training row once, at no cost that matters at that size.
 */
export function validationSplits(data: LabelledRows, options: Parameters<typeof validationSplit>[1] = {}): ValidationSplit[] {
  const first = validationSplit(data, { ...options, round: 0 });
  const wanted = options.maxValidationQueries ?? DEFAULT_VALIDATION_QUERIES;
  const rounds = Math.min(first.folds, Math.max(1, Math.ceil(wanted / Math.max(first.validation.length, 1))));
  return [first, ...Array.from({ length: rounds - 1 }, (_, r) => validationSplit(data, { ...options, round: r + 1 }))];
}

/** PCA-whitening of `rows` to p dims as one affine layer, and those rows through it (rows × p). */
export async function whiteningOf(data: LabelledRows, rows: readonly number[], p: number): Promise<{ layer: AffineLayer; z: Float32Array }> {
  const basis = await whitenedBasis(data, rows, Math.min(p, data.dim, rows.length - 1));
  return { layer: centredLayer(basis.axes.mean, pcaWhitening(basis.axes, basis.maxDim), data.dim, basis.maxDim), z: basis.z };
}

/** Rows of `data` through one affine layer (no normalization), on ONNX Runtime's Gemm. */
export function projectThrough(data: LabelledRows, rows: readonly number[], layer: AffineLayer): Promise<Float32Array> {
  return projectRows(data.vectors, data.dim, rows, layer);
}

/** Trains the LDA-like head on `rows` (default all), choosing p and β on a grouped validation split. */
export async function fitHead(data: LabelledRows, options: HeadOptions & { rows?: readonly number[] } = {}): Promise<HeadFit> {
  const started = performance.now();
  const splits = validationSplits(data, options);
  const { all, groupCount } = splits[0];
  const rank = (rows: readonly number[]): number => Math.min(data.dim, rows.length - 1);
  const smallestInner = Math.min(...splits.map((s) => rank(s.inner)));
  const pcaDims = (options.pcaDims ?? DEFAULT_PCA_DIMS).filter((p) => p <= smallestInner);
  if (pcaDims.length === 0) pcaDims.push(Math.max(1, smallestInner));
  const floors = options.floors ?? DEFAULT_FLOORS;
  const inputs = options.inputs ?? SPACE_INPUTS;
  const candidates = inputs.flatMap((input) => pcaDims.flatMap((pcaDim) => floors.map((floor) => ({ input, pcaDim, floor }))));
  // The statistics of each input are computed on that input's values: the rooted copy is made once.
  const inputData = new Map<SpaceInput, LabelledRows>(inputs.map((input) => [input, input === 'identity' ? data : { ...data, vectors: signedRootOf(data.vectors) }]));
  const bases = new Map<SpaceInput, WhitenedBasis[]>();
  for (const input of inputs) {
    const perSplit: WhitenedBasis[] = [];
    for (const split of splits) perSplit.push(await whitenedBasis(inputData.get(input)!, split.inner, Math.max(...pcaDims)));
    bases.set(input, perSplit);
  }
  // Each split's P@5 weighted by its queries: the mean over every validation query of all rotations.
  const queries = splits.reduce((n, s) => n + s.validation.length, 0);
  const pooled = async (score: (split: ValidationSplit, n: number) => Promise<number> | number): Promise<number> => {
    let total = 0;
    for (const [n, split] of splits.entries()) total += (await score(split, n)) * split.validation.length;
    return total / Math.max(queries, 1);
  };

  const rawP5 = await pooled((split) => spaceP5(data, undefined, split.validation, split.database));
  const tried: HeadFit['tried'] = [];
  let best: { candidate: HeadCandidate; validationP5: number } | undefined;
  for (const [step, candidate] of candidates.entries()) {
    let withinShare = 0;
    const validationP5 = await pooled(async (split, n) => {
      const fitted = headLayer(bases.get(candidate.input)![n], inputData.get(candidate.input)!, split.inner, candidate);
      withinShare += fitted.withinShare / splits.length;
      return spaceP5(data, [fitted.layer], split.validation, split.database, 5, candidate.input);
    });
    tried.push({ ...candidate, validationP5, withinShare });
    // Ties go to the smaller, more regularized candidate tried first.
    if (!best || validationP5 > best.validationP5 + 1e-9) best = { candidate, validationP5 };
    options.onProgress?.({ step: step + 1, steps: candidates.length + 1, candidate, withinShare, validationP5, best });
  }
  const chosen = best!.candidate;
  bases.clear();
  const chosenData = inputData.get(chosen.input)!;
  inputData.clear();
  const finalBasis = await whitenedBasis(chosenData, all, Math.min(chosen.pcaDim, rank(all)));
  const { layer } = headLayer(finalBasis, chosenData, all, { ...chosen, pcaDim: Math.min(chosen.pcaDim, finalBasis.maxDim) });
  return {
    layers: [layer],
    method: 'lda',
    chosen,
    validation: { p5: best!.validationP5, rawP5, randomP5: await pooled((split) => randomP5(data, split.validation, split.database)), queries, databaseRows: splits[0].database.length, groups: groupCount, rounds: splits.length },
    tried,
    trainingRows: all.length,
    seconds: (performance.now() - started) / 1000,
  };
}
