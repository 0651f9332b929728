import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { DataSet, Element } from 'dicom-parser';
import { VolumeReadError } from './errors.js';
import { defaultMaxVolumeBytes, readRegularFile, tooLargeError } from './files.js';
import { orientationCode, spacingFromAffine, toCanonical } from './orientation.js';
import type { Correction, Mat4, Vec3, Volume, VoxelArray } from './volume.js';

/**
 * DICOM series reader: a directory of single-frame slices → one canonical Volume.
 *
 * Slices are ordered by their position along the slice normal (never by file name or InstanceNumber,
 * which real exports get wrong), rescaled to modality units (HU for CT), and placed on a regular grid.
 * Where the acquisition is not a regular grid (gantry tilt, uneven slice gaps) the reader resamples and
 * says so in `corrections`. Nothing identifying (names, IDs, dates, raw UIDs) leaves this module: series
 * are named by a hash, and file names that look like UIDs are redacted from messages.
 */

// dicom-parser and the OpenJPEG build are UMD/CommonJS; require() is the one import form that works for
// both under Node's ESM loader without relying on its guesswork about CommonJS named exports.
const require = createRequire(import.meta.url);
const dicomParser = require('dicom-parser') as typeof import('dicom-parser');

export interface DicomReadOptions {
  /** Which series to read when the directory holds several (a key from listDicomSeries). */
  seriesKey?: string;
}

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

