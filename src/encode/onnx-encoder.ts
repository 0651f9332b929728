/**
 * An Encoder on ONNX Runtime: a user's .onnx file, a Hugging Face style model folder, or a built-in model
 * converted from TF.js. The model's input shape decides layout, channels and size where it can; options and
 * HF configs fill in the rest and must agree with it. The id pins the exact model bytes (SHA-256) and the
 * full preprocessing, so an index never mixes vectors of two models or two preprocessings.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { runSession, type InferenceSession, type TensorData, type ValueMetadata } from '../compute/session.js';
import {
  ComputeError,
  createSession as createComputeSession,
  gpuPresent,
  type ExecutionProvider,
  type ExecutionProviderChoice,
  type OpenedSession,
} from '../compute/index.js';
import type { SlicePreprocessing, HuWindow } from '../preprocess/spec.js';
import type { SliceTensor } from '../preprocess/slice-tensor.js';
import { formatWindows, parseWindows } from '../preprocess/windows.js';
import type { Encoder } from './encoder.js';
import { EncoderError } from './errors.js';
import { readHfModelFolder } from './hf-folder.js';
import {
  describeInputSpec,
  packModelInput,
  poolAndNormalize,
  resolvePooling,
  type ModelInputSpec,
  type Pooling,
  type TensorLayout,
  type ValueRange,
} from './model-io.js';

/** Bumped when the encoder's arithmetic changes for the same model and spec (it is part of every id). */
export const ONNX_ENCODER_VERSION = 'v1';

/** Three windows as the three colour channels: soft tissue, air/lung, bone. */
export const DEFAULT_WINDOWS_3 = 'abdomen,lung,bone';
export const DEFAULT_WINDOWS_1 = 'abdomen';
/** Size used when the model's input size is dynamic and nothing else says otherwise. */
export const DEFAULT_INPUT_SIZE_PX = 224;

export { gpuPresent };
export type { ExecutionProviderChoice };
/** The one provider enum of src/compute, under the name encoders used before. */
export type ProviderName = ExecutionProvider;

export interface OnnxEncoderOptions {
  /** Name in the id and for people; default: the model folder's or file's name. */
  name?: string;
  /** HU windows, one per SliceTensor channel: names/LEVEL:WIDTH text or HuWindow objects. 1 window is
   * replicated to 3 model channels. Default: abdomen,lung,bone for 3-channel models, abdomen for 1. */
  windows?: string | HuWindow[];
  /** Crop slices to the body before resizing (default true). */
  bodyCrop?: boolean;
  sliceStepMm?: number;
  /** Input size; needed only when the model's input size is dynamic and no HF config gives it. */
  heightPx?: number;
  widthPx?: number;
  channels?: 1 | 3;
  mean?: number[];
  std?: number[];
  valueRange?: ValueRange;
  /** Default: detected from the model's input shape (a 1- or 3-sized axis 1 → NCHW, axis 3 → NHWC). */
  layout?: TensorLayout;
  /** Which model input takes the pixels (needed only for models with several inputs). */
  inputName?: string;
  /** Output by name or index. Default: image_embeds, pooler_output, features or embeddings if present, else 0. */
  output?: string | number;
  pooling?: Pooling;
  /** For HF folders with several .onnx files: which one (relative path). */
  onnxFile?: string;
  /** 'auto' (default): CUDA when a GPU and ORT's CUDA provider library are present, else CPU. */
  executionProvider?: ExecutionProviderChoice;
  /** Threads for one inference (default: os.availableParallelism()). */
  intraOpThreads?: number;
  /** Constant tensors for a model's other inputs: a CLIP model.onnx with both towers also takes token ids,
   * which an image embedding does not use but the graph needs (see clip-folder.ts). */
  extraFeeds?: ExtraFeeds;
  /** Appended to the id: a CLIP image tower carries 'pair=…' so its index answers only its own text tower. */
  idTag?: string;
}

