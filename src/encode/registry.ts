/**
 * One entry point for every encoder: `openEncoder('mobilenet_v2')` (the default), 'mobilenet_v2_mid',
 * 'baseline', a path to an .onnx file or a model folder, or a hub id ('hf:org/name'), which is looked up
 * in the local cache folder only, never downloaded.
 */
import { existsSync, statSync } from 'node:fs';
import { BaselineEncoder, type BaselineEncoderOptions } from './baseline.js';
import { BUILTIN_MODELS, builtinModelFile, discardBuiltinModelFile, isBuiltinModelName, type BuiltinModelName } from './builtin.js';
import type { Encoder } from './encoder.js';
import { EncoderError } from './errors.js';
import { isClipFolder, openClipImageEncoder, openClipTextEncoder } from './clip-folder.js';
import { hubModelFolder, offlineHubModelError, parseHubModelId } from './hf-folder.js';
import { modelCacheDir } from './model-cache.js';
import { OnnxEncoder, type OnnxEncoderOptions } from './onnx-encoder.js';
import type { TextEncoder } from './text-encoder.js';

export const DEFAULT_ENCODER = 'mobilenet_v2';

export interface OpenEncoderOptions extends OnnxEncoderOptions {
  /** Folder for converted models and hub folders (default $MIR3D_CACHE_DIR or ~/.cache/mir3d/models). */
  cacheDir?: string;
  /** Baseline only: thumbnail and input size. */
  gridPx?: BaselineEncoderOptions['gridPx'];
  inputPx?: BaselineEncoderOptions['inputPx'];
  /** Called with a line for people when something slow happens (first-use conversion). */
  onStatus?: (message: string) => void;
}

export interface EncoderInfo {
  name: string;
  dim: number;
  description: string;
}

export function listEncoders(): EncoderInfo[] {
  return [
    ...Object.values(BUILTIN_MODELS).map((model) => ({ name: model.name, dim: model.featureDim, description: model.description })),
    { name: 'baseline', dim: 768, description: 'training-free: 3 windows × 16×16 area-averaged thumbnail, mean-centred (768-d)' },
  ];
}

export async function openEncoder(nameOrPath: string = DEFAULT_ENCODER, options: OpenEncoderOptions = {}): Promise<Encoder> {
  if (nameOrPath === 'baseline') {
    return new BaselineEncoder({
      windows: options.windows,
      gridPx: options.gridPx,
      inputPx: options.inputPx,
      bodyCrop: options.bodyCrop,
      sliceStepMm: options.sliceStepMm,
    });
  }
  if (isBuiltinModelName(nameOrPath)) return openBuiltin(nameOrPath, options);
  const hubId = parseHubModelId(nameOrPath);
  if (hubId !== undefined) {
    const folder = hubModelFolder(modelCacheDir(options.cacheDir), hubId);
    if (!existsSync(folder)) throw offlineHubModelError(hubId, folder, !nameOrPath.startsWith('hf:'));
    return openModelPath(folder, { name: hubId.replace('/', '--'), ...options });
  }
  if (existsSync(nameOrPath)) return openModelPath(nameOrPath, options);
  if (!/[/\\.]/.test(nameOrPath)) {
    throw new EncoderError('UNKNOWN_ENCODER', nameOrPath, `unknown encoder; built-in: ${listEncoders().map((e) => e.name).join(', ')}; or give a path to an .onnx file or a model folder`);
  }
  throw new EncoderError('NOT_FOUND', nameOrPath, 'no such model file or folder');
}

/** A two-tower folder opens its image tower with the pair pinned in the id; anything else as one model. */
function openModelPath(path: string, options: OnnxEncoderOptions): Promise<OnnxEncoder> {
  if (statSync(path).isDirectory() && isClipFolder(path)) return openClipImageEncoder(path, options);
  return OnnxEncoder.open(path, options);
}

/**
 * The text side of an image encoder, named as the index's encoder.json names it: a CLIP-style folder (or hub
 * id) opens its text tower, checked against `imageDim` when given. Built-in and plain ONNX encoders have no
 * text tower: the error says what to use instead.
 */
export async function openTextEncoder(nameOrPath: string, options: OpenEncoderOptions & { imageDim?: number } = {}): Promise<TextEncoder> {
  const hubId = isBuiltinModelName(nameOrPath) || nameOrPath === 'baseline' ? undefined : parseHubModelId(nameOrPath);
  const path = hubId !== undefined ? hubModelFolder(modelCacheDir(options.cacheDir), hubId) : nameOrPath;
  if (hubId !== undefined && !existsSync(path)) throw offlineHubModelError(hubId, path, !nameOrPath.startsWith('hf:'));
  if (existsSync(path) && statSync(path).isDirectory() && isClipFolder(path)) {
    return openClipTextEncoder(path, { ...(hubId ? { name: hubId.replace('/', '--') } : {}), ...options });
  }
  throw new EncoderError(
    'NO_TEXT_SPACE',
    nameOrPath,
    'this image encoder has no text tower; index with a CLIP-style model folder (vision_model.onnx + text_model.onnx + tokenizer.json), or learn a text space from captions with `mir3d train --db DB --captions COLUMN`',
  );
}

async function openBuiltin(name: BuiltinModelName, options: OpenEncoderOptions): Promise<OnnxEncoder> {
  const model = BUILTIN_MODELS[name];
  // The converted graph fixes these; user options may still change windows, body crop, threads, provider.
  const spec: OnnxEncoderOptions = {
    ...options,
    name,
    channels: 3,
    mean: [0, 0, 0],
    std: [1, 1, 1],
    valueRange: '0-1',
    layout: 'NCHW',
    output: 'features',
    pooling: 'none',
    heightPx: model.inputSizePx,
    widthPx: model.inputSizePx,
  };
  for (let attempt = 0; ; attempt++) {
    const file = await builtinModelFile(name, options.cacheDir);
    if (file.converted) options.onStatus?.(`converted ${name} from TF.js to ONNX in ${Math.round(file.conversionMs)} ms → ${file.path}`);
    try {
      return await OnnxEncoder.open(file.path, spec);
    } catch (error) {
      // A cached file that ONNX Runtime cannot read (disk trouble, a foreign file) is converted again once.
      if (attempt === 0 && error instanceof EncoderError && error.code === 'CORRUPT_MODEL' && !file.converted) {
        await discardBuiltinModelFile(file.path);
        continue;
      }
      throw error;
    }
  }
}
