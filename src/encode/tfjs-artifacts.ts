/**
 * Reads TensorFlow.js models as nsfwjs ships them: `model.min.js` and `group1-shardNofM.min.js`, each a
 * browserify UMD bundle whose one module sets `module.exports` to the model.json object (a JS object literal,
 * not JSON: unquoted keys, `!1` for false) or to the weight shard as one base64 string. The bundles are
 * evaluated in an empty vm context (no require, no process, a time limit), which is all the UMD wrapper
 * needs to hand back its export. A plain TF.js folder (model.json + binary shards) is read too.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { EncoderError } from './errors.js';

export interface TfjsQuantization {
  dtype: 'uint8' | 'uint16' | 'float16';
  /** Affine dequantization for uint8/uint16: value = q · scale + min. */
  min?: number;
  scale?: number;
}

export interface TfjsWeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: TfjsQuantization;
}

export interface TfjsWeightGroup {
  paths: string[];
  weights: TfjsWeightSpec[];
}

export interface TfjsModelJson {
  /** 'graph-model' for converted TF graphs; absent or 'layers-model' for Keras models. */
  format?: string;
  modelTopology: unknown;
  weightsManifest: TfjsWeightGroup[];
}

export interface DecodedWeight {
  shape: number[];
  values: Float32Array;
}

export interface TfjsArtifacts {
  /** Folder the model was read from. */
  dir: string;
  modelJson: TfjsModelJson;
  weights: Map<string, DecodedWeight>;
  /** SHA-256 (hex) of the model file's and the shards' bytes, in manifest order. */
  sourceSha256: string;
}

/** Folder of one of nsfwjs's bundled models ('mobilenet_v2', 'mobilenet_v2_mid', 'inception_v3'). */
export function nsfwjsModelDir(modelName: string): string {
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = require.resolve('nsfwjs'); // …/nsfwjs/dist/cjs/index.js (the package's exports map hides other paths)
  } catch (cause) {
    throw new EncoderError('NOT_FOUND', 'nsfwjs', 'the npm package nsfwjs (built-in model weights) is not installed; run npm ci', { cause });
  }
  return join(dirname(entry), '..', 'models', modelName);
}

/** The files whose bytes define the model, in the order they are hashed. Cheap: reads no weights. */
export async function tfjsSourceFiles(dir: string): Promise<string[]> {
  const bundled = join(dir, 'model.min.js');
  const plain = join(dir, 'model.json');
  if (existsSync(bundled)) {
    const modelJson = await readModelJson(bundled);
    return [bundled, ...shardPaths(modelJson).map((path) => join(dir, `${path}.min.js`))];
  }
  if (existsSync(plain)) {
    const modelJson = await readModelJson(plain);
    return [plain, ...shardPaths(modelJson).map((path) => join(dir, path))];
  }
  throw new EncoderError('NOT_FOUND', dir, 'no TF.js model here (expected model.min.js or model.json)');
}

/** SHA-256 of the source files (model + weights): names the converted file in the cache. */
export async function tfjsSourceSha256(dir: string): Promise<string> {
  const hash = createHash('sha256');
  for (const file of await tfjsSourceFiles(dir)) hash.update(await readSource(file));
  return hash.digest('hex');
}

export async function loadTfjsArtifacts(dir: string): Promise<TfjsArtifacts> {
  const files = await tfjsSourceFiles(dir);
  const hash = createHash('sha256');
  const modelBytes = await readSource(files[0]);
  hash.update(modelBytes);
  const modelJson = files[0].endsWith('.min.js')
    ? parseModelJson(evaluateBundle(modelBytes.toString('utf8'), files[0]), files[0])
    : parseModelJson(JSON.parse(modelBytes.toString('utf8')) as unknown, files[0]);
  const shards: Uint8Array[] = [];
  for (const file of files.slice(1)) {
    const bytes = await readSource(file);
    hash.update(bytes);
    if (file.endsWith('.min.js')) {
      const exported = evaluateBundle(bytes.toString('utf8'), file);
      if (typeof exported !== 'string') throw new EncoderError('CORRUPT_MODEL', file, 'weight bundle does not export a base64 string');
      shards.push(Buffer.from(exported, 'base64'));
    } else {
      shards.push(bytes);
    }
  }
  const weights = decodeWeights(modelJson.weightsManifest, concat(shards), dir);
  return { dir, modelJson, weights, sourceSha256: hash.digest('hex') };
}

async function readSource(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (cause) {
    throw new EncoderError('NOT_FOUND', file, 'TF.js model file missing or unreadable', { cause });
  }
}

async function readModelJson(file: string): Promise<TfjsModelJson> {
  const text = (await readSource(file)).toString('utf8');
  const value = file.endsWith('.min.js') ? evaluateBundle(text, file) : (JSON.parse(text) as unknown);
  return parseModelJson(value, file);
}