/** A constant input tensor, given as plain data so options stay serializable. */
export interface ConstantFeed {
  type: 'int64' | 'int32' | 'float32';
  dims: number[];
  values: number[];
}

/** Constant feeds, or a function that makes them from the model's inputs once the session is open. */
export type ExtraFeeds = Record<string, ConstantFeed> | ((inputs: readonly ValueMetadata[]) => Record<string, ConstantFeed>);

export function resolveExtraFeeds(feeds: ExtraFeeds | undefined, session: InferenceSession): Record<string, TensorData> {
  const plain = typeof feeds === 'function' ? feeds(session.inputMetadata) : (feeds ?? {});
  return Object.fromEntries(Object.entries(plain).map(([name, feed]) => [name, constantTensor(feed)]));
}

export function constantTensor(feed: ConstantFeed): TensorData {
  if (feed.type === 'int64') return { type: 'int64', data: BigInt64Array.from(feed.values, (v) => BigInt(v)), dims: feed.dims };
  if (feed.type === 'int32') return { type: 'int32', data: Int32Array.from(feed.values), dims: feed.dims };
  return { type: 'float32', data: Float32Array.from(feed.values), dims: feed.dims };
}

const PREFERRED_OUTPUTS = ['image_embeds', 'pooler_output', 'features', 'embeddings'];

export class OnnxEncoder implements Encoder {
  readonly id: string;
  readonly name: string;
  readonly dim: number;
  readonly preprocessing: SlicePreprocessing;
  /** Plain data: hand it to a worker with `packModelInput` to prepare batches off the main thread. */
  readonly inputSpec: ModelInputSpec;
  readonly modelPath: string;
  /** SHA-256 (hex) of the .onnx file. */
  readonly modelSha256: string;
  readonly inputName: string;
  readonly outputName: string;
  readonly pooling: Exclude<Pooling, 'auto'>;
  /** Execution provider the session runs on, and why when it is not the one asked for or hoped for. */
  readonly provider: ProviderName;
  readonly providerNote: string | undefined;
  /** The model's fixed batch size (e.g. 1 for a model exported without a dynamic batch axis), else undefined. */
  readonly fixedBatch: number | undefined;
  private readonly extraFeeds: Record<string, TensorData>;
  private session: InferenceSession | undefined;

  private constructor(init: {
    session: InferenceSession;
    name: string;
    dim: number;
    preprocessing: SlicePreprocessing;
    inputSpec: ModelInputSpec;
    modelPath: string;
    modelSha256: string;
    inputName: string;
    outputName: string;
    pooling: Exclude<Pooling, 'auto'>;
    provider: ProviderName;
    providerNote: string | undefined;
    fixedBatch: number | undefined;
    extraFeeds: Record<string, TensorData>;
    idTag: string | undefined;
  }) {
    this.session = init.session;
    this.extraFeeds = init.extraFeeds;
    this.name = init.name;
    this.dim = init.dim;
    this.preprocessing = init.preprocessing;
    this.inputSpec = init.inputSpec;
    this.modelPath = init.modelPath;
    this.modelSha256 = init.modelSha256;
    this.inputName = init.inputName;
    this.outputName = init.outputName;
    this.pooling = init.pooling;
    this.provider = init.provider;
    this.providerNote = init.providerNote;
    this.fixedBatch = init.fixedBatch;
    this.id = encoderId(init);
  }

  /** Opens a .onnx file or a model folder (see hf-folder.ts). */
  static async open(path: string, options: OnnxEncoderOptions = {}): Promise<OnnxEncoder> {
    if (!existsSync(path)) throw new EncoderError('NOT_FOUND', path, 'no such model file or folder');
    let modelPath = path;
    let fromConfig: Partial<ModelInputSpec> = {};
    let defaultName = basename(path).replace(/\.onnx$/i, '');
    if (statSync(path).isDirectory()) {
      const folder = await readHfModelFolder(path, options.onnxFile);
      modelPath = folder.onnxPath;
      fromConfig = folder.input;
      defaultName = folder.name;
    }
    const modelSha256 = await sha256File(modelPath);
    const { session, provider, providerNote } = await createSession(modelPath, options);
    try {
      return await OnnxEncoder.fromSession(session, { modelPath, modelSha256, provider, providerNote, fromConfig, defaultName, options });
    } catch (error) {
      await session.release();
      throw error;
    }
  }

