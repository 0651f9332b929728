import { open, readFile } from 'node:fs/promises';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { VolumeReadError } from './errors.js';
import type { Mat4, Volume } from './volume.js';

/**
 * 2D key images (PNG, JPEG) as one-slice volumes. Most labelled CT collections are single slices saved as
 * images: 8-bit ones are already display-windowed (the HU are gone), 16-bit grey PNGs may carry HU with an
 * offset (DeepLesion stores HU + 32768). Decoding uses pngjs and jpeg-js (pure JS, no native binary to
 * download), told apart by their magic bytes, never by extension.
 */

export interface KeyImageReadOptions {
  /** The display window an 8-bit image was saved with: grey 0 → lowHu, 255 → highHu. Without it the grey
   * values are kept as they are and the volume's intensity is 'display' (no HU). */
  huWindow?: { lowHu: number; highHu: number };
  /** 16-bit grey PNG: HU = stored value − offset (default 32768, DeepLesion's convention). */
  huOffset?: number;
  /** Pixel size in mm when known; else 1 mm is recorded with `pixelSpacingKnown: false` (aspect kept). */
  pixelSpacingMm?: number;
}

export const DEFAULT_HU_OFFSET = 32768;
/** A key image larger than this is no CT slice (and would not be held in memory). */
const MAX_SIDE_PX = 16_384;

export type KeyImageFormat = 'png' | 'jpeg';

/** 'png' or 'jpeg' from the first bytes, else undefined. */
export function keyImageFormat(head: Uint8Array): KeyImageFormat | undefined {
  if (head.length >= 8 && head[0] === 0x89 && head[1] === 0x50 && head[2] === 0x4e && head[3] === 0x47 && head[4] === 0x0d && head[5] === 0x0a && head[6] === 0x1a && head[7] === 0x0a) return 'png';
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return 'jpeg';
  return undefined;
}

interface DecodedImage {
  width: number;
  height: number;
  /** One grey value per pixel, row-major from the top-left. */
  grey: Float32Array;
  bitDepth: 8 | 16;
  colour: boolean;
}

/** ITU-R BT.601 luma: what a grey conversion of an RGB screenshot of a CT slice undoes best. */
function luma(r: number, g: number, b: number): number {
  return 0.299 * r + 0.587 * g + 0.114 * b;
}

function decodePng(path: string, bytes: Buffer): DecodedImage {
  if (bytes.length < 33) throw new VolumeReadError('TRUNCATED', path, `PNG of ${bytes.length} bytes is too short to hold a header`);
  const depth = bytes[24];
  const colorType = bytes[25];
  const sixteen = depth === 16;
  let png: PNG;
  try {
    // 16-bit samples are kept as they are (they may be HU + offset); lower depths are rescaled to 8 bits.
    png = PNG.sync.read(bytes, { skipRescale: sixteen });
  } catch (error) {
    throw new VolumeReadError('BAD_HEADER', path, `unreadable PNG (${error instanceof Error ? error.message : String(error)})`);
  }
  const colour = (colorType & 2) !== 0;
  if (sixteen && colour) throw new VolumeReadError('UNSUPPORTED_DATATYPE', path, '16-bit colour PNG: only 16-bit grey PNGs carry HU; save it as 8-bit or grey');
  const { width, height } = png;
  const data = png.data as unknown as ArrayLike<number>;
  const grey = new Float32Array(width * height);
  for (let p = 0, q = 0; p < grey.length; p++, q += 4) {
    grey[p] = colour ? luma(data[q], data[q + 1], data[q + 2]) : data[q];
  }
  return { width, height, grey, bitDepth: sixteen ? 16 : 8, colour };
}

function decodeJpeg(path: string, bytes: Buffer): DecodedImage {
  let image: { width: number; height: number; data: Uint8Array };
  try {
    image = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: (MAX_SIDE_PX * MAX_SIDE_PX) / 1e6, maxMemoryUsageInMB: 1024 });
  } catch (error) {
    throw new VolumeReadError('BAD_HEADER', path, `unreadable JPEG (${error instanceof Error ? error.message : String(error)})`);
  }
  const { width, height, data } = image;
  const grey = new Float32Array(width * height);
  let colour = false;
  for (let p = 0, q = 0; p < grey.length; p++, q += 4) {
    const r = data[q];
    const g = data[q + 1];
    const b = data[q + 2];
    if (r !== g || g !== b) colour = true;
    grey[p] = luma(r, g, b);
  }
  return { width, height, grey, bitDepth: 8, colour };
}

