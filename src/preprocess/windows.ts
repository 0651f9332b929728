import type { HuWindow } from './spec.js';

/**
 * Standard CT display windows (level/width in HU). Values follow the usual radiology tables, e.g.
 * Radiopaedia "Windowing (CT)" (https://radiopaedia.org/articles/windowing-ct): abdomen soft tissue
 * W400 L50, liver W150 L30, lung W1500 L−600, bone W1800 L400, brain W80 L40; mediastinum W350 L50.
 * "wide" (−1000…1000 HU) keeps air, fat, soft tissue and bone apart in one channel.
 * Names are part of an encoder's id, so changing a preset's numbers changes which index it may write.
 */
export const WINDOW_PRESETS: Readonly<Record<string, Readonly<HuWindow>>> = Object.freeze({
  abdomen: Object.freeze({ name: 'abdomen', levelHu: 50, widthHu: 400 }),
  liver: Object.freeze({ name: 'liver', levelHu: 30, widthHu: 150 }),
  mediastinum: Object.freeze({ name: 'mediastinum', levelHu: 50, widthHu: 350 }),
  lung: Object.freeze({ name: 'lung', levelHu: -600, widthHu: 1500 }),
  bone: Object.freeze({ name: 'bone', levelHu: 400, widthHu: 1800 }),
  brain: Object.freeze({ name: 'brain', levelHu: 40, widthHu: 80 }),
  wide: Object.freeze({ name: 'wide', levelHu: 0, widthHu: 2000 }),
});

/** Not a HU window: grey levels 0…255 of an already windowed 8-bit key image pass through unchanged.
 * Kept apart from the HU presets; `windowPreset('display')` gives it. */
export const DISPLAY_WINDOW: Readonly<HuWindow> = Object.freeze({ name: 'display', levelHu: 127.5, widthHu: 255 });

/** True when the windows take display grey levels (key images of unknown window), not HU. */
export function isDisplayPreprocessing(windows: readonly HuWindow[]): boolean {
  return windows.length > 0 && windows.every((window) => window.name === 'display');
}

export function windowPreset(name: string): HuWindow {
  const key = name.trim().toLowerCase();
  if (key === DISPLAY_WINDOW.name) return { ...DISPLAY_WINDOW };
  const preset = WINDOW_PRESETS[key];
  if (!preset) {
    throw new RangeError(`unknown HU window "${name}"; known: ${Object.keys(WINDOW_PRESETS).join(', ')}, or LEVEL:WIDTH in HU (e.g. 40:400)`);
  }
  return { ...preset };
}

/** A window of any level and width. Its name is "LEVEL:WIDTH", the same text `parseWindows` reads back,
 * so an encoder id built from window names stays parseable. */
export function customWindow(levelHu: number, widthHu: number): HuWindow {
  if (!Number.isFinite(levelHu)) throw new RangeError(`window level must be a finite number of HU, got ${levelHu}`);
  if (!Number.isFinite(widthHu) || widthHu <= 0) {
    throw new RangeError(`window width must be a positive number of HU, got ${widthHu}`);
  }
  return { name: `${levelHu}:${widthHu}`, levelHu, widthHu };
}

const NUMBER = String.raw`[+-]?(?:\d+(?:\.\d*)?|\.\d+)`;
const CUSTOM_WINDOW = new RegExp(`^(${NUMBER}):(${NUMBER})$`);

/**
 * Parses a comma-separated list of windows, one channel each: preset names (case-insensitive) and/or
 * LEVEL:WIDTH pairs in HU, e.g. "abdomen,lung,bone" or "40:400" or "-600:1500,bone".
 */
export function parseWindows(text: string): HuWindow[] {
  const parts = text.split(',').map((part) => part.trim());
  if (parts.length === 0 || parts.every((part) => part === '')) {
    throw new RangeError('no HU window given; expected names such as "abdomen,lung,bone" or LEVEL:WIDTH such as "40:400"');
  }
  return parts.map((part, position) => {
    if (part === '') throw new RangeError(`empty HU window at position ${position + 1} in "${text}"`);
    const custom = CUSTOM_WINDOW.exec(part);
    if (custom) return customWindow(Number(custom[1]), Number(custom[2]));
    if (part.includes(':')) {
      throw new RangeError(`HU window "${part}" is not LEVEL:WIDTH with two numbers (e.g. 40:400 or -600:1500)`);
    }
    return windowPreset(part);
  });
}

/** The inverse of `parseWindows`: "abdomen,lung,40:400". */
export function formatWindows(windows: readonly HuWindow[]): string {
  return windows.map((window) => window.name).join(',');
}

/** Lowest HU of the window; this and everything below maps to 0. */
export function windowMinHu(window: HuWindow): number {
  return window.levelHu - window.widthHu / 2;
}

/** Maps one HU value onto [0, 1]: linear inside [level − width/2, level + width/2], clamped outside.
 * NaN maps to 0 (the window's minimum), so a stray non-finite voxel cannot poison an embedding. */
export function windowHu(hu: number, window: HuWindow): number {
  // Same arithmetic as windowInto (multiply by the reciprocal), so scalar and bulk results agree once stored as float32.
  const v = (hu - windowMinHu(window)) * (1 / window.widthHu);
  return v > 0 ? (v < 1 ? v : 1) : 0;
}

/**
 * Windows `count` values of `src` from `srcOffset` into `dst` from `dstOffset`. The hot loop of the
 * preprocessing: one subtraction, one multiplication and a clamp per voxel, no allocation.
 */
export function windowInto(
  src: ArrayLike<number>,
  srcOffset: number,
  count: number,
  window: HuWindow,
  dst: Float32Array,
  dstOffset: number,
): void {
  const minHu = windowMinHu(window);
  const perHu = 1 / window.widthHu;
  for (let n = 0; n < count; n++) {
    const v = (src[srcOffset + n] - minHu) * perHu;
    dst[dstOffset + n] = v > 0 ? (v < 1 ? v : 1) : 0;
  }
}
