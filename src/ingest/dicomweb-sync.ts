import type { Encoder } from '../encode/encoder.js';
import { seriesKeyOf } from '../io/dicom.js';
import { VolumeReadError } from '../io/errors.js';
import type { DicomWebClient, SeriesFilter, SeriesListing } from '../source/dicomweb/client.js';
import { DicomWebError, isFatalDicomWebError } from '../source/dicomweb/errors.js';
import type { PacsState, PacsVolumeRef } from '../source/dicomweb/pacs-state.js';
import type { UidPseudonymizer } from '../source/dicomweb/pseudonym.js';
import type { Store } from '../store/types.js';
import { fetchSeriesVolume, type FetchedSeries } from './dicomweb-fetch.js';
import type { VolumeSourceRef } from './discover.js';
import { indexVolumes } from './indexer.js';

/**
 * Incremental sync of a PACS into an index over DICOMweb. QIDO-RS lists the series; a series whose
 * fingerprint (instance count) is what the last sync saw, and whose volume is still indexed, is not
 * fetched again. The others are fetched over WADO-RS a few at a time (bounded: memory and the PACS's
 * load), decoded in memory by io's DICOM reader (nothing is written to disk but the index), and go
 * through the same indexer as files, one store transaction each. A series' outcome is recorded only
 * after its volume is in the store, so a run stopped anywhere (the PACS gone, Ctrl-C, a crash) leaves
 * every series done or to do; a rerun finds already indexed content by hash, so nothing is duplicated.
 */

export type SeriesOutcome =
  | { status: 'indexed'; seriesKey: string; volumeId: string; slices: number; replaced: string[] }
  | { status: 'unchanged'; seriesKey: string; volumeId: string; fetched: boolean }
  | { status: 'skipped'; seriesKey: string; reason: string }
  | { status: 'failed'; seriesKey: string; reason: string };

export interface SyncProgress {
  seriesDone: number;
  seriesTotal: number;
  slicesDone: number;
  bytesFetched: number;
}

export interface DicomWebSyncOptions {
  client: DicomWebClient;
  store: Store;
  encoder: Encoder;
  state: PacsState;
  filter?: SeriesFilter;
  pseudonymizer?: UidPseudonymizer;
  /** Series fetched (and decoded) at once; default 3. */
  concurrency?: number;
  /** Series with fewer instances are skipped (default 10). */
  minSlices?: number;
  labels?: Record<string, string | number>;
  batchSize?: number;
  useWorker?: boolean;
  signal?: AbortSignal;
  onProgress?: (progress: SyncProgress) => void;
  onOutcome?: (outcome: SeriesOutcome) => void;
}

export interface DicomWebSyncSummary {
  outcomes: SeriesOutcome[];
  seriesFound: number;
  indexed: number;
  unchanged: number;
  skipped: number;
  failed: number;
  /** Series not reached because the run stopped (Ctrl-C or the PACS went away). */
  notReached: number;
  seriesFetched: number;
  bytesFetched: number;
  slicesEmbedded: number;
  seconds: number;
  /** Why the run stopped early, when the PACS went away or refused us part-way. */
  stoppedBy?: DicomWebError;
}

export const DEFAULT_MIN_SLICES = 10;
export const DEFAULT_SYNC_CONCURRENCY = 3;

interface PlannedSeries {
  listing: SeriesListing;
  /** What the index keeps for the series: its UID, or a keyed hash of it. */
  ref: string;
  /** Pseudonymous key for messages and `VolumeRecord.seriesKey`. */
  key: string;
  fingerprint: string;
}

/** Runs `work` for items in order with at most `limit` started ahead of the one consumed. */
class Prefetcher<T, R> {
  private readonly started = new Map<number, Promise<R>>();
  private next = 0;

  constructor(
    private readonly items: T[],
    private readonly limit: number,
    private readonly work: (item: T) => Promise<R>,
  ) {}

  take(index: number): Promise<R> {
    while (this.next < this.items.length && this.next < index + this.limit) {
      const promise = this.work(this.items[this.next]);
      promise.catch(() => undefined);
      this.started.set(this.next++, promise);
    }
    const promise = this.started.get(index)!;
    this.started.delete(index);
    return promise;
  }
}

function fingerprintOf(listing: SeriesListing): string {
  return `instances=${listing.instanceCount ?? '?'}`;
}

