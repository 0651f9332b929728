/**
 * Grouped k-fold evaluation of learned spaces on any labelled dataset listed in a CSV (a `path` column:
 * key images, NIfTI files or DICOM folders; label columns; a group column such as `patient`).
 *
 * Each fold's queries are the rows of its groups; the database is every other fold. The normalization and
 * the head of that fold are fitted on its database only, so no query patient is ever seen while learning.
 * Spaces are stored in the eval index and searched through the same path as `mir3d search --space`
 * (SpaceStore + the search orchestrator), so the figures measure the product, not a side script.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import type { Encoder } from '../encode/encoder.js';
import { displayImageSpec, readEncoderSpec, type EncoderSpec } from '../ingest/encoder-spec.js';
import { openIndex, type OpenedIndex } from '../ingest/open-index.js';
import type { VolumeSourceRef } from '../ingest/discover.js';
import { indexVolumes } from '../ingest/indexer.js';
import { keyImageFormat, keyImageGivesDisplay } from '../io/key-image.js';
import type { ReadOptions } from '../io/read.js';
import { search } from '../search/search.js';
import type { SearchMethod } from '../search/types.js';
import { fitNormalization, groupedFolds } from '../space/fit.js';
import { trainHeadOnRows, type HeadMethod } from '../space/train-head.js';
import { spaceModel } from '../space/graph.js';
import { SpaceError } from '../space/errors.js';
import { removeSpace, saveSpace } from '../space/persist.js';
import { SpaceStore } from '../space/space-store.js';
import { indexExists } from '../store/index.js';
import type { Store, VolumeRecord } from '../store/types.js';
import { sliceLabelsFromMasks, type SliceTarget } from '../labels/slice-targets.js';
import { rowSliceLabels, sliceLabelsBySliceIndex } from '../space/slices.js';
import { averagePrecisionAtK, mean, precisionAtK, randomAveragePrecision, randomPrecisionAtK, standardError } from './metrics.js';

export const CV_SPACES = ['raw', 'normalized', 'fine-tuned'] as const;
export type CvSpace = (typeof CV_SPACES)[number];
export const CV_KS = [1, 5, 10] as const;

export interface GroupedCvOptions {
  csvPath: string;
  targets: string[];
  groupBy: string;
  folds?: number;
  seed?: number;
  outDir: string;
  encoder?: string;
  /** 'volume-mean' (default: one vector per image or scan) or any search method. */
  method?: SearchMethod;
  /** The fine-tuned space's head (default lda). */
  head?: HeadMethod;
  /** Per-slice targets from each row's mask (a `mask` column, relative to the CSV): the head learns them
   * beside `targets`, and every query slice is scored against its fold's database slices. */
  sliceTargets?: SliceTarget[];
  /** Normalization: centring (undefined) or PCA-whitening to this dimension. */
  whitenDim?: number;
  readOptions?: ReadOptions;
  onStatus?: (line: string) => void;
  onProgress?: (stage: string, done: number, total: number, detail?: string) => void;
}

export interface CvMetric {
  mean: number;
  /** Standard error of the mean over queries. */
  se: number;
  /** The exact expectation under random ranking of each query's own database, averaged. */
  random: number;
}

export interface CvQueryScore {
  row: number;
  volumeId: string;
  group: string;
  fold: number;
  /** Per space, per target: P@k and AP@10, and their random levels. */
  scores: Record<CvSpace, Array<{ target: string; p: number[]; ap10: number; randomP: number[]; randomAp10: number }>>;
}

export interface CvFoldInfo {
  fold: number;
  queryRows: number;
  databaseRows: number;
  queryGroups: string[];
  /** Groups the fold's normalization and head were fitted on (= the database's). */
  trainingGroups: string[];
  head: { description: string; validation: { p5: number; rawP5: number; randomP5: number; queries: number }; seconds: number; trainingRows: number };
}

export interface CvResults {
  format: 'mir3d-cv/1';
  dataset: { csv: string; rows: number; groups: number; targets: string[]; groupBy: string; labelCounts: Record<string, Record<string, number>> };
  settings: { folds: number; seed: number; encoder: string; encoderId: string; method: SearchMethod; normalization: string; head: string };
  /** metrics[space][target][metric] with metric 'P@1', 'P@5', 'P@10', 'AP@10'. */
  metrics: Record<CvSpace, Record<string, Record<string, CvMetric>>>;
  /** Fine-tuned minus raw, per target and metric, paired over queries. */
  gains: Record<string, Record<string, { mean: number; se: number }>>;
  /** Normalized minus raw, the same way. */
  normalizedGains: Record<string, Record<string, { mean: number; se: number }>>;
  folds: CvFoldInfo[];
  queries: CvQueryScore[];
  /** Per slice target: each query slice's P@k among its fold's database slices (k = CV_SLICE_K), per space,
   * with the exact random level (the share of the fold's database slices with that label) and the gains
   * over raw, paired over query slices. */
  sliceMetrics?: Record<string, { k: number; slices: number; spaces: Record<CvSpace, { mean: number; se: number }>; random: number; gains: Record<'normalized' | 'fine-tuned', { mean: number; se: number }> }>;
  seconds: number;
}