  private static async fromSession(
    session: InferenceSession,
    ctx: {
      modelPath: string;
      modelSha256: string;
      provider: ProviderName;
      providerNote: string | undefined;
      fromConfig: Partial<ModelInputSpec>;
      defaultName: string;
      options: OnnxEncoderOptions;
    },
  ): Promise<OnnxEncoder> {
    const { modelPath, options } = ctx;
    const extraFeeds = resolveExtraFeeds(options.extraFeeds, session);
    const inputName = pickInput(session, options.inputName, modelPath, Object.keys(extraFeeds));
    const inputMeta = session.inputMetadata[session.inputNames.indexOf(inputName)];
    const { inputSpec, fixedBatch } = resolveInputSpec(inputMeta, ctx.fromConfig, options, modelPath);
    const outputName = pickOutput(session, options.output, modelPath);
    const outputMeta = session.outputMetadata[session.outputNames.indexOf(outputName)];
    if (outputMeta && outputMeta.isTensor && outputMeta.type !== 'float32') {
      throw new EncoderError('BAD_OUTPUT', modelPath, `output ${outputName} is ${outputMeta.type}; only float32 outputs are supported`);
    }
    const outputShape = outputMeta && outputMeta.isTensor ? outputMeta.shape : [];
    let pooling: Exclude<Pooling, 'auto'>;
    let dim: number | undefined;
    if (outputShape.length > 0) {
      pooling = resolvePooling(options.pooling ?? 'auto', outputShape.length, modelPath, `output ${outputName}`);
      dim = staticFeatureDim(outputShape, pooling, inputSpec.layout);
    } else {
      pooling = options.pooling === 'auto' || options.pooling === undefined ? 'none' : options.pooling;
    }
    const windows = resolveWindows(options.windows, inputSpec.channels, modelPath);
    const preprocessing: SlicePreprocessing = {
      windows,
      heightPx: inputSpec.heightPx,
      widthPx: inputSpec.widthPx,
      bodyCrop: options.bodyCrop ?? true,
      ...(options.sliceStepMm !== undefined ? { sliceStepMm: options.sliceStepMm } : {}),
    };
    const init = {
      session,
      name: options.name ?? ctx.defaultName,
      dim: dim ?? 0,
      preprocessing,
      inputSpec,
      modelPath,
      modelSha256: ctx.modelSha256,
      inputName,
      outputName,
      pooling,
      provider: ctx.provider,
      providerNote: ctx.providerNote,
      fixedBatch,
      extraFeeds,
      idTag: options.idTag,
    };
    if (dim === undefined || outputShape.length === 0) {
      // Output shape not declared: run one blank slice to learn the rank and width.
      const probeCount = fixedBatch ?? 1;
      const blank = new Float32Array(probeCount * inputSpec.channels * inputSpec.heightPx * inputSpec.widthPx);
      const probe = await runModel(session, inputName, outputName, blank, inputSpec, probeCount, modelPath, extraFeeds);
      if (outputShape.length === 0) init.pooling = resolvePooling(options.pooling ?? 'auto', probe.dims.length, modelPath, `output ${outputName}`);
      init.dim = poolAndNormalize(probe.data, probe.dims, init.pooling, inputSpec.layout, 1, modelPath).dim;
    }
    return new OnnxEncoder(init);
  }

  /** Step 1 of embed, pure: SliceTensor → model input. Safe to run in a worker (see model-io.ts). */
  packInput(batch: SliceTensor): Float32Array {
    return packModelInput(batch, this.inputSpec);
  }

