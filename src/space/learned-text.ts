/**
 * A text space learned from an index's captions, kept in the index as a named artifact (kind 'text-space':
 * the featureDim × dim float32 projection, little-endian, with JSON metadata saying what it was trained on).
 * It is a TextEncoder whose pair tag is the index's encoder id: it maps text into that encoder's raw slice
 * space and means nothing against any other.
 */
import { createHash } from 'node:crypto';
import { EncoderError } from '../encode/errors.js';
import { hashTextFeatures, TEXT_FEATURES_VERSION } from '../encode/text-features.js';
import { checkTexts, type TextEmbedding, type TextEncoder } from '../encode/text-encoder.js';
import type { JsonObject, Store } from '../store/types.js';
import { projectText, trainTextProjection, type LearnedTextProjection, type TextSpaceOptions } from './text-space.js';

export const TEXT_SPACE_KIND = 'text-space';
export const DEFAULT_TEXT_SPACE = 'captions';
/** At most this many slices of one volume stand for it in training (evenly spaced). */
const MAX_SLICES_PER_VOLUME = 16;

export interface TextSpaceRecord {
  encoderId: string;
  featureDim: number;
  dim: number;
  features: string;
  captionColumn: string;
  groupBy: string | undefined;
  captions: number;
  volumes: number;
  trainedAt: string;
  steps: number;
  trainLoss: number;
  validationLoss: number | null;
  validationCaptions: number;
}

export class LearnedTextEncoder implements TextEncoder {
  readonly id: string;
  readonly dim: number;
  readonly pairTag: string;
  constructor(
    readonly name: string,
    private readonly weight: Float32Array,
    readonly record: TextSpaceRecord,
  ) {
    this.dim = record.dim;
    this.pairTag = record.encoderId;
    const sha = createHash('sha256').update(new Uint8Array(weight.buffer, weight.byteOffset, weight.byteLength)).digest('hex');
    this.id = `learned-text:${name}@sha256:${sha.slice(0, 16)}|${record.features}|f${record.featureDim}`;
  }

  async embedTexts(texts: string[]): Promise<TextEmbedding> {
    checkTexts(texts, this.name);
    const features = texts.map((text) => hashTextFeatures(text, { dim: this.record.featureDim }));
    const warnings = features.flatMap((f, i) => (f.indices.length === 0 ? [`text ${texts.length > 1 ? `${i + 1} ` : ''}has no word or size the text space can read`] : []));
    return { rows: projectText(features, this.weight, this.dim), dim: this.dim, warnings };
  }

  async close(): Promise<void> {}
}

export function listTextSpaces(store: Store): string[] {
  return store.artifacts.list(TEXT_SPACE_KIND).map((a) => a.name);
}

/** The named text space of an index (default: 'captions', or the only one). */
export function openLearnedTextEncoder(store: Store, name?: string): LearnedTextEncoder | undefined {
  const names = listTextSpaces(store);
  const chosen = name ?? (names.includes(DEFAULT_TEXT_SPACE) ? DEFAULT_TEXT_SPACE : names.length === 1 ? names[0] : undefined);
  if (chosen === undefined) {
    if (names.length > 1) throw new EncoderError('NO_TEXT_SPACE', 'index', `several text spaces (${names.join(', ')}); name one with --text-space`);
    return undefined;
  }
  const artifact = store.artifacts.get(TEXT_SPACE_KIND, chosen);
  if (!artifact) throw new EncoderError('NO_TEXT_SPACE', 'index', `no text space '${chosen}' in the index${names.length ? ` (it has ${names.join(', ')})` : ''}`);
  const record = artifact.metadata as unknown as TextSpaceRecord;
  if (record.features !== TEXT_FEATURES_VERSION) {
    throw new EncoderError('BAD_CONFIG', `text space ${chosen}`, `made with text features ${record.features}, this mir3d reads ${TEXT_FEATURES_VERSION}; train it again (mir3d train --captions)`);
  }
  if (record.encoderId !== store.encoderId) {
    throw new EncoderError('NO_TEXT_SPACE', `text space ${chosen}`, `was learned for encoder ${record.encoderId}, the index holds ${store.encoderId}; train it again`);
  }
  const bytes = artifact.bytes;
  if (bytes.byteLength !== record.featureDim * record.dim * 4) {
    throw new EncoderError('CORRUPT_MODEL', `text space ${chosen}`, `holds ${bytes.byteLength} bytes, ${record.featureDim} × ${record.dim} floats need ${record.featureDim * record.dim * 4}`);
  }
  const weight = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(weight.buffer).set(bytes);
  return new LearnedTextEncoder(chosen, weight, record);
}

