/**
 * Scanning a DICOM folder: every file → a parsed slice header, or counted as skipped; series grouped by a
 * pseudonymous key. No pixels are decoded here.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { DataSet } from 'dicom-parser';
import { VolumeReadError } from './errors.js';
import { defaultMaxVolumeBytes, readRegularFile, tooLargeError } from './files.js';
import type { Vec3 } from './volume.js';

// dicom-parser is UMD/CommonJS; require() is the one import form that works under Node's ESM loader
// without relying on its guesswork about CommonJS named exports.
const require = createRequire(import.meta.url);
export const dicomParser = require('dicom-parser') as typeof import('dicom-parser');

export interface DicomSeriesSummary {
  /** First 12 hex digits of SHA-256(SeriesInstanceUID): stable and pseudonymous. */
  seriesKey: string;
  modality: string;
  sliceCount: number;
  rows: number;
  cols: number;
  /** SeriesDescription (0008,103E), e.g. 'CT Body 3.0'. */
  description?: string;
  bodyPart?: string;
  /** Files in the directory that are not DICOM (same number on every summary of one directory). */
  skippedFiles: number;
  /** DICOM files without pixel data (DICOMDIR, SR, …) in the directory, left out of every series. */
  noPixelDataFiles: number;
}

export const TAG = {
  transferSyntax: 'x00020010',
  sopClass: 'x00080016',
  sopInstance: 'x00080018',
  modality: 'x00080060',
  seriesDescription: 'x0008103e',
  bodyPart: 'x00180015',
  sliceThickness: 'x00180050',
  spacingBetweenSlices: 'x00180088',
  gantryTilt: 'x00181120',
  studyUid: 'x0020000d',
  seriesUid: 'x0020000e',
  seriesNumber: 'x00200011',
  frameOfReferenceUid: 'x00200052',
  position: 'x00200032',
  orientation: 'x00200037',
  samplesPerPixel: 'x00280002',
  frames: 'x00280008',
  rows: 'x00280010',
  cols: 'x00280011',
  pixelSpacing: 'x00280030',
  bitsAllocated: 'x00280100',
  pixelRepresentation: 'x00280103',
  intercept: 'x00281052',
  slope: 'x00281053',
  pixelData: 'x7fe00010',
} as const;

export const IMPLICIT_LE = '1.2.840.10008.1.2';
export const EXPLICIT_LE = '1.2.840.10008.1.2.1';
export const DEFLATED_LE = '1.2.840.10008.1.2.1.99';
export const EXPLICIT_BE = '1.2.840.10008.1.2.2';
export const J2K_SYNTAXES = new Set(['1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.91']);

/** Names for the error message when a series uses a compression this reader does not decode. */
export const UNSUPPORTED_SYNTAX_NAMES: Record<string, string> = {
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless SV1',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Near-Lossless',
  '1.2.840.10008.1.2.4.92': 'JPEG 2000 Part 2 Lossless',
  '1.2.840.10008.1.2.4.93': 'JPEG 2000 Part 2',
  '1.2.840.10008.1.2.4.201': 'HTJ2K Lossless',
  '1.2.840.10008.1.2.4.202': 'HTJ2K Lossless RPCL',
  '1.2.840.10008.1.2.4.203': 'HTJ2K',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
};

/** Files read at once: enough to overlap disk latency, few enough to bound memory on huge folders. */
const READ_CONCURRENCY = 8;

// ---------------------------------------------------------------------------------------------------
// Scanning: every file in the directory → a parsed slice header, or counted as skipped.

export interface SliceHeader {
  /** File name with anything UID-like redacted, safe for messages. */
  label: string;
  dataSet: DataSet;
  transferSyntaxUid: string;
  seriesKey: string;
  modality: string;
  seriesDescription?: string;
  bodyPart?: string;
  hasPixelData: boolean;
  rows: number;
  cols: number;
  bitsAllocated: number;
  pixelRepresentation: number;
  samplesPerPixel: number;
  frames: number;
  positionMm?: Vec3;
  /** Image Orientation (Patient): row direction cosines then column direction cosines, LPS. */
  orientation?: number[];
  /** [between rows (along the column direction), between columns (along the row direction)]. */
  pixelSpacingMm?: [number, number];
  slope: number;
  intercept: number;
  sliceThicknessMm?: number;
  spacingBetweenSlicesMm?: number;
  gantryTiltDeg?: number;
}

export interface DirectoryScan {
  slices: SliceHeader[];
  fileCount: number;
  skippedFiles: number;
  noPixelDataFiles: number;
}

/** File names in exports are often the SOPInstanceUID itself; keep them out of messages. */
function redactFileName(name: string): string {
  return name.replace(/\d+(?:\.\d+){3,}/g, '<uid>');
}

export function seriesKeyOf(seriesInstanceUid: string): string {
  return createHash('sha256').update(seriesInstanceUid).digest('hex').slice(0, 12);
}

function hasDicmPreamble(bytes: Uint8Array): boolean {
  return bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d;
}

