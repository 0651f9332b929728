import type { Niivue } from '@niivue/niivue';
import { authHeaders, picture, query } from './api.js';
import type { Alignment } from './alignment.js';
import type { DisplayWindow } from './display.js';

/**
 * The result viewer: the query and one result side by side, each an axial slice (NiiVue on WebGL2,
 * server-rendered pictures where WebGL2 is missing) beside a coronal overview with its region outlined
 * and the current slice marked. The viewer owns both panes and keeps them in step along the found
 * alignment: scroll either (wheel, ↑/↓, a click on the overview) and the other shows the slice matched
 * to it. Each pane says its slice number and z, and whether the slice lies in its region; the region is
 * outlined, never tinted over the picture. The page's display window applies to both.
 */

export interface PaneTarget {
  role: 'query' | 'match';
  /** Heading for people, e.g. "Query: liver case 12, slices 40–100". */
  title: string;
  /** API path of the volume's gzipped NIfTI. */
  niftiPath: string;
  /** API path of its thumbnail route. */
  thumbnailPath: string;
  dims: [number, number, number];
  affineRas: number[];
  /** The query slab or the matched region, inclusive canonical slices. */
  band: { first: number; last: number };
}

type NiivueModule = typeof import('@niivue/niivue');

const NIIVUE_URL = '/vendor/niivue/index.js';
let niivue: Promise<NiivueModule> | undefined;

export function hasWebGl2(): boolean {
  try {
    return document.createElement('canvas').getContext('webgl2') !== null;
  } catch {
    return false;
  }
}

function affineApply(affine: number[], ijk: [number, number, number]): [number, number, number] {
  const [i, j, k] = ijk;
  const row = (r: number): number => affine[r * 4] * i + affine[r * 4 + 1] * j + affine[r * 4 + 2] * k + affine[r * 4 + 3];
  return [row(0), row(1), row(2)];
}

export function sliceZ(affine: number[], dims: [number, number, number], k: number): number {
  return affineApply(affine, [(dims[0] - 1) / 2, (dims[1] - 1) / 2, k])[2];
}

/** One side of the viewer. */
class SlicePane {
  slice = 0;
  private nv: Niivue | undefined;
  private fallback: HTMLImageElement | undefined;
  private window: DisplayWindow;
  private readonly stage: HTMLElement;
  private readonly caption: HTMLElement;
  private readonly overview: HTMLElement;
  private readonly marker: HTMLElement;
  private closed = false;

  constructor(
    readonly container: HTMLElement,
    readonly target: PaneTarget,
    window: DisplayWindow,
    private readonly windowQuery: () => Record<string, string | number | undefined>,
    private readonly onUserSlice: (k: number) => void,
  ) {
    this.window = window;
    container.replaceChildren();
    container.dataset.role = target.role;
    this.stage = document.createElement('div');
    this.stage.className = 'pane-stage';
    this.caption = document.createElement('p');
    this.caption.className = 'pane-caption';
    this.caption.setAttribute('aria-live', 'polite');
    this.overview = document.createElement('div');
    this.overview.className = 'pane-overview stack';
    this.overview.title = 'Coronal overview: click to go to a slice';
    const overviewImage = document.createElement('img');
    overviewImage.alt = `${target.title}: coronal overview, region outlined`;
    overviewImage.draggable = false;
    const box = document.createElement('div');
    box.className = `region-outline region-${target.role}`;
    const n = target.dims[2];
    box.style.top = `${((n - 1 - target.band.last) / n) * 100}%`;
    box.style.height = `${((target.band.last - target.band.first + 1) / n) * 100}%`;
    box.dataset.firstSlice = String(target.band.first);
    box.dataset.lastSlice = String(target.band.last);
    this.marker = document.createElement('div');
    this.marker.className = 'slice-marker';
    this.overview.append(overviewImage, box, this.marker);
    const body = document.createElement('div');
    body.className = 'pane-body';
    body.append(this.stage, this.overview);
    container.append(this.caption, body);
    this.overview.addEventListener('click', (event) => {
      const rect = overviewImage.getBoundingClientRect();
      const fraction = (event.clientY - rect.top) / Math.max(1, rect.height);
      this.onUserSlice(Math.min(n - 1, Math.max(0, n - 1 - Math.floor(fraction * n))));
    });
    // The wheel scrolls slices here (up = superior), not the page, and not NiiVue's own handler.
    container.addEventListener(
      'wheel',
      (event) => {
        event.preventDefault();
        event.stopPropagation();
        if (event.deltaY !== 0) this.onUserSlice(this.slice + (event.deltaY < 0 ? 1 : -1));
      },
      { passive: false, capture: true },
    );
    void this.refreshOverview();
  }

  async open(onNote: (text: string) => void, initialSlice: number): Promise<void> {
    this.slice = initialSlice;
    if (hasWebGl2()) {
      try {
        await this.openNiivue();
      } catch (error) {
        onNote(`The slice viewer could not start WebGL (${error instanceof Error ? error.message : String(error)}); showing pictures instead.`);
      }
    } else {
      onNote('This browser has no WebGL2: showing server-rendered slices instead.');
    }
    if (!this.nv && !this.closed) {
      this.fallback = document.createElement('img');
      this.fallback.className = 'viewer-fallback';
      this.stage.append(this.fallback);
    }
    this.show(initialSlice);
    this.container.dataset.ready = 'true';
  }

