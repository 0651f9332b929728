/**
 * The query range on the slice stack: a coronal picture of the query volume (superior at the top) with
 * a band over the chosen slices. Drag on the picture to draw the band; the two sliders (keyboard and
 * screen-reader friendly) give the same range slice by slice. Both stay in step, live.
 */

export interface SlabElements {
  stack: HTMLElement;
  image: HTMLImageElement;
  band: HTMLElement;
  first: HTMLInputElement;
  last: HTMLInputElement;
  firstOut: HTMLOutputElement;
  lastOut: HTMLOutputElement;
  summary: HTMLElement;
}

export interface SlabRange {
  first: number;
  last: number;
}

/** Top and height of a band over slices first..last, in % of a coronal picture of `sliceCount` slices
 * (rows run from the top slice down, so slice k sits at row sliceCount − 1 − k). */
export function bandPlacement(range: SlabRange, sliceCount: number): { topPct: number; heightPct: number } {
  return { topPct: ((sliceCount - 1 - range.last) / sliceCount) * 100, heightPct: ((range.last - range.first + 1) / sliceCount) * 100 };
}

export function placeBand(band: HTMLElement, range: SlabRange, sliceCount: number): void {
  const { topPct, heightPct } = bandPlacement(range, sliceCount);
  band.style.top = `${topPct}%`;
  band.style.height = `${heightPct}%`;
  band.dataset.firstSlice = String(range.first);
  band.dataset.lastSlice = String(range.last);
  band.hidden = false;
}

export class SlabPicker {
  private sliceCount = 0;
  private zOfSlice: (k: number) => number = (k) => k;
  private anchor: number | undefined;

  constructor(
    private readonly els: SlabElements,
    private readonly onChange: (range: SlabRange) => void = () => undefined,
  ) {
    els.first.addEventListener('input', () => this.fromSliders('first'));
    els.last.addEventListener('input', () => this.fromSliders('last'));
    els.stack.addEventListener('pointerdown', (event) => this.pointerDown(event));
    els.stack.addEventListener('pointermove', (event) => this.pointerMove(event));
    els.stack.addEventListener('pointerup', (event) => this.pointerUp(event));
    els.stack.addEventListener('pointercancel', (event) => this.pointerUp(event));
  }

  /** A new query volume: the range becomes the whole stack. */
  setVolume(sliceCount: number, zOfSlice: (k: number) => number): void {
    this.sliceCount = sliceCount;
    this.zOfSlice = zOfSlice;
    for (const input of [this.els.first, this.els.last]) {
      input.min = '0';
      input.max = String(Math.max(0, sliceCount - 1));
      input.disabled = sliceCount === 0;
    }
    this.set({ first: 0, last: Math.max(0, sliceCount - 1) });
  }

  get range(): SlabRange {
    return { first: Number(this.els.first.value), last: Number(this.els.last.value) };
  }

  get isWholeVolume(): boolean {
    const { first, last } = this.range;
    return first === 0 && last === this.sliceCount - 1;
  }

  set(range: SlabRange): void {
    const clamp = (k: number): number => Math.min(Math.max(0, Math.round(k)), Math.max(0, this.sliceCount - 1));
    const first = clamp(Math.min(range.first, range.last));
    const last = clamp(Math.max(range.first, range.last));
    this.els.first.value = String(first);
    this.els.last.value = String(last);
    this.render();
  }

  private fromSliders(moved: 'first' | 'last'): void {
    let { first, last } = this.range;
    // Moving one thumb past the other pushes it along rather than swapping the ends.
    if (first > last) {
      if (moved === 'first') last = first;
      else first = last;
    }
    this.set({ first, last });
  }

  private render(): void {
    if (this.sliceCount === 0) return;
    const range = this.range;
    placeBand(this.els.band, range, this.sliceCount);
    const z = (k: number): string => this.zOfSlice(k).toFixed(1);
    this.els.firstOut.value = `${range.first} (z ${z(range.first)} mm)`;
    this.els.lastOut.value = `${range.last} (z ${z(range.last)} mm)`;
    this.els.first.setAttribute('aria-valuetext', `slice ${range.first}, z ${z(range.first)} millimetres`);
    this.els.last.setAttribute('aria-valuetext', `slice ${range.last}, z ${z(range.last)} millimetres`);
    const count = range.last - range.first + 1;
    this.els.summary.textContent = this.isWholeVolume
      ? `Whole volume: ${count} slices`
      : `Slab of ${count} slices (${range.first}–${range.last}), z ${z(range.first)} … ${z(range.last)} mm`;
    this.onChange(range);
  }

  private sliceAt(event: PointerEvent): number {
    const rect = this.els.image.getBoundingClientRect();
    const fraction = (event.clientY - rect.top) / Math.max(1, rect.height);
    return Math.min(this.sliceCount - 1, Math.max(0, this.sliceCount - 1 - Math.floor(fraction * this.sliceCount)));
  }

  private pointerDown(event: PointerEvent): void {
    if (this.sliceCount === 0 || event.button !== 0) return;
    event.preventDefault();
    this.els.stack.setPointerCapture(event.pointerId);
    this.anchor = this.sliceAt(event);
    this.set({ first: this.anchor, last: this.anchor });
  }

  private pointerMove(event: PointerEvent): void {
    if (this.anchor === undefined) return;
    const k = this.sliceAt(event);
    this.set({ first: Math.min(this.anchor, k), last: Math.max(this.anchor, k) });
  }

  private pointerUp(event: PointerEvent): void {
    if (this.anchor === undefined) return;
    this.anchor = undefined;
    if (this.els.stack.hasPointerCapture(event.pointerId)) this.els.stack.releasePointerCapture(event.pointerId);
  }
}
