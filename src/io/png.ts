import { PNG } from 'pngjs';
import { writeFileAtomic } from './nifti-writer.js';
import type { Vec3, VoxelArray } from './volume.js';

/**
 * Slice thumbnails of canonical volumes, for people to look at (demo output, reports, the web view).
 *
 * Display follows radiological convention, which the canonical grid makes a plain read-out:
 * - axial (k fixed): columns run with i, so the patient's right is on the image's left; rows with j,
 *   so anterior is at the top;
 * - coronal (j fixed): columns with i (patient right on the left), superior at the top;
 * - sagittal (i fixed): columns with j (anterior on the left), superior at the top.
 * Pixels are made square (linear interpolation of intensities, nearest label), so a 5 mm slice stack
 * does not look squashed in a coronal view.
 */

export type Plane = 'axial' | 'coronal' | 'sagittal';
export type Rgb = [number, number, number];

/** A display window: [levelHu − widthHu/2, levelHu + widthHu/2] maps onto black … white. */
export interface DisplayWindow {
  levelHu: number;
  widthHu: number;
}

export const DISPLAY_WINDOWS = {
  softTissue: { levelHu: 40, widthHu: 400 },
  lung: { levelHu: -600, widthHu: 1500 },
  bone: { levelHu: 400, widthHu: 1800 },
  brain: { levelHu: 40, widthHu: 80 },
  liver: { levelHu: 30, widthHu: 150 },
} as const satisfies Record<string, DisplayWindow>;

/** A label map on the same grid, drawn over the grey image. */
export interface LabelOverlay {
  data: ArrayLike<number>;
  /** Colour per label code; codes not listed are not drawn. */
  colors: Record<number, Rgb>;
  /** Opacity of the fill, 0–1 (default 0.35); 0 draws outlines only. */
  alpha?: number;
  /** Draw each region's border opaque (default true). */
  outline?: boolean;
}

/** A tinted band over a range of slices k, for coronal and sagittal views (e.g. a matched region). */
export interface SliceBand {
  kFirst: number;
  kLast: number;
  color: Rgb;
  /** Opacity, 0–1 (default 0.25). The band's two edges are drawn opaque. */
  alpha?: number;
}

/** A rectangle in the view's voxel coordinates (column axis u, row axis v as listed at the top). */
export interface VoxelBox {
  u: [number, number];
  v: [number, number];
  color: Rgb;
}

export interface SliceImageOptions {
  plane: Plane;
  /** Index along the plane's normal axis (k for axial, j for coronal, i for sagittal); default middle. */
  index?: number;
  window?: DisplayWindow;
  labels?: LabelOverlay;
  bands?: SliceBand[];
  boxes?: VoxelBox[];
  /** Pixel size in mm (default: the finer of the view's two voxel sizes). */
  pixelMm?: number;
}

export interface RgbaImage {
  width: number;
  height: number;
  /** Row-major RGBA, 4 bytes per pixel. */
  data: Uint8Array;
}

/** What renderSlice needs of a volume (a `Volume` has it). */
export interface SliceSource {
  data: VoxelArray | Uint8Array;
  dims: Vec3;
  spacingMm: Vec3;
}

interface ViewAxes {
  /** Canonical axis along image columns, along image rows, and the fixed axis. */
  u: 0 | 1 | 2;
  v: 0 | 1 | 2;
  fixed: 0 | 1 | 2;
  /** Whether image rows run against v (superior at the top means rows count k downwards). */
  flipV: boolean;
}

const VIEWS: Record<Plane, ViewAxes> = {
  axial: { u: 0, v: 1, fixed: 2, flipV: false },
  coronal: { u: 0, v: 2, fixed: 1, flipV: true },
  sagittal: { u: 1, v: 2, fixed: 0, flipV: true },
};

