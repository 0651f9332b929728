import { readDicomSeriesFromBytes } from '../io/dicom.js';
import type { Volume } from '../io/volume.js';
import type { DicomWebClient, SeriesListing } from '../source/dicomweb/client.js';
import { DicomWebError } from '../source/dicomweb/errors.js';
import { instanceHeader, seriesSkipReason } from '../source/dicomweb/instance-headers.js';
import type { InstanceRef } from '../source/dicomweb/pacs-state.js';
import type { UidPseudonymizer } from '../source/dicomweb/pseudonym.js';

/**
 * One series from the PACS to a canonical volume, in memory: WADO-RS, then io's DICOM reader on the
 * instances' bytes. Shared by the sync and by search with a PACS series as the query.
 */
export interface FetchedSeries {
  /** Absent when the series was judged not worth decoding (`skipReason`). */
  volume?: Volume;
  /** Each instance's SOP Instance UID (keyed hash when pseudonymized) and z, for viewer links. */
  instances: InstanceRef[];
  skipReason?: string;
  bytes: number;
}

export interface FetchSeriesOptions {
  /** Pseudonymous key of the series for messages and the volume's seriesKey. */
  seriesKey: string;
  pseudonymizer?: UidPseudonymizer;
  /** Skip localizers and non-axial series instead of decoding them (the sync does; a query does not). */
  judge?: boolean;
}

export async function fetchSeriesVolume(client: DicomWebClient, listing: Pick<SeriesListing, 'studyInstanceUid' | 'seriesInstanceUid' | 'instanceCount'>, options: FetchSeriesOptions): Promise<FetchedSeries> {
  const { seriesKey, pseudonymizer } = options;
  const endpoint = client.endpoint.display;
  const parts = await client.fetchSeries(listing.studyInstanceUid, listing.seriesInstanceUid, seriesKey);
  const bytes = parts.reduce((sum, p) => sum + p.byteLength, 0);
  if (listing.instanceCount !== undefined && parts.length < listing.instanceCount) {
    throw new DicomWebError('UNDELIVERABLE', endpoint, `the PACS delivered ${parts.length} of the ${listing.instanceCount} instances of series ${seriesKey}`);
  }
  const headers = parts.map(instanceHeader);
  const instances: InstanceRef[] = headers
    .filter((h) => h.sopInstanceUid && h.positionMm)
    .map((h) => ({ sop: pseudonymizer ? pseudonymizer.pseudonym(h.sopInstanceUid!) : h.sopInstanceUid!, zMm: h.positionMm![2] }));
  const skipReason = options.judge ? seriesSkipReason(headers) : undefined;
  if (skipReason) return { instances, skipReason, bytes };
  const volume = await readDicomSeriesFromBytes(`${endpoint} series ${seriesKey}`, parts);
  // Keyed hashes replace the reader's plain series hash, so no unkeyed trace of the UID is stored.
  if (pseudonymizer) volume.source.seriesKey = seriesKey;
  return { volume, instances, bytes };
}

/**
 * The series a search names by `…/studies/S[/series/SE]`: that series, or the study's CT series with
 * the most instances. Fetched and decoded, never added to the index.
 */
export async function fetchQuerySeries(client: DicomWebClient, studyInstanceUid: string, seriesInstanceUid: string | undefined, seriesKeyOf: (uid: string) => string): Promise<FetchedSeries & { volume: Volume; seriesKey: string }> {
  let listing: Pick<SeriesListing, 'studyInstanceUid' | 'seriesInstanceUid' | 'instanceCount'>;
  if (seriesInstanceUid) {
    listing = { studyInstanceUid, seriesInstanceUid };
  } else {
    const candidates = (await client.searchSeries({ studyInstanceUid, modality: 'CT' })).sort((a, b) => (b.instanceCount ?? 0) - (a.instanceCount ?? 0));
    if (candidates.length === 0) throw new DicomWebError('NOT_FOUND', client.endpoint.display, 'the study is not in the PACS or has no CT series');
    listing = candidates[0];
  }
  const seriesKey = seriesKeyOf(listing.seriesInstanceUid);
  const fetched = await fetchSeriesVolume(client, listing, { seriesKey });
  if (fetched.instances.length === 0 && fetched.bytes === 0) throw new DicomWebError('NOT_FOUND', client.endpoint.display, `series ${seriesKey} has no instances in the PACS`);
  return { ...fetched, volume: fetched.volume!, seriesKey };
}
