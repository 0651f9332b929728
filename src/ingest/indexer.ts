import { createHash } from 'node:crypto';
import { embedVolume } from '../encode/embed-volume.js';
import type { Encoder } from '../encode/encoder.js';
import { SliceFeeder } from '../encode/slice-feeder.js';
import { errorLine, isExpectedError, isPersistentError } from '../errors.js';
import { readVolume, type ReadOptions } from '../io/read.js';
import type { Volume } from '../io/volume.js';
import { canonicalInt16Sha256 } from '../io/volume-stats.js';
import type { Store, VolumeRecord } from '../store/types.js';
import type { VolumeSourceRef } from './discover.js';

/**
 * Reads, embeds and adds volumes one at a time. Each volume enters the store in one transaction, so
 * a crash or a kill leaves every volume complete or absent; a rerun skips what is already there (by
 * content hash) and so resumes where the last run stopped. Any error inside one volume, even an
 * unexpected one, fails that volume with its reason and the run goes on; only persistent problems (a
 * broken model, the wrong index, a full disk), which every later volume would hit too, stop the run.
 */

export type VolumeOutcome =
  | { status: 'added'; source: VolumeSourceRef; volumeId: string; slices: number; replaced: string[] }
  | { status: 'unchanged'; source: VolumeSourceRef; volumeId: string }
  | { status: 'failed'; source: VolumeSourceRef; reason: string };

export interface IndexProgress {
  /** Volumes finished (any outcome) and to do. */
  volumesDone: number;
  volumesTotal: number;
  /** Slices embedded so far in this run. */
  slicesDone: number;
  current?: string;
}

export interface IndexOptions {
  store: Store;
  encoder: Encoder;
  /** Labels to store with a volume (e.g. from a CSV or `--label key=value`). */
  labelsFor?: (source: VolumeSourceRef) => Record<string, string | number>;
  /** NIfTI has no modality field; this is recorded instead (default 'CT'). */
  niftiModality?: string;
  /** How key images map to HU (window, offset, pixel spacing), passed to every read. */
  readOptions?: ReadOptions;
  batchSize?: number;
  /** Preprocessing worker: default from three CPU cores up (see SliceFeeder). */
  useWorker?: boolean;
  /** Reads a source (default: from disk). A PACS source fetches over DICOMweb instead. */
  read?: (source: VolumeSourceRef) => Promise<Volume>;
  /** Stop after the volume in hand (Ctrl-C); the index stays consistent either way. */
  signal?: AbortSignal;
  onProgress?: (progress: IndexProgress) => void;
  onOutcome?: (outcome: VolumeOutcome) => void;
}

export interface IndexSummary {
  outcomes: VolumeOutcome[];
  added: number;
  unchanged: number;
  failed: number;
  /** Volumes not reached because the run was stopped. */
  notReached: number;
  slicesEmbedded: number;
  seconds: number;
}

/** Pseudonymous and stable: a function of the voxels only, never of paths or DICOM identifiers. */
export function volumeIdOf(contentSha256: string): string {
  return `v${createHash('sha256').update(`mir3d-volume:${contentSha256}`).digest('hex').slice(0, 12)}`;
}

/** The outcome line names the source already, so an error's own `path: ` prefix is left out. */
function describeError(error: unknown): string {
  if (isExpectedError(error) && 'detail' in error && typeof error.detail === 'string') return `${error.detail} [${error.code}]`;
  return errorLine(error);
}

export function recordOf(volume: Volume, source: VolumeSourceRef, contentSha256: string, sliceCount: number, labels: Record<string, string | number>, niftiModality: string): VolumeRecord {
  return {
    volumeId: volumeIdOf(contentSha256),
    sourcePath: source.path,
    contentSha256,
    dims: [...volume.dims],
    spacingMm: [...volume.spacingMm],
    affineRas: [...volume.affineRas],
    modality: volume.source.format === 'dicom' || volume.modality !== 'unknown' ? volume.modality : niftiModality,
    ...(volume.source.bodyPart ? { bodyPart: volume.source.bodyPart } : {}),
    ...(volume.source.seriesKey ? { seriesKey: volume.source.seriesKey } : {}),
    labels,
    sliceCount,
    addedAt: new Date().toISOString(),
  };
}

