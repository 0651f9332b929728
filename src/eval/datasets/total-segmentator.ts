import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { readVolume } from '../../io/read.js';
import { labelZExtents, maskZExtent, unionExtent } from '../extents.js';
import { NO_TUMOUR } from '../../labels/tumours.js';
import { TOTALSEG_V2_CLASSES, classMapOf, coarseRegionOf, type ClassMap } from './total-seg-regions.js';
import { isHashQuery } from './split.js';
import type { Case, RetrievalDataset, ZExtent } from './types.js';
import { DatasetError } from '../errors.js';

/**
 * TotalSegmentator layout, for region retrieval (Khun Jush et al.): a root of subject folders, each with
 * ct.nii.gz and either segmentations/<structure>.nii.gz (one binary mask per structure, the released
 * dataset's form) or seg.nii.gz (one multi-label map with a class map such as class_map_total_v2.json).
 * A volume "contains" a structure when any voxel of it is labelled; the structure's z-extent (slices and
 * mm) is the truth for localization.
 */

export type RegionLevel = 'fine' | 'coarse';

/** Reads a class map JSON ({"1": "spleen", …}) into id → name. */
export async function readClassMap(jsonPath: string): Promise<ClassMap> {
  const raw = JSON.parse(await readFile(jsonPath, 'utf8')) as Record<string, unknown>;
  const out = new Map<number, string>();
  for (const [id, name] of Object.entries(raw)) {
    const value = Number(id);
    if (!Number.isInteger(value) || value <= 0 || typeof name !== 'string') throw new DatasetError(`${jsonPath}: entry ${id} → ${String(name)} is not "positive integer": "name"`);
    out.set(value, name);
  }
  return out;
}

/** Structure extents of a multi-label map; label values missing from the class map are reported. */
export async function multiLabelExtents(segPath: string, classMap: ClassMap): Promise<{ extents: Record<string, ZExtent>; unknownLabels: number[] }> {
  const labels = await readVolume(segPath);
  const extents: Record<string, ZExtent> = {};
  const unknownLabels: number[] = [];
  for (const [value, extent] of labelZExtents(labels)) {
    const name = classMap.get(value);
    if (name === undefined) unknownLabels.push(value);
    else extents[name] = extent;
  }
  return { extents, unknownLabels };
}

/** Structure extents from a folder of per-structure binary masks (<structure>.nii.gz); empty masks are
 * structures the volume does not contain and are left out. */
export async function folderExtents(segmentationsDir: string): Promise<Record<string, ZExtent>> {
  const files = (await readdir(segmentationsDir)).filter((f) => /\.nii(\.gz)?$/.test(f) && !f.startsWith('.')).sort();
  const extents: Record<string, ZExtent> = {};
  for (const file of files) {
    const extent = maskZExtent(await readVolume(join(segmentationsDir, file)));
    if (extent) extents[file.replace(/\.nii(\.gz)?$/, '')] = extent;
  }
  return extents;
}

/** Fine extents → coarse extents (union per region). Structures without a region are dropped. */
export function coarseExtents(fine: Record<string, ZExtent>): Record<string, ZExtent> {
  const byRegion = new Map<string, ZExtent[]>();
  for (const [structure, extent] of Object.entries(fine)) {
    const region = coarseRegionOf(structure);
    if (!region) continue;
    byRegion.set(region, [...(byRegion.get(region) ?? []), extent]);
  }
  const out: Record<string, ZExtent> = {};
  for (const region of [...byRegion.keys()].sort()) out[region] = unionExtent(byRegion.get(region)!)!;
  return out;
}

export interface TotalSegCaseFiles {
  caseId: string;
  imagePath: string;
  /** A multi-label file, or a folder of per-structure masks. */
  segmentationPath: string;
  /** For a multi-label file (default: the v2 class map). */
  classMap?: ClassMap;
  level?: RegionLevel;
}

/** One TotalSegmentator-style case with its regions (fine structure names or coarse regions). */
export async function totalSegCase(files: TotalSegCaseFiles): Promise<Case> {
  const info = await stat(files.segmentationPath);
  const fine = info.isDirectory()
    ? await folderExtents(files.segmentationPath)
    : (await multiLabelExtents(files.segmentationPath, files.classMap ?? classMapOf(TOTALSEG_V2_CLASSES))).extents;
  return {
    caseId: files.caseId,
    imagePath: files.imagePath,
    maskPath: files.segmentationPath,
    // Region benchmarks judge by anatomy; the tumour labels are there only to satisfy the type.
    labels: { ...NO_TUMOUR, source: 'generated' },
    regions: (files.level ?? 'fine') === 'coarse' ? coarseExtents(fine) : fine,
  };
}

export interface TotalSegDatasetOptions {
  level?: RegionLevel;
  /** Class map for seg.nii.gz files (default: v2's). */
  classMap?: ClassMap;
  /** Subjects used as queries; default: meta.csv's split "test" when the root has one, else a stable
   * hash split with `testFraction` (default 0.1). */
  queryIds?: readonly string[];
  testFraction?: number;
}

/** Subject → split from the dataset's meta.csv (';'-separated in the released dataset). */
async function readMetaSplits(root: string): Promise<Map<string, string> | undefined> {
  const path = join(root, 'meta.csv');
  if (!existsSync(path)) return undefined;
  const rows = parse(await readFile(path, 'utf8'), { columns: true, bom: true, skip_empty_lines: true, delimiter: [';', ','] }) as Record<string, string>[];
  const out = new Map<string, string>();
  for (const row of rows) if (row.image_id && row.split) out.set(row.image_id.trim(), row.split.trim());
  return out;
}

/** A region-retrieval dataset from a TotalSegmentator root (subject folders). */
export async function totalSegDataset(root: string, options: TotalSegDatasetOptions = {}): Promise<RetrievalDataset> {
  const subjects = (await readdir(root, { withFileTypes: true }))
    .filter((e) => e.isDirectory() && !e.name.startsWith('.') && existsSync(join(root, e.name, 'ct.nii.gz')))
    .map((e) => e.name)
    .sort();
  const splits = options.queryIds ? undefined : await readMetaSplits(root);
  const queryIds = new Set(options.queryIds ?? []);
  const isQuery = (id: string): boolean => {
    if (options.queryIds) return queryIds.has(id);
    if (splits) return splits.get(id) === 'test';
    return isHashQuery(id, options.testFraction ?? 0.1);
  };
  const database: Case[] = [];
  const queries: Case[] = [];
  for (const subject of subjects) {
    const dir = join(root, subject);
    const segmentationPath = existsSync(join(dir, 'segmentations')) ? join(dir, 'segmentations') : join(dir, 'seg.nii.gz');
    if (!existsSync(segmentationPath)) throw new DatasetError(`${dir}: neither segmentations/ nor seg.nii.gz`);
    const kase = await totalSegCase({ caseId: subject, imagePath: join(dir, 'ct.nii.gz'), segmentationPath, classMap: options.classMap, level: options.level });
    (isQuery(subject) ? queries : database).push(kase);
  }
  const how = options.queryIds ? 'given query ids' : splits ? 'meta.csv split "test"' : `hash split (~${Math.round((options.testFraction ?? 0.1) * 100)} %)`;
  return {
    name: `totalseg-${options.level ?? 'fine'}-${basename(root)}`,
    database,
    queries,
    judging: 'region',
    notes: [`TotalSegmentator ${options.level ?? 'fine'} regions: ${database.length} database volumes, ${queries.length} queries (${how})`],
  };
}
