/**
 * Text encoders: anything that turns a finding typed by a person into a vector in an image encoder's space.
 * Two kinds exist: the text tower of a CLIP-style model (this file, OnnxTextEncoder), and a text space
 * learned from an archive's captions (learned-text.ts). Either is paired with exactly one image encoder id:
 * a text vector means something only against the image vectors it was made for.
 */
import { runSession, type InferenceSession, type TensorData } from '../compute/session.js';
import { EncoderError } from './errors.js';
import { constantTensor, createSession, resolveExtraFeeds, sha256File, type ExecutionProviderChoice, type ExtraFeeds, type ProviderName } from './onnx-encoder.js';
import { l2NormalizeRows } from './model-io.js';
import type { TextTokenizer } from './tokenizer.js';

export interface TextEmbedding {
  /** texts.length rows of `dim` floats, unit length, row-major. */
  rows: Float32Array;
  dim: number;
  /** Lines for people: texts cut to the model's context, words the model does not know. */
  warnings: string[];
}

export interface TextEncoder {
  /** Model (or learned space) + tokenizer + version; names the image space it belongs to. */
  readonly id: string;
  readonly name: string;
  readonly dim: number;
  /** The tag an image encoder id must carry for this text encoder to search its vectors ('pair=…'). */
  readonly pairTag: string;
  embedTexts(texts: string[]): Promise<TextEmbedding>;
  close(): Promise<void>;
}

/** Bumped when the text arithmetic changes for the same files. */
export const TEXT_ENCODER_VERSION = 'v1';

/** Whether an index built with `imageEncoderId` can be searched with this text encoder. */
export function textEncoderFits(text: Pick<TextEncoder, 'pairTag'>, imageEncoderId: string): boolean {
  return imageEncoderId === text.pairTag || imageEncoderId.split('|').includes(text.pairTag);
}

/** Empty or blank texts are refused before anything runs: they would all map to one arbitrary vector. */
export function checkTexts(texts: string[], source: string): void {
  if (texts.length === 0) throw new EncoderError('BAD_TEXT', source, 'no text given');
  texts.forEach((text, i) => {
    if (typeof text !== 'string' || text.trim() === '') throw new EncoderError('BAD_TEXT', source, `text ${texts.length > 1 ? `${i + 1} ` : ''}is empty; type a finding, e.g. "liver tumour larger than 5 cm"`);
  });
}

/**
 * How a text tower's output becomes one vector per text:
 * - 'none': already [N, D] (text_embeds of CLIPTextModelWithProjection, open_clip exports);
 * - 'eos': [N, T, D] → the last attended token (CLIP pools at its end-of-text token);
 * - 'cls': [N, T, D] → token 0 (BERT-style towers);
 * - 'mean': [N, T, D] → mean over attended tokens.
 */
export type TextPooling = 'none' | 'eos' | 'cls' | 'mean';

export interface OnnxTextEncoderOptions {
  name: string;
  /** Tokens a text may have (special tokens included); longer texts are cut and a warning says so. */
  contextLength: number;
  /** See TextEncoder.pairTag. */
  pairTag: string;
  /** Pooling for a rank-3 output (default 'eos'). */
  sequencePooling?: Exclude<TextPooling, 'none'>;
  output?: string;
  /** Vocabulary size the model's config declares; a tokenizer with more ids does not belong to it. */
  configVocabSize?: number;
  /** Constant feeds for a combined model.onnx's image input. */
  extraFeeds?: ExtraFeeds;
  executionProvider?: ExecutionProviderChoice;
  intraOpThreads?: number;
}

const IDS_INPUTS = ['input_ids', 'text', 'input', 'tokens', 'ids'];
const PREFERRED_TEXT_OUTPUTS = ['text_embeds', 'embeddings', 'embedding', 'sentence_embedding', 'pooler_output', 'last_hidden_state'];

/** A text tower on ONNX Runtime: token ids (+ attention mask, token types, positions) → one unit vector per text. */
export class OnnxTextEncoder implements TextEncoder {
  readonly id: string;
  readonly name: string;
  readonly dim: number;
  readonly pairTag: string;
  readonly contextLength: number;
  readonly provider: ProviderName;
  readonly outputName: string;
  readonly pooling: TextPooling;

  private constructor(
    private session: InferenceSession | undefined,
    private readonly tokenizer: TextTokenizer,
    private readonly io: TextTowerIo,
    init: { name: string; dim: number; pairTag: string; contextLength: number; provider: ProviderName; modelSha256: string; pooling: TextPooling },
  ) {
    this.name = init.name;
    this.dim = init.dim;
    this.pairTag = init.pairTag;
    this.contextLength = init.contextLength;
    this.provider = init.provider;
    this.outputName = io.outputName;
    this.pooling = init.pooling;
    this.id = [`${init.name}-text@sha256:${init.modelSha256.slice(0, 16)}`, `tokenizer@sha256:${tokenizer.sha256.slice(0, 16)}`, `ctx=${init.contextLength}`, `out=${io.outputName}:${init.pooling}`, TEXT_ENCODER_VERSION, init.pairTag].join('|');
  }