function shardPaths(modelJson: TfjsModelJson): string[] {
  return modelJson.weightsManifest.flatMap((group) => group.paths);
}

/** Runs a UMD bundle in an empty context and returns what it assigns to module.exports. */
function evaluateBundle(source: string, file: string): unknown {
  const sandbox = { module: { exports: {} as unknown }, exports: {} };
  try {
    runInNewContext(source, sandbox, { filename: file, timeout: 30_000 });
  } catch (cause) {
    throw new EncoderError('CORRUPT_MODEL', file, `cannot evaluate the TF.js bundle: ${String(cause)}`, { cause });
  }
  const exported = sandbox.module.exports;
  // Objects made in the vm context have that context's prototypes; a JSON round trip brings them into ours.
  return typeof exported === 'string' ? exported : (JSON.parse(JSON.stringify(exported)) as unknown);
}

function parseModelJson(value: unknown, file: string): TfjsModelJson {
  const bad = (what: string): never => {
    throw new EncoderError('CORRUPT_MODEL', file, `not a TF.js model.json: ${what}`);
  };
  if (typeof value !== 'object' || value === null) return bad('not an object');
  const record = value as Record<string, unknown>;
  if (typeof record.modelTopology !== 'object' || record.modelTopology === null) return bad('no modelTopology');
  const manifest = record.weightsManifest;
  if (!Array.isArray(manifest)) return bad('no weightsManifest');
  for (const group of manifest as unknown[]) {
    const g = group as Record<string, unknown>;
    if (!Array.isArray(g.paths) || !Array.isArray(g.weights)) bad('weightsManifest group without paths/weights');
    for (const w of g.weights as unknown[]) {
      const spec = w as Record<string, unknown>;
      if (typeof spec.name !== 'string' || !Array.isArray(spec.shape) || typeof spec.dtype !== 'string') bad('malformed weight entry');
    }
  }
  return {
    format: typeof record.format === 'string' ? record.format : undefined,
    modelTopology: record.modelTopology,
    weightsManifest: manifest as TfjsWeightGroup[],
  };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

const BYTES_PER_VALUE: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

/**
 * Splits the concatenated shards into named float tensors, dequantizing as TF.js does
 * (uint8/uint16: q · scale + min; float16: IEEE half). Weights lie back to back in manifest order.
 */
export function decodeWeights(manifest: TfjsWeightGroup[], data: Uint8Array, source: string): Map<string, DecodedWeight> {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const weights = new Map<string, DecodedWeight>();
  let offset = 0;
  for (const spec of manifest.flatMap((group) => group.weights)) {
    const count = spec.shape.reduce((a, b) => a * b, 1);
    const storedType = spec.quantization?.dtype ?? spec.dtype;
    const bytesPer = BYTES_PER_VALUE[storedType];
    if (bytesPer === undefined) throw new EncoderError('UNSUPPORTED_OP', source, `weight ${spec.name}: stored type ${storedType} not supported`);
    const byteLength = count * bytesPer;
    if (offset + byteLength > data.byteLength) {
      throw new EncoderError('CORRUPT_MODEL', source, `weight data ends before ${spec.name} (${data.byteLength} bytes)`);
    }
    const values = new Float32Array(count);
    const q = spec.quantization;
    if (q && (q.dtype === 'uint8' || q.dtype === 'uint16')) {
      if (typeof q.scale !== 'number' || typeof q.min !== 'number') {
        throw new EncoderError('CORRUPT_MODEL', source, `weight ${spec.name}: quantization without min/scale`);
      }
      for (let i = 0; i < count; i++) {
        const stored = q.dtype === 'uint8' ? view.getUint8(offset + i) : view.getUint16(offset + 2 * i, true);
        values[i] = stored * q.scale + q.min;
      }
    } else if (storedType === 'float16') {
      for (let i = 0; i < count; i++) values[i] = halfToFloat(view.getUint16(offset + 2 * i, true));
    } else if (storedType === 'float32') {
      for (let i = 0; i < count; i++) values[i] = view.getFloat32(offset + 4 * i, true);
    } else if (storedType === 'int32') {
      for (let i = 0; i < count; i++) values[i] = view.getInt32(offset + 4 * i, true);
    } else {
      for (let i = 0; i < count; i++) values[i] = view.getUint8(offset + i);
    }
    weights.set(spec.name, { shape: spec.shape.slice(), values });
    offset += byteLength;
  }
  if (offset !== data.byteLength) {
    throw new EncoderError('CORRUPT_MODEL', source, `weight shards hold ${data.byteLength} bytes, manifest describes ${offset}`);
  }
  return weights;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}
