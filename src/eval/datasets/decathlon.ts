import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { readVolume } from '../../io/read.js';
import {
  TUMOUR_ORGANS,
  tumourSummaryFromMask,
  type Connectivity,
  type GroupRule,
  type TumourOrgan,
} from '../../labels/tumours.js';
import { hasThreeDMirFiles, readThreeDMirOrgan, type ThreeDMirRow } from '../../labels/threedmir-csv.js';
import { isHashQuery } from './split.js';
import type { Case, CaseLabels, RetrievalDataset } from './types.js';
import { DatasetError } from '../errors.js';

/**
 * Medical Segmentation Decathlon layout: a root holding task folders such as Task03_Liver, each with
 * dataset.json, imagesTr/, labelsTr/ (and imagesTs/). Combined with 3D-MIR's CSVs it gives 3D-MIR's
 * per-organ benchmarks and C-MIR's mixed archive; without the CSVs, labels come from the masks.
 */

/** Tumour label value in each task's labelsTr masks (dataset.json "labels"). */
export const DECATHLON_TUMOUR_LABEL: Readonly<Record<TumourOrgan, number>> = Object.freeze({ liver: 2, pancreas: 2, colon: 1, lung: 1 });

export interface DecathlonCase {
  caseId: string;
  imagePath: string;
  maskPath?: string;
}

export interface DecathlonTask {
  dir: string;
  /** dataset.json "name", else the folder name. */
  name: string;
  /** Lower-case organ from the folder name (Task03_Liver → liver). */
  organ: string;
  /** dataset.json "labels" (value → name). */
  labelNames: Record<string, string>;
  training: DecathlonCase[];
  test: DecathlonCase[];
}

interface DatasetJson {
  name?: unknown;
  labels?: unknown;
  training?: unknown;
  test?: unknown;
}

/** macOS tar leaves "._name" resource-fork files beside every image in the Decathlon archives. */
const isHidden = (name: string): boolean => name.startsWith('._') || name.startsWith('.');

function organOfFolder(folder: string): string {
  const match = /^Task\d+_(.+)$/i.exec(folder);
  return (match ? match[1] : folder).toLowerCase();
}

/** Reads one task folder's dataset.json; entries whose image file is missing are kept (the caller
 * decides whether files must exist). */
