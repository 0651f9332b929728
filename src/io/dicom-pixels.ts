/**
 * DICOM pixels: each slice decoded (native or JPEG 2000), rescaled to modality units and stacked.
 */
import type { Element } from 'dicom-parser';
import { VolumeReadError } from './errors.js';
import { dicomParser, EXPLICIT_BE, IMPLICIT_LE, EXPLICIT_LE, DEFLATED_LE, J2K_SYNTAXES, parserMessage, TAG, UNSUPPORTED_SYNTAX_NAMES, type SliceHeader } from './dicom-scan.js';
import type { SeriesGeometry } from './dicom-geometry.js';
import { decodeJ2k, type DecodedFrame } from './j2k-codec.js';
import type { VoxelArray } from './volume.js';
import { valueRange } from './volume-stats.js';

type RawPixels = Int8Array | Uint8Array | Int16Array | Uint16Array;

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

async function jpeg2000Pixels(s: SliceHeader, element: Element, dir: string, frameCount: number): Promise<RawPixels> {
  const fragments = element.fragments ?? [];
  let encoded: Uint8Array;
  try {
    encoded = dicomParser.readEncapsulatedPixelDataFromFragments(s.dataSet, element, 0, fragments.length) as Uint8Array;
  } catch (error) {
    throw new VolumeReadError('TRUNCATED', dir, `${s.label}: compressed pixel data is incomplete (${parserMessage(error)})`);
  }
  let frame: DecodedFrame;
  try {
    frame = await decodeJ2k(encoded, frameCount);
  } catch (error) {
    throw new VolumeReadError('UNREADABLE', dir, `${s.label}: JPEG 2000 decoding failed (${parserMessage(error)})`);
  }
  if (frame.width !== s.cols || frame.height !== s.rows || frame.componentCount !== 1) {
    throw new VolumeReadError('SIZE_MISMATCH', dir, `${s.label}: JPEG 2000 frame is ${frame.width}×${frame.height}×${frame.componentCount}, header says ${s.cols}×${s.rows}×1`);
  }
  return typedView(frame.bytes, s.bitsAllocated, s.pixelRepresentation === 1, s.rows * s.cols);
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

async function slicePixels(s: SliceHeader, dir: string, frameCount: number): Promise<RawPixels> {
  checkPixelFormat(s, dir);
  const element = s.dataSet.elements[TAG.pixelData];
  if (J2K_SYNTAXES.has(s.transferSyntaxUid) || element.encapsulatedPixelData) return jpeg2000Pixels(s, element, dir, frameCount);
  return nativePixels(s, element, dir);
}

export function storedTypeName(s: SliceHeader): string {
  return `${s.pixelRepresentation === 1 ? 'int' : 'uint'}${s.bitsAllocated}`;
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
    return ok(bound) || ok(valueRange(raw));
  });
}

export async function stackSlices(geometry: SeriesGeometry, dir: string): Promise<VoxelArray> {
  const { slices } = geometry;
  const raws = await Promise.all(slices.map((s) => slicePixels(s, dir, slices.length)));
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
    // One loop per pair of common types: over the unions every element access stays polymorphic.
    if (out instanceof Int16Array && raw instanceof Int16Array) rescaleInt16ToInt16(raw, out, offset, s.slope, s.intercept);
    else if (out instanceof Int16Array && raw instanceof Uint16Array) rescaleUint16ToInt16(raw, out, offset, s.slope, s.intercept);
    else for (let p = 0; p < perSlice; p++) out[offset + p] = raw[p] * s.slope + s.intercept;
  });
  return out;
}

function rescaleInt16ToInt16(raw: Int16Array, out: Int16Array, offset: number, slope: number, intercept: number): void {
  for (let p = 0; p < raw.length; p++) out[offset + p] = raw[p] * slope + intercept;
}

function rescaleUint16ToInt16(raw: Uint16Array, out: Int16Array, offset: number, slope: number, intercept: number): void {
  for (let p = 0; p < raw.length; p++) out[offset + p] = raw[p] * slope + intercept;
}