/** A preamble-less file (old ACR-NEMA style, implicit VR) starts straight with a group 0x0008 or 0x0002
 * element; anything else is not worth handing to the parser, which would happily "parse" any bytes. */
function looksLikeBareDataSet(bytes: Uint8Array): boolean {
  if (bytes.length < 16) return false;
  const group = bytes[0] | (bytes[1] << 8);
  if (group !== 0x0008 && group !== 0x0002) return false;
  const length = (bytes[4] | (bytes[5] << 8) | (bytes[6] << 16)) + bytes[7] * 0x1000000;
  return length < bytes.length;
}

export function parserMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'object' && error !== null && 'exception' in error) return String(error.exception);
  return String(error);
}

export function parseFile(bytes: Uint8Array, dir: string, label: string): DataSet | undefined {
  const withPreamble = hasDicmPreamble(bytes);
  if (!withPreamble && !looksLikeBareDataSet(bytes)) return undefined;
  let dataSet: DataSet;
  try {
    dataSet = withPreamble
      ? dicomParser.parseDicom(bytes)
      : dicomParser.parseDicom(bytes, { TransferSyntaxUID: IMPLICIT_LE });
  } catch (error) {
    if (!withPreamble) return undefined;
    const text = parserMessage(error);
    const truncated = /overrun|past end|end of buffer|beyond/i.test(text);
    throw new VolumeReadError(
      truncated ? 'TRUNCATED' : 'BAD_HEADER',
      dir,
      `DICOM file ${label} ${truncated ? 'is truncated' : 'cannot be parsed'} (${text})`,
    );
  }
  // Without a preamble, accept only what carries the identity every DICOM object has.
  if (!withPreamble && !dataSet.elements[TAG.sopClass] && !dataSet.elements[TAG.seriesUid]) return undefined;
  return dataSet;
}

function numbers(dataSet: DataSet, tag: string, count: number): number[] | undefined {
  if (!dataSet.elements[tag]) return undefined;
  const values: number[] = [];
  for (let n = 0; n < count; n++) {
    const value = dataSet.floatString(tag, n);
    if (value === undefined || !Number.isFinite(value)) return undefined;
    values.push(value);
  }
  return values;
}

function optionalText(dataSet: DataSet, tag: string): string | undefined {
  const value = dataSet.string(tag)?.trim();
  return value ? value : undefined;
}

/** The SeriesInstanceUID, or where an anonymizer blanked it (the TotalSegmentator sample has it empty),
 * the next best thing that still separates series: frame of reference, series number, description. */
function seriesIdentity(dataSet: DataSet): string {
  const uid = dataSet.string(TAG.seriesUid)?.replace(/\0/g, '').trim();
  if (uid) return uid;
  const parts = [TAG.frameOfReferenceUid, TAG.seriesNumber, TAG.seriesDescription, TAG.modality];
  return `no-series-uid|${parts.map((tag) => dataSet.string(tag)?.trim() ?? '').join('|')}`;
}

export function headerOf(dataSet: DataSet, label: string): SliceHeader {
  const transferSyntaxUid = (dataSet.string(TAG.transferSyntax) ?? IMPLICIT_LE).replace(/\0/g, '').trim();
  const position = numbers(dataSet, TAG.position, 3);
  const spacing = numbers(dataSet, TAG.pixelSpacing, 2);
  return {
    label,
    dataSet,
    transferSyntaxUid,
    seriesKey: seriesKeyOf(seriesIdentity(dataSet)),
    modality: optionalText(dataSet, TAG.modality) ?? 'unknown',
    seriesDescription: optionalText(dataSet, TAG.seriesDescription),
    bodyPart: optionalText(dataSet, TAG.bodyPart),
    hasPixelData: dataSet.elements[TAG.pixelData] !== undefined,
    rows: dataSet.uint16(TAG.rows) ?? 0,
    cols: dataSet.uint16(TAG.cols) ?? 0,
    bitsAllocated: dataSet.uint16(TAG.bitsAllocated) ?? 0,
    pixelRepresentation: dataSet.uint16(TAG.pixelRepresentation) ?? 0,
    samplesPerPixel: dataSet.uint16(TAG.samplesPerPixel) ?? 1,
    frames: dataSet.intString(TAG.frames) ?? 1,
    positionMm: position as Vec3 | undefined,
    orientation: numbers(dataSet, TAG.orientation, 6),
    pixelSpacingMm: spacing as [number, number] | undefined,
    slope: dataSet.floatString(TAG.slope) ?? 1,
    intercept: dataSet.floatString(TAG.intercept) ?? 0,
    sliceThicknessMm: dataSet.floatString(TAG.sliceThickness),
    spacingBetweenSlicesMm: dataSet.floatString(TAG.spacingBetweenSlices),
    gantryTiltDeg: dataSet.floatString(TAG.gantryTilt),
  };
}