  static async open(modelPath: string, tokenizer: TextTokenizer, options: OnnxTextEncoderOptions): Promise<OnnxTextEncoder> {
    if (options.configVocabSize !== undefined && tokenizer.vocabSize > options.configVocabSize) {
      throw new EncoderError('TOKENIZER_MISMATCH', tokenizer.path, `the tokenizer has ${tokenizer.vocabSize} token ids but the text model's vocabulary has ${options.configVocabSize} (config.json): it is not this model's tokenizer`);
    }
    const modelSha256 = await sha256File(modelPath);
    const { session, provider } = await createSession(modelPath, options);
    try {
      const io = textTowerIo(session, modelPath, options);
      if (io.fixedSequence !== undefined && io.fixedSequence < 2) throw new EncoderError('INCOMPATIBLE_INPUT', modelPath, `text input ${io.idsName} takes ${io.fixedSequence} token(s); a text tower needs a sequence`);
      const contextLength = Math.min(options.contextLength, io.fixedSequence ?? Number.POSITIVE_INFINITY);
      // One run with the tokenizer's largest id: a tokenizer from another model usually has ids past the
      // embedding table, which ONNX Runtime refuses here with a bounds error rather than mid-search.
      let probe: { data: Float32Array; dims: number[] };
      try {
        probe = await runTextTower(session, io, [[tokenizer.vocabSize - 1]], contextLength, tokenizer.padId, modelPath);
      } catch (error) {
        const detail = error instanceof EncoderError ? error.detail : String(error);
        throw new EncoderError('TOKENIZER_MISMATCH', tokenizer.path, `the text model fails on token id ${tokenizer.vocabSize - 1}, the tokenizer's largest (${detail}); the tokenizer does not belong to this model`);
      }
      const pooling: TextPooling = probe.dims.length === 2 ? 'none' : probe.dims.length === 3 ? (options.sequencePooling ?? 'eos') : badRank(probe.dims, io.outputName, modelPath);
      const dim = probe.dims[probe.dims.length - 1];
      return new OnnxTextEncoder(session, tokenizer, io, { name: options.name, dim, pairTag: options.pairTag, contextLength, provider, modelSha256, pooling });
    } catch (error) {
      await session.release();
      throw error;
    }
  }

  async embedTexts(texts: string[]): Promise<TextEmbedding> {
    const session = this.session;
    if (!session) throw new EncoderError('CLOSED', this.name, 'text encoder was closed');
    checkTexts(texts, this.name);
    const warnings: string[] = [];
    const tokenized = texts.map((text, i) => {
      const encoded = this.tokenizer.encode(text, this.contextLength);
      if (encoded.truncated) {
        warnings.push(`text ${texts.length > 1 ? `${i + 1} ` : ''}has ${encoded.tokenCount} tokens, more than the model's context of ${this.contextLength}: only its first ${this.contextLength} were used`);
      }
      return encoded.ids;
    });
    const rows = new Float32Array(texts.length * this.dim);
    const chunk = this.io.fixedBatch ?? texts.length;
    for (let start = 0; start < texts.length; start += chunk) {
      const part = tokenized.slice(start, start + chunk);
      const padded = this.io.fixedBatch !== undefined && part.length < chunk ? [...part, ...new Array<number[]>(chunk - part.length).fill([this.tokenizer.padId])] : part;
      const output = await runTextTower(session, this.io, padded, this.contextLength, this.tokenizer.padId, this.name);
      rows.set(poolText(output, padded, this.pooling, this.dim, this.contextLength, this.io.fixedSequence).subarray(0, part.length * this.dim), start * this.dim);
    }
    l2NormalizeRows(rows, this.dim);
    return { rows, dim: this.dim, warnings };
  }

  async close(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    if (session) await session.release();
  }
}

function badRank(dims: number[], output: string, source: string): never {
  throw new EncoderError('BAD_OUTPUT', source, `text output ${output} has shape [${dims.join(',')}]; expected [N, D] embeddings or [N, T, D] token states`);
}

interface TextTowerIo {
  idsName: string;
  idsType: 'int64' | 'int32';
  maskName: string | undefined;
  tokenTypesName: string | undefined;
  positionsName: string | undefined;
  outputName: string;
  fixedBatch: number | undefined;
  fixedSequence: number | undefined;
  extraFeeds: Record<string, TensorData>;
}