export interface TrainTextSpaceOptions extends TextSpaceOptions {
  captionColumn: string;
  /** Label whose values keep patients together: validation holds out whole groups. */
  groupBy?: string;
  name?: string;
  featureDim?: number;
  /** Only these volumes (a fold's database); default all. */
  volumeIds?: readonly string[];
  /** Fraction of groups held out for early stopping (default 1/6; 0 trains on all for `maxSteps`). */
  validationFraction?: number;
}

export interface TrainedTextSpace {
  encoder: LearnedTextEncoder;
  projection: LearnedTextProjection;
  record: TextSpaceRecord;
}

/** Learns a text space from the captions that the index's volumes carry as labels. Does not save it. */
export function trainTextSpace(store: Store, options: TrainTextSpaceOptions): TrainedTextSpace {
  const featureDim = options.featureDim ?? 4096;
  const wanted = options.volumeIds ? new Set(options.volumeIds) : undefined;
  const volumes = store.listVolumes().filter((v) => !wanted || wanted.has(v.volumeId));
  const vectors = store.getVectors(volumes.map((v) => v.volumeId));
  const rows: Float32Array[] = [];
  const rowsOf = new Map<string, number[]>();
  for (const volume of volumes) {
    const v = vectors.get(volume.volumeId);
    if (!v) continue;
    const count = v.sliceIndices.length;
    const picks = count <= MAX_SLICES_PER_VOLUME ? [...Array(count).keys()] : Array.from({ length: MAX_SLICES_PER_VOLUME }, (_, i) => Math.round(((i + 0.5) * count) / MAX_SLICES_PER_VOLUME - 0.5));
    rowsOf.set(volume.volumeId, picks.map((p) => rows.push(v.vectors.subarray(p * v.dim, (p + 1) * v.dim)) - 1));
  }
  const byCaption = new Map<string, { text: string; group: string; rows: number[] }>();
  for (const volume of volumes) {
    const raw = volume.labels[options.captionColumn];
    if (raw === undefined || String(raw).trim() === '') continue;
    const text = String(raw).trim();
    const group = options.groupBy ? String(volume.labels[options.groupBy] ?? volume.volumeId) : volume.volumeId;
    const key = `${group}\u0000${text}`;
    const entry = byCaption.get(key) ?? { text, group, rows: [] };
    entry.rows.push(...(rowsOf.get(volume.volumeId) ?? []));
    byCaption.set(key, entry);
  }
  const captions = [...byCaption.values()].filter((c) => c.rows.length > 0);
  if (captions.length < 2) {
    throw new EncoderError('BAD_TEXT', options.captionColumn, `only ${captions.length} volume(s) carry a caption in label '${options.captionColumn}'; index with --labels FILE.csv whose column ${options.captionColumn} holds each volume's caption`);
  }
  const dim = store.dim;
  const images = new Float32Array(rows.length * dim);
  rows.forEach((row, i) => images.set(row, i * dim));
  const fraction = options.validationFraction ?? 1 / 6;
  const groups = [...new Set(captions.map((c) => c.group))].sort();
  const held = new Set(fraction > 0 && groups.length >= 4 ? groups.filter((g) => stableUnit(`${g}/${options.seed ?? 1}`) < fraction) : []);
  const train = captions.filter((c) => !held.has(c.group));
  const validation = captions.filter((c) => held.has(c.group));
  const features = (list: typeof captions) => list.map((c) => hashTextFeatures(c.text, { dim: featureDim }));
  const projection = trainTextProjection(
    { features: features(train), positives: train.map((c) => c.rows), images, dim, featureDim },
    { ...options, ...(validation.length > 0 ? { validation: { features: features(validation), positives: validation.map((c) => c.rows) } } : {}) },
  );
  const record: TextSpaceRecord = {
    encoderId: store.encoderId,
    featureDim,
    dim,
    features: TEXT_FEATURES_VERSION,
    captionColumn: options.captionColumn,
    groupBy: options.groupBy,
    captions: train.length,
    volumes: volumes.length,
    trainedAt: new Date().toISOString(),
    steps: projection.steps,
    trainLoss: projection.trainLoss,
    validationLoss: projection.validationLoss ?? null,
    validationCaptions: validation.length,
  };
  return { encoder: new LearnedTextEncoder(options.name ?? DEFAULT_TEXT_SPACE, projection.weight, record), projection, record };
}

export function saveTextSpace(store: Store, trained: TrainedTextSpace): void {
  const { weight } = trained.projection;
  const metadata = { ...trained.record, groupBy: trained.record.groupBy ?? null } as unknown as JsonObject;
  store.artifacts.put(TEXT_SPACE_KIND, trained.encoder.name, new Uint8Array(weight.buffer, weight.byteOffset, weight.byteLength), metadata);
}

/** A number in [0, 1) fixed by the text (which groups are held out must not change between runs). */
function stableUnit(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32BE(0) / 2 ** 32;
}
