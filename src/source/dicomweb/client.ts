import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { getMultipartBoundary, MultipartParseError, parseMultipartStream } from '@remix-run/multipart-parser/node';
import { Agent, request, type Dispatcher } from 'undici';
import { authorizationHeader, type DicomWebCredentials } from './credentials.js';
import { TAGS, numberOf, numbersOf, textOf, textsOf, type DicomJsonObject } from './dicom-json.js';
import { DicomWebError } from './errors.js';
import type { DicomWebEndpoint } from './url.js';

/**
 * A DICOMweb client for what mir3d needs: QIDO-RS series and instance searches, WADO-RS series
 * retrieval. Library choices, measured or read before writing this:
 * - `dicomweb-client` (the DICOMweb client of the OHIF/dcmjs projects) is built on XMLHttpRequest and
 *   does not run on Node without a browser polyfill, so it does not serve here.
 * - `undici` (Node's own HTTP client, the package behind global fetch) gives an Agent with a custom CA,
 *   a bounded connection pool and keep-alive; global fetch exposes none of these without it.
 * - `@remix-run/multipart-parser` parses any `multipart/*` stream (WADO-RS answers multipart/related)
 *   with limits on part count and size, so a misbehaving server cannot exhaust memory.
 * Messages name the endpoint and the series by its pseudonymous key, never by a UID.
 */

export interface SeriesFilter {
  /** Modality to ask for (default CT). */
  modality?: string;
  /** StudyDate range, DICOM form `YYYYMMDD-YYYYMMDD` (either side may be empty). */
  studyDate?: string;
  bodyPart?: string;
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
}

export interface SeriesListing {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  modality?: string;
  bodyPart?: string;
  studyDate?: string;
  /** NumberOfSeriesRelatedInstances, when the server reports it. */
  instanceCount?: number;
}

export interface InstanceListing {
  sopInstanceUid: string;
  instanceNumber?: number;
  /** ImagePositionPatient (LPS mm), when the server reports it. */
  positionMm?: [number, number, number];
  orientation?: number[];
  imageType: string[];
}

export interface DicomWebClientOptions {
  credentials: DicomWebCredentials;
  /** PEM file of the CA(s) to trust for https, in addition to none (a hospital's own CA). */
  caFile?: string;
  /** Connections kept to the server (bounds how hard a sync presses the PACS). */
  connections?: number;
  /** Largest series accepted, in bytes (default 4 GiB). */
  maxSeriesBytes?: number;
  /** Per request: until headers arrive, and between body chunks. */
  timeoutMs?: number;
}

const DEFAULT_MAX_SERIES_BYTES = 4 * 1024 ** 3;
const PAGE_SIZE = 500;
/** Retries of a GET after a dropped connection or a 502/503/504, with 0.5 s, 1 s between them: enough
 * to ride out a PACS restart's first seconds, short enough that a PACS that is gone is said so quickly. */
const RETRY_DELAYS_MS = [500, 1000];

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED']);
const TLS_CODE = /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/;

