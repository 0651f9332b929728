/**
 * The built-in encoders with real pretrained weights: nsfwjs's MobileNetV2 models (ImageNet-initialized,
 * fine-tuned on a 5-class photo task), converted to ONNX on first use and cached. The converted model takes
 * NCHW RGB in [0, 1] (what nsfwjs feeds them: pixels / 255; the ×1.4 model rescales to [−1, 1] inside its
 * graph, the ×1.0 Keras model takes [0, 1] as is) and outputs the globally average-pooled feature that feeds
 * the classification head.
 */
import { rm } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { EncoderError } from './errors.js';
import { ensureCachedFile, modelCacheDir } from './model-cache.js';
import { loadTfjsArtifacts, nsfwjsModelDir, tfjsSourceSha256 } from './tfjs-artifacts.js';
import { CONVERTER_VERSION, convertTfjsToOnnx } from './tfjs-to-onnx.js';

export type BuiltinModelName = 'mobilenet_v2' | 'mobilenet_v2_mid';

export interface BuiltinModel {
  name: BuiltinModelName;
  /** Folder under nsfwjs/dist/models. */
  nsfwjsModel: string;
  featureDim: number;
  inputSizePx: number;
  description: string;
}

export const BUILTIN_MODELS: Readonly<Record<BuiltinModelName, BuiltinModel>> = Object.freeze({
  mobilenet_v2: {
    name: 'mobilenet_v2',
    nsfwjsModel: 'mobilenet_v2',
    featureDim: 1280,
    inputSizePx: 224,
    description: 'MobileNetV2 ×1.0, 224 px, 1280-d pooled feature (nsfwjs weights, Keras layers model)',
  },
  mobilenet_v2_mid: {
    name: 'mobilenet_v2_mid',
    nsfwjsModel: 'mobilenet_v2_mid',
    featureDim: 1792,
    inputSizePx: 224,
    description: 'MobileNetV2 ×1.4, 224 px, 1792-d pooled feature (nsfwjs weights, TF-Hub graph model)',
  },
});

export function isBuiltinModelName(name: string): name is BuiltinModelName {
  return Object.hasOwn(BUILTIN_MODELS, name);
}

export interface BuiltinModelFile {
  path: string;
  /** SHA-256 of the TF.js source files the ONNX file was converted from. */
  sourceSha256: string;
  /** True when this call converted it (first use), false when it came from the cache. */
  converted: boolean;
  /** Time spent converting (0 when cached). */
  conversionMs: number;
}

/** The cached ONNX file of a built-in model, converting it first when absent. */
export async function builtinModelFile(name: BuiltinModelName, cacheDir?: string): Promise<BuiltinModelFile> {
  const model = BUILTIN_MODELS[name];
  const sourceDir = nsfwjsModelDir(model.nsfwjsModel);
  const sourceSha256 = await tfjsSourceSha256(sourceDir);
  // Source hash and converter version in the name: new weights or a fixed converter never reuse a stale file.
  const fileName = `${name}-${sourceSha256.slice(0, 16)}-c${CONVERTER_VERSION}.onnx`;
  let conversionMs = 0;
  const dir = modelCacheDir(cacheDir);
  const cached = ensureCachedFile(dir, fileName, async () => {
    const started = performance.now();
    const artifacts = await loadTfjsArtifacts(sourceDir);
    if (artifacts.sourceSha256 !== sourceSha256) {
      throw new EncoderError('CORRUPT_MODEL', sourceDir, 'TF.js model files changed while being converted');
    }
    const converted = convertTfjsToOnnx(artifacts, { modelName: name });
    if (converted.featureDim !== model.featureDim) {
      throw new EncoderError('CORRUPT_MODEL', sourceDir, `converted ${name} gives ${converted.featureDim}-d features, expected ${model.featureDim}`);
    }
    conversionMs = performance.now() - started;
    return converted.bytes;
  });
  const { path, created } = await cached.catch((cause: unknown) => {
    if (cause instanceof EncoderError) throw cause;
    throw new EncoderError('CACHE_UNWRITABLE', dir, `cannot write the converted ${name} model here (${cause instanceof Error ? cause.message : String(cause)}); set MIR3D_CACHE_DIR to a writable folder`, { cause });
  });
  return { path, sourceSha256, converted: created, conversionMs };
}

/** Removes a cached conversion that failed to load, so the next call converts afresh. */
export async function discardBuiltinModelFile(path: string): Promise<void> {
  await rm(path, { force: true });
}