export const CV_SLICE_K = 5;

interface CsvRow {
  path: string;
  labels: Record<string, string>;
}

function readCsv(csvPath: string, targets: string[], groupBy: string, needsMasks: boolean): CsvRow[] {
  if (!existsSync(csvPath)) throw new SpaceError('BAD_LABELS', csvPath, 'no such labels file');
  let records: Record<string, string>[];
  try {
    records = parseCsv(readFileSync(csvPath, 'utf8'), { columns: true, skip_empty_lines: true, trim: true }) as Record<string, string>[];
  } catch (cause) {
    throw new SpaceError('BAD_LABELS', csvPath, `not a readable CSV (${cause instanceof Error ? cause.message.split('\n')[0] : String(cause)})`, { cause });
  }
  if (records.length === 0) throw new SpaceError('BAD_LABELS', csvPath, 'no rows');
  for (const column of ['path', groupBy, ...targets, ...(needsMasks ? ['mask'] : [])]) {
    if (!(column in records[0])) throw new SpaceError('BAD_LABELS', csvPath, `no "${column}" column (columns: ${Object.keys(records[0]).join(', ')})`);
  }
  const base = dirname(resolve(csvPath));
  return records.map((record) => ({ path: isAbsolute(record.path) ? record.path : join(base, record.path), labels: record }));
}

/** Backbone vectors of every listed file, in an index kept in outDir (reused: unchanged files are not
 * embedded again). Key images of unknown window get the grey pass-through encoder. */