async function listFiles(dir: string): Promise<string[]> {
  let info;
  try {
    info = await stat(dir);
  } catch {
    throw new VolumeReadError('NOT_FOUND', dir, 'no such file or directory');
  }
  if (!info.isDirectory()) {
    throw new VolumeReadError('UNREADABLE', dir, 'not a directory (a DICOM series is read from its folder)');
  }
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries.filter((e) => e.isFile() || e.isSymbolicLink()).map((e) => e.name).sort();
  } catch (error) {
    throw new VolumeReadError('UNREADABLE', dir, `cannot list directory (${parserMessage(error)})`);
  }
}

/** Runs `work` over `items` with at most `limit` in flight, keeping results in input order. */
async function mapLimited<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export function scanOf(parsed: (SliceHeader | undefined)[]): DirectoryScan {
  const dicom = parsed.filter((h): h is SliceHeader => h !== undefined);
  const slices = dicom.filter((h) => h.hasPixelData);
  return {
    slices,
    fileCount: parsed.length,
    skippedFiles: parsed.length - dicom.length,
    noPixelDataFiles: dicom.length - slices.length,
  };
}

export async function scanDirectory(dir: string): Promise<DirectoryScan> {
  const names = await listFiles(dir);
  if (names.length === 0) throw new VolumeReadError('EMPTY_DIRECTORY', dir, 'the directory holds no files');
  // Parsed files keep their bytes until the pixels are stacked, so the bound is on the series' total.
  const maxFileBytes = defaultMaxVolumeBytes();
  let totalBytes = 0;
  const parsed = await mapLimited(names, READ_CONCURRENCY, async (name) => {
    const label = redactFileName(name);
    let bytes: Buffer;
    try {
      bytes = await readRegularFile(join(dir, name), maxFileBytes);
    } catch (error) {
      // A FIFO or device (also behind a link, e.g. to /dev/zero) is no slice: skipped, never read.
      if (error instanceof VolumeReadError && error.code === 'NOT_REGULAR_FILE') return undefined;
      if (error instanceof VolumeReadError && error.code === 'TOO_LARGE') throw new VolumeReadError('TOO_LARGE', dir, `${label}: ${error.detail}`);
      throw new VolumeReadError('UNREADABLE', dir, `cannot read ${label} (${parserMessage(error)})`);
    }
    totalBytes += bytes.length;
    if (totalBytes > maxFileBytes) throw tooLargeError(dir, 'the series\' files hold', maxFileBytes);
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const dataSet = parseFile(view, dir, label);
    return dataSet ? headerOf(dataSet, label) : undefined;
  });
  return scanOf(parsed);
}

export function requireImages(scan: DirectoryScan, dir: string): void {
  if (scan.slices.length > 0) return;
  if (scan.noPixelDataFiles === 0) {
    throw new VolumeReadError('NO_DICOM', dir, `none of the ${scan.fileCount} files is DICOM`);
  }
  throw new VolumeReadError(
    'NO_PIXEL_DATA',
    dir,
    `${scan.noPixelDataFiles} DICOM file(s) but none holds pixel data (DICOMDIR, reports, …)`,
  );
}

export function groupBySeries(slices: SliceHeader[]): Map<string, SliceHeader[]> {
  const groups = new Map<string, SliceHeader[]>();
  for (const slice of slices) {
    const group = groups.get(slice.seriesKey);
    if (group) group.push(slice);
    else groups.set(slice.seriesKey, [slice]);
  }
  return groups;
}

function summarize(group: SliceHeader[], scan: DirectoryScan): DicomSeriesSummary {
  const first = group[0];
  const summary: DicomSeriesSummary = {
    seriesKey: first.seriesKey,
    modality: first.modality,
    sliceCount: group.length,
    rows: first.rows,
    cols: first.cols,
    skippedFiles: scan.skippedFiles,
    noPixelDataFiles: scan.noPixelDataFiles,
  };
  if (first.seriesDescription) summary.description = first.seriesDescription;
  if (first.bodyPart) summary.bodyPart = first.bodyPart;
  return summary;
}

export function summariesOf(scan: DirectoryScan): DicomSeriesSummary[] {
  return [...groupBySeries(scan.slices).values()]
    .map((group) => summarize(group, scan))
    .sort((a, b) => b.sliceCount - a.sliceCount || a.seriesKey.localeCompare(b.seriesKey));
}

function describeSeries(s: DicomSeriesSummary): string {
  const description = s.description ? `, "${s.description}"` : '';
  return `${s.seriesKey} (${s.modality}, ${s.sliceCount} slices${description})`;
}

export function pickSeries(scan: DirectoryScan, dir: string, seriesKey: string | undefined): SliceHeader[] {
  const groups = groupBySeries(scan.slices);
  if (seriesKey !== undefined) {
    const group = groups.get(seriesKey);
    if (group) return group;
    const known = summariesOf(scan).map(describeSeries).join('; ');
    throw new VolumeReadError('SERIES_NOT_FOUND', dir, `no series with key ${seriesKey}; found: ${known}`);
  }
  if (groups.size > 1) {
    const known = summariesOf(scan).map(describeSeries).join('; ');
    throw new VolumeReadError(
      'MULTIPLE_SERIES',
      dir,
      `${groups.size} series in this directory, pick one by its key (seriesKey / --series): ${known}`,
    );
  }
  return [...groups.values()][0];
}