/** Reads a PNG or JPEG key image as a one-slice volume (canonical LPS: image columns run towards the
 * patient's left and rows towards posterior, the radiological display convention of axial CT). */
export async function readKeyImage(path: string, options: KeyImageReadOptions = {}): Promise<Volume> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch {
    throw new VolumeReadError('UNREADABLE', path, 'cannot read the file');
  }
  return keyImageFromBytes(path, bytes, options);
}

export function keyImageFromBytes(path: string, bytes: Buffer, options: KeyImageReadOptions = {}): Volume {
  const format = keyImageFormat(bytes);
  if (!format) throw new VolumeReadError('BAD_MAGIC', path, 'not a PNG or JPEG image');
  const image = format === 'png' ? decodePng(path, bytes) : decodeJpeg(path, bytes);
  if (image.width < 1 || image.height < 1 || image.width > MAX_SIDE_PX || image.height > MAX_SIDE_PX) {
    throw new VolumeReadError('BAD_DIMENSIONS', path, `image of ${image.width}×${image.height} px (1…${MAX_SIDE_PX} per side)`);
  }
  const spacing = options.pixelSpacingMm;
  if (spacing !== undefined && !(Number.isFinite(spacing) && spacing > 0)) {
    throw new VolumeReadError('BAD_HEADER', path, `pixel spacing must be a positive number of mm, got ${spacing}`);
  }
  const s = spacing ?? 1;
  const data = new Int16Array(image.width * image.height);
  let intensity: 'hu' | 'display';
  let storedDataType: string;
  if (image.bitDepth === 16) {
    if (options.huWindow) throw new VolumeReadError('UNSUPPORTED_DATATYPE', path, '--hu-window is for 8-bit display images; a 16-bit grey PNG maps to HU with --hu-offset');
    const offset = options.huOffset ?? DEFAULT_HU_OFFSET;
    for (let p = 0; p < data.length; p++) data[p] = Math.max(-32768, Math.min(32767, Math.round(image.grey[p] - offset)));
    intensity = 'hu';
    storedDataType = 'uint16';
  } else if (options.huWindow) {
    const { lowHu, highHu } = options.huWindow;
    if (!(Number.isFinite(lowHu) && Number.isFinite(highHu) && highHu > lowHu)) {
      throw new VolumeReadError('BAD_HEADER', path, `HU window ${lowHu}:${highHu} must be LOW:HIGH with LOW < HIGH`);
    }
    // Grey g was (hu − low) / (high − low) × 255 clamped; its inverse gives the window's HU back (values
    // that were clipped stay at the window's ends: that information is gone).
    const perGrey = (highHu - lowHu) / 255;
    for (let p = 0; p < data.length; p++) data[p] = Math.round(lowHu + image.grey[p] * perGrey);
    intensity = 'hu';
    storedDataType = 'uint8';
  } else {
    for (let p = 0; p < data.length; p++) data[p] = Math.round(image.grey[p]);
    intensity = 'display';
    storedDataType = 'uint8';
  }
  // i → patient left (RAS x negative), j → posterior (RAS y negative), one slice at z = 0.
  const affineRas: Mat4 = [-s, 0, 0, 0, 0, -s, 0, 0, 0, 0, s, 0, 0, 0, 0, 1];
  return {
    data,
    dims: [image.width, image.height, 1],
    spacingMm: [s, s, s],
    affineRas,
    modality: 'CT',
    intensity,
    source: {
      path,
      format,
      orientation: 'LPS',
      storedDataType: `${storedDataType}${image.colour ? '-rgb' : ''}`,
      pixelSpacingKnown: spacing !== undefined,
    },
    corrections: [],
  };
}

/** Whether reading this file with these options gives display grey levels (an 8-bit image without a
 * window) rather than HU; reads the first bytes only. False for anything that is not a key image. */
export async function keyImageGivesDisplay(path: string, options: KeyImageReadOptions = {}): Promise<boolean> {
  const handle = await open(path, 'r').catch(() => undefined);
  if (!handle) return false;
  try {
    const head = Buffer.alloc(32);
    const { bytesRead } = await handle.read(head, 0, 32, 0);
    const format = keyImageFormat(head.subarray(0, bytesRead));
    if (!format) return false;
    if (format === 'png' && bytesRead > 24 && head[24] === 16) return false;
    return options.huWindow === undefined;
  } finally {
    await handle.close();
  }
}