function textTowerIo(session: InferenceSession, source: string, options: OnnxTextEncoderOptions): TextTowerIo {
  const metas = session.inputMetadata;
  const intInputs = metas.filter((m) => m.isTensor && (m.type === 'int64' || m.type === 'int32')).map((m) => m.name);
  const idsName = IDS_INPUTS.find((name) => intInputs.includes(name)) ?? intInputs.find((name) => !/mask|type|position/.test(name));
  if (!idsName) throw new EncoderError('INCOMPATIBLE_INPUT', source, `no integer token-id input (inputs: ${session.inputNames.join(', ')}); is this the text tower?`);
  const find = (pattern: RegExp): string | undefined => intInputs.find((name) => name !== idsName && pattern.test(name));
  const maskName = find(/attention_mask|mask/);
  const tokenTypesName = find(/token_type/);
  const positionsName = find(/position/);
  const extraFeeds = resolveExtraFeeds(options.extraFeeds, session);
  const known = new Set([idsName, maskName, tokenTypesName, positionsName, ...Object.keys(extraFeeds)]);
  const unknown = session.inputNames.filter((name) => !known.has(name));
  if (unknown.length > 0) throw new EncoderError('INCOMPATIBLE_INPUT', source, `text model input(s) ${unknown.join(', ')} cannot be fed from text`);
  const meta = metas.find((m) => m.name === idsName);
  const shape = meta && meta.isTensor ? meta.shape : [];
  const fixed = (d: number | string | undefined): number | undefined => (typeof d === 'number' && d > 0 ? d : undefined);
  const outputName = options.output ?? PREFERRED_TEXT_OUTPUTS.find((name) => session.outputNames.includes(name)) ?? session.outputNames[0];
  if (!session.outputNames.includes(outputName)) throw new EncoderError('BAD_OUTPUT', source, `no output named "${outputName}"; outputs: ${session.outputNames.join(', ')}`);
  return {
    idsName,
    idsType: meta && meta.isTensor && meta.type === 'int32' ? 'int32' : 'int64',
    maskName,
    tokenTypesName,
    positionsName,
    outputName,
    fixedBatch: fixed(shape[0]),
    fixedSequence: fixed(shape[1]),
    extraFeeds,
  };
}

async function runTextTower(session: InferenceSession, io: TextTowerIo, ids: number[][], contextLength: number, padId: number, source: string): Promise<{ data: Float32Array; dims: number[] }> {
  const batch = ids.length;
  const length = io.fixedSequence ?? Math.min(contextLength, Math.max(...ids.map((row) => row.length)));
  const values = new Array<number>(batch * length).fill(padId);
  const mask = new Array<number>(batch * length).fill(0);
  ids.forEach((row, n) => {
    row.slice(0, length).forEach((id, t) => {
      values[n * length + t] = id;
      mask[n * length + t] = 1;
    });
  });
  const tensor = (data: number[]): TensorData => constantTensor({ type: io.idsType, dims: [batch, length], values: data });
  const feeds: Record<string, TensorData> = { ...io.extraFeeds, [io.idsName]: tensor(values) };
  if (io.maskName) feeds[io.maskName] = tensor(mask);
  if (io.tokenTypesName) feeds[io.tokenTypesName] = tensor(new Array<number>(batch * length).fill(0));
  if (io.positionsName) feeds[io.positionsName] = tensor(Array.from({ length: batch * length }, (_, i) => i % length));
  let results: Awaited<ReturnType<typeof runSession>>;
  try {
    // Quiet: the error thrown below says it in one line (the probe of a mismatched tokenizer fails here by design).
    results = await runSession(session, feeds, [io.outputName], { quiet: true });
  } catch (cause) {
    throw new EncoderError('INCOMPATIBLE_INPUT', source, `text inference failed on [${batch},${length}] token ids: ${firstLine(cause)}`, { cause });
  }
  const out = results[io.outputName];
  if (out.type !== 'float32') throw new EncoderError('BAD_OUTPUT', source, `text output ${io.outputName} is ${out.type}, not float32`);
  return { data: out.data as Float32Array, dims: out.dims };
}

function poolText(output: { data: Float32Array; dims: number[] }, ids: number[][], pooling: TextPooling, dim: number, contextLength: number, fixedSequence: number | undefined): Float32Array {
  const batch = ids.length;
  if (pooling === 'none') return output.data.slice(0, batch * dim);
  const tokens = output.dims[1];
  const rows = new Float32Array(batch * dim);
  const length = fixedSequence ?? Math.min(contextLength, tokens);
  for (let n = 0; n < batch; n++) {
    const used = Math.min(ids[n].length, length, tokens);
    const base = n * tokens * dim;
    const row = rows.subarray(n * dim, (n + 1) * dim);
    if (pooling === 'cls' || pooling === 'eos') {
      const t = pooling === 'cls' ? 0 : used - 1;
      row.set(output.data.subarray(base + t * dim, base + (t + 1) * dim));
    } else {
      for (let t = 0; t < used; t++) for (let d = 0; d < dim; d++) row[d] += output.data[base + t * dim + d] / used;
    }
  }
  return rows;
}

function firstLine(cause: unknown): string {
  return (cause instanceof Error ? cause.message : String(cause)).split('\n')[0].replace(/\u001b\[[0-9;]*m/g, '').trim();
}