const TAG = {
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

const IMPLICIT_LE = '1.2.840.10008.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const DEFLATED_LE = '1.2.840.10008.1.2.1.99';
const EXPLICIT_BE = '1.2.840.10008.1.2.2';
const J2K_SYNTAXES = new Set(['1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.91']);

/** Names for the error message when a series uses a compression this reader does not decode. */
const UNSUPPORTED_SYNTAX_NAMES: Record<string, string> = {
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

interface SliceHeader {
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

interface DirectoryScan {
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

function parserMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'object' && error !== null && 'exception' in error) return String(error.exception);
  return String(error);
}

function parseFile(bytes: Uint8Array, dir: string, label: string): DataSet | undefined {
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

function headerOf(dataSet: DataSet, label: string): SliceHeader {
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

function scanOf(parsed: (SliceHeader | undefined)[]): DirectoryScan {
  const dicom = parsed.filter((h): h is SliceHeader => h !== undefined);
  const slices = dicom.filter((h) => h.hasPixelData);
  return {
    slices,
    fileCount: parsed.length,
    skippedFiles: parsed.length - dicom.length,
    noPixelDataFiles: dicom.length - slices.length,
  };
}

async function scanDirectory(dir: string): Promise<DirectoryScan> {
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

function requireImages(scan: DirectoryScan, dir: string): void {
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

function groupBySeries(slices: SliceHeader[]): Map<string, SliceHeader[]> {
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

function summariesOf(scan: DirectoryScan): DicomSeriesSummary[] {
  return [...groupBySeries(scan.slices).values()]
    .map((group) => summarize(group, scan))
    .sort((a, b) => b.sliceCount - a.sliceCount || a.seriesKey.localeCompare(b.seriesKey));
}

/** Lists the image series in a directory without decoding any pixels. */
export async function listDicomSeries(dir: string): Promise<DicomSeriesSummary[]> {
  const scan = await scanDirectory(dir);
  requireImages(scan, dir);
  return summariesOf(scan);
}

function describeSeries(s: DicomSeriesSummary): string {
  const description = s.description ? `, "${s.description}"` : '';
  return `${s.seriesKey} (${s.modality}, ${s.sliceCount} slices${description})`;
}

function pickSeries(scan: DirectoryScan, dir: string, seriesKey: string | undefined): SliceHeader[] {
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

// ---------------------------------------------------------------------------------------------------
// Geometry: consistency, order along the normal, tilt and gaps.

type Vec3Like = readonly [number, number, number];

const dot = (a: Vec3Like, b: Vec3Like): number => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const cross = (a: Vec3Like, b: Vec3Like): Vec3 => [
  a[1] * b[2] - a[2] * b[1],
  a[2] * b[0] - a[0] * b[2],
  a[0] * b[1] - a[1] * b[0],
];
const sub = (a: Vec3Like, b: Vec3Like): Vec3 => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
const scale = (a: Vec3Like, s: number): Vec3 => [a[0] * s, a[1] * s, a[2] * s];
const norm = (a: Vec3Like): number => Math.hypot(a[0], a[1], a[2]);
const unit = (a: Vec3Like): Vec3 => scale(a, 1 / (norm(a) || 1));

interface SeriesGeometry {
  /** Slices sorted along the normal, inferior-most first in the normal's sense. */
  slices: SliceHeader[];
  rowDir: Vec3;
  colDir: Vec3;
  normal: Vec3;
  /** Distance between columns (along rowDir) and between rows (along colDir). */
  columnSpacingMm: number;
  rowSpacingMm: number;
  /** Position of each sorted slice along the normal, relative to the first. */
  offsetsMm: number[];
  /** In-plane offset of each slice's origin from where an orthogonal stack would put it, in mm along
   * rowDir and colDir: zero everywhere unless the gantry was tilted. */
  shiftsMm: [number, number][];
}

function checkConsistent(slices: SliceHeader[], dir: string): void {
  const first = slices[0];
  const fail = (what: string): never => {
    throw new VolumeReadError('INCONSISTENT_SERIES', dir, `slices of series ${first.seriesKey} differ in ${what}`);
  };
  for (const s of slices) {
    if (s.rows !== first.rows || s.cols !== first.cols) fail(`size (${first.cols}×${first.rows} vs ${s.cols}×${s.rows})`);
    if (s.bitsAllocated !== first.bitsAllocated || s.samplesPerPixel !== first.samplesPerPixel) fail('pixel format');
    if (!s.orientation || !s.positionMm || !s.pixelSpacingMm) continue;
    if (first.orientation && s.orientation.some((v, n) => Math.abs(v - first.orientation![n]) > 1e-4)) {
      fail('orientation (ImageOrientationPatient)');
    }
    if (first.pixelSpacingMm && s.pixelSpacingMm.some((v, n) => Math.abs(v - first.pixelSpacingMm![n]) > 1e-4)) {
      fail('pixel spacing');
    }
  }
}

function requireGeometry(slices: SliceHeader[], dir: string): void {
  for (const s of slices) {
    const missing = !s.orientation ? 'ImageOrientationPatient' : !s.positionMm ? 'ImagePositionPatient' : !s.pixelSpacingMm ? 'PixelSpacing' : '';
    if (missing) throw new VolumeReadError('BAD_HEADER', dir, `${s.label} has no ${missing}, so slices cannot be placed in space`);
    if (s.rows <= 0 || s.cols <= 0) throw new VolumeReadError('BAD_DIMENSIONS', dir, `${s.label} has ${s.cols}×${s.rows} pixels`);
    if (s.samplesPerPixel !== 1) throw new VolumeReadError('UNSUPPORTED_DATATYPE', dir, `${s.label} has ${s.samplesPerPixel} samples per pixel (colour); only greyscale is read`);
    if (s.frames !== 1) throw new VolumeReadError('UNSUPPORTED_DATATYPE', dir, `${s.label} is multi-frame (${s.frames} frames); only single-frame slices are read`);
  }
}

function geometryOf(slices: SliceHeader[], dir: string): SeriesGeometry {
  requireGeometry(slices, dir);
  const o = slices[0].orientation!;
  const rowDir = unit([o[0], o[1], o[2]]);
  const colDir = unit([o[3], o[4], o[5]]);
  const normal = unit(cross(rowDir, colDir));
  const sorted = slices
    .map((s) => ({ s, along: dot(s.positionMm!, normal) }))
    .sort((a, b) => a.along - b.along);
  for (let k = 1; k < sorted.length; k++) {
    if (sorted[k].along - sorted[k - 1].along < 1e-3) {
      throw new VolumeReadError(
        'INCONSISTENT_SERIES',
        dir,
        `two slices (${sorted[k - 1].s.label}, ${sorted[k].s.label}) lie at the same position: the series mixes acquisitions`,
      );
    }
  }
  const origin = sorted[0].s.positionMm!;
  const offsetsMm = sorted.map((e) => e.along - sorted[0].along);
  const shiftsMm = sorted.map((e, k): [number, number] => {
    const inPlane = sub(sub(e.s.positionMm!, origin), scale(normal, offsetsMm[k]));
    return [dot(inPlane, rowDir), dot(inPlane, colDir)];
  });
  const [rowSpacingMm, columnSpacingMm] = slices[0].pixelSpacingMm!;
  return { slices: sorted.map((e) => e.s), rowDir, colDir, normal, rowSpacingMm, columnSpacingMm, offsetsMm, shiftsMm };
}

// ---------------------------------------------------------------------------------------------------
// Pixels: decode each slice, rescale, and stack.

type RawPixels = Int8Array | Uint8Array | Int16Array | Uint16Array;

interface J2KFrameInfo {
  width: number;
  height: number;
  bitsPerSample: number;
  componentCount: number;
  isSigned: boolean;
}
interface J2KDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getFrameInfo(): J2KFrameInfo;
  getDecodedBuffer(): Uint8Array;
  delete(): void;
}
interface OpenJpegModule {
  J2KDecoder: new () => J2KDecoder;
}

let openJpeg: Promise<OpenJpegModule> | undefined;

/** Loaded on first use only: most series are uncompressed, and the WASM module costs ~10 ms to start.
 * Its print hooks are silenced because OpenJPEG writes progress lines to stdout for every frame. */
function loadOpenJpeg(): Promise<OpenJpegModule> {
  if (!openJpeg) {
    const factory = require('@cornerstonejs/codec-openjpeg/decodewasmjs') as (
      moduleArg: Record<string, unknown>,
    ) => Promise<OpenJpegModule>;
    openJpeg = factory({ print: () => undefined, printErr: () => undefined });
  }
  return openJpeg;
}

function typedView(bytes: Uint8Array, bitsAllocated: number, signed: boolean, count: number): RawPixels {
  if (bitsAllocated === 8) {
    return signed ? new Int8Array(bytes.buffer, bytes.byteOffset, count) : bytes.subarray(0, count);
  }
  // A view needs 2-byte alignment; parsers hand out offsets into the file, which are even in practice.
  const aligned = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice(0, count * 2);
  return signed
    ? new Int16Array(aligned.buffer, aligned.byteOffset, count)
    : new Uint16Array(aligned.buffer, aligned.byteOffset, count);
}

function swapBytes16(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let p = 0; p + 1 < bytes.length; p += 2) {
    out[p] = bytes[p + 1];
    out[p + 1] = bytes[p];
  }
  return out;
}

function nativePixels(s: SliceHeader, element: Element, dir: string): RawPixels {
  const count = s.rows * s.cols;
  const byteCount = (count * s.bitsAllocated) / 8;
  const available = s.dataSet.byteArray.length - element.dataOffset;
  if (available < byteCount || element.length < byteCount) {
    const code = available < byteCount ? 'TRUNCATED' : 'SIZE_MISMATCH';
    throw new VolumeReadError(code, dir, `${s.label}: pixel data holds ${Math.min(available, element.length)} bytes, ${count} pixels need ${byteCount}`);
  }
  let bytes = s.dataSet.byteArray.subarray(element.dataOffset, element.dataOffset + byteCount) as Uint8Array;
  if (s.transferSyntaxUid === EXPLICIT_BE && s.bitsAllocated === 16) bytes = swapBytes16(bytes);
  return typedView(bytes, s.bitsAllocated, s.pixelRepresentation === 1, count);
}

async function jpeg2000Pixels(s: SliceHeader, element: Element, dir: string): Promise<RawPixels> {
  const codec = await loadOpenJpeg();
  const fragments = element.fragments ?? [];
  let encoded: Uint8Array;
  try {
    encoded = dicomParser.readEncapsulatedPixelDataFromFragments(s.dataSet, element, 0, fragments.length) as Uint8Array;
  } catch (error) {
    throw new VolumeReadError('TRUNCATED', dir, `${s.label}: compressed pixel data is incomplete (${parserMessage(error)})`);
  }
  const decoder = new codec.J2KDecoder();
  try {
    decoder.getEncodedBuffer(encoded.length).set(encoded);
    decoder.decode();
    const info = decoder.getFrameInfo();
    if (info.width !== s.cols || info.height !== s.rows || info.componentCount !== 1) {
      throw new VolumeReadError('SIZE_MISMATCH', dir, `${s.label}: JPEG 2000 frame is ${info.width}×${info.height}×${info.componentCount}, header says ${s.cols}×${s.rows}×1`);
    }
    // Copy out of the WASM heap: the decoder's buffer dies with it.
    const decoded = decoder.getDecodedBuffer().slice();
    return typedView(decoded, s.bitsAllocated, s.pixelRepresentation === 1, s.rows * s.cols);
  } catch (error) {
    if (error instanceof VolumeReadError) throw error;
    throw new VolumeReadError('UNREADABLE', dir, `${s.label}: JPEG 2000 decoding failed (${parserMessage(error)})`);
  } finally {
    decoder.delete();
  }
}

function checkPixelFormat(s: SliceHeader, dir: string): void {
  const syntax = s.transferSyntaxUid;
  const native = syntax === IMPLICIT_LE || syntax === EXPLICIT_LE || syntax === EXPLICIT_BE || syntax === DEFLATED_LE;
  if (!native && !J2K_SYNTAXES.has(syntax)) {
    const name = UNSUPPORTED_SYNTAX_NAMES[syntax] ?? 'unknown compression';
    throw new VolumeReadError('UNSUPPORTED_TRANSFER_SYNTAX', dir, `series ${s.seriesKey} is stored as ${name} (${syntax}), which this reader does not decode`);
  }
  if (s.bitsAllocated !== 8 && s.bitsAllocated !== 16) {
    throw new VolumeReadError('UNSUPPORTED_DATATYPE', dir, `${s.label}: BitsAllocated ${s.bitsAllocated} (only 8 and 16 are read)`);
  }
}

async function slicePixels(s: SliceHeader, dir: string): Promise<RawPixels> {
  checkPixelFormat(s, dir);
  const element = s.dataSet.elements[TAG.pixelData];
  if (J2K_SYNTAXES.has(s.transferSyntaxUid) || element.encapsulatedPixelData) return jpeg2000Pixels(s, element, dir);
  return nativePixels(s, element, dir);
}

function storedTypeName(s: SliceHeader): string {
  return `${s.pixelRepresentation === 1 ? 'int' : 'uint'}${s.bitsAllocated}`;
}

function rawRange(raw: RawPixels): [number, number] {
  let min = Infinity;
  let max = -Infinity;
  for (let p = 0; p < raw.length; p++) {
    const v = raw[p];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return [min, max];
}

/** True when every rescaled value is an integer inside int16, so the volume can be stored as int16.
 * The theoretical range of the stored type decides in the common case without touching the pixels. */
function fitsInt16(slices: SliceHeader[], raws: RawPixels[]): boolean {
  return slices.every((s, k) => {
    if (!Number.isInteger(s.slope) || !Number.isInteger(s.intercept)) return false;
    const raw = raws[k];
    const bound: [number, number] = raw instanceof Int16Array ? [-32768, 32767] : raw instanceof Uint16Array ? [0, 65535] : [-128, 255];
    const ok = (r: [number, number]): boolean => {
      const a = r[0] * s.slope + s.intercept;
      const b = r[1] * s.slope + s.intercept;
      return Math.min(a, b) >= -32768 && Math.max(a, b) <= 32767;
    };
    return ok(bound) || ok(rawRange(raw));
  });
}

async function stackSlices(geometry: SeriesGeometry, dir: string): Promise<VoxelArray> {
  const { slices } = geometry;
  const raws = await Promise.all(slices.map((s) => slicePixels(s, dir)));
  const perSlice = slices[0].rows * slices[0].cols;
  const out: VoxelArray = fitsInt16(slices, raws)
    ? new Int16Array(perSlice * slices.length)
    : new Float32Array(perSlice * slices.length);
  slices.forEach((s, k) => {
    const raw = raws[k];
    const offset = k * perSlice;
    if (s.slope === 1 && s.intercept === 0 && (raw instanceof Int16Array || out instanceof Float32Array)) {
      out.set(raw, offset);
      return;
    }
    for (let p = 0; p < perSlice; p++) out[offset + p] = raw[p] * s.slope + s.intercept;
  });
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Resampling onto a regular orthogonal grid.

/** In-plane shifts below this are float noise in ImagePositionPatient, not tilt. */
function tiltThresholdMm(geometry: SeriesGeometry): number {
  return Math.max(0.01, 0.02 * Math.min(geometry.rowSpacingMm, geometry.columnSpacingMm));
}

function volumeMin(data: VoxelArray): number {
  return data instanceof Int16Array ? minInt16(data) : minFloat32(data);
}

// The resampling loops below are written once per voxel type: over the `Int16Array | Float32Array` union
// V8 keeps every element access polymorphic, which made the tilted, unevenly spaced GE head read at a
// fifth of pydicom's speed. The arithmetic is the same in both copies.

function minInt16(data: Int16Array): number {
  let min = Infinity;
  for (let p = 0; p < data.length; p++) if (data[p] < min) min = data[p];
  return min;
}

function minFloat32(data: Float32Array): number {
  let min = Infinity;
  for (let p = 0; p < data.length; p++) if (data[p] < min) min = data[p];
  return min;
}

/** Per output index along one axis: the source index below and the weight of the one above, or -1
 * where the sample falls outside the image. */
function axisSamples(length: number, shiftPx: number): { index: Int32Array; weight: Float64Array } {
  const index = new Int32Array(length);
  const weight = new Float64Array(length);
  for (let o = 0; o < length; o++) {
    const at = o - shiftPx;
    if (at < -1e-6 || at > length - 1 + 1e-6) {
      index[o] = -1;
      continue;
    }
    const below = Math.min(Math.max(Math.floor(at), 0), length - 1);
    index[o] = below;
    weight[o] = below + 1 < length ? Math.min(Math.max(at - below, 0), 1) : 0;
  }
  return { index, weight };
}

/** Bilinear resampling of one slice shifted by (shiftI, shiftJ) pixels; outside samples get `fill`. */
function shiftSlice(
  src: VoxelArray,
  dst: VoxelArray,
  offset: number,
  cols: number,
  rows: number,
  shiftI: number,
  shiftJ: number,
  fill: number,
): void {
  const si = axisSamples(cols, shiftI);
  const sj = axisSamples(rows, shiftJ);
  if (src instanceof Int16Array && dst instanceof Int16Array) shiftSliceInt16(src, dst, offset, cols, rows, si, sj, fill);
  else shiftSliceFloat32(src as Float32Array, dst as Float32Array, offset, cols, rows, si, sj, fill);
}

type AxisSamples = ReturnType<typeof axisSamples>;

function shiftSliceInt16(src: Int16Array, dst: Int16Array, offset: number, cols: number, rows: number, si: AxisSamples, sj: AxisSamples, fill: number): void {
  for (let j = 0; j < rows; j++) {
    const j0 = sj.index[j];
    const outRow = offset + j * cols;
    if (j0 < 0) {
      dst.fill(fill, outRow, outRow + cols);
      continue;
    }
    const wj = sj.weight[j];
    const row0 = offset + j0 * cols;
    const row1 = wj > 0 ? row0 + cols : row0;
    for (let i = 0; i < cols; i++) {
      const i0 = si.index[i];
      if (i0 < 0) {
        dst[outRow + i] = fill;
        continue;
      }
      const wi = si.weight[i];
      const i1 = wi > 0 ? i0 + 1 : i0;
      const top = src[row0 + i0] * (1 - wi) + src[row0 + i1] * wi;
      const bottom = src[row1 + i0] * (1 - wi) + src[row1 + i1] * wi;
      dst[outRow + i] = Math.round(top * (1 - wj) + bottom * wj);
    }
  }
}

function shiftSliceFloat32(src: Float32Array, dst: Float32Array, offset: number, cols: number, rows: number, si: AxisSamples, sj: AxisSamples, fill: number): void {
  for (let j = 0; j < rows; j++) {
    const j0 = sj.index[j];
    const outRow = offset + j * cols;
    if (j0 < 0) {
      dst.fill(fill, outRow, outRow + cols);
      continue;
    }
    const wj = sj.weight[j];
    const row0 = offset + j0 * cols;
    const row1 = wj > 0 ? row0 + cols : row0;
    for (let i = 0; i < cols; i++) {
      const i0 = si.index[i];
      if (i0 < 0) {
        dst[outRow + i] = fill;
        continue;
      }
      const wi = si.weight[i];
      const i1 = wi > 0 ? i0 + 1 : i0;
      const top = src[row0 + i0] * (1 - wi) + src[row0 + i1] * wi;
      const bottom = src[row1 + i0] * (1 - wi) + src[row1 + i1] * wi;
      dst[outRow + i] = top * (1 - wj) + bottom * wj;
    }
  }
}

/**
 * Gantry tilt: the slices are parallel but each is displaced in-plane in proportion to its position.
 * Shifting every slice back (as dcm2niix does) puts all of them on one orthogonal grid anchored at the
 * first slice; the shift is sub-pixel and linear interpolation keeps it smooth.
 */
function correctTilt(data: VoxelArray, geometry: SeriesGeometry): { data: VoxelArray; correction?: Correction } {
  const { shiftsMm, offsetsMm } = geometry;
  const maxShiftMm = Math.max(...shiftsMm.map(([a, b]) => Math.hypot(a, b)));
  if (maxShiftMm <= tiltThresholdMm(geometry)) return { data };
  const cols = geometry.slices[0].cols;
  const rows = geometry.slices[0].rows;
  const out = new (data.constructor as new (length: number) => VoxelArray)(data.length);
  const fill = volumeMin(data);
  shiftsMm.forEach(([alongRowMm, alongColMm], k) => {
    shiftSlice(data, out, k * cols * rows, cols, rows, alongRowMm / geometry.columnSpacingMm, alongColMm / geometry.rowSpacingMm, fill);
  });
  const last = offsetsMm.length - 1;
  const lastShift = Math.hypot(...shiftsMm[last]);
  const tiltDeg = (Math.atan2(lastShift, offsetsMm[last]) * 180) / Math.PI;
  const headerTilt = geometry.slices[0].gantryTiltDeg;
  const details: Record<string, number> = { tiltDeg, maxShiftMm };
  let headerNote = ' (GantryDetectorTilt absent)';
  if (headerTilt !== undefined) {
    details.headerTiltDeg = headerTilt;
    const agrees = Math.abs(Math.abs(headerTilt) - tiltDeg) < 0.5;
    headerNote = ` (GantryDetectorTilt says ${headerTilt}°${agrees ? ', agrees' : ', disagrees with the geometry, which was used'})`;
  }
  return {
    data: out,
    correction: {
      kind: 'gantry-tilt',
      message: `gantry tilt ${tiltDeg.toFixed(1)}°${headerNote}: slices sheared back onto an orthogonal grid (shifts up to ${maxShiftMm.toFixed(1)} mm, linear interpolation)`,
      details,
    },
  };
}

interface Resampled {
  data: VoxelArray;
  sliceCount: number;
  spacingMm: number;
  correction?: Correction;
}

function gapsOf(offsetsMm: number[]): number[] {
  return offsetsMm.slice(1).map((v, k) => v - offsetsMm[k]);
}

function thinnestSliceMm(slices: SliceHeader[]): number | undefined {
  const thicknesses = slices.map((s) => s.sliceThicknessMm).filter((t): t is number => t !== undefined && t > 0);
  return thicknesses.length > 0 ? Math.min(...thicknesses) : undefined;
}

/**
 * Uneven slice gaps (a GE head protocol switches from thin to thick slices; a lost file leaves a hole)
 * cannot be described by one affine. The stack is resampled along the normal, by linear interpolation,
 * to the smallest gap, but never finer than the thinnest slice: where consecutive slices overlap (GE's
 * 4 mm → 7 mm switch leaves a 1.08 mm gap) a finer grid would only add interpolated copies, while
 * anything coarser than the finest gap between non-overlapping slices would discard acquired detail.
 * The step is then shrunk just enough to divide the extent evenly, so first and last slices stay exact.
 */
function equalizeSpacing(data: VoxelArray, geometry: SeriesGeometry): Resampled {
  const { offsetsMm } = geometry;
  const n = offsetsMm.length;
  if (n < 2) {
    const s = geometry.slices[0];
    return { data, sliceCount: n, spacingMm: s.spacingBetweenSlicesMm ?? s.sliceThicknessMm ?? 1 };
  }
  const gaps = gapsOf(offsetsMm);
  const minGapMm = Math.min(...gaps);
  const maxGapMm = Math.max(...gaps);
  const extentMm = offsetsMm[n - 1];
  const tolerance = Math.max(0.01, 0.01 * minGapMm);
  if (maxGapMm - minGapMm <= tolerance) return { data, sliceCount: n, spacingMm: extentMm / (n - 1) };

  const targetMm = Math.max(minGapMm, thinnestSliceMm(geometry.slices) ?? 0);
  // Four times the input is a last guard against a near-duplicate slice exploding the volume.
  const steps = Math.min(Math.ceil(extentMm / targetMm - 1e-6), 4 * (n - 1));
  const spacingMm = extentMm / steps;
  const perSlice = geometry.slices[0].rows * geometry.slices[0].cols;
  const out = new (data.constructor as new (length: number) => VoxelArray)(perSlice * (steps + 1));
  let below = 0;
  for (let m = 0; m <= steps; m++) {
    const at = m === steps ? extentMm : m * spacingMm;
    while (below < n - 2 && offsetsMm[below + 1] <= at) below++;
    const w = Math.min(Math.max((at - offsetsMm[below]) / (offsetsMm[below + 1] - offsetsMm[below]), 0), 1);
    const a = below * perSlice;
    const b = a + perSlice;
    const o = m * perSlice;
    if (w < 1e-6) out.set(data.subarray(a, a + perSlice), o);
    else if (w > 1 - 1e-6) out.set(data.subarray(b, b + perSlice), o);
    else if (data instanceof Int16Array && out instanceof Int16Array) lerpSlicesInt16(data, a, b, out, o, perSlice, w);
    else lerpSlicesFloat32(data as Float32Array, a, b, out as Float32Array, o, perSlice, w);
  }
  return {
    data: out,
    sliceCount: steps + 1,
    spacingMm,
    correction: {
      kind: 'uneven-spacing',
      message: `slice gaps vary from ${minGapMm.toFixed(2)} to ${maxGapMm.toFixed(2)} mm: resampled to ${steps + 1} slices every ${spacingMm.toFixed(3)} mm (linear interpolation)`,
      details: { minGapMm, maxGapMm, spacingMm, slicesIn: n, slicesOut: steps + 1 },
    },
  };
}

function lerpSlicesInt16(data: Int16Array, a: number, b: number, out: Int16Array, o: number, count: number, w: number): void {
  for (let p = 0; p < count; p++) out[o + p] = Math.round(data[a + p] * (1 - w) + data[b + p] * w);
}

function lerpSlicesFloat32(data: Float32Array, a: number, b: number, out: Float32Array, o: number, count: number, w: number): void {
  for (let p = 0; p < count; p++) out[o + p] = data[a + p] * (1 - w) + data[b + p] * w;
}

/** Voxel (i, j, k) of the stored stack → LPS mm, with k along `sliceStep`. */
function storedAffineLps(geometry: SeriesGeometry, sliceStep: Vec3): Mat4 {
  const origin = geometry.slices[0].positionMm!;
  const i = scale(geometry.rowDir, geometry.columnSpacingMm);
  const j = scale(geometry.colDir, geometry.rowSpacingMm);
  return [
    i[0], j[0], sliceStep[0], origin[0],
    i[1], j[1], sliceStep[1], origin[1],
    i[2], j[2], sliceStep[2], origin[2],
    0, 0, 0, 1,
  ];
}

/** LPS → RAS+: the same matrix with the x and y rows negated. */
function lpsToRas(affine: Mat4): Mat4 {
  return affine.map((v, n) => (n < 8 ? -v : v));
}

/** The slice step: the measured one where the stack was already regular and straight (keeps any slight
 * obliquity the scanner recorded), the normal times the new spacing where the reader resampled. */
function sliceStepOf(geometry: SeriesGeometry, resampled: boolean, tilted: boolean, spacingMm: number): Vec3 {
  const n = geometry.slices.length;
  if (n < 2 || resampled || tilted) return scale(geometry.normal, spacingMm);
  return scale(sub(geometry.slices[n - 1].positionMm!, geometry.slices[0].positionMm!), 1 / (n - 1));
}

/** Reads one DICOM series from a directory into a canonical Volume. */
export async function readDicomSeries(dir: string, options: DicomReadOptions = {}): Promise<Volume> {
  return volumeOf(await scanDirectory(dir), dir, options);
}

/**
 * Reads one DICOM series from files held in memory (a PACS download), exactly as from a directory, so
 * the two copies of a series give the same canonical volume. `label` stands in for the directory in
 * messages and `source.path`; it must not carry identifiers.
 */
export async function readDicomSeriesFromBytes(label: string, files: Uint8Array[], options: DicomReadOptions = {}): Promise<Volume> {
  if (files.length === 0) throw new VolumeReadError('EMPTY_DIRECTORY', label, 'the series holds no instances');
  const parsed = files.map((bytes, n) => {
    const dataSet = parseFile(bytes, label, `instance ${n + 1}`);
    return dataSet ? headerOf(dataSet, `instance ${n + 1}`) : undefined;
  });
  return volumeOf(scanOf(parsed), label, options);
}

async function volumeOf(scan: DirectoryScan, dir: string, options: DicomReadOptions): Promise<Volume> {
  requireImages(scan, dir);
  const seriesCount = groupBySeries(scan.slices).size;
  const series = pickSeries(scan, dir, options.seriesKey);
  checkConsistent(series, dir);
  const geometry = geometryOf(series, dir);

  const corrections: Correction[] = [];
  const tilt = correctTilt(await stackSlices(geometry, dir), geometry);
  if (tilt.correction) corrections.push(tilt.correction);
  const even = equalizeSpacing(tilt.data, geometry);
  if (even.correction) corrections.push(even.correction);

  const first = geometry.slices[0];
  const storedDims: Vec3 = [first.cols, first.rows, even.sliceCount];
  const step = sliceStepOf(geometry, even.correction !== undefined, tilt.correction !== undefined, even.spacingMm);
  const storedAffineRas = lpsToRas(storedAffineLps(geometry, step));
  const canonical = toCanonical(even.data, storedDims, storedAffineRas);
  const spacingMm = spacingFromAffine(canonical.affineRas);

  return {
    data: canonical.data,
    dims: canonical.dims,
    spacingMm,
    affineRas: canonical.affineRas,
    modality: first.modality,
    source: {
      path: dir,
      format: 'dicom',
      orientation: orientationCode(storedAffineRas),
      seriesKey: first.seriesKey,
      seriesCount,
      storedDataType: storedTypeName(first),
      skippedFiles: scan.skippedFiles,
      ...(first.bodyPart ? { bodyPart: first.bodyPart } : {}),
    },
    corrections,
  };
}