/** Older entries of the same file or series whose content has since changed. */
function staleEntries(store: Store, source: VolumeSourceRef, currentId: string): string[] {
  return store
    .findBySource(source.path, source.seriesKey)
    .filter((record) => record.volumeId !== currentId)
    .map((record) => record.volumeId);
}

export async function indexVolumes(sources: VolumeSourceRef[], options: IndexOptions): Promise<IndexSummary> {
  const started = performance.now();
  const { store, encoder } = options;
  const feeder = new SliceFeeder(options.useWorker);
  const outcomes: VolumeOutcome[] = [];
  let slicesDone = 0;
  const report = (current?: string): void =>
    options.onProgress?.({ volumesDone: outcomes.length, volumesTotal: sources.length, slicesDone, ...(current ? { current } : {}) });
  const finish = (outcome: VolumeOutcome): void => {
    outcomes.push(outcome);
    options.onOutcome?.(outcome);
    report();
  };

  // The next file is read while the current one is embedded: decompression runs on libuv's threads.
  const read = options.read ?? ((source: VolumeSourceRef): Promise<Volume> => readVolume(source.path, { ...(options.readOptions ?? {}), ...(source.seriesKey ? { seriesKey: source.seriesKey } : {}) }));
  let pending: Promise<Volume> | undefined = sources.length > 0 ? read(sources[0]) : undefined;
  pending?.catch(() => undefined);
  try {
    for (let n = 0; n < sources.length && !options.signal?.aborted; n++) {
      const source = sources[n];
      const reading = pending!;
      pending = n + 1 < sources.length ? read(sources[n + 1]) : undefined;
      pending?.catch(() => undefined);
      report(source.path);
      try {
        const volume = await reading;
        const contentSha256 = canonicalInt16Sha256(volume);
        const existing = store.findByContent(contentSha256);
        if (existing) {
          for (const id of staleEntries(store, source, existing.volumeId)) store.removeVolume(id);
          finish({ status: 'unchanged', source, volumeId: existing.volumeId });
          continue;
        }
        const before = slicesDone;
        const embedded = await embedVolume(volume, encoder, {
          feeder,
          ...(options.batchSize ? { batchSize: options.batchSize } : {}),
          onProgress: (done) => {
            slicesDone = before + done;
            report(source.path);
          },
        });
        // A file that changed keeps the labels its earlier entry had, unless this run gives new values.
        const replaced = staleEntries(store, source, volumeIdOf(contentSha256));
        const inherited = Object.assign({}, ...replaced.map((id) => store.getVolume(id)?.labels ?? {})) as Record<string, string | number>;
        const labels = { ...inherited, ...(options.labelsFor?.(source) ?? {}) };
        const record = recordOf(volume, source, contentSha256, embedded.sliceIndices.length, labels, options.niftiModality ?? 'CT');
        store.addVolume(record, { volumeId: record.volumeId, dim: embedded.dim, sliceIndices: embedded.sliceIndices, zMm: embedded.zMm, vectors: embedded.vectors }, encoder.id);
        for (const id of replaced) store.removeVolume(id);
        finish({ status: 'added', source, volumeId: record.volumeId, slices: embedded.sliceIndices.length, replaced });
      } catch (error) {
        if (isPersistentError(error)) throw error;
        finish({ status: 'failed', source, reason: describeError(error) });
      }
    }
  } finally {
    await feeder.close();
  }
  const count = (status: VolumeOutcome['status']): number => outcomes.filter((o) => o.status === status).length;
  return {
    outcomes,
    added: count('added'),
    unchanged: count('unchanged'),
    failed: count('failed'),
    notReached: sources.length - outcomes.length,
    slicesEmbedded: slicesDone,
    seconds: (performance.now() - started) / 1000,
  };
}
