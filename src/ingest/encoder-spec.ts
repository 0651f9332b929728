import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Encoder } from '../encode/encoder.js';
import { openEncoder, type OpenEncoderOptions } from '../encode/registry.js';
import type { KeyImageReadOptions } from '../io/key-image.js';
import { writeFileAtomic } from '../io/nifti-writer.js';
import { storageError } from '../store/errors.js';

/**
 * How to reopen the encoder an index was built with. The index pins the encoder's id (model hash +
 * preprocessing); this file beside it records the name or path and options that produce that id, so
 * `mir3d search` and `mir3d serve` embed queries with the same encoder without the user repeating it.
 */
export interface EncoderSpec {
  /** Built-in name or model path, as given to openEncoder. */
  encoder: string;
  sliceStepMm?: number;
  windows?: string;
  /** Default true; grey key-image indexes turn it off (the crop finds the body by its HU). */
  bodyCrop?: boolean;
  /** How this index reads key images (PNG/JPEG), so a stored image is read again exactly as indexed. */
  keyImages?: KeyImageReadOptions;
}

/** The spec for an index of 8-bit key images whose display window is unknown: grey levels go to every
 * channel as they are and no HU body crop runs; the encoder id says so ('display,display,display|full-fov'). */
export function displayImageSpec(spec: EncoderSpec): EncoderSpec {
  return { ...spec, windows: 'display,display,display', bodyCrop: false };
}

export const ENCODER_SPEC_FILE = 'encoder.json';

export function readEncoderSpec(indexDir: string): EncoderSpec | undefined {
  const path = join(indexDir, ENCODER_SPEC_FILE);
  if (!existsSync(path)) return undefined;
  return JSON.parse(readFileSync(path, 'utf8')) as EncoderSpec;
}

export async function writeEncoderSpec(indexDir: string, spec: EncoderSpec): Promise<void> {
  try {
    await writeFileAtomic(join(indexDir, ENCODER_SPEC_FILE), `${JSON.stringify(spec, null, 2)}\n`);
  } catch (error) {
    throw storageError(indexDir, error);
  }
}

export async function openSpecEncoder(spec: EncoderSpec, onStatus?: (message: string) => void, extra: OpenEncoderOptions = {}): Promise<Encoder> {
  return openEncoder(spec.encoder, {
    ...extra,
    ...(spec.sliceStepMm !== undefined ? { sliceStepMm: spec.sliceStepMm } : {}),
    ...(spec.windows ? { windows: spec.windows } : {}),
    ...(spec.bodyCrop !== undefined ? { bodyCrop: spec.bodyCrop } : {}),
    ...(onStatus ? { onStatus } : {}),
  });
}
