/**
 * Hugging Face style local model folders: an ONNX export (model.onnx, or onnx/model.onnx as Optimum and
 * transformers.js lay them out) beside the model's config.json and preprocessor_config.json. The preprocessor
 * config says how HF's image processor prepares pixels; this module turns it into the encoder's input spec.
 * Nothing is ever downloaded: a hub id without a local folder is an error that says what to put where.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { EncoderError } from './errors.js';
import type { ModelInputSpec } from './model-io.js';

/** Where the ONNX file is looked for inside a folder, in this order. */
export const HF_ONNX_CANDIDATES = ['model.onnx', 'onnx/model.onnx', 'vision_model.onnx', 'onnx/vision_model.onnx'];
export const HF_PREPROCESSOR_CONFIG = 'preprocessor_config.json';
export const HF_CONFIG = 'config.json';

export interface HfModelFolder {
  dir: string;
  onnxPath: string;
  /** Folder name, used as the encoder's name. */
  name: string;
  /** What preprocessor_config.json (and config.json) fix; the rest comes from the model's input shape. */
  input: Partial<ModelInputSpec>;
}

/** Reads a model folder. `onnxFile` (relative to the folder) picks the ONNX file when several exist. */
export async function readHfModelFolder(dir: string, onnxFile?: string): Promise<HfModelFolder> {
  const onnxPath = findOnnxFile(dir, onnxFile);
  const preprocessorPath = join(dir, HF_PREPROCESSOR_CONFIG);
  if (!existsSync(preprocessorPath)) {
    throw new EncoderError(
      'BAD_CONFIG',
      dir,
      `model folder has ${relative(dir, onnxPath)} but no ${HF_PREPROCESSOR_CONFIG} (image size, image_mean, image_std); ` +
        `copy it from the model's hub page into this folder, or pass the .onnx file itself with explicit preprocessing options`,
    );
  }
  const preprocessor = await readJsonObject(preprocessorPath);
  const configPath = join(dir, HF_CONFIG);
  const config = existsSync(configPath) ? await readJsonObject(configPath) : {};
  return { dir, onnxPath, name: basename(dir), input: inputSpecFromConfigs(preprocessor, config, preprocessorPath) };
}

function findOnnxFile(dir: string, onnxFile: string | undefined): string {
  if (onnxFile) {
    const path = join(dir, onnxFile);
    if (!existsSync(path)) throw new EncoderError('NOT_FOUND', path, 'ONNX file named in the options is not in the model folder');
    return path;
  }
  for (const candidate of HF_ONNX_CANDIDATES) {
    const path = join(dir, candidate);
    if (existsSync(path)) return path;
  }
  const found = [dir, join(dir, 'onnx')].flatMap((folder) =>
    existsSync(folder) && statSync(folder).isDirectory()
      ? readdirSync(folder)
          .filter((name) => name.endsWith('.onnx'))
          .map((name) => join(folder, name))
      : [],
  );
  if (found.length === 1) return found[0];
  if (found.length > 1) {
    throw new EncoderError('BAD_CONFIG', dir, `several ONNX files (${found.map((p) => relative(dir, p)).join(', ')}); say which one to use (onnxFile option)`);
  }
  throw new EncoderError('NOT_FOUND', dir, `no ONNX model in the folder: expected ${HF_ONNX_CANDIDATES.slice(0, 2).join(' or ')}, with ${HF_CONFIG} and ${HF_PREPROCESSOR_CONFIG} beside it`);
}

function relative(dir: string, path: string): string {
  return path.startsWith(`${dir}/`) ? path.slice(dir.length + 1) : path;
}

