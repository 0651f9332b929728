/**
 * CLIP-style two-tower model folders (BiomedCLIP, MedSigLIP, CLIP, open_clip exports): an image tower and a
 * text tower in ONNX, their tokenizer and configs, read from local files only. Layouts understood:
 * - Hugging Face / Optimum: vision_model.onnx + text_model.onnx (also under onnx/), or one model.onnx with
 *   both pixel_values and input_ids; tokenizer.json or vocab.txt; config.json; preprocessor_config.json;
 * - open_clip exports: visual/model.onnx (or visual.onnx) + textual/model.onnx (or textual.onnx), with the
 *   tokenizer beside the text tower, preprocess_cfg.json beside the image tower and open_clip's model
 *   config (embed_dim, text_cfg.context_length) as config.json or open_clip_config.json.
 * Both towers' outputs are taken after their projections (image_embeds / text_embeds, or an export's single
 * embedding output) and L2-normalized, so a text vector and a slice vector compare by cosine. The image
 * encoder's id carries a pair tag made of both towers' and the tokenizer's hashes; an index built with it
 * answers text queries only through the same model's text tower.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { ValueMetadata } from '../compute/session.js';
import { EncoderError } from './errors.js';
import { inputSpecFromConfigs } from './hf-folder.js';
import type { ModelInputSpec } from './model-io.js';
import { OnnxEncoder, sha256File, type ConstantFeed, type OnnxEncoderOptions } from './onnx-encoder.js';
import { OnnxTextEncoder } from './text-encoder.js';
import { findTokenizerFile, loadTokenizer, type TextTokenizer } from './tokenizer.js';

const IMAGE_TOWERS = ['vision_model.onnx', 'onnx/vision_model.onnx', 'visual/model.onnx', 'visual.onnx', 'image_model.onnx'];
const TEXT_TOWERS = ['text_model.onnx', 'onnx/text_model.onnx', 'textual/model.onnx', 'textual.onnx'];
const COMBINED = ['model.onnx', 'onnx/model.onnx'];
/** CLIP's context; used only when no config and no fixed input length says otherwise. */
const DEFAULT_CONTEXT_LENGTH = 77;

export interface ClipFolder {
  dir: string;
  name: string;
  imageOnnx: string;
  textOnnx: string;
  /** One model.onnx holds both towers: each side feeds the other's input a constant. */
  combined: boolean;
  tokenizerPath: string;
  /** What the configs fix about the image input. */
  imageInput: Partial<ModelInputSpec>;
  contextLength: number;
  /** The text vocabulary size the config declares, when it does. */
  configVocabSize: number | undefined;
  /** The shared embedding width the config declares (projection_dim, embed_dim), when it does. */
  configEmbedDim: number | undefined;
  sequencePooling: 'eos' | 'cls';
}

/** True when the folder has a text tower beside an image tower (or one model with both). Cheap: files only. */
export function isClipFolder(dir: string): boolean {
  const hasText = TEXT_TOWERS.some((f) => existsSync(join(dir, f)));
  if (hasText) return true;
  const config = readJsonIfPresent(join(dir, 'config.json'));
  return COMBINED.some((f) => existsSync(join(dir, f))) && config !== undefined && isObject(config.text_config) && isObject(config.vision_config);
}