async function backboneIndex(rows: CsvRow[], options: GroupedCvOptions): Promise<{ index: OpenedIndex; store: Store; encoder: Encoder; recordOf: (row: number) => VolumeRecord | undefined; failures: string[] }> {
  const db = join(options.outDir, `index-${(options.encoder ?? 'mobilenet_v2').replace(/[^A-Za-z0-9_.-]/g, '_')}`);
  const readOptions = options.readOptions ?? {};
  let spec: EncoderSpec = readEncoderSpec(db) ?? { encoder: options.encoder ?? 'mobilenet_v2' };
  if (!indexExists(db) && (await keyImageGivesDisplay(rows[0].path, readOptions))) spec = displayImageSpec(spec);
  if (Object.keys(readOptions).length > 0) spec = { ...spec, keyImages: readOptions };
  await mkdir(options.outDir, { recursive: true });
  const index = await openIndex(db, { spec, ...(options.onStatus ? { onStatus: options.onStatus } : {}) });
  const { store } = index;
  const encoder = await index.encoder();
  const sources: VolumeSourceRef[] = rows.map((row) => ({ path: row.path, kind: isDirectory(row.path) ? 'dicom' : keyImageFormatOf(row.path) ? 'image' : 'nifti' }));
  const summary = await indexVolumes(sources, {
    store,
    encoder,
    readOptions,
    labelsFor: () => ({}),
    onProgress: (p) => options.onProgress?.('embedding', p.volumesDone, p.volumesTotal, `${p.slicesDone} slices`),
  });
  const failures = summary.outcomes.filter((o) => o.status === 'failed').map((o) => `${o.source.path}: ${o.status === 'failed' ? o.reason : ''}`);
  const recordOf = (row: number): VolumeRecord | undefined => store.findBySource(rows[row].path)[0];
  return { index, store, encoder, recordOf, failures };
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function keyImageFormatOf(path: string): boolean {
  try {
    return keyImageFormat(readFileSync(path).subarray(0, 8)) !== undefined;
  } catch {
    return false;
  }
}

/** Runs the grouped k-fold evaluation; see the module comment. */
export async function runGroupedCv(options: GroupedCvOptions): Promise<CvResults> {
  const started = performance.now();
  const folds = options.folds ?? 5;
  const seed = options.seed ?? 1;
  const method = options.method ?? 'volume-mean';
  const sliceTargets = options.sliceTargets ?? [];
  const csvRows = readCsv(options.csvPath, options.targets, options.groupBy, sliceTargets.length > 0);
  const { index, store, encoder, recordOf, failures } = await backboneIndex(csvRows, options);
  try {
    for (const failure of failures) options.onStatus?.(`left out: ${failure}`);
    // Rows that entered the index; a file listed twice with the same content counts once.
    const kept: Array<{ row: number; record: VolumeRecord }> = [];
    const seen = new Set<string>();
    csvRows.forEach((_, row) => {
      const record = recordOf(row);
      if (record && !seen.has(record.volumeId)) {
        seen.add(record.volumeId);
        kept.push({ row, record });
      }
    });
    const group = (i: number): string => csvRows[kept[i].row].labels[options.groupBy] || `row-${kept[i].row}`;
    const label = (i: number, target: string): string | undefined => csvRows[kept[i].row].labels[target] || undefined;
    const foldOf = groupedFolds(kept.map((_, i) => group(i)), folds, seed);

    // Slice-level training rows: every slice of a volume carries its volume's labels and group.
    const vectorsById = store.getVectors(kept.map((k) => k.record.volumeId));
    const sliceOwner: number[] = [];
    let sliceCount = 0;
    for (const k of kept) sliceCount += vectorsById.get(k.record.volumeId)!.sliceIndices.length;
    const sliceVectors = new Float32Array(sliceCount * store.dim);
    let at = 0;
    kept.forEach((k, i) => {
      const v = vectorsById.get(k.record.volumeId)!;
      sliceVectors.set(v.vectors.subarray(0, v.sliceIndices.length * store.dim), at * store.dim);
      for (let s = 0; s < v.sliceIndices.length; s++) sliceOwner.push(i);
      at += v.sliceIndices.length;
    });
    const training = {
      vectors: sliceVectors,
      dim: store.dim,
      targets: options.targets.map((t): Array<string | undefined> => sliceOwner.map((i) => label(i, t))),
      groups: sliceOwner.map((i) => group(i)),
    };
    // Per-slice targets: each stored slice labelled from its own row's mask, by canonical slice index.
    const firstRow: number[] = [];
    sliceOwner.forEach((owner, s) => {
      if (firstRow[owner] === undefined) firstRow[owner] = s;
    });
    let byVolume = new Map<string, string[][]>();
    if (sliceTargets.length > 0) {
      const base = dirname(resolve(options.csvPath));
      const labels = await sliceLabelsFromMasks(
        kept.map((k) => {
          const mask = csvRows[k.row].labels.mask;
          return { volumeId: k.record.volumeId, what: csvRows[k.row].path, geometry: k.record, sliceIndices: vectorsById.get(k.record.volumeId)!.sliceIndices, ...(mask ? { maskPath: isAbsolute(mask) ? mask : join(base, mask) } : {}) };
        }),
        sliceTargets,
      );
      byVolume = labels.byVolume;
      const layout = { owners: sliceOwner, firstRows: firstRow, volumeIds: kept.map((k) => k.record.volumeId) };
      sliceTargets.forEach((_, t) => training.targets.push(rowSliceLabels(layout, byVolume, t)));
    }
    const headTargets = [...options.targets, ...sliceTargets.map((t) => t.name)];
    const sliceLabelOf = (volumeId: string, sliceIndex: number, t: number): string | undefined => sliceRowOf.get(volumeId)?.get(sliceIndex)?.[t];
    const sliceRowOf = sliceLabelsBySliceIndex(byVolume, (volumeId) => vectorsById.get(volumeId)!.sliceIndices);
    const sliceAcc = sliceTargets.map(() => ({ raw: [] as number[], normalized: [] as number[], 'fine-tuned': [] as number[], random: [] as number[] }));

    const queries: CvQueryScore[] = [];
    const foldInfos: CvFoldInfo[] = [];
    for (let fold = 0; fold < folds; fold++) {
      const queryIdx = kept.map((_, i) => i).filter((i) => foldOf[i] === fold);
      const dbIdx = kept.map((_, i) => i).filter((i) => foldOf[i] !== fold);
      const dbSlices = sliceOwner.map((owner, s) => ({ owner, s })).filter(({ owner }) => foldOf[owner] !== fold).map(({ s }) => s);
      options.onProgress?.('fitting', fold, folds, `fold ${fold + 1}: normalization and head on ${dbIdx.length} database rows`);
      const normalization = await fitNormalization(sliceVectors, store.dim, { rows: dbSlices, ...(options.whitenDim ? { whitenDim: options.whitenDim } : {}) });
      const head = await trainHeadOnRows(training, {
        targets: headTargets,
        ...(sliceTargets.length > 0 ? { sliceTargets: { targets: sliceTargets, byVolume } } : {}),
        groupBy: options.groupBy,
        method: options.head ?? 'lda',
        seed,
        rows: dbSlices,
      });
      const names: Record<CvSpace, string | undefined> = { raw: undefined, normalized: `cv-fold${fold + 1}-normalized`, 'fine-tuned': `cv-fold${fold + 1}-head` };
      saveSpace(store, { name: names.normalized!, kind: 'normalization', encoderId: store.encoderId, inputDim: store.dim, outputDim: normalization.layers[0].outDim, training: { fold: fold + 1 } }, spaceModel(normalization.layers, 'cv normalization'));
      saveSpace(store, { name: names['fine-tuned']!, kind: 'head', encoderId: store.encoderId, inputDim: store.dim, outputDim: head.outputDim, training: { fold: fold + 1 } }, head.model);
      foldInfos.push({
        fold: fold + 1,
        queryRows: queryIdx.length,
        databaseRows: dbIdx.length,
        queryGroups: [...new Set(queryIdx.map(group))].sort(),
        trainingGroups: [...new Set(dbSlices.map((s) => training.groups[s]))].sort(),
        head: { description: head.description, validation: head.validation, seconds: head.seconds, trainingRows: head.trainingRows },
      });
      const includeVolumeIds = dbIdx.map((i) => kept[i].record.volumeId);
      // The exact random level of a query slice: the share of this fold's database slices with its label.
      const dbSliceCounts = sliceTargets.map((_, t) => {
        const counts = new Map<string, number>();
        for (const id of includeVolumeIds) for (const labels of sliceRowOf.get(id)?.values() ?? []) counts.set(labels[t], (counts.get(labels[t]) ?? 0) + 1);
        return counts;
      });
      const scores = new Map<number, CvQueryScore>();
      for (const space of CV_SPACES) {
        const view = names[space] ? await SpaceStore.open(store, names[space]!) : undefined;
        try {
          for (const [n, q] of queryIdx.entries()) {
            const raw = vectorsById.get(kept[q].record.volumeId)!;
            const vectors = view ? await view.project(raw.vectors.subarray(0, raw.sliceIndices.length * store.dim)) : raw.vectors;
            const results = await search(view ?? store, { vectors, dim: view?.dim ?? store.dim, sliceIndices: raw.sliceIndices, zMm: raw.zMm, volumeId: kept[q].record.volumeId }, {
              method,
              top: Math.max(...CV_KS),
              filter: { includeVolumeIds },
              localize: false,
            });
            const idOf = new Map(dbIdx.map((i) => [kept[i].record.volumeId, i] as const));
            const entry = scores.get(q) ?? { row: kept[q].row, volumeId: kept[q].record.volumeId, group: group(q), fold: fold + 1, scores: { raw: [], normalized: [], 'fine-tuned': [] } };
            for (const target of options.targets) {
              const wanted = label(q, target);
              const relevant = results.map((r) => label(idOf.get(r.volumeId)!, target) === wanted);
              const pool = dbIdx.filter((i) => label(i, target) !== undefined);
              const same = pool.filter((i) => label(i, target) === wanted).length;
              entry.scores[space].push({
                target,
                p: CV_KS.map((k) => precisionAtK(relevant, k)),
                ap10: averagePrecisionAtK(relevant, 10),
                randomP: CV_KS.map((k) => randomPrecisionAtK(pool.length, same, k)),
                randomAp10: randomAveragePrecision(pool.length, same, 10),
              });
            }
            scores.set(q, entry);
            if (sliceTargets.length > 0 && sliceRowOf.has(kept[q].record.volumeId)) {
              const hits = await (view ?? store).searchSlices(vectors.subarray(0, raw.sliceIndices.length * (view?.dim ?? store.dim)), { k: CV_SLICE_K, mode: 'exact', filter: { includeVolumeIds } });
              sliceTargets.forEach((_, t) => {
                raw.sliceIndices.forEach((k, row) => {
                  const wanted = sliceLabelOf(kept[q].record.volumeId, k, t)!;
                  sliceAcc[t][space].push(hits[row].filter((h) => sliceLabelOf(h.volumeId, h.sliceIndex, t) === wanted).length / CV_SLICE_K);
                  if (space === 'raw') sliceAcc[t].random.push((dbSliceCounts[t].get(wanted) ?? 0) / Math.max(dbSlices.length, 1));
                });
              });
            }
            if (n % 50 === 0) options.onProgress?.('searching', fold, folds, `fold ${fold + 1}, ${space}: ${n}/${queryIdx.length} queries`);
          }
        } finally {
          view?.close();
        }
      }
      queries.push(...scores.values());
      removeSpace(store, names.normalized!);
      removeSpace(store, names['fine-tuned']!);
    }
    options.onProgress?.('done', folds, folds);
    const summary = summarize(options, csvRows.length, kept.map((_, i) => group(i)), kept.map((_, i) => i), label, queries, foldInfos, { folds, seed, encoder: encoder.name, encoderId: encoder.id, method }, started);
    if (sliceTargets.length === 0) return summary;
    const paired = (a: number[], b: number[]): { mean: number; se: number } => {
      const d = a.map((v, i) => v - b[i]);
      return { mean: mean(d), se: standardError(d) };
    };
    const sliceMetrics: NonNullable<CvResults['sliceMetrics']> = {};
    sliceTargets.forEach((target, t) => {
      const acc = sliceAcc[t];
      sliceMetrics[target.name] = {
        k: CV_SLICE_K,
        slices: acc.raw.length,
        spaces: Object.fromEntries(CV_SPACES.map((space) => [space, { mean: mean(acc[space]), se: standardError(acc[space]) }])) as Record<CvSpace, { mean: number; se: number }>,
        random: mean(acc.random),
        gains: { normalized: paired(acc.normalized, acc.raw), 'fine-tuned': paired(acc['fine-tuned'], acc.raw) },
      };
    });
    return { ...summary, sliceMetrics };
  } finally {
    await index.close();
  }
}

function summarize(
  options: GroupedCvOptions,
  rows: number,
  groups: string[],
  indices: number[],
  label: (i: number, target: string) => string | undefined,
  queries: CvQueryScore[],
  folds: CvFoldInfo[],
  settings: { folds: number; seed: number; encoder: string; encoderId: string; method: SearchMethod },
  started: number,
): CvResults {
  const metricNames = [...CV_KS.map((k) => `P@${k}`), 'AP@10'];
  const valueOf = (s: CvQueryScore['scores'][CvSpace][number], m: number): number => (m < CV_KS.length ? s.p[m] : s.ap10);
  const randomOf = (s: CvQueryScore['scores'][CvSpace][number], m: number): number => (m < CV_KS.length ? s.randomP[m] : s.randomAp10);
  const metrics = {} as CvResults['metrics'];
  for (const space of CV_SPACES) {
    metrics[space] = {};
    options.targets.forEach((target, t) => {
      metrics[space][target] = {};
      metricNames.forEach((name, m) => {
        const values = queries.map((q) => valueOf(q.scores[space][t], m));
        metrics[space][target][name] = { mean: mean(values), se: standardError(values), random: mean(queries.map((q) => randomOf(q.scores[space][t], m))) };
      });
    });
  }
  const gainsOf = (space: CvSpace): CvResults['gains'] => {
    const gains: CvResults['gains'] = {};
    options.targets.forEach((target, t) => {
      gains[target] = {};
      metricNames.forEach((name, m) => {
        const diffs = queries.map((q) => valueOf(q.scores[space][t], m) - valueOf(q.scores.raw[t], m));
        gains[target][name] = { mean: mean(diffs), se: standardError(diffs) };
      });
    });
    return gains;
  };
  const gains = gainsOf('fine-tuned');
  const normalizedGains = gainsOf('normalized');
  const labelCounts: Record<string, Record<string, number>> = {};
  for (const target of options.targets) {
    labelCounts[target] = {};
    for (const i of indices) {
      const value = label(i, target) ?? '(none)';
      labelCounts[target][value] = (labelCounts[target][value] ?? 0) + 1;
    }
  }
  return {
    format: 'mir3d-cv/1',
    dataset: { csv: options.csvPath, rows, groups: new Set(groups).size, targets: options.targets, groupBy: options.groupBy, labelCounts },
    settings: { ...settings, normalization: options.whitenDim ? `PCA-whitening to ${options.whitenDim}` : 'mean-centring', head: (options.head ?? 'lda') === 'mlp' ? 'MLP, supervised contrastive loss (early stopping on a grouped validation split of the training folds)' : 'LDA-like (p, β chosen on a grouped validation split of the training folds)' },
    metrics,
    gains,
    normalizedGains,
    folds,
    queries,
    seconds: (performance.now() - started) / 1000,
  };
}
