import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import type { LesionGroup } from './tumours.js';
import { LabelFileError } from './errors.js';

/**
 * 3D-MIR's label and split files (github.com/abachaa/3D-MIR, CC BY 4.0), one set per organ:
 *   <organ>_labels_and_captions.csv   name, organ, max_tumor_size (cm), number_tumors, lesion_group,
 *                                     cancer_flag, CaptionV1…V3
 *   <organ>_full_train_split.csv      the database (header "training", lung's without an index column)
 *   <organ>_full_test_split.csv       the queries (header "testing")
 *
 * What the files say (checked on the published set, see test/eval-datasets.test.ts):
 * - Each organ's benchmark mixes that organ's Decathlon volumes with other organs' volumes that serve
 *   as tumour-free negatives for it: their rows carry organ = their own organ, lesion_group −1,
 *   cancer_flag 0, number_tumors 0, and captions like "The liver is in healthy condition". The negatives
 *   are exactly the other organs' group-1 volumes (liver: 22 pancreas + 23 lung; colon: + 9 liver;
 *   pancreas: 23 lung + 9 liver; lung: 22 pancreas + 9 liver). So liver_full_train_split.csv holding
 *   pancreas volumes is by design, not a mistake, and a volume's labels depend on the benchmark: lung_001
 *   is lung group 1 in the lung benchmark and "no tumour" in the liver benchmark.
 * - train and test splits are disjoint and cover the labels file, except pancreas: its 12 group-4
 *   volumes are in the labels but in neither split, so the pancreas benchmark has no group 4.
 * - Across organs, the own-organ train volumes (515) and own-organ test volumes (74) are disjoint,
 *   which is what C-MIR's single mixed archive needs (see decathlon.ts, cMirMixedDataset).
 */

export interface ThreeDMirRow {
  name: string;
  organ: string;
  maxTumorSizeCm: number;
  numberTumors: number;
  lesionGroup: LesionGroup;
  cancerFlag: 0 | 1;
  captions: string[];
}

export interface ThreeDMirFiles {
  labels: string;
  train: string;
  test: string;
}

export function threeDMirFiles(csvDir: string, organ: string): ThreeDMirFiles {
  return {
    labels: join(csvDir, `${organ}_labels_and_captions.csv`),
    train: join(csvDir, `${organ}_full_train_split.csv`),
    test: join(csvDir, `${organ}_full_test_split.csv`),
  };
}

export function hasThreeDMirFiles(csvDir: string, organ: string): boolean {
  const files = threeDMirFiles(csvDir, organ);
  return existsSync(files.labels) && existsSync(files.train) && existsSync(files.test);
}

const GROUPS = new Set<number>([-1, 1, 2, 3, 4]);

function numberField(row: Record<string, string>, column: string, path: string): number {
  const text = row[column];
  const value = Number(text);
  if (text === undefined || text.trim() === '' || !Number.isFinite(value)) {
    throw new LabelFileError(`${path}: row ${row.name ?? '?'}: column ${column} is ${JSON.stringify(text)}, not a number`);
  }
  return value;
}

/** Parses a labels file (BOM and quoted multi-line captions allowed). */
export function parseThreeDMirLabels(text: string, path = 'labels csv'): ThreeDMirRow[] {
  const records = parse(text, { columns: true, bom: true, skip_empty_lines: true, relax_column_count: true }) as Record<string, string>[];
  return records.map((row) => {
    if (!row.name) throw new LabelFileError(`${path}: a row has no name`);
    const lesionGroup = numberField(row, 'lesion_group', path);
    const cancerFlag = numberField(row, 'cancer_flag', path);
    if (!GROUPS.has(lesionGroup)) throw new LabelFileError(`${path}: ${row.name}: lesion_group ${lesionGroup} is not one of −1, 1…4`);
    if (cancerFlag !== 0 && cancerFlag !== 1) throw new LabelFileError(`${path}: ${row.name}: cancer_flag ${cancerFlag} is not 0 or 1`);
    return {
      name: row.name.trim(),
      organ: (row.organ ?? '').trim(),
      maxTumorSizeCm: numberField(row, 'max_tumor_size', path),
      numberTumors: numberField(row, 'number_tumors', path),
      lesionGroup: lesionGroup as LesionGroup,
      cancerFlag,
      captions: Object.keys(row)
        .filter((c) => /^CaptionV\d+$/.test(c))
        .sort()
        .map((c) => row[c]),
    };
  });
}