export function renderSlice(volume: SliceSource, options: SliceImageOptions): RgbaImage {
  const view = VIEWS[options.plane];
  const { dims, spacingMm } = volume;
  const strides: Vec3 = [1, dims[0], dims[0] * dims[1]];
  const index = options.index ?? Math.floor(dims[view.fixed] / 2);
  if (!Number.isInteger(index) || index < 0 || index >= dims[view.fixed]) {
    throw new RangeError(`${options.plane} index ${index} is outside 0..${dims[view.fixed] - 1}`);
  }
  const nu = dims[view.u];
  const nv = dims[view.v];
  const pixelMm = options.pixelMm ?? Math.min(spacingMm[view.u], spacingMm[view.v]);
  const width = Math.max(1, Math.round((nu * spacingMm[view.u]) / pixelMm));
  const height = Math.max(1, Math.round((nv * spacingMm[view.v]) / pixelMm));
  const base = index * strides[view.fixed];
  const su = strides[view.u];
  const sv = strides[view.v];
  const window = options.window ?? DISPLAY_WINDOWS.softTissue;
  const lowHu = window.levelHu - window.widthHu / 2;
  const scale = 255 / window.widthHu;

  // Continuous voxel coordinate of each output pixel's centre, per column and per row.
  const uAt = Float64Array.from({ length: width }, (_, x) => clamp(((x + 0.5) * nu) / width - 0.5, 0, nu - 1));
  const vAt = Float64Array.from({ length: height }, (_, y) => {
    const v = clamp(((y + 0.5) * nv) / height - 0.5, 0, nv - 1);
    return view.flipV ? nv - 1 - v : v;
  });

  const out = new Uint8Array(width * height * 4);
  const data = volume.data;
  for (let y = 0; y < height; y++) {
    const v0 = Math.floor(vAt[y]);
    const v1 = Math.min(nv - 1, v0 + 1);
    const fv = vAt[y] - v0;
    for (let x = 0; x < width; x++) {
      const u0 = Math.floor(uAt[x]);
      const u1 = Math.min(nu - 1, u0 + 1);
      const fu = uAt[x] - u0;
      const a = data[base + u0 * su + v0 * sv];
      const b = data[base + u1 * su + v0 * sv];
      const c = data[base + u0 * su + v1 * sv];
      const d = data[base + u1 * su + v1 * sv];
      const hu = (a * (1 - fu) + b * fu) * (1 - fv) + (c * (1 - fu) + d * fu) * fv;
      const grey = clamp(Math.round((hu - lowHu) * scale), 0, 255);
      const p = 4 * (y * width + x);
      out[p] = grey;
      out[p + 1] = grey;
      out[p + 2] = grey;
      out[p + 3] = 255;
    }
  }

  if (options.labels) drawLabels(out, width, height, options.labels, (x, y) => base + Math.round(uAt[x]) * su + Math.round(vAt[y]) * sv);
  for (const band of options.bands ?? []) {
    if (options.plane === 'axial') throw new RangeError('slice bands need a coronal or sagittal view');
    drawBand(out, width, height, band, vAt);
  }
  for (const box of options.boxes ?? []) drawBox(out, width, height, box, uAt, vAt);
  return { width, height, data: out };
}

function clamp(value: number, lo: number, hi: number): number {
  return value < lo ? lo : value > hi ? hi : value;
}

function blend(out: Uint8Array, p: number, color: Rgb, alpha: number): void {
  out[p] = Math.round(out[p] * (1 - alpha) + color[0] * alpha);
  out[p + 1] = Math.round(out[p + 1] * (1 - alpha) + color[1] * alpha);
  out[p + 2] = Math.round(out[p + 2] * (1 - alpha) + color[2] * alpha);
}

function drawLabels(out: Uint8Array, width: number, height: number, overlay: LabelOverlay, voxelOf: (x: number, y: number) => number): void {
  const alpha = overlay.alpha ?? 0.35;
  const outline = overlay.outline ?? true;
  const codes = new Int32Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) codes[y * width + x] = overlay.data[voxelOf(x, y)];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const code = codes[y * width + x];
      const color = overlay.colors[code];
      if (!color) continue;
      const p = 4 * (y * width + x);
      const border =
        x === 0 || y === 0 || x === width - 1 || y === height - 1 ||
        codes[y * width + x - 1] !== code || codes[y * width + x + 1] !== code ||
        codes[(y - 1) * width + x] !== code || codes[(y + 1) * width + x] !== code;
      if (outline && border) blend(out, p, color, 1);
      else if (alpha > 0) blend(out, p, color, alpha);
    }
  }
}

function drawBand(out: Uint8Array, width: number, height: number, band: SliceBand, vAt: Float64Array): void {
  const alpha = band.alpha ?? 0.25;
  const lo = Math.min(band.kFirst, band.kLast) - 0.5;
  const hi = Math.max(band.kFirst, band.kLast) + 0.5;
  let first = -1;
  let last = -1;
  for (let y = 0; y < height; y++) {
    if (vAt[y] < lo || vAt[y] > hi) continue;
    if (first < 0) first = y;
    last = y;
    for (let x = 0; x < width; x++) blend(out, 4 * (y * width + x), band.color, alpha);
  }
  if (first < 0) return;
  for (const y of [first, last]) for (let x = 0; x < width; x++) blend(out, 4 * (y * width + x), band.color, 1);
}

function drawBox(out: Uint8Array, width: number, height: number, box: VoxelBox, uAt: Float64Array, vAt: Float64Array): void {
  const inRange = (value: number, range: [number, number]): boolean => value >= Math.min(...range) - 0.5 && value <= Math.max(...range) + 0.5;
  const columns: number[] = [];
  const rows: number[] = [];
  for (let x = 0; x < width; x++) if (inRange(uAt[x], box.u)) columns.push(x);
  for (let y = 0; y < height; y++) if (inRange(vAt[y], box.v)) rows.push(y);
  if (columns.length === 0 || rows.length === 0) return;
  const [x0, x1] = [columns[0], columns[columns.length - 1]];
  const [y0, y1] = [Math.min(...rows), Math.max(...rows)];
  for (let x = x0; x <= x1; x++) for (const y of [y0, y1]) blend(out, 4 * (y * width + x), box.color, 1);
  for (let y = y0; y <= y1; y++) for (const x of [x0, x1]) blend(out, 4 * (y * width + x), box.color, 1);
}

export function encodePng(image: RgbaImage): Buffer {
  const png = new PNG({ width: image.width, height: image.height });
  png.data = Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength);
  return PNG.sync.write(png, { colorType: 6 });
}

/** Renders a slice and writes it as PNG (written aside and renamed, like the volumes). */
export async function writeSlicePng(path: string, volume: SliceSource, options: SliceImageOptions): Promise<void> {
  await writeFileAtomic(path, encodePng(renderSlice(volume, options)));
}
