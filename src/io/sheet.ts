import { encodePng, renderSlice, type RgbaImage, type Rgb } from './png.js';
import { writeFileAtomic } from './nifti-writer.js';
import type { Volume } from './volume.js';

/**
 * A search result as a picture: the query and each retrieved volume as coronal views side by side, the
 * query's slab and each localized region tinted, so a reader sees at a glance where each match lies.
 */

export const QUERY_COLOR: Rgb = [60, 140, 255];
export const MATCH_COLOR: Rgb = [255, 150, 30];
const GAP_PX = 6;

export interface SheetPanel {
  volume: Volume;
  /** Inclusive canonical slice range to tint. */
  band?: { firstSlice: number; lastSlice: number };
  color: Rgb;
}

/** Nearest-neighbour scale into a box, aspect kept, centred on black (thumbnails only; no precision
 * is at stake). A box, not a common height: a 24-slice slab seen coronally is a thin strip. */
function fitInto(image: RgbaImage, boxWidthPx: number, boxHeightPx: number): RgbaImage {
  const scale = Math.min(boxWidthPx / image.width, boxHeightPx / image.height);
  const widthPx = Math.max(1, Math.round(image.width * scale));
  const heightPx = Math.max(1, Math.round(image.height * scale));
  const x0 = Math.floor((boxWidthPx - widthPx) / 2);
  const y0 = Math.floor((boxHeightPx - heightPx) / 2);
  const data = new Uint8Array(boxWidthPx * boxHeightPx * 4);
  for (let p = 3; p < data.length; p += 4) data[p] = 255;
  for (let y = 0; y < heightPx; y++) {
    const sy = Math.min(image.height - 1, Math.floor(((y + 0.5) * image.height) / heightPx));
    for (let x = 0; x < widthPx; x++) {
      const sx = Math.min(image.width - 1, Math.floor(((x + 0.5) * image.width) / widthPx));
      const from = 4 * (sy * image.width + sx);
      data.set(image.data.subarray(from, from + 4), 4 * ((y0 + y) * boxWidthPx + x0 + x));
    }
  }
  return { width: boxWidthPx, height: boxHeightPx, data };
}

export function renderPanel(panel: SheetPanel, boxPx: number): RgbaImage {
  const bands = panel.band ? [{ kFirst: panel.band.firstSlice, kLast: panel.band.lastSlice, color: panel.color, alpha: 0.3 }] : [];
  return fitInto(renderSlice(panel.volume, { plane: 'coronal', bands }), boxPx, boxPx);
}

/** Square panels of `heightPx` left to right on a dark background. */
export function composeSheet(panels: SheetPanel[], heightPx = 256): RgbaImage {
  const images = panels.map((panel) => renderPanel(panel, heightPx));
  const width = images.reduce((sum, image) => sum + image.width, 0) + GAP_PX * Math.max(0, images.length - 1);
  const data = new Uint8Array(Math.max(1, width) * heightPx * 4);
  for (let p = 3; p < data.length; p += 4) data[p] = 255;
  let x0 = 0;
  for (const image of images) {
    for (let y = 0; y < heightPx; y++) data.set(image.data.subarray(4 * y * image.width, 4 * (y + 1) * image.width), 4 * (y * width + x0));
    x0 += image.width + GAP_PX;
  }
  return { width: Math.max(1, width), height: heightPx, data };
}

export async function writeSheet(path: string, panels: SheetPanel[], heightPx = 256): Promise<void> {
  await writeFileAtomic(path, encodePng(composeSheet(panels, heightPx)));
}
