import { DEFAULT_MIN_SLICES, DEFAULT_SYNC_CONCURRENCY, syncDicomWeb, type DicomWebSyncSummary, type SeriesOutcome } from '../ingest/dicomweb-sync.js';
import type { EncoderSpec } from '../ingest/encoder-spec.js';
import { DicomWebError } from '../source/dicomweb/errors.js';
import { PacsState } from '../source/dicomweb/pacs-state.js';
import { pseudonymizerFromFile, type UidPseudonymizer } from '../source/dicomweb/pseudonym.js';
import { parseDicomWebUrl } from '../source/dicomweb/url.js';
import { checkViewerTemplate } from '../source/dicomweb/viewer-link.js';
import { dicomWebClient } from './dicomweb-client.js';
import type { DicomWebCliOptions } from './dicomweb-options.js';
import { openIndex } from '../ingest/open-index.js';
import { startProgress } from './progress.js';

export interface DicomWebIndexOptions extends DicomWebCliOptions {
  db: string;
  modality: string;
  studyDate?: string;
  bodyPart?: string;
  pseudonymize?: string;
  viewerUrl?: string;
  concurrency?: number;
  minSlices?: number;
  labels: Record<string, string | number>;
  batch: number;
  worker?: boolean;
  json?: boolean;
  progress: boolean;
}

function outcomeLine(o: SeriesOutcome): string {
  const series = `series ${o.seriesKey}`;
  if (o.status === 'indexed') return `  indexed    ${o.volumeId}  ${String(o.slices).padStart(5)} slices  ${series}${o.replaced.length ? `  (replaces ${o.replaced.join(', ')})` : ''}`;
  if (o.status === 'unchanged') return `  unchanged  ${o.volumeId}                ${series}${o.fetched ? '' : ' (not fetched)'}`;
  if (o.status === 'skipped') return `  skipped    ${series}: ${o.reason}`;
  return `  failed     ${series}: ${o.reason}`;
}

function checkPseudonymization(state: PacsState, pseudonymizer: UidPseudonymizer | undefined, db: string): void {
  const known = state.settings().pseudonymKeyId;
  const given = pseudonymizer?.keyId;
  // An index never synced before takes the setting of its first sync.
  if (state.settings().endpoint === undefined && known === undefined) {
    if (given) state.setSetting('pseudonymKeyId', given);
    return;
  }
  if ((known ?? '') !== (given ?? '')) {
    const wanted = known ? 'the --pseudonymize secret it was synced with' : 'no --pseudonymize';
    throw new DicomWebError('CREDENTIALS', db, `this index holds ${known ? 'pseudonymized' : 'plain'} UIDs; rerun with ${wanted} (or use another --db)`);
  }
}