export async function readDecathlonTask(taskDir: string): Promise<DecathlonTask> {
  const dir = resolve(taskDir);
  const jsonPath = join(dir, 'dataset.json');
  let json: DatasetJson;
  try {
    json = JSON.parse(await readFile(jsonPath, 'utf8')) as DatasetJson;
  } catch (error) {
    throw new DatasetError(`${jsonPath}: cannot read a Decathlon dataset.json (${(error as Error).message})`);
  }
  const relative = (p: string): string => join(dir, p.replace(/^\.\//, ''));
  const training: DecathlonCase[] = [];
  if (Array.isArray(json.training)) {
    for (const entry of json.training as unknown[]) {
      const e = entry as { image?: unknown; label?: unknown };
      if (typeof e.image !== 'string') throw new DatasetError(`${jsonPath}: a training entry has no image path`);
      const caseId = basename(e.image);
      if (isHidden(caseId)) continue;
      training.push({ caseId, imagePath: relative(e.image), maskPath: typeof e.label === 'string' ? relative(e.label) : undefined });
    }
  }
  const test: DecathlonCase[] = [];
  if (Array.isArray(json.test)) {
    for (const entry of json.test as unknown[]) {
      const path = typeof entry === 'string' ? entry : (entry as { image?: unknown }).image;
      if (typeof path !== 'string') continue;
      if (isHidden(basename(path))) continue;
      test.push({ caseId: basename(path), imagePath: relative(path) });
    }
  }
  const labelNames: Record<string, string> = {};
  if (json.labels && typeof json.labels === 'object') {
    for (const [value, name] of Object.entries(json.labels as Record<string, unknown>)) labelNames[value] = String(name);
  }
  const folder = basename(dir);
  return { dir, name: typeof json.name === 'string' ? json.name : folder, organ: organOfFolder(folder), labelNames, training, test };
}

/** Task folders under `root` (or `root` itself when it holds a dataset.json), sorted by name. */
export async function findDecathlonTasks(root: string): Promise<DecathlonTask[]> {
  if (existsSync(join(root, 'dataset.json'))) return [await readDecathlonTask(root)];
  const entries = await readdir(root, { withFileTypes: true });
  const tasks: DecathlonTask[] = [];
  for (const entry of entries.filter((e) => e.isDirectory() && !isHidden(e.name)).sort((a, b) => a.name.localeCompare(b.name))) {
    if (existsSync(join(root, entry.name, 'dataset.json'))) tasks.push(await readDecathlonTask(join(root, entry.name)));
  }
  return tasks;
}

/** Every training case of every task, by file name (3D-MIR names volumes by file name alone). */
async function caseIndex(root: string): Promise<Map<string, DecathlonCase & { organ: string }>> {
  const index = new Map<string, DecathlonCase & { organ: string }>();
  for (const task of await findDecathlonTasks(root)) {
    for (const c of [...task.training, ...task.test]) if (!index.has(c.caseId)) index.set(c.caseId, { ...c, organ: task.organ });
  }
  return index;
}

export interface DecathlonDatasetOptions {
  /** Decathlon root (task folders) or one task folder. Optional when only the CSVs are at hand: then
   * imagePath is the bare file name and no file is checked. */
  root?: string;
  /** Folder with 3D-MIR's CSVs (../shared/data/3dmir). When absent, or without this organ's files,
   * labels come from the masks and the split from `testFraction`. */
  csvDir?: string;
  /** Fail when a listed image is missing (default: true when `root` is given). */
  requireImages?: boolean;
  /** Mask-derived labels only. */
  groupRule?: GroupRule;
  connectivity?: Connectivity;
  /** Share of cases put in the queries when there is no split file (default 0.1); the assignment is a
   * hash of the case id, so it is stable across runs and machines. */
  testFraction?: number;
}

function labelsOfRow(row: ThreeDMirRow): CaseLabels {
  return { cancerFlag: row.cancerFlag, lesionGroup: row.lesionGroup, maxTumorSizeCm: row.maxTumorSizeCm, numberTumors: row.numberTumors, source: 'csv' };
}

async function resolvePaths(
  name: string,
  index: Map<string, DecathlonCase & { organ: string }> | undefined,
  requireImages: boolean,
): Promise<{ imagePath: string; maskPath?: string }> {
  if (!index) return { imagePath: name };
  const found = index.get(name);
  if (!found) {
    if (requireImages) throw new DatasetError(`${name} is listed by 3D-MIR but is in no task's dataset.json under the Decathlon root`);
    return { imagePath: name };
  }
  if (requireImages) {
    const info = await stat(found.imagePath).catch(() => undefined);
    if (!info?.isFile()) throw new DatasetError(`${found.imagePath}: image listed in dataset.json is missing`);
  }
  return { imagePath: found.imagePath, maskPath: found.maskPath };
}

/**
 * 3D-MIR's benchmark for one organ: database = the organ's train split, queries = its test split, both
 * including the other organs' volumes that serve as negatives (labels relative to `organ`; see
 * threeDMirCsv.ts). Without the CSVs: the organ's own Decathlon task, labels from its masks (tumour
 * label per DECATHLON_TUMOUR_LABEL), a hash split, and no cross-organ negatives.
 */
export async function threeDMirDataset(organ: TumourOrgan, options: DecathlonDatasetOptions = {}): Promise<RetrievalDataset> {
  const index = options.root ? await caseIndex(options.root) : undefined;
  const requireImages = options.requireImages ?? options.root !== undefined;
  if (options.csvDir && hasThreeDMirFiles(options.csvDir, organ)) {
    const files = await readThreeDMirOrgan(options.csvDir, organ);
    const toCase = async (name: string): Promise<Case> => {
      const row = files.rows.get(name)!;
      return { caseId: name, ...(await resolvePaths(name, index, requireImages)), organ: row.organ, labelOrgan: organ, labels: labelsOfRow(row) };
    };
    const database = await Promise.all(files.train.map(toCase));
    const queries = await Promise.all(files.test.map(toCase));
    const inSplit = new Set([...files.train, ...files.test]);
    const excluded = [...files.rows.keys()].filter((n) => !inSplit.has(n));
    const notes = [
      `3D-MIR ${organ}: ${database.length} database volumes (train split), ${queries.length} queries (test split), from ${options.csvDir}`,
      `other-organ negatives (labelled "no ${organ} tumour"): ${database.filter((c) => c.organ !== organ).length} in the database, ${queries.filter((c) => c.organ !== organ).length} among the queries`,
    ];
    if (excluded.length > 0) notes.push(`${excluded.length} labelled volumes are in neither split and left out (${excluded.slice(0, 4).join(', ')}${excluded.length > 4 ? ', …' : ''})`);
    if (!options.root) notes.push('no Decathlon root given: image paths are bare file names');
    return { name: `3dmir-${organ}`, database, queries, judging: 'same-label-organ', notes };
  }

  if (!options.root) throw new DatasetError(`no 3D-MIR CSVs for ${organ} and no Decathlon root: nothing to build the dataset from`);
  const tasks = (await findDecathlonTasks(options.root)).filter((t) => t.organ === organ);
  if (tasks.length === 0) throw new DatasetError(`no Decathlon task for ${organ} under ${options.root}`);
  const testFraction = options.testFraction ?? 0.1;
  const database: Case[] = [];
  const queries: Case[] = [];
  for (const task of tasks) {
    for (const c of task.training) {
      if (!c.maskPath) throw new DatasetError(`${c.caseId}: no label file in ${task.dir}/dataset.json, so no labels`);
      const mask = await readVolume(c.maskPath);
      const summary = tumourSummaryFromMask(mask.data, mask, organ, {
        labelValues: [DECATHLON_TUMOUR_LABEL[organ]],
        rule: options.groupRule,
        connectivity: options.connectivity,
      });
      const kase: Case = {
        caseId: c.caseId,
        imagePath: c.imagePath,
        maskPath: c.maskPath,
        organ,
        labelOrgan: organ,
        labels: { cancerFlag: summary.cancerFlag, lesionGroup: summary.lesionGroup, maxTumorSizeCm: summary.maxTumorSizeCm, numberTumors: summary.numberTumors, source: 'mask' },
      };
      (isHashQuery(c.caseId, testFraction) ? queries : database).push(kase);
    }
  }
  return {
    name: `decathlon-${organ}`,
    database,
    queries,
    judging: 'same-label-organ',
    notes: [
      `labels from the tumour masks (label ${DECATHLON_TUMOUR_LABEL[organ]}, ${options.connectivity ?? 6}-connectivity, rule ${options.groupRule ?? 'design'})`,
      `hash split: ${queries.length} queries (~${Math.round(testFraction * 100)} %), ${database.length} database volumes; no other-organ negatives`,
    ],
  };
}

/**
 * C-MIR's single mixed archive: one index for all organs. Database = the union of every organ's own
 * volumes in its 3D-MIR train split, queries = the union of every organ's own volumes in its test
 * split (515 and 74 on the published CSVs, disjoint). Each volume keeps the labels of its own organ;
 * relevance is judged relative to the query's organ (relevance.ts: another organ's volume counts as
 * "no tumour"), which reproduces 3D-MIR's convention without per-organ databases. The cross-organ
 * negatives of the per-organ splits are not added again: they are other organs' own volumes and already
 * in the archive (or among its queries) under their own organ.
 */
export async function cMirMixedDataset(options: DecathlonDatasetOptions & { csvDir: string; organs?: readonly TumourOrgan[] }): Promise<RetrievalDataset> {
  const organs = options.organs ?? TUMOUR_ORGANS;
  const index = options.root ? await caseIndex(options.root) : undefined;
  const requireImages = options.requireImages ?? options.root !== undefined;
  const database: Case[] = [];
  const queries: Case[] = [];
  const notes: string[] = [];
  for (const organ of organs) {
    if (!hasThreeDMirFiles(options.csvDir, organ)) throw new DatasetError(`no 3D-MIR CSVs for ${organ} in ${options.csvDir}`);
    const files = await readThreeDMirOrgan(options.csvDir, organ);
    const own = (names: string[]): string[] => names.filter((n) => files.rows.get(n)!.organ === organ);
    const toCase = async (name: string): Promise<Case> => ({
      caseId: name,
      ...(await resolvePaths(name, index, requireImages)),
      organ,
      labelOrgan: organ,
      labels: labelsOfRow(files.rows.get(name)!),
    });
    const db = await Promise.all(own(files.train).map(toCase));
    const q = await Promise.all(own(files.test).map(toCase));
    database.push(...db);
    queries.push(...q);
    notes.push(`${organ}: ${db.length} database volumes, ${q.length} queries`);
  }
  const dbIds = new Set(database.map((c) => c.caseId));
  const clash = queries.filter((q) => dbIds.has(q.caseId)).map((q) => q.caseId);
  if (clash.length > 0) throw new DatasetError(`mixed archive: ${clash.length} queries are also database volumes (${clash.slice(0, 3).join(', ')})`);
  if (dbIds.size !== database.length) throw new DatasetError('mixed archive: a volume is listed under two organs');
  notes.unshift(`C-MIR mixed archive over ${organs.join(', ')}: ${database.length} database volumes, ${queries.length} queries; labels judged relative to the query's organ`);
  return { name: 'cmir-mixed', database, queries, judging: 'same-label-organ', notes };
}

