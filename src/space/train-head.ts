/**
 * Training a head from an index: its stored backbone vectors and its volumes' labels become labelled
 * rows (every slice carries its volume's labels and group; a per-slice target, computed from masks by the
 * caller, labels each slice on its own), one of the head methods learns a projection,
 * and the result is an ONNX graph plus the record kept with it. `mir3d train --target` and the grouped
 * evaluation both train here, so what is evaluated is what is shipped.
 */
import type { JsonObject, Store } from '../store/types.js';
import { SpaceError } from './errors.js';
import { fitHead, type LabelledRows } from './fit.js';
import { spaceModel } from './graph.js';
import { fitMlpHead } from './mlp.js';
import { rowSliceLabels, slicesOfStore, type SliceLabelsByVolume } from './slices.js';

export type HeadMethod = 'lda' | 'mlp';
export const HEAD_METHODS: readonly HeadMethod[] = ['lda', 'mlp'];

export interface HeadProgress {
  step: number;
  steps: number;
  loss: number;
  validationP5: number;
  bestP5: number;
  detail?: string;
}

/** Per-slice targets computed outside (labels/slice-targets.ts: from masks), in stored row order. */
export interface SliceTargetLabels {
  /** What the head's record keeps: each slice target's name and the mask values it stands for. */
  targets: ReadonlyArray<{ name: string; values: readonly number[] }>;
  /** Volume id → per slice target → per stored row of the volume: its label. A volume missing here is
   * unlabelled for every slice target (its rows still shape the whitening). */
  byVolume: SliceLabelsByVolume;
}

export interface TrainHeadOptions {
  /** Volume labels (every slice of a volume shares its value). */
  targets: readonly string[];
  /** Per-slice targets; trained beside `targets` exactly as they are. */
  sliceTargets?: SliceTargetLabels;
  groupBy: string;
  method?: HeadMethod;
  seed?: number;
  /** Only these volumes (a fold's database); default all. */
  volumeIds?: readonly string[];
  maxEpochs?: number;
  onProgress?: (progress: HeadProgress) => void;
}

export interface TrainedHead {
  model: Uint8Array;
  outputDim: number;
  description: string;
  record: JsonObject;
  /** `rounds`: how many rotations of the held-out groups the queries come from (each row at most once). */
  validation: { p5: number; rawP5: number; randomP5: number; queries: number; rounds: number };
  trainingRows: number;
  groups: number;
  seconds: number;
}

/** Labelled rows of an index's slices for the given targets and group label. */
export function labelledRowsOf(store: Store, targets: readonly string[], groupBy: string, volumeIds?: readonly string[], sliceTargets?: SliceTargetLabels): LabelledRows {
  const slices = slicesOfStore(store, volumeIds);
  if (slices.owners.length === 0) throw new SpaceError('BAD_LABELS', 'index', 'no slice vectors to train on; index volumes first');
  if (targets.length === 0 && (sliceTargets?.targets.length ?? 0) === 0) throw new SpaceError('BAD_LABELS', 'targets', 'no target given');
  for (const column of [...targets, groupBy]) {
    if (!slices.labels.some((l) => l[column] !== undefined && l[column] !== '')) {
      const known = [...new Set(slices.labels.flatMap((l) => Object.keys(l)))].sort();
      throw new SpaceError('BAD_LABELS', column, `no volume carries the label "${column}" (labels: ${known.join(', ') || 'none'}; index with --labels FILE.csv)`);
    }
  }
  const value = (o: number, column: string): string | undefined => {
    const v = slices.labels[o][column];
    return v === undefined || v === '' ? undefined : String(v);
  };
  return {
    vectors: slices.vectors,
    dim: slices.dim,
    targets: [...targets.map((t) => slices.owners.map((o) => value(o, t))), ...(sliceTargets?.targets ?? []).map((_, t) => rowSliceLabels(slices, sliceTargets!.byVolume, t))],
    groups: slices.owners.map((o) => value(o, groupBy) ?? `volume:${slices.volumeIds[o]}`),
  };
}