function errorCode(error: unknown): string {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current && typeof current === 'object' && !seen.has(current)) {
    seen.add(current);
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return '';
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class DicomWebClient {
  private readonly agent: Agent;
  private readonly authorization: string | undefined;
  private readonly maxSeriesBytes: number;
  private readonly timeoutMs: number;

  constructor(
    readonly endpoint: DicomWebEndpoint,
    options: DicomWebClientOptions,
  ) {
    let ca: string | undefined;
    if (options.caFile) {
      try {
        ca = readFileSync(options.caFile, 'utf8');
      } catch {
        throw new DicomWebError('TLS', options.caFile, 'CA file cannot be read');
      }
    }
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.agent = new Agent({
      connections: options.connections ?? 4,
      connect: { timeout: 10_000, ...(ca ? { ca } : {}) },
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
    });
    this.authorization = authorizationHeader(options.credentials);
    this.maxSeriesBytes = options.maxSeriesBytes ?? DEFAULT_MAX_SERIES_BYTES;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  /** Series matching the filter, all pages. */
  async searchSeries(filter: SeriesFilter = {}): Promise<SeriesListing[]> {
    const query = new URLSearchParams();
    if (filter.modality) query.set('Modality', filter.modality);
    if (filter.studyDate) query.set('StudyDate', filter.studyDate);
    if (filter.bodyPart) query.set('BodyPartExamined', filter.bodyPart);
    if (filter.studyInstanceUid) query.set('StudyInstanceUID', filter.studyInstanceUid);
    if (filter.seriesInstanceUid) query.set('SeriesInstanceUID', filter.seriesInstanceUid);
    for (const tag of [TAGS.studyDate, TAGS.bodyPart, TAGS.seriesInstances, TAGS.modality]) query.append('includefield', tag);
    const listings: SeriesListing[] = [];
    for (let offset = 0; ; offset += PAGE_SIZE) {
      query.set('limit', String(PAGE_SIZE));
      query.set('offset', String(offset));
      const page = await this.getJson(`/series?${query.toString()}`, 'QIDO-RS series search');
      for (const object of page) {
        const studyInstanceUid = textOf(object, TAGS.studyInstanceUid);
        const seriesInstanceUid = textOf(object, TAGS.seriesInstanceUid);
        if (!studyInstanceUid || !seriesInstanceUid) continue;
        const listing: SeriesListing = { studyInstanceUid, seriesInstanceUid };
        const modality = textOf(object, TAGS.modality);
        const bodyPart = textOf(object, TAGS.bodyPart);
        const studyDate = textOf(object, TAGS.studyDate);
        const instanceCount = numberOf(object, TAGS.seriesInstances);
        if (modality) listing.modality = modality;
        if (bodyPart) listing.bodyPart = bodyPart;
        if (studyDate) listing.studyDate = studyDate;
        if (instanceCount !== undefined) listing.instanceCount = instanceCount;
        listings.push(listing);
      }
      if (page.length < PAGE_SIZE) return listings;
    }
  }

  /** The instances of one series (UIDs, and where the server keeps them in its index, position and
   * orientation; nothing that would make a PACS like Orthanc open every file). */
  async searchInstances(studyInstanceUid: string, seriesInstanceUid: string, seriesKey: string): Promise<InstanceListing[]> {
    const query = new URLSearchParams();
    for (const tag of [TAGS.imagePosition, TAGS.imageOrientation, TAGS.instanceNumber]) query.append('includefield', tag);
    const listings: InstanceListing[] = [];
    for (let offset = 0; ; offset += PAGE_SIZE) {
      query.set('limit', String(PAGE_SIZE));
      query.set('offset', String(offset));
      const page = await this.getJson(`/studies/${encodeURIComponent(studyInstanceUid)}/series/${encodeURIComponent(seriesInstanceUid)}/instances?${query.toString()}`, `QIDO-RS instance search of series ${seriesKey}`);
      for (const object of page) {
        const sopInstanceUid = textOf(object, TAGS.sopInstanceUid);
        if (!sopInstanceUid) continue;
        const listing: InstanceListing = { sopInstanceUid, imageType: textsOf(object, TAGS.imageType).map((v) => v.toUpperCase()) };
        const position = numbersOf(object, TAGS.imagePosition, 3);
        const orientation = numbersOf(object, TAGS.imageOrientation, 6);
        const instanceNumber = numberOf(object, TAGS.instanceNumber);
        if (position) listing.positionMm = position as [number, number, number];
        if (orientation) listing.orientation = orientation;
        if (instanceNumber !== undefined) listing.instanceNumber = instanceNumber;
        listings.push(listing);
      }
      if (page.length < PAGE_SIZE) return listings;
    }
  }

  /**
   * WADO-RS: every instance of a series as DICOM Part 10 bytes, in memory only. The stored transfer
   * syntax is asked for (`transfer-syntax=*`) so the PACS does not transcode: the bytes are those it
   * holds, as a file export would give them.
   */
  async fetchSeries(studyInstanceUid: string, seriesInstanceUid: string, seriesKey: string): Promise<Uint8Array[]> {
    const path = `/studies/${encodeURIComponent(studyInstanceUid)}/series/${encodeURIComponent(seriesInstanceUid)}`;
    const what = `WADO-RS retrieval of series ${seriesKey}`;
    return this.withRetries(what, async () => {
      const response = await this.send(path, 'multipart/related; type="application/dicom"; transfer-syntax=*', what);
      if (response.statusCode === 404) {
        await response.body.dump();
        throw new DicomWebError('NOT_FOUND', this.endpoint.display, `series ${seriesKey} is not in the PACS (WADO-RS answered 404)`);
      }
      await this.requireOk(response, what, 'UNDELIVERABLE');
      const contentType = String(response.headers['content-type'] ?? '');
      const boundary = getMultipartBoundary(contentType);
      if (!/^multipart\/related/i.test(contentType) || !boundary) {
        await response.body.dump();
        throw new DicomWebError('NOT_DICOMWEB', this.endpoint.display, `${what} answered ${contentType || 'no content type'}, not multipart/related`);
      }
      const parts: Uint8Array[] = [];
      try {
        for await (const part of parseMultipartStream(response.body as unknown as Readable, {
          boundary,
          maxFileSize: Math.min(this.maxSeriesBytes, 2 ** 31 - 1),
          maxTotalSize: this.maxSeriesBytes,
          maxParts: 1_000_000,
          maxHeaderSize: 16 * 1024,
        })) {
          parts.push(part.bytes);
        }
      } catch (error) {
        if (error instanceof MultipartParseError && /exceed/i.test(error.message)) {
          throw new DicomWebError('TOO_LARGE', this.endpoint.display, `series ${seriesKey} exceeds the ${Math.round(this.maxSeriesBytes / 1024 ** 2)} MiB limit for one series`);
        }
        const cause = errorCode(error) || (error instanceof Error ? error.message : String(error));
        if (NETWORK_CODES.has(errorCode(error)) && !(await this.answers())) throw this.transportError(error, what, 'UNREACHABLE');
        throw new DicomWebError('UNDELIVERABLE', this.endpoint.display, `${what} broke off after ${parts.length} instance(s) (${cause})`);
      }
      return parts;
    });
  }

  /** Whether the server still answers at all: tells "it broke off this series" from "it is gone". */
  private async answers(): Promise<boolean> {
    try {
      const response = await this.send('/studies?limit=1', 'application/dicom+json', 'probe');
      await response.body.dump();
      return true;
    } catch {
      return false;
    }
  }

  private async getJson(path: string, what: string): Promise<DicomJsonObject[]> {
    return this.withRetries(what, async () => {
      const response = await this.send(path, 'application/dicom+json, application/json;q=0.9', what);
      if (response.statusCode === 204) {
        await response.body.dump();
        return [];
      }
      await this.requireOk(response, what, 'NOT_DICOMWEB');
      const contentType = String(response.headers['content-type'] ?? '');
      if (!/json/i.test(contentType)) {
        await response.body.dump();
        throw new DicomWebError('NOT_DICOMWEB', this.endpoint.display, `${what} answered ${contentType.split(';')[0] || 'no content type'}, not DICOM JSON: is this the DICOMweb root?`);
      }
      let parsed: unknown;
      try {
        parsed = await response.body.json();
      } catch (error) {
        if (NETWORK_CODES.has(errorCode(error))) throw this.transportError(error, what, 'UNREACHABLE');
        throw new DicomWebError('NOT_DICOMWEB', this.endpoint.display, `${what} answered malformed JSON`);
      }
      if (!Array.isArray(parsed)) throw new DicomWebError('NOT_DICOMWEB', this.endpoint.display, `${what} answered JSON that is not a DICOM JSON array`);
      return parsed as DicomJsonObject[];
    });
  }

  private async send(path: string, accept: string, what: string): Promise<Dispatcher.ResponseData> {
    const headers: Record<string, string> = { accept };
    if (this.authorization) headers.authorization = this.authorization;
    try {
      return await request(`${this.endpoint.baseUrl}${path}`, { method: 'GET', headers, dispatcher: this.agent });
    } catch (error) {
      throw this.transportError(error, what, 'UNREACHABLE');
    }
  }

  private async requireOk(response: Dispatcher.ResponseData, what: string, otherwise: 'NOT_DICOMWEB' | 'UNDELIVERABLE'): Promise<void> {
    const status = response.statusCode;
    if (status >= 200 && status < 300) return;
    await response.body.dump();
    if (status === 401 || status === 403) {
      throw new DicomWebError('UNAUTHORIZED', this.endpoint.display, `the server refused the credentials (HTTP ${status}); check ${'MIR3D_DICOMWEB_USER/PASSWORD, MIR3D_DICOMWEB_TOKEN or the credentials file'}`);
    }
    if (status === 502 || status === 503 || status === 504) throw new DicomWebError('UNREACHABLE', this.endpoint.display, `${what} answered HTTP ${status} (the PACS or a proxy in front of it is unavailable)`);
    if (otherwise === 'NOT_DICOMWEB' && (status === 404 || status === 405 || status === 400)) {
      throw new DicomWebError('NOT_DICOMWEB', this.endpoint.display, `${what} answered HTTP ${status}: no DICOMweb service at this address (is the path the DICOMweb root, e.g. /dicom-web?)`);
    }
    throw new DicomWebError(otherwise, this.endpoint.display, `${what} answered HTTP ${status}`);
  }

  private transportError(error: unknown, what: string, fallback: 'UNREACHABLE' | 'UNDELIVERABLE'): DicomWebError {
    if (error instanceof DicomWebError) return error;
    const code = errorCode(error);
    if (TLS_CODE.test(code)) return new DicomWebError('TLS', this.endpoint.display, `TLS failed (${code}); give the hospital's CA with --ca-file`);
    if (NETWORK_CODES.has(code) || fallback === 'UNREACHABLE') {
      return new DicomWebError('UNREACHABLE', this.endpoint.display, `${what} failed: the PACS cannot be reached (${code || 'connection lost'})`);
    }
    return new DicomWebError(fallback, this.endpoint.display, `${what} failed (${code || (error instanceof Error ? error.message : String(error))})`);
  }

  /** Retries transient failures; the last error is what the caller sees. */
  private async withRetries<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    for (let n = 0; ; n++) {
      try {
        return await attempt();
      } catch (error) {
        const transient = error instanceof DicomWebError && error.code === 'UNREACHABLE';
        if (!transient || n >= RETRY_DELAYS_MS.length) throw error;
        await sleep(RETRY_DELAYS_MS[n]);
      }
    }
  }
}