export async function syncDicomWeb(options: DicomWebSyncOptions): Promise<DicomWebSyncSummary> {
  const started = performance.now();
  const { client, store, encoder, state, pseudonymizer } = options;
  const endpoint = client.endpoint.display;
  const minSlices = options.minSlices ?? DEFAULT_MIN_SLICES;
  const outcomes: SeriesOutcome[] = [];
  let slicesDone = 0;
  let bytesFetched = 0;
  let seriesFetched = 0;

  const listings = await client.searchSeries({ modality: 'CT', ...options.filter });
  const total = listings.length;
  const report = (): void => options.onProgress?.({ seriesDone: outcomes.length, seriesTotal: total, slicesDone, bytesFetched });
  const finish = (outcome: SeriesOutcome): void => {
    outcomes.push(outcome);
    options.onOutcome?.(outcome);
    report();
  };

  // Series the last sync already handled, unchanged since, are settled without a request.
  const toFetch: PlannedSeries[] = [];
  for (const listing of listings) {
    const ref = pseudonymizer ? pseudonymizer.pseudonym(listing.seriesInstanceUid) : listing.seriesInstanceUid;
    const key = pseudonymizer ? ref.slice(1, 13) : seriesKeyOf(listing.seriesInstanceUid);
    const planned: PlannedSeries = { listing, ref, key, fingerprint: fingerprintOf(listing) };
    const prior = state.series(ref);
    const same = prior?.fingerprint === planned.fingerprint && listing.instanceCount !== undefined;
    if (same && prior?.status === 'indexed' && prior.volumeId && store.getVolume(prior.volumeId)) {
      finish({ status: 'unchanged', seriesKey: key, volumeId: prior.volumeId, fetched: false });
    } else if (same && prior?.status === 'skipped') {
      finish({ status: 'skipped', seriesKey: key, reason: prior.reason ?? 'skipped at the last sync' });
    } else if (listing.instanceCount !== undefined && listing.instanceCount < minSlices) {
      const reason = `${listing.instanceCount} instance(s), fewer than ${minSlices} slices`;
      state.recordSeries({ seriesRef: ref, fingerprint: planned.fingerprint, status: 'skipped', reason });
      finish({ status: 'skipped', seriesKey: key, reason });
    } else {
      toFetch.push(planned);
    }
  }

  const fetchOne = async (planned: PlannedSeries): Promise<FetchedSeries> => {
    const fetched = await fetchSeriesVolume(client, planned.listing, { seriesKey: planned.key, judge: true, ...(pseudonymizer ? { pseudonymizer } : {}) });
    bytesFetched += fetched.bytes;
    seriesFetched++;
    return fetched;
  };

  const prefetch = new Prefetcher(toFetch, Math.max(1, options.concurrency ?? DEFAULT_SYNC_CONCURRENCY), fetchOne);
  let stoppedBy: DicomWebError | undefined;
  let n = 0;
  for (; n < toFetch.length && !options.signal?.aborted; n++) {
    const planned = toFetch[n];
    let fetched: FetchedSeries;
    try {
      fetched = await prefetch.take(n);
    } catch (error) {
      if (error instanceof DicomWebError && isFatalDicomWebError(error)) {
        stoppedBy = error;
        break;
      }
      const reason = error instanceof DicomWebError || error instanceof VolumeReadError ? `${error.detail} [${error.code}]` : String(error);
      state.recordSeries({ seriesRef: planned.ref, fingerprint: planned.fingerprint, status: 'failed', reason });
      finish({ status: 'failed', seriesKey: planned.key, reason });
      continue;
    }
    if (fetched.skipReason || !fetched.volume) {
      const reason = fetched.skipReason ?? 'nothing to index';
      state.recordSeries({ seriesRef: planned.ref, fingerprint: planned.fingerprint, status: 'skipped', reason });
      finish({ status: 'skipped', seriesKey: planned.key, reason });
      continue;
    }
    const volume = fetched.volume;
    fetched.volume = undefined;
    const source: VolumeSourceRef = { path: endpoint, kind: 'dicom', seriesKey: planned.key };
    const before = slicesDone;
    const summary = await indexVolumes([source], {
      store,
      encoder,
      read: async () => volume,
      labelsFor: () => ({ ...(options.labels ?? {}) }),
      ...(options.batchSize ? { batchSize: options.batchSize } : {}),
      ...(options.useWorker !== undefined ? { useWorker: options.useWorker } : {}),
      onProgress: (p) => {
        slicesDone = before + p.slicesDone;
        report();
      },
    });
    const outcome = summary.outcomes[0];
    const link = (volumeId: string): PacsVolumeRef => ({
      volumeId,
      endpoint,
      study: pseudonymizer ? pseudonymizer.pseudonym(planned.listing.studyInstanceUid) : planned.listing.studyInstanceUid,
      series: planned.ref,
      pseudonymized: pseudonymizer !== undefined,
      instances: fetched.instances,
    });
    if (outcome.status === 'added') {
      state.recordSeries({ seriesRef: planned.ref, fingerprint: planned.fingerprint, status: 'indexed', volumeId: outcome.volumeId }, link(outcome.volumeId));
      state.forgetVolumes(outcome.replaced);
      finish({ status: 'indexed', seriesKey: planned.key, volumeId: outcome.volumeId, slices: outcome.slices, replaced: outcome.replaced });
    } else if (outcome.status === 'unchanged') {
      state.recordSeries({ seriesRef: planned.ref, fingerprint: planned.fingerprint, status: 'indexed', volumeId: outcome.volumeId }, link(outcome.volumeId));
      finish({ status: 'unchanged', seriesKey: planned.key, volumeId: outcome.volumeId, fetched: true });
    } else {
      state.recordSeries({ seriesRef: planned.ref, fingerprint: planned.fingerprint, status: 'failed', reason: outcome.reason });
      finish({ status: 'failed', seriesKey: planned.key, reason: outcome.reason });
    }
  }

  const count = (status: SeriesOutcome['status']): number => outcomes.filter((o) => o.status === status).length;
  return {
    outcomes,
    seriesFound: total,
    indexed: count('indexed'),
    unchanged: count('unchanged'),
    skipped: count('skipped'),
    failed: count('failed'),
    notReached: total - outcomes.length,
    seriesFetched,
    bytesFetched,
    slicesEmbedded: slicesDone,
    seconds: (performance.now() - started) / 1000,
    ...(stoppedBy ? { stoppedBy } : {}),
  };
}
