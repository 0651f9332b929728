import type { WindowPreset } from './api.js';

/**
 * The display window (level and width in HU), one for the whole page: the query picture, every result
 * card and both viewer panes draw with it. Choose a preset, type the numbers, or drag on any picture
 * with the right mouse button (or Shift + left): up/down moves the level, left/right widens or narrows
 * the window, as in a PACS viewer. Pictures rendered by the server are fetched again when a drag ends;
 * the viewer follows live.
 */

export interface DisplayWindow {
  levelHu: number;
  widthHu: number;
}

export interface WindowElements {
  preset: HTMLSelectElement;
  level: HTMLInputElement;
  width: HTMLInputElement;
  readout: HTMLElement;
}

type Listener = (window: DisplayWindow, settled: boolean) => void;

/** HU per pixel of drag: a 300 px drag moves the level by 600 HU, as CT viewers roughly do. */
const HU_PER_PX = 2;
const MIN_WIDTH_HU = 1;
const MAX_WIDTH_HU = 10_000;

export function clampWindow(window: DisplayWindow): DisplayWindow {
  return {
    levelHu: Math.round(Math.min(5000, Math.max(-5000, window.levelHu))),
    widthHu: Math.round(Math.min(MAX_WIDTH_HU, Math.max(MIN_WIDTH_HU, window.widthHu))),
  };
}

/** The thumbnail routes' query for a window: the preset's name when it is one, else the numbers. */
export function windowQuery(window: DisplayWindow, presets: readonly WindowPreset[]): { window?: string; levelHu?: number; widthHu?: number } {
  const preset = presets.find((p) => p.levelHu === window.levelHu && p.widthHu === window.widthHu);
  return preset ? { window: preset.name } : { levelHu: window.levelHu, widthHu: window.widthHu };
}

export class WindowControl {
  private current: DisplayWindow;
  private presets: WindowPreset[] = [];
  private readonly listeners: Listener[] = [];

  constructor(private readonly els: WindowElements) {
    this.current = { levelHu: 40, widthHu: 400 };
    els.preset.addEventListener('change', () => {
      const preset = this.presets.find((p) => p.name === els.preset.value);
      if (preset) this.set({ levelHu: preset.levelHu, widthHu: preset.widthHu }, true);
    });
    const typed = (): void => {
      const levelHu = Number(els.level.value);
      const widthHu = Number(els.width.value);
      if (Number.isFinite(levelHu) && Number.isFinite(widthHu) && widthHu > 0) this.set({ levelHu, widthHu }, true);
    };
    els.level.addEventListener('change', typed);
    els.width.addEventListener('change', typed);
  }

  setPresets(presets: WindowPreset[]): void {
    this.presets = presets;
    const custom = document.createElement('option');
    custom.value = 'custom';
    custom.textContent = 'custom';
    this.els.preset.replaceChildren(
      ...presets.map((p) => {
        const option = document.createElement('option');
        option.value = p.name;
        option.textContent = p.title;
        return option;
      }),
      custom,
    );
    const first = presets[0];
    if (first) this.set({ levelHu: first.levelHu, widthHu: first.widthHu }, false);
  }

  get value(): DisplayWindow {
    return { ...this.current };
  }

  get presetList(): readonly WindowPreset[] {
    return this.presets;
  }

  /** The thumbnail routes' query for the current window. */
  query(): { window?: string; levelHu?: number; widthHu?: number } {
    return windowQuery(this.current, this.presets);
  }

  /** `settled` is false while a drag is under way (cheap updates only), true when it ends. */
  onChange(listener: Listener): void {
    this.listeners.push(listener);
  }

  set(next: DisplayWindow, notify = true, settled = true): void {
    this.current = clampWindow(next);
    const preset = this.presets.find((p) => p.levelHu === this.current.levelHu && p.widthHu === this.current.widthHu);
    this.els.preset.value = preset ? preset.name : 'custom';
    this.els.level.value = String(this.current.levelHu);
    this.els.width.value = String(this.current.widthHu);
    const low = this.current.levelHu - this.current.widthHu / 2;
    const high = this.current.levelHu + this.current.widthHu / 2;
    this.els.readout.textContent = `L ${this.current.levelHu} W ${this.current.widthHu} (${low.toFixed(0)} … ${high.toFixed(0)} HU)`;
    if (notify) for (const listener of this.listeners) listener(this.value, settled);
  }

  /** Lets the user adjust the window by dragging on `element` with the right button or Shift + left. */
  attachDrag(element: HTMLElement): void {
    let start: { x: number; y: number; window: DisplayWindow; pointerId: number } | undefined;
    element.addEventListener('contextmenu', (event) => event.preventDefault());
    element.addEventListener(
      'pointerdown',
      (event) => {
        const wants = event.button === 2 || (event.button === 0 && event.shiftKey);
        if (!wants) return;
        event.preventDefault();
        // Before other handlers on the element (the slab picker draws with a plain left drag).
        event.stopImmediatePropagation();
        element.setPointerCapture(event.pointerId);
        start = { x: event.clientX, y: event.clientY, window: this.value, pointerId: event.pointerId };
        element.classList.add('windowing');
      },
      { capture: true },
    );
    element.addEventListener(
      'pointermove',
      (event) => {
        if (!start || event.pointerId !== start.pointerId) return;
        event.stopImmediatePropagation();
        const dx = event.clientX - start.x;
        const dy = event.clientY - start.y;
        // Dragging up brightens (lower level), right widens.
        this.set({ levelHu: start.window.levelHu + dy * HU_PER_PX, widthHu: start.window.widthHu + dx * HU_PER_PX }, true, false);
      },
      { capture: true },
    );
    const end = (event: PointerEvent): void => {
      if (!start || event.pointerId !== start.pointerId) return;
      event.stopImmediatePropagation();
      start = undefined;
      element.classList.remove('windowing');
      if (element.hasPointerCapture(event.pointerId)) element.releasePointerCapture(event.pointerId);
      this.set(this.current, true, true);
    };
    element.addEventListener('pointerup', end, { capture: true });
    element.addEventListener('pointercancel', end, { capture: true });
  }
}
