import { authHeaders, picture, query } from './api.js';

/**
 * The slice viewer: query and result side by side in NiiVue (WebGL2), each opened at its region with
 * the region tinted (a label overlay built in the browser from the volume itself: slices first..last
 * set to 1). Where WebGL2 is unavailable, server-rendered pictures stand in, so the page still works.
 */

export interface ViewTarget {
  /** Heading for people, e.g. "Query: v12ab… slices 40–100". */
  title: string;
  /** API path of the volume's gzipped NIfTI. */
  niftiPath: string;
  /** API path of its thumbnail (for the fallback). */
  thumbnailPath: string;
  dims: [number, number, number];
  affineRas: number[];
  band: { first: number; last: number };
  tint: 'query' | 'match';
}

/** What we use of NiiVue's API (its bundle is loaded at run time from /vendor, not type-checked here). */
interface NvImage {
  img?: ArrayLike<number> & { [index: number]: number; length: number };
  colormap: string;
  opacity: number;
  cal_min: number;
  cal_max: number;
  clone(): NvImage;
  zeroImage(): void;
}

interface NiivueInstance {
  volumes: NvImage[];
  scene: { crosshairPos: ArrayLike<number> };
  sliceTypeMultiplanar: number;
  attachToCanvas(canvas: HTMLCanvasElement): Promise<unknown>;
  loadVolumes(list: { url: string; headers?: Record<string, string>; cal_min?: number; cal_max?: number; name?: string }[]): Promise<unknown>;
  addVolume(volume: NvImage): void;
  setSliceType(type: number): unknown;
  addColormap(key: string, map: { R: number[]; G: number[]; B: number[]; A: number[]; I: number[] }): void;
  mm2frac(mm: number[]): ArrayLike<number>;
  updateGLVolume(): void;
  drawScene(): unknown;
  cleanup?(): void;
}

interface NiivueModule {
  Niivue: new (options: Record<string, unknown>) => NiivueInstance;
}

const NIIVUE_URL = '/vendor/niivue/index.js';
let niivue: Promise<NiivueModule> | undefined;

export function hasWebGl2(): boolean {
  try {
    return document.createElement('canvas').getContext('webgl2') !== null;
  } catch {
    return false;
  }
}

/** Soft-tissue window (level 40, width 400 HU), as the thumbnails. */
const CAL_MIN_HU = -160;
const CAL_MAX_HU = 240;

function affineApply(affine: number[], ijk: [number, number, number]): number[] {
  const [i, j, k] = ijk;
  return [0, 1, 2].map((row) => affine[row * 4] * i + affine[row * 4 + 1] * j + affine[row * 4 + 2] * k + affine[row * 4 + 3]);
}

export interface ViewerPane {
  element: HTMLElement;
  close(): void;
}

async function niivuePane(container: HTMLElement, target: ViewTarget): Promise<ViewerPane> {
  niivue ??= import(NIIVUE_URL as string) as Promise<NiivueModule>;
  const { Niivue } = await niivue;
  const canvas = document.createElement('canvas');
  canvas.className = 'viewer-canvas';
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', `${target.title}: axial, coronal and sagittal slices through the region`);
  container.append(canvas);
  const nv = new Niivue({
    backColor: [0.06, 0.07, 0.09, 1],
    crosshairColor: target.tint === 'query' ? [0.24, 0.55, 1, 1] : [1, 0.59, 0.12, 1],
    show3Dcrosshair: false,
    dragAndDropEnabled: false,
    isResizeCanvas: true,
    loadingText: 'loading...',
    // Three slice views only: a 3D rendering of a slab overlay hides the anatomy rather than showing it.
    multiplanarShowRender: 0,
  });
  await nv.attachToCanvas(canvas);
  nv.setSliceType(nv.sliceTypeMultiplanar);
  await nv.loadVolumes([{ url: target.niftiPath, headers: authHeaders(), cal_min: CAL_MIN_HU, cal_max: CAL_MAX_HU, name: 'volume.nii.gz' }]);
  const base = nv.volumes[0];
  const overlay = base.clone();
  overlay.zeroImage();
  const [nx, ny] = target.dims;
  const img = overlay.img;
  // Stored order is the canonical grid (k slowest), as the server writes it: a slab is one run.
  if (img) for (let p = target.band.first * nx * ny; p < (target.band.last + 1) * nx * ny && p < img.length; p++) img[p] = 1;
  // The same colours as the thumbnails' bands (query blue, match orange).
  const [r, g, b] = target.tint === 'query' ? [60, 140, 255] : [255, 150, 30];
  nv.addColormap('mir3d-band', { R: [0, r], G: [0, g], B: [0, b], A: [0, 255], I: [0, 255] });
  overlay.colormap = 'mir3d-band';
  overlay.cal_min = 0.5;
  overlay.cal_max = 1;
  overlay.opacity = 0.3;
  nv.addVolume(overlay);
  const middleK = (target.band.first + target.band.last) / 2;
  const mm = affineApply(target.affineRas, [(target.dims[0] - 1) / 2, (target.dims[1] - 1) / 2, middleK]);
  nv.scene.crosshairPos = nv.mm2frac(mm);
  nv.updateGLVolume();
  nv.drawScene();
  canvas.dataset.ready = 'true';
  return {
    element: canvas,
    close: () => {
      nv.cleanup?.();
      canvas.getContext('webgl2')?.getExtension('WEBGL_lose_context')?.loseContext();
      canvas.remove();
    },
  };
}

async function picturePane(container: HTMLElement, target: ViewTarget): Promise<ViewerPane> {
  const img = document.createElement('img');
  img.className = 'viewer-fallback';
  img.alt = `${target.title}: coronal view with the region tinted`;
  img.src = await picture(target.thumbnailPath + query({ plane: 'coronal', bandFirst: target.band.first, bandLast: target.band.last, tint: target.tint, maxPx: 768 }));
  container.append(img);
  return { element: img, close: () => img.remove() };
}

/** Opens one pane in `container`: NiiVue when it can, else a still picture. */
export async function openPane(container: HTMLElement, target: ViewTarget, onNote: (text: string) => void): Promise<ViewerPane> {
  if (hasWebGl2()) {
    try {
      return await niivuePane(container, target);
    } catch (error) {
      onNote(`The 3D viewer could not start (${error instanceof Error ? error.message : String(error)}); showing pictures instead.`);
    }
  } else {
    onNote('This browser has no WebGL2: showing pictures instead of the slice viewer.');
  }
  return picturePane(container, target);
}