export async function trainHeadOnRows(data: LabelledRows, options: Omit<TrainHeadOptions, 'volumeIds'> & { rows?: readonly number[] }): Promise<TrainedHead> {
  const seed = options.seed ?? 1;
  // Which targets are per slice, and from which mask values, so `train --list` and a reader can tell.
  const perSlice: JsonObject = options.sliceTargets ? { sliceTargets: options.sliceTargets.targets.map((t) => ({ name: t.name, values: [...t.values] })) } : {};
  if ((options.method ?? 'lda') === 'mlp') {
    const fit = await fitMlpHead(data, {
      seed,
      ...(options.rows ? { rows: options.rows } : {}),
      ...(options.maxEpochs ? { maxEpochs: options.maxEpochs } : {}),
      onProgress: (p) => options.onProgress?.({ step: p.step, steps: p.steps, loss: p.loss, validationP5: p.validationP5, bestP5: p.bestP5 }),
    });
    const s = fit.settings;
    return {
      model: spaceModel(fit.layers, `mir3d head (mlp, supervised contrastive) for ${options.targets.join(', ')}`),
      outputDim: s.outputDim,
      description: `MLP head ${fit.layers[0].inDim} → PCA ${s.inputDim} → ${s.hidden} → ${s.outputDim} (supervised contrastive, τ ${s.temperature}, best of ${s.steps} steps at ${s.bestStep})`,
      record: { method: 'mlp', targets: [...options.targets], ...perSlice, groupBy: options.groupBy, seed, settings: { ...s }, validation: { ...fit.validation }, trainingRows: fit.trainingRows, seconds: fit.seconds },
      validation: { p5: fit.validation.p5, rawP5: fit.validation.rawP5, randomP5: fit.validation.randomP5, queries: fit.validation.queries, rounds: 1 },
      trainingRows: fit.trainingRows,
      groups: fit.validation.groups,
      seconds: fit.seconds,
    };
  }
  const fit = await fitHead(data, {
    seed,
    ...(options.rows ? { rows: options.rows } : {}),
    onProgress: (p) => options.onProgress?.({ step: p.step, steps: p.steps, loss: p.withinShare, validationP5: p.validationP5, bestP5: p.best.validationP5, detail: `${p.candidate.input === 'signed-root' ? '√, ' : ''}p ${p.candidate.pcaDim}, β ${p.candidate.floor}` }),
  });
  const layer = fit.layers[fit.layers.length - 1];
  return {
    model: spaceModel(fit.layers, `mir3d head (lda) for ${options.targets.join(', ')}`, fit.chosen.input),
    outputDim: layer.outDim,
    description: `LDA-like head ${fit.layers[0].inDim} → ${layer.outDim} (${fit.chosen.input === 'signed-root' ? 'signed-root input, ' : ''}p ${fit.chosen.pcaDim}, β ${fit.chosen.floor})`,
    record: {
      method: 'lda',
      targets: [...options.targets],
      ...perSlice,
      groupBy: options.groupBy,
      seed,
      chosen: { ...fit.chosen },
      validation: { ...fit.validation },
      tried: fit.tried.map((t) => ({ ...t })),
      trainingRows: fit.trainingRows,
      seconds: fit.seconds,
    },
    validation: { p5: fit.validation.p5, rawP5: fit.validation.rawP5, randomP5: fit.validation.randomP5, queries: fit.validation.queries, rounds: fit.validation.rounds },
    trainingRows: fit.trainingRows,
    groups: fit.validation.groups,
    seconds: fit.seconds,
  };
}

/** Every target's name, volume targets first, as the rows hold them. */
export function targetNames(options: Pick<TrainHeadOptions, 'targets' | 'sliceTargets'>): string[] {
  return [...options.targets, ...(options.sliceTargets?.targets ?? []).map((t) => t.name)];
}

export async function trainHead(store: Store, options: TrainHeadOptions): Promise<TrainedHead> {
  const data = labelledRowsOf(store, options.targets, options.groupBy, options.volumeIds, options.sliceTargets);
  return trainHeadOnRows(data, { ...options, targets: targetNames(options) });
}