  private async openNiivue(): Promise<void> {
    niivue ??= import(NIIVUE_URL as string) as Promise<NiivueModule>;
    const { Niivue: NiivueClass, DRAG_MODE } = await niivue;
    const canvas = document.createElement('canvas');
    canvas.className = 'viewer-canvas';
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', `${this.target.title}: axial slice`);
    this.stage.append(canvas);
    const nv = new NiivueClass({
      backColor: [0, 0, 0, 1],
      show3Dcrosshair: false,
      crosshairWidth: 0,
      dragAndDropEnabled: false,
      isResizeCanvas: true,
      loadingText: 'loading…',
      // Slices are chosen by this viewer (wheel, keys, overview); NiiVue only draws.
      dragMode: DRAG_MODE.none,
      isOrientationTextVisible: true,
    });
    await nv.attachToCanvas(canvas);
    nv.setSliceType(nv.sliceTypeAxial);
    const { low, high } = bounds(this.window);
    await nv.loadVolumes([{ url: this.target.niftiPath, headers: authHeaders(), cal_min: low, cal_max: high, name: 'volume.nii.gz' }]);
    if (this.closed) {
      nv.cleanup?.();
      return;
    }
    this.nv = nv;
  }

  /** Shows slice k (clamped) and returns it. */
  show(k: number): number {
    const n = this.target.dims[2];
    this.slice = Math.min(n - 1, Math.max(0, Math.round(k)));
    const inRegion = this.slice >= this.target.band.first && this.slice <= this.target.band.last;
    this.container.dataset.slice = String(this.slice);
    this.container.classList.toggle('in-region', inRegion);
    this.marker.style.top = `${((n - 1 - this.slice + 0.5) / n) * 100}%`;
    const z = sliceZ(this.target.affineRas, this.target.dims, this.slice);
    const where = this.target.role === 'query' ? 'in the query slab' : 'in the matched region';
    this.caption.textContent = `slice ${this.slice} of ${n - 1} · z ${z.toFixed(1)} mm${inRegion ? ` · ${where}` : ''}`;
    if (this.nv) {
      const { dims, affineRas } = this.target;
      this.nv.scene.crosshairPos = this.nv.mm2frac(affineApply(affineRas, [(dims[0] - 1) / 2, (dims[1] - 1) / 2, this.slice]));
      this.nv.drawScene();
    } else if (this.fallback) {
      const wanted = this.slice;
      void picture(this.target.thumbnailPath + query({ plane: 'axial', index: wanted, maxPx: 512, ...this.windowQuery() })).then((url) => {
        if (this.fallback && this.slice === wanted) this.fallback.src = url;
      });
    }
    return this.slice;
  }

  setWindow(window: DisplayWindow, settled: boolean): void {
    this.window = window;
    if (this.nv) {
      const volume = this.nv.volumes[0];
      if (volume) {
        const { low, high } = bounds(window);
        volume.cal_min = low;
        volume.cal_max = high;
        this.nv.updateGLVolume();
      }
    }
    if (settled) {
      if (this.fallback) this.show(this.slice);
      void this.refreshOverview();
    }
  }

  private async refreshOverview(): Promise<void> {
    const image = this.overview.querySelector('img');
    if (!image) return;
    try {
      image.src = await picture(this.target.thumbnailPath + query({ plane: 'coronal', maxPx: 384, ...this.windowQuery() }));
    } catch {
      image.alt = 'overview unavailable';
    }
  }

  close(): void {
    this.closed = true;
    if (this.nv) {
      const canvas = this.nv.canvas;
      this.nv.cleanup?.();
      canvas?.getContext('webgl2')?.getExtension('WEBGL_lose_context')?.loseContext();
    }
    this.nv = undefined;
    this.container.replaceChildren();
    delete this.container.dataset.ready;
  }
}

function bounds(window: DisplayWindow): { low: number; high: number } {
  return { low: window.levelHu - window.widthHu / 2, high: window.levelHu + window.widthHu / 2 };
}

/** Both panes, kept in step. */
export class ResultViewer {
  private query: SlicePane | undefined;
  private result: SlicePane | undefined;
  private alignment: Alignment | undefined;

  /** Opens the query and a result at `start` (a query slice and the result slice it matched). */
  async open(
    panes: { query: HTMLElement; result: HTMLElement },
    targets: { query: PaneTarget; result: PaneTarget },
    alignment: Alignment,
    start: { querySlice: number; targetSlice: number },
    window: DisplayWindow,
    windowQuery: () => Record<string, string | number | undefined>,
    onNote: (text: string) => void,
  ): Promise<void> {
    this.close();
    this.alignment = alignment;
    this.query = new SlicePane(panes.query, targets.query, window, windowQuery, (k) => this.scrollQuery(k));
    this.result = new SlicePane(panes.result, targets.result, window, windowQuery, (k) => this.scrollResult(k));
    await Promise.all([this.query.open(onNote, start.querySlice), this.result.open(onNote, start.targetSlice)]);
  }

  get isOpen(): boolean {
    return this.query !== undefined;
  }

  /** Moves the query by `delta` slices; the result follows the alignment. */
  step(delta: number): void {
    if (this.query) this.scrollQuery(this.query.slice + delta);
  }

  scrollQuery(k: number): void {
    if (!this.query || !this.result || !this.alignment) return;
    const shown = this.query.show(k);
    this.result.show(this.alignment.toTarget(shown));
  }

  scrollResult(k: number): void {
    if (!this.query || !this.result || !this.alignment) return;
    const shown = this.result.show(k);
    this.query.show(this.alignment.toQuery(shown));
  }

  setWindow(window: DisplayWindow, settled: boolean): void {
    this.query?.setWindow(window, settled);
    this.result?.setWindow(window, settled);
  }

  close(): void {
    this.query?.close();
    this.result?.close();
    this.query = undefined;
    this.result = undefined;
    this.alignment = undefined;
  }
}