async function readJsonObject(path: string): Promise<Record<string, unknown>> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, 'utf8')) as unknown;
  } catch (cause) {
    throw new EncoderError('BAD_CONFIG', path, `not valid JSON: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new EncoderError('BAD_CONFIG', path, 'not a JSON object');
  return value as Record<string, unknown>;
}

/**
 * HF image processors: pixels (0–255) → × rescale_factor when do_rescale → (x − image_mean) / image_std when
 * do_normalize, at `crop_size` when do_center_crop else `size`. Our slices are [0, 1] = pixels / 255, so
 * do_rescale with factor 1/255 means the model sees 0–1 values; without do_rescale, 0–255. Slices are
 * resized straight to the final size (no crop): CT slices are framed by preprocessing, not by the crop.
 */
export function inputSpecFromConfigs(pre: Record<string, unknown>, config: Record<string, unknown>, source: string): Partial<ModelInputSpec> {
  const spec: Partial<ModelInputSpec> = {};
  const doRescale = pre.do_rescale !== false;
  const rescaleFactor = typeof pre.rescale_factor === 'number' ? pre.rescale_factor : 1 / 255;
  if (!doRescale) spec.valueRange = '0-255';
  else if (Math.abs(rescaleFactor * 255 - 1) < 1e-6) spec.valueRange = '0-1';
  else throw new EncoderError('BAD_CONFIG', source, `rescale_factor ${rescaleFactor} is neither 1/255 nor absent; only 0–1 and 0–255 inputs are supported`);

  const visionConfig = (typeof config.vision_config === 'object' && config.vision_config !== null ? config.vision_config : config) as Record<string, unknown>;
  const channels = visionConfig.num_channels;
  if (channels !== undefined) {
    if (channels !== 1 && channels !== 3) throw new EncoderError('BAD_CONFIG', source, `num_channels ${String(channels)}: only 1 or 3 channels are supported`);
    spec.channels = channels;
  }

  if (pre.do_normalize !== false) {
    const mean = pre.image_mean;
    const std = pre.image_std;
    if (mean === undefined || std === undefined) throw new EncoderError('BAD_CONFIG', source, 'do_normalize is set but image_mean or image_std is missing');
    spec.mean = numberList(mean, 'image_mean', source);
    spec.std = numberList(std, 'image_std', source);
    if (spec.std.some((s) => !(s > 0))) throw new EncoderError('BAD_CONFIG', source, `image_std must be positive, got ${spec.std.join(', ')}`);
    if (spec.mean.length !== spec.std.length) throw new EncoderError('BAD_CONFIG', source, `image_mean has ${spec.mean.length} values, image_std ${spec.std.length}`);
  }

  const cropped = pre.do_center_crop === true && pre.crop_size !== undefined;
  const size = sizeOf(cropped ? pre.crop_size : pre.size, source) ?? sizeOf(visionConfig.image_size, source);
  if (size) {
    spec.heightPx = size.heightPx;
    spec.widthPx = size.widthPx;
  }
  return spec;
}

function numberList(value: unknown, key: string, source: string): number[] {
  const list = typeof value === 'number' ? [value] : value;
  if (!Array.isArray(list) || list.length === 0 || list.some((v) => typeof v !== 'number' || !Number.isFinite(v))) {
    throw new EncoderError('BAD_CONFIG', source, `${key} must be a number or a list of numbers, got ${JSON.stringify(value)}`);
  }
  return list as number[];
}

/** HF writes sizes as 224, {height, width}, {shortest_edge} or [h, w]. */
function sizeOf(value: unknown, source: string): { heightPx: number; widthPx: number } | undefined {
  if (value === undefined || value === null) return undefined;
  const positive = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
  if (positive(value)) return { heightPx: value, widthPx: value };
  if (Array.isArray(value) && value.length === 2 && positive(value[0]) && positive(value[1])) return { heightPx: value[0], widthPx: value[1] };
  if (typeof value === 'object') {
    const s = value as Record<string, unknown>;
    if (positive(s.height) && positive(s.width)) return { heightPx: s.height, widthPx: s.width };
    if (positive(s.shortest_edge)) return { heightPx: s.shortest_edge, widthPx: s.shortest_edge };
  }
  throw new EncoderError('BAD_CONFIG', source, `cannot read an image size from ${JSON.stringify(value)}`);
}

/** 'hf:org/name', 'hf://org/name' or 'org/name' → 'org/name'; undefined when it is not hub-id shaped. */
export function parseHubModelId(text: string): string | undefined {
  const stripped = text.replace(/^hf:(\/\/)?/, '');
  const explicit = stripped !== text;
  if (!/^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(stripped)) return undefined;
  if (!explicit && (existsSync(text) || /\.onnx$/i.test(text))) return undefined;
  return stripped;
}

/** The local folder where a hub model's files are looked for: <cache>/hf/<org>/<name>. */
export function hubModelFolder(cacheDir: string, hubId: string): string {
  return join(cacheDir, 'hf', ...hubId.split('/'));
}

/** `ambiguous`: the text had no 'hf:' prefix, so it may have been meant as a local path that does not exist. */
export function offlineHubModelError(hubId: string, folder: string, ambiguous = false): EncoderError {
  return new EncoderError(
    'OFFLINE_HUB_MODEL',
    `hf:${hubId}`,
    (ambiguous ? `there is no local file or folder ${hubId}, so it was read as a Hugging Face model id. ` : '') +
      `mir3d never downloads models. On a machine with internet access get, from https://huggingface.co/${hubId}, ` +
      `the ONNX export (model.onnx or onnx/model.onnx), config.json and preprocessor_config.json ` +
      `(e.g. huggingface-cli download ${hubId} onnx/model.onnx config.json preprocessor_config.json --local-dir DIR), ` +
      `then put them in ${folder} (used for hf:${hubId}) or pass DIR itself as the encoder`,
  );
}