export function readClipFolder(dir: string): ClipFolder {
  const textOnnx = firstExisting(dir, TEXT_TOWERS);
  const separateImage = firstExisting(dir, IMAGE_TOWERS);
  const combinedFile = firstExisting(dir, COMBINED);
  let imageOnnx: string;
  let combined = false;
  if (textOnnx && separateImage) imageOnnx = separateImage;
  else if (!textOnnx && combinedFile) {
    imageOnnx = combinedFile;
    combined = true;
  } else {
    throw new EncoderError(
      'BAD_CONFIG',
      dir,
      textOnnx
        ? `has the text tower ${rel(dir, textOnnx)} but no image tower (${IMAGE_TOWERS.slice(0, 3).join(', ')})`
        : `no text tower: expected ${TEXT_TOWERS.slice(0, 3).join(', ')} beside the image tower, or one model.onnx with both inputs`,
    );
  }
  const textDir = dirname(combined ? imageOnnx : (textOnnx as string));
  const tokenizerPath = findTokenizerFile(unique([textDir, dir, join(dir, 'tokenizer'), join(dir, 'textual')]));
  if (!tokenizerPath) {
    throw new EncoderError('BAD_CONFIG', dir, `the text tower has no tokenizer: put the model's tokenizer.json (or vocab.txt) in ${textDir === dir ? 'the folder' : rel(dir, textDir)}`);
  }
  const imageDir = dirname(imageOnnx);
  const hfConfig = readJsonIfPresent(join(dir, 'config.json')) ?? {};
  const openClip = readJsonIfPresent(join(dir, 'open_clip_config.json'));
  const openClipModel = isObject(openClip?.model_cfg) ? openClip.model_cfg : isObject(hfConfig.text_cfg) ? hfConfig : undefined;
  const textConfig = isObject(hfConfig.text_config) ? hfConfig.text_config : isObject(openClipModel?.text_cfg) ? openClipModel.text_cfg : {};
  const tokenizerConfig = readJsonIfPresent(join(dirname(tokenizerPath), 'tokenizer_config.json')) ?? {};

  const imageInput = imageInputSpec(dir, imageDir, hfConfig, openClip);
  const contextLength =
    positiveInt(textConfig.context_length) ??
    (positiveInt(tokenizerConfig.model_max_length) !== undefined && (tokenizerConfig.model_max_length as number) < 100_000 ? (tokenizerConfig.model_max_length as number) : undefined) ??
    positiveInt(textConfig.max_position_embeddings) ??
    DEFAULT_CONTEXT_LENGTH;
  const modelType = String(textConfig.model_type ?? hfConfig.model_type ?? (openClipModel ? 'open_clip' : ''));
  const hfTextModel = typeof textConfig.hf_model_name === 'string' || typeof textConfig.hf_tokenizer_name === 'string';
  return {
    dir,
    name: basename(dir),
    imageOnnx,
    textOnnx: combined ? imageOnnx : (textOnnx as string),
    combined,
    tokenizerPath,
    imageInput,
    contextLength,
    configVocabSize: positiveInt(textConfig.vocab_size),
    configEmbedDim: positiveInt(hfConfig.projection_dim) ?? positiveInt(openClipModel?.embed_dim),
    sequencePooling: /bert|roberta/i.test(modelType) || hfTextModel ? 'cls' : 'eos',
  };
}

function imageInputSpec(dir: string, imageDir: string, hfConfig: Record<string, unknown>, openClip: Record<string, unknown> | undefined): Partial<ModelInputSpec> {
  for (const candidate of unique([join(imageDir, 'preprocessor_config.json'), join(dir, 'preprocessor_config.json')])) {
    const pre = readJsonIfPresent(candidate);
    if (pre) return inputSpecFromConfigs(pre, hfConfig, candidate);
  }
  // open_clip writes mean/std in 0–1 units and size as a number or [h, w].
  const candidates: Array<[string, Record<string, unknown> | undefined]> = [
    [join(imageDir, 'preprocess_cfg.json'), readJsonIfPresent(join(imageDir, 'preprocess_cfg.json'))],
    [join(dir, 'preprocess_cfg.json'), readJsonIfPresent(join(dir, 'preprocess_cfg.json'))],
    [join(dir, 'open_clip_config.json'), isObject(openClip?.preprocess_cfg) ? openClip.preprocess_cfg : undefined],
  ];
  for (const [path, cfg] of candidates) {
    if (!cfg) continue;
    return inputSpecFromConfigs({ do_rescale: true, do_normalize: cfg.mean !== undefined, image_mean: cfg.mean, image_std: cfg.std, size: cfg.size }, {}, path);
  }
  throw new EncoderError('BAD_CONFIG', dir, `no image preprocessing config: expected preprocessor_config.json (Hugging Face) or preprocess_cfg.json / open_clip_config.json (open_clip) for ${rel(dir, imageDir) || 'the image tower'}`);
}

export interface ClipOpenOptions extends Omit<OnnxEncoderOptions, 'extraFeeds' | 'idTag' | 'onnxFile' | 'output' | 'inputName'> {}

/** The pair tag both towers carry: hashes of the two ONNX files and the tokenizer. */
export async function clipPairTag(folder: ClipFolder): Promise<string> {
  const [image, text] = await Promise.all([sha256File(folder.imageOnnx), folder.combined ? Promise.resolve('') : sha256File(folder.textOnnx)]);
  const tokenizer = createHash('sha256').update(readFileSync(folder.tokenizerPath)).digest('hex');
  return `pair=clip@sha256:${createHash('sha256').update(`${image}:${text}:${tokenizer}`).digest('hex').slice(0, 16)}`;
}

/** The image tower as an ordinary encoder (index, embed, search) whose id pins the pair. */
export async function openClipImageEncoder(dir: string, options: ClipOpenOptions = {}): Promise<OnnxEncoder> {
  const folder = readClipFolder(dir);
  const pairTag = await clipPairTag(folder);
  const tokenizer = loadTokenizer(folder.tokenizerPath);
  return OnnxEncoder.open(folder.imageOnnx, {
    name: folder.name,
    ...folder.imageInput,
    ...options,
    idTag: pairTag,
    // A separate tower's output is picked as for any image model (image_embeds first); a combined model
    // also has text_embeds and logits, so its image output is named.
    ...(folder.combined ? { inputName: 'pixel_values', output: 'image_embeds', extraFeeds: (inputs) => tokenFeeds(inputs, tokenizer) } : {}),
  });
}