  /** Step 2 of embed: runs packed input (`count` slices) and returns unit-length rows. */
  async embedPacked(input: Float32Array, count: number): Promise<Float32Array> {
    const session = this.session;
    if (!session) throw new EncoderError('CLOSED', this.modelPath, 'encoder was closed');
    const perSlice = this.inputSpec.channels * this.inputSpec.heightPx * this.inputSpec.widthPx;
    if (input.length !== count * perSlice) throw new EncoderError('BAD_BATCH', this.modelPath, `packed input holds ${input.length} floats for ${count} slices of ${perSlice}`);
    const result = new Float32Array(count * this.dim);
    const chunk = this.fixedBatch ?? Math.max(count, 1);
    for (let start = 0; start < count; start += chunk) {
      const n = Math.min(chunk, count - start);
      let part = input.subarray(start * perSlice, (start + n) * perSlice);
      const runCount = this.fixedBatch ?? n;
      if (runCount > n) {
        // A fixed-batch model gets its last chunk padded with blank slices, whose rows are dropped.
        const padded = new Float32Array(runCount * perSlice);
        padded.set(part);
        part = padded;
      }
      const output = await runModel(session, this.inputName, this.outputName, part, this.inputSpec, runCount, this.modelPath, this.extraFeeds);
      const { rows, dim } = poolAndNormalize(output.data, output.dims, this.pooling, this.inputSpec.layout, n, this.modelPath);
      if (dim !== this.dim) throw new EncoderError('BAD_OUTPUT', this.modelPath, `output width changed from ${this.dim} to ${dim}`);
      result.set(rows, start * this.dim);
    }
    return result;
  }

  async embed(batch: SliceTensor): Promise<Float32Array> {
    if (!this.session) throw new EncoderError('CLOSED', this.modelPath, 'encoder was closed');
    if (batch.channels !== this.preprocessing.windows.length) {
      throw new EncoderError('BAD_BATCH', this.modelPath, `batch has ${batch.channels} channels, the encoder's preprocessing has ${this.preprocessing.windows.length} windows (${formatWindows(this.preprocessing.windows)})`);
    }
    return this.embedPacked(this.packInput(batch), batch.count);
  }

  async close(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    if (session) await session.release();
  }
}

function encoderId(init: { name: string; modelSha256: string; preprocessing: SlicePreprocessing; inputSpec: ModelInputSpec; outputName: string; pooling: string; idTag: string | undefined }): string {
  const p = init.preprocessing;
  // The slice step is left out on purpose: it picks which slices are embedded, not what a slice's vector is.
  return [
    `${init.name}@sha256:${init.modelSha256.slice(0, 16)}`,
    formatWindows(p.windows),
    `${p.heightPx}x${p.widthPx}`,
    p.bodyCrop ? 'body-crop' : 'full-fov',
    describeInputSpec(init.inputSpec),
    `out=${init.outputName}:${init.pooling}`,
    ONNX_ENCODER_VERSION,
    ...(init.idTag ? [init.idTag] : []),
  ].join('|');
}

