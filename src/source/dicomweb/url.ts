import { DicomWebError } from './errors.js';

/**
 * `dicomweb+http://host:port/dicom-web` (a PACS's DICOMweb root) and, for search by a series in it,
 * `…/studies/<StudyInstanceUID>[/series/<SeriesInstanceUID>]`. The `dicomweb+` prefix tells a PACS from a
 * file path on the command line. Credentials in the address are refused: command lines end up in shell
 * histories and process lists.
 */

export const DICOMWEB_SCHEMES = ['dicomweb+http:', 'dicomweb+https:'] as const;

export interface DicomWebEndpoint {
  /** The DICOMweb root as a plain http(s) URL, without a trailing slash. */
  baseUrl: string;
  /** How the endpoint is named in messages and stored as a volume's source: the address as given,
   * without study or series UIDs. */
  display: string;
}

export interface DicomWebAddress {
  endpoint: DicomWebEndpoint;
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
}

export function isDicomWebUrl(text: string): boolean {
  return /^dicomweb\+https?:\/\//i.test(text);
}

const UID = /^[0-9]+(\.[0-9]+)*$/;

/** Where a UID would appear in a message, say this instead. */
const HIDDEN = '<uid>';

export function parseDicomWebUrl(text: string): DicomWebAddress {
  const shown = text.replace(/\d+(?:\.\d+){3,}/g, HIDDEN).replace(/\/\/[^/@]*@/, '//<credentials>@');
  let url: URL;
  try {
    url = new URL(text.replace(/^dicomweb\+/i, ''));
  } catch {
    throw new DicomWebError('BAD_URL', shown, 'not a valid address (expected dicomweb+http://HOST:PORT/PATH)');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new DicomWebError('BAD_URL', shown, 'the scheme must be dicomweb+http or dicomweb+https');
  if (url.username || url.password) {
    throw new DicomWebError('BAD_URL', shown, 'credentials do not belong in the address (command lines are logged); set MIR3D_DICOMWEB_USER and MIR3D_DICOMWEB_PASSWORD, MIR3D_DICOMWEB_TOKEN, or use --credentials FILE');
  }
  if (url.search || url.hash) throw new DicomWebError('BAD_URL', shown, 'the address must not carry a query string or fragment');
  const segments = url.pathname.split('/').filter((s) => s !== '').map(decodeURIComponent);
  const studiesAt = segments.indexOf('studies');
  const rootSegments = studiesAt >= 0 ? segments.slice(0, studiesAt) : segments;
  const rest = studiesAt >= 0 ? segments.slice(studiesAt) : [];
  const basePath = rootSegments.map(encodeURIComponent).join('/');
  const baseUrl = `${url.protocol}//${url.host}${basePath ? `/${basePath}` : ''}`;
  const endpoint: DicomWebEndpoint = { baseUrl, display: `dicomweb+${baseUrl}` };
  if (rest.length === 0) return { endpoint };
  const [, study, seriesWord, series, ...extra] = rest;
  const wellFormed = study !== undefined && UID.test(study) && (seriesWord === undefined || (seriesWord === 'series' && series !== undefined && UID.test(series))) && extra.length === 0;
  if (!wellFormed) {
    throw new DicomWebError('BAD_URL', shown, 'expected …/studies/<StudyInstanceUID> or …/studies/<StudyInstanceUID>/series/<SeriesInstanceUID> after the DICOMweb root');
  }
  return { endpoint, studyInstanceUid: study, ...(series !== undefined ? { seriesInstanceUid: series } : {}) };
}