/** The text tower. `imageDim`, when given (an index's width), must equal the text vectors' width. */
export async function openClipTextEncoder(dir: string, options: ClipOpenOptions & { imageDim?: number } = {}): Promise<OnnxTextEncoder> {
  const folder = readClipFolder(dir);
  const pairTag = await clipPairTag(folder);
  const tokenizer = loadTokenizer(folder.tokenizerPath);
  const text = await OnnxTextEncoder.open(folder.textOnnx, tokenizer, {
    name: options.name ?? folder.name,
    contextLength: folder.contextLength,
    pairTag,
    sequencePooling: folder.sequencePooling,
    ...(folder.combined ? { output: 'text_embeds', extraFeeds: (inputs: readonly ValueMetadata[]) => pixelFeeds(inputs, folder.imageInput) } : {}),
    ...(folder.configVocabSize !== undefined ? { configVocabSize: folder.configVocabSize } : {}),
    ...(options.executionProvider ? { executionProvider: options.executionProvider } : {}),
    ...(options.intraOpThreads ? { intraOpThreads: options.intraOpThreads } : {}),
  });
  const expected = options.imageDim ?? folder.configEmbedDim;
  if (expected !== undefined && text.dim !== expected) {
    await text.close();
    throw new EncoderError(
      'DIM_MISMATCH',
      folder.textOnnx,
      `the text tower gives ${text.dim}-d vectors but the ${options.imageDim !== undefined ? 'image vectors' : 'config (projection_dim / embed_dim)'} are ${expected}-d: ` +
        `the towers share no space (export the text tower with its projection, e.g. text_embeds of CLIPTextModelWithProjection)`,
    );
  }
  return text;
}

/** Both towers, checked against each other. */
export async function openClipModel(dir: string, options: ClipOpenOptions = {}): Promise<{ image: OnnxEncoder; text: OnnxTextEncoder }> {
  const image = await openClipImageEncoder(dir, options);
  try {
    const text = await openClipTextEncoder(dir, { ...options, imageDim: image.dim });
    return { image, text };
  } catch (error) {
    await image.close();
    throw error;
  }
}

/** A combined model's token inputs, fed a one-token text while images are embedded. */
function tokenFeeds(inputs: readonly ValueMetadata[], tokenizer: TextTokenizer): Record<string, ConstantFeed> {
  const feeds: Record<string, ConstantFeed> = {};
  for (const meta of inputs) {
    if (!meta.isTensor || meta.name === 'pixel_values') continue;
    const length = typeof meta.shape[1] === 'number' && meta.shape[1] > 0 ? meta.shape[1] : 1;
    const type = meta.type === 'int32' ? 'int32' : meta.type === 'float32' ? 'float32' : 'int64';
    const value = /mask/.test(meta.name) ? 1 : /ids|text/.test(meta.name) ? tokenizer.padId : 0;
    feeds[meta.name] = { type, dims: [1, length], values: new Array<number>(length).fill(value) };
  }
  return feeds;
}

/** A combined model's pixel input, fed one blank image while texts are embedded. */
function pixelFeeds(inputs: readonly ValueMetadata[], spec: Partial<ModelInputSpec>): Record<string, ConstantFeed> {
  const meta = inputs.find((m) => m.name === 'pixel_values');
  if (!meta || !meta.isTensor) return {};
  const fixed = (d: number | string | undefined, fallback: number): number => (typeof d === 'number' && d > 0 ? d : fallback);
  const dims = [1, fixed(meta.shape[1], spec.channels ?? 3), fixed(meta.shape[2], spec.heightPx ?? 224), fixed(meta.shape[3], spec.widthPx ?? 224)];
  return { pixel_values: { type: 'float32', dims, values: new Array<number>(dims.reduce((a, b) => a * b, 1)).fill(0) } };
}

function firstExisting(dir: string, candidates: string[]): string | undefined {
  return candidates.map((c) => join(dir, c)).find((p) => existsSync(p));
}

function unique(list: string[]): string[] {
  return [...new Set(list)];
}

function rel(dir: string, path: string): string {
  return path.startsWith(`${dir}/`) ? path.slice(dir.length + 1) : path === dir ? '' : path;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function positiveInt(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : undefined;
}

function readJsonIfPresent(path: string): Record<string, unknown> | undefined {
  if (!existsSync(path)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch (cause) {
    throw new EncoderError('BAD_CONFIG', path, `not valid JSON: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
  if (!isObject(value)) throw new EncoderError('BAD_CONFIG', path, 'not a JSON object');
  return value;
}