async function runModel(session: InferenceSession, inputName: string, outputName: string, data: Float32Array, spec: ModelInputSpec, count: number, source: string, extraFeeds: Record<string, TensorData>): Promise<{ data: Float32Array; dims: number[] }> {
  const shape = spec.layout === 'NCHW' ? [count, spec.channels, spec.heightPx, spec.widthPx] : [count, spec.heightPx, spec.widthPx, spec.channels];
  const feeds: Record<string, TensorData> = { ...extraFeeds, [inputName]: { type: 'float32', data, dims: shape } };
  let results: Awaited<ReturnType<typeof runSession>>;
  try {
    results = await runSession(session, feeds, [outputName]);
  } catch (cause) {
    throw new EncoderError('INCOMPATIBLE_INPUT', source, `inference failed on input [${shape.join(',')}]: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
  const tensor = results[outputName];
  if (tensor.type !== 'float32') throw new EncoderError('BAD_OUTPUT', source, `output ${outputName} is ${tensor.type}, not float32`);
  return { data: tensor.data as Float32Array, dims: tensor.dims };
}

function pickInput(session: InferenceSession, requested: string | undefined, source: string, fed: string[] = []): string {
  if (requested !== undefined) {
    if (!session.inputNames.includes(requested)) throw new EncoderError('INCOMPATIBLE_INPUT', source, `no input named ${requested}; inputs: ${session.inputNames.join(', ')}`);
    if (session.inputNames.some((name) => name !== requested && !fed.includes(name))) throw new EncoderError('INCOMPATIBLE_INPUT', source, `model needs ${session.inputNames.length} inputs (${session.inputNames.join(', ')}); an image encoder takes only pixels (export the vision tower alone)`);
    return requested;
  }
  if (session.inputNames.length !== 1) {
    throw new EncoderError('INCOMPATIBLE_INPUT', source, `model has ${session.inputNames.length} inputs (${session.inputNames.join(', ')}); an image encoder must take only pixels (export the vision tower alone)`);
  }
  return session.inputNames[0];
}

function pickOutput(session: InferenceSession, requested: string | number | undefined, source: string): string {
  const names = session.outputNames;
  if (typeof requested === 'number') {
    if (!Number.isInteger(requested) || requested < 0 || requested >= names.length) {
      throw new EncoderError('BAD_OUTPUT', source, `output index ${requested} out of range; the model has ${names.length} output(s): ${names.join(', ')}`);
    }
    return names[requested];
  }
  if (requested !== undefined) {
    if (!names.includes(requested)) throw new EncoderError('BAD_OUTPUT', source, `no output named "${requested}"; outputs: ${names.join(', ')}`);
    return requested;
  }
  return PREFERRED_OUTPUTS.find((name) => names.includes(name)) ?? names[0];
}

function fixedDim(value: number | string | undefined): number | undefined {
  return typeof value === 'number' && value > 0 ? value : undefined;
}

/** Works out layout, channels and size from the model's input shape, the HF config and the options; any
 * disagreement between them is an INCOMPATIBLE_INPUT error naming both sides. */
export function resolveInputSpec(meta: ValueMetadata | undefined, fromConfig: Partial<ModelInputSpec>, options: OnnxEncoderOptions, source: string): { inputSpec: ModelInputSpec; fixedBatch: number | undefined } {
  const incompatible = (detail: string): never => {
    throw new EncoderError('INCOMPATIBLE_INPUT', source, detail);
  };
  if (!meta || !meta.isTensor) return incompatible('model input is not a tensor');
  if (meta.type !== 'float32') incompatible(`model input ${meta.name} is ${meta.type}; only float32 image inputs are supported`);
  const shape = meta.shape;
  const shapeText = `[${shape.join(',')}]`;
  if (shape.length !== 4) incompatible(`model input ${meta.name} has shape ${shapeText}; an image encoder takes [N,C,H,W] or [N,H,W,C]`);
  const d1 = fixedDim(shape[1]);
  const d3 = fixedDim(shape[3]);
  const isChannelAxis = (d: number | undefined): boolean => d === 1 || d === 3;

  let layout: TensorLayout;
  if (options.layout) layout = options.layout;
  else if (isChannelAxis(d1)) layout = 'NCHW';
  else if (isChannelAxis(d3)) layout = 'NHWC';
  else if (d1 !== undefined && d3 !== undefined) return incompatible(`model input ${shapeText} has no 1- or 3-channel axis (channels must be 1 or 3)`);
  else layout = d3 === undefined ? 'NCHW' : 'NHWC';

  const [channelDim, heightDim, widthDim] = layout === 'NCHW' ? [d1, fixedDim(shape[2]), d3] : [d3, fixedDim(shape[1]), fixedDim(shape[2])];
  const requestedChannels = options.channels ?? fromConfig.channels;
  if (channelDim !== undefined && !isChannelAxis(channelDim)) {
    incompatible(`model input ${shapeText} read as ${layout} has ${channelDim} channels; only 1 or 3 are supported`);
  }
  if (channelDim !== undefined && requestedChannels !== undefined && channelDim !== requestedChannels) {
    incompatible(`model input ${shapeText} takes ${channelDim} channel(s) but the preprocessing asks for ${requestedChannels}`);
  }
  const channels = (channelDim ?? requestedChannels ?? 3) as 1 | 3;

  const size = (axis: string, modelDim: number | undefined, asked: number | undefined, config: number | undefined): number => {
    const wanted = asked ?? config;
    if (modelDim !== undefined && wanted !== undefined && modelDim !== wanted) {
      incompatible(`model input ${shapeText} has ${axis} ${modelDim} px but the preprocessing asks for ${wanted} px`);
    }
    const value = modelDim ?? wanted ?? DEFAULT_INPUT_SIZE_PX;
    if (!Number.isInteger(value) || value <= 0) incompatible(`${axis} must be a positive integer, got ${value}`);
    return value;
  };
  const heightPx = size('height', heightDim, options.heightPx, fromConfig.heightPx);
  const widthPx = size('width', widthDim, options.widthPx, fromConfig.widthPx);

  const perChannel = (values: number[] | undefined, fallback: number, what: string): number[] => {
    const list = values ?? [fallback];
    if (list.length === 1) return new Array<number>(channels).fill(list[0]);
    if (list.length !== channels) return incompatible(`${what} has ${list.length} values for a ${channels}-channel input`);
    return list.slice();
  };
  const mean = perChannel(options.mean ?? fromConfig.mean, 0, 'mean');
  const std = perChannel(options.std ?? fromConfig.std, 1, 'std');
  if (std.some((s) => !(s > 0))) incompatible(`std must be positive, got ${std.join(', ')}`);
  const valueRange = options.valueRange ?? fromConfig.valueRange ?? '0-1';
  const fixedBatch = fixedDim(shape[0]);
  return { inputSpec: { heightPx, widthPx, channels, mean, std, valueRange, layout }, fixedBatch };
}

function staticFeatureDim(shape: readonly (number | string)[], pooling: Exclude<Pooling, 'auto'>, layout: TensorLayout): number | undefined {
  const axis = pooling === 'none' ? 1 : pooling === 'gap' ? (layout === 'NCHW' ? 1 : 3) : 2;
  return fixedDim(shape[axis]);
}

function resolveWindows(windows: string | HuWindow[] | undefined, channels: 1 | 3, source: string): HuWindow[] {
  let list: HuWindow[];
  try {
    list = typeof windows === 'string' ? parseWindows(windows) : windows ? windows.map((w) => ({ ...w })) : parseWindows(channels === 3 ? DEFAULT_WINDOWS_3 : DEFAULT_WINDOWS_1);
  } catch (cause) {
    throw new EncoderError('BAD_CONFIG', source, cause instanceof Error ? cause.message : String(cause), { cause });
  }
  if (list.length !== 1 && list.length !== channels) {
    throw new EncoderError('INCOMPATIBLE_INPUT', source, `${list.length} HU windows for a ${channels}-channel model; give 1 (replicated) or ${channels}`);
  }
  return list;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch (cause) {
    throw new EncoderError('NOT_FOUND', path, 'cannot read the model file', { cause });
  }
  return hash.digest('hex');
}

/** Sessions come from the project's one factory (src/compute); this gives its errors in the encoder's
 * terms (every encoder and text tower opens its model through here). */
export async function createSession(modelPath: string, options: Pick<OnnxEncoderOptions, 'intraOpThreads' | 'executionProvider'>): Promise<OpenedSession> {
  try {
    return await createComputeSession(modelPath, { provider: options.executionProvider ?? 'auto', threads: options.intraOpThreads });
  } catch (cause) {
    if (cause instanceof ComputeError && cause.code === 'PROVIDER_UNAVAILABLE') throw new EncoderError('PROVIDER_UNAVAILABLE', modelPath, cause.detail, { cause });
    if (cause instanceof ComputeError && cause.code === 'BAD_MODEL') throw new EncoderError('CORRUPT_MODEL', modelPath, cause.detail, { cause });
    throw cause;
  }
}