/** `mir3d index dicomweb+http://…/dicom-web --db DB`: sync a PACS into the index. */
export async function indexFromDicomWeb(url: string, requested: EncoderSpec | undefined, options: DicomWebIndexOptions): Promise<void> {
  const address = parseDicomWebUrl(url);
  if (options.viewerUrl) {
    const problem = checkViewerTemplate(options.viewerUrl);
    if (problem) throw new DicomWebError('BAD_URL', '--viewer-url', problem);
  }
  const pseudonymizer = options.pseudonymize ? pseudonymizerFromFile(options.pseudonymize) : undefined;
  const client = dicomWebClient(address.endpoint, options, (options.concurrency ?? DEFAULT_SYNC_CONCURRENCY) + 1);
  const log = (m: string): void => {
    process.stderr.write(`${m}\n`);
  };
  const index = await openIndex(options.db, { ...(requested ? { spec: requested } : {}), onStatus: log });
  const { store } = index;
  const encoder = await index.encoder();
  const state = new PacsState(store.state);
  const stop = new AbortController();
  const onSigint = (): void => {
    if (stop.signal.aborted) process.exit(130);
    process.stderr.write('\nstopping after the current series (Ctrl-C again to stop now)\n');
    stop.abort();
  };
  process.on('SIGINT', onSigint);
  let progress = startProgress('syncing', 0, 'series', false);
  let summary: DicomWebSyncSummary;
  let totals: { volumes: number; slices: number };
  try {
    checkPseudonymization(state, pseudonymizer, options.db);
    state.setSetting('endpoint', address.endpoint.display);
    if (options.viewerUrl) state.setSetting('viewerTemplate', options.viewerUrl);
    let total = -1;
    summary = await syncDicomWeb({
      client,
      store,
      encoder,
      state,
      filter: {
        modality: options.modality,
        ...(options.studyDate ? { studyDate: options.studyDate } : {}),
        ...(options.bodyPart ? { bodyPart: options.bodyPart } : {}),
        ...(address.studyInstanceUid ? { studyInstanceUid: address.studyInstanceUid } : {}),
        ...(address.seriesInstanceUid ? { seriesInstanceUid: address.seriesInstanceUid } : {}),
      },
      ...(pseudonymizer ? { pseudonymizer } : {}),
      concurrency: options.concurrency ?? DEFAULT_SYNC_CONCURRENCY,
      minSlices: options.minSlices ?? DEFAULT_MIN_SLICES,
      labels: options.labels,
      batchSize: options.batch,
      ...(options.worker !== undefined ? { useWorker: options.worker } : {}),
      signal: stop.signal,
      onProgress: (p) => {
        if (p.seriesTotal !== total) {
          progress.stop();
          total = p.seriesTotal;
          progress = startProgress('syncing', total, 'series', options.progress);
        }
        progress.update(p.seriesDone, `${p.slicesDone} slices, ${(p.bytesFetched / 1024 ** 2).toFixed(0)} MB fetched`);
      },
    });
    totals = store.stats();
    // The store updates its HNSW graph when its size calls for one, so that no search pays for it.
    await store.prepareForSearch({ onWork: (what) => options.progress && log(`${what}…`) });
  } finally {
    progress.stop();
    process.off('SIGINT', onSigint);
    await index.close();
    await client.close();
  }
  const { stoppedBy, ...rest } = summary;
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ db: options.db, source: address.endpoint.display, encoderId: encoder.id, ...rest, ...(stoppedBy ? { stoppedBy: { code: stoppedBy.code, message: stoppedBy.message } } : {}), index: totals }, null, 2)}\n`);
  } else {
    const megabytes = summary.bytesFetched / 1024 ** 2;
    const lines = summary.outcomes.map(outcomeLine);
    const notFetched = summary.outcomes.filter((o) => o.status === 'unchanged' && !o.fetched).length;
    lines.push(
      '',
      `${summary.seriesFound} series found at ${address.endpoint.display}: ${summary.indexed} indexed, ${summary.unchanged} unchanged (${notFetched} not fetched), ${summary.skipped} skipped, ${summary.failed} failed${summary.notReached ? `, ${summary.notReached} not reached` : ''}`,
      `${summary.seriesFetched} series fetched (${megabytes.toFixed(1)} MB) in ${summary.seconds.toFixed(1)} s: ${(summary.seriesFetched / Math.max(summary.seconds, 1e-3)).toFixed(2)} series/s, ${(megabytes / Math.max(summary.seconds, 1e-3)).toFixed(1)} MB/s; ${summary.slicesEmbedded} slices embedded`,
      `index ${options.db}: ${totals.volumes} volumes, ${totals.slices} slices, encoder ${encoder.name}`,
    );
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  if (stoppedBy) {
    // The summary above says what is done; this line says why the rest is not, and that a rerun finishes.
    throw new DicomWebError(stoppedBy.code, stoppedBy.where, `${stoppedBy.detail}; the ${summary.indexed + summary.unchanged} series done stay indexed, rerun to finish the ${summary.notReached} left`);
  }
  if (summary.failed > 0 || summary.notReached > 0) process.exitCode = 1;
}
