import { InvalidArgumentError, type Command } from 'commander';
import { labelValue } from '../ingest/labels-csv.js';
import type { KeyImageReadOptions } from '../io/key-image.js';

/** Parsers for command-line option values, shared by every command so they accept and refuse alike. */

export const positiveNumber = (label: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${label} must be a positive number`);
  return n;
};

export const positiveInteger = (label: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${label} must be a positive integer`);
  return n;
};

export const nonNegativeInteger = (label: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${label} must be a non-negative integer`);
  return n;
};

export const integer = (label: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`${label} must be an integer`);
  return n;
};

/** For repeatable options: each occurrence appends. */
export const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** `key=value`; numbers stay numbers so label filters and metrics compare them as such. */
export function parseLabel(text: string): [string, string | number] {
  const at = text.indexOf('=');
  if (at <= 0) throw new InvalidArgumentError(`label "${text}" must look like key=value`);
  return [text.slice(0, at).trim(), labelValue(text.slice(at + 1).trim())];
}

/** `LOW:HIGH` in HU, LOW < HIGH (the display window an 8-bit key image was saved with). */
export function huWindowRange(value: string): { lowHu: number; highHu: number } {
  const match = /^\s*([+-]?\d+(?:\.\d*)?)\s*:\s*([+-]?\d+(?:\.\d*)?)\s*$/.exec(value);
  const lowHu = Number(match?.[1]);
  const highHu = Number(match?.[2]);
  if (!match || !(highHu > lowHu)) throw new InvalidArgumentError('--hu-window must be LOW:HIGH in HU with LOW < HIGH, e.g. -1350:150 for a lung window');
  return { lowHu, highHu };
}

/** The options every command that reads key images (PNG, JPEG) accepts. */
export interface KeyImageCliOptions {
  huWindow?: { lowHu: number; highHu: number };
  huOffset?: number;
  pixelSpacing?: number;
}

export function addKeyImageOptions(command: Command): Command {
  return command
    .option('--hu-window <low:high>', '8-bit PNG/JPEG key images: the display window they were saved with, so grey 0…255 maps back to HU (without it grey levels are used as they are)', huWindowRange)
    .option('--hu-offset <n>', '16-bit grey PNG: HU = stored value − n (default 32768, DeepLesion)', integer('--hu-offset'))
    .option('--pixel-spacing <mm>', 'key images: pixel size in mm (default unknown; the aspect is kept)', positiveNumber('--pixel-spacing'));
}

export function keyImageReadOptions(options: KeyImageCliOptions): KeyImageReadOptions {
  return {
    ...(options.huWindow ? { huWindow: options.huWindow } : {}),
    ...(options.huOffset !== undefined ? { huOffset: options.huOffset } : {}),
    ...(options.pixelSpacing !== undefined ? { pixelSpacingMm: options.pixelSpacing } : {}),
  };
}