/** Parses a split file: a header row, then one name per row in the last column. */
export function parseThreeDMirSplit(text: string): string[] {
  const rows = parse(text, { bom: true, skip_empty_lines: true, relax_column_count: true });
  return rows.slice(1).map((r) => (r[r.length - 1] ?? '').trim()).filter((name) => name.length > 0);
}

export async function readThreeDMirLabels(path: string): Promise<ThreeDMirRow[]> {
  return parseThreeDMirLabels(await readFile(path, 'utf8'), path);
}

export async function readThreeDMirSplit(path: string): Promise<string[]> {
  return parseThreeDMirSplit(await readFile(path, 'utf8'));
}

export interface ThreeDMirOrganFiles {
  organ: string;
  rows: Map<string, ThreeDMirRow>;
  train: string[];
  test: string[];
}

/** One organ's labels and split, with the consistency checks the benchmark relies on. */
export async function readThreeDMirOrgan(csvDir: string, organ: string): Promise<ThreeDMirOrganFiles> {
  const files = threeDMirFiles(csvDir, organ);
  const [rows, train, test] = await Promise.all([readThreeDMirLabels(files.labels), readThreeDMirSplit(files.train), readThreeDMirSplit(files.test)]);
  const byName = new Map<string, ThreeDMirRow>();
  for (const row of rows) {
    if (byName.has(row.name)) throw new LabelFileError(`${files.labels}: ${row.name} appears twice`);
    byName.set(row.name, row);
  }
  const testSet = new Set(test);
  const overlap = train.filter((n) => testSet.has(n));
  if (overlap.length > 0) throw new LabelFileError(`${organ}: ${overlap.length} volumes are in both the train and the test split (${overlap.slice(0, 3).join(', ')})`);
  const unlabelled = [...train, ...test].filter((n) => !byName.has(n));
  if (unlabelled.length > 0) throw new LabelFileError(`${organ}: ${unlabelled.length} split volumes have no labels (${unlabelled.slice(0, 3).join(', ')})`);
  return { organ, rows: byName, train, test };
}

// ---------------------------------------------------------------------------------------------------
// Writing (the development benchmark writes its labels in the same format)
// ---------------------------------------------------------------------------------------------------

function csvField(value: string | number): string {
  const text = String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function formatThreeDMirLabels(rows: readonly ThreeDMirRow[]): string {
  const captionCount = Math.max(0, ...rows.map((r) => r.captions.length));
  const header = ['name', 'organ', 'max_tumor_size', 'number_tumors', 'lesion_group', 'cancer_flag', ...Array.from({ length: captionCount }, (_, n) => `CaptionV${n + 1}`)];
  const lines = rows.map((r) =>
    [r.name, r.organ, r.maxTumorSizeCm, r.numberTumors, r.lesionGroup, r.cancerFlag, ...Array.from({ length: captionCount }, (_, n) => r.captions[n] ?? '')].map(csvField).join(','),
  );
  return [header.join(','), ...lines].join('\n') + '\n';
}

/** A split file with the index column most of 3D-MIR's files have (",training" / "0,name"). */
export function formatThreeDMirSplit(names: readonly string[], kind: 'training' | 'testing'): string {
  return [`,${kind}`, ...names.map((n, i) => `${i},${csvField(n)}`)].join('\n') + '\n';
}

/** A caption in 3D-MIR's CaptionV1 style. */
export function captionOf(organ: string, labelOrgan: string, maxTumorSizeCm: number, numberTumors: number): string {
  if (numberTumors === 0 || organ !== labelOrgan) return `The ${labelOrgan} is in healthy condition`;
  if (numberTumors === 1) return `This 3D volume depicts a ${labelOrgan} with a single tumor measuring ${maxTumorSizeCm.toFixed(2)} centimeters in length.`;
  return `This 3D volume depicts a ${labelOrgan} with ${numberTumors} tumors, the largest of which measures ${maxTumorSizeCm.toFixed(2)} centimeters in length.`;
}
