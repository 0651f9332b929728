/**
 * Text-to-image retrieval on a Decathlon-style task with 3D-MIR's label and split files (the Decathlon's own
 * tasks when their images are present, or the development benchmark built from the shared CTs): every
 * volume of the split is indexed with its labels and one of its caption versions, the text space learns
 * from the database split's captions only, and each query volume's caption is a query searched against
 * the database (3D-MIR's protocol: the query split is never searched nor learned from).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Encoder } from '../encode/encoder.js';
import { indexVolumes } from '../ingest/indexer.js';
import type { VolumeSourceRef } from '../ingest/discover.js';
import { readThreeDMirOrgan } from '../labels/threedmir-csv.js';
import type { Store } from '../store/types.js';
import { evaluateTextRetrieval, type TextEvalReport } from './text-eval.js';

export interface TextTaskOptions {
  /** The task folder (imagesTr/ inside). */
  taskDir: string;
  /** 3D-MIR CSV folder. */
  csvDir: string;
  organ: string;
  /** 1-based caption version (CaptionV1…V3). */
  captionVersion: number;
  /** Label a retrieved volume must share: cancer_flag (3D-MIR's flag) or lesion_group. */
  targets: readonly ('cancer_flag' | 'lesion_group')[];
  /** Volumes of one patient (devbench: variants of one scan) stay on one side; default each volume its own. */
  patientOf?: (name: string) => string;
  store: Store;
  encoder: Encoder;
  steps?: number;
  onStatus?: (line: string) => void;
}

export type TextTaskOutcome =
  | { status: 'skipped'; reason: string }
  | { status: 'done'; database: number; queries: number; missing: number; reports: Record<string, TextEvalReport> };

export async function evaluateTextOnTask(options: TextTaskOptions): Promise<TextTaskOutcome> {
  const organ = await readThreeDMirOrgan(options.csvDir, options.organ);
  const images = join(options.taskDir, 'imagesTr');
  const present = (name: string): boolean => existsSync(join(images, name));
  const train = organ.train.filter(present);
  const test = organ.test.filter(present);
  const missing = organ.train.length + organ.test.length - train.length - test.length;
  if (train.length === 0 || test.length === 0) {
    return { status: 'skipped', reason: `${options.organ}: ${train.length} of ${organ.train.length} database and ${test.length} of ${organ.test.length} query images are in ${images} (the Decathlon's images are not part of the 3D-MIR files)` };
  }
  const index = (options.captionVersion - 1) | 0;
  const labelsOf = new Map<string, Record<string, string | number>>();
  for (const name of [...train, ...test]) {
    const row = organ.rows.get(name)!;
    const caption = row.captions[index];
    labelsOf.set(join(images, name), {
      name,
      organ: row.organ,
      cancer_flag: row.cancerFlag,
      lesion_group: row.lesionGroup,
      max_tumor_size: row.maxTumorSizeCm,
      patient: options.patientOf?.(name) ?? name,
      ...(caption !== undefined && caption.trim() !== '' ? { caption: caption.replace(/^"+|"+$/g, '').trim() } : {}),
    });
  }
  const sources: VolumeSourceRef[] = [...labelsOf.keys()].map((path) => ({ path, kind: 'nifti' }));
  options.onStatus?.(`${options.organ}: indexing ${sources.length} volumes (${train.length} database, ${test.length} queries)`);
  const summary = await indexVolumes(sources, { store: options.store, encoder: options.encoder, labelsFor: (source) => labelsOf.get(source.path) ?? {} });
  const idOf = new Map<string, string>();
  for (const outcome of summary.outcomes) if (outcome.status !== 'failed') idOf.set(outcome.source.path, outcome.volumeId);
  const ids = (names: string[]): string[] => names.flatMap((n) => idOf.get(join(images, n)) ?? []);
  const split = { database: ids(train), queries: ids(test) };
  if (split.database.length === 0 || split.queries.length === 0) {
    const failed = summary.outcomes.find((o) => o.status === 'failed');
    return { status: 'skipped', reason: `${options.organ}: no volume of the ${split.database.length ? 'query' : 'database'} split could be indexed${failed && failed.status === 'failed' ? ` (${failed.reason})` : ''}` };
  }
  const reports: Record<string, TextEvalReport> = {};
  for (const target of options.targets) {
    options.onStatus?.(`${options.organ}: caption V${options.captionVersion} queries, target ${target}`);
    reports[target] = await evaluateTextRetrieval(options.store, {
      captionColumn: 'caption',
      targetColumn: target,
      groupBy: 'patient',
      split,
      volumeIds: [...split.database, ...split.queries],
      ...(options.steps ? { steps: options.steps } : {}),
    });
  }
  return { status: 'done', database: split.database.length, queries: split.queries.length, missing, reports };
}
