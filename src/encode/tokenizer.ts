/**
 * The text tower's tokenizer, read from the model folder's own files (tokenizer.json, or a BERT vocab.txt)
 * with Hugging Face's tokenizers.js (`@huggingface/tokenizers`: pure JS, no dependencies, no network; the
 * same code transformers.js tokenizes with). Nothing is ever downloaded: a folder without tokenizer files is
 * an error that names them.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { EncoderError } from './errors.js';

export const TOKENIZER_FILES = ['tokenizer.json', 'vocab.txt'] as const;

export interface TokenizedText {
  ids: number[];
  /** Tokens the text had before truncation (special tokens included). */
  tokenCount: number;
  /** True when the text was longer than the context and its end was cut. */
  truncated: boolean;
}

export interface TextTokenizer {
  /** SHA-256 (hex) of the tokenizer file: part of the text encoder's id. */
  readonly sha256: string;
  readonly path: string;
  /** Number of token ids (largest id + 1, added tokens included). */
  readonly vocabSize: number;
  readonly padId: number;
  /** Tokenizes one text into at most `contextLength` ids, keeping the final special token (EOS/SEP) when cut. */
  encode(text: string, contextLength: number): TokenizedText;
  tokenId(token: string): number | undefined;
}

/** Looks for tokenizer.json, then vocab.txt, in each of `dirs`; undefined when none has one. */
export function findTokenizerFile(dirs: string[]): string | undefined {
  for (const dir of dirs) {
    for (const name of TOKENIZER_FILES) {
      const path = join(dir, name);
      if (existsSync(path)) return path;
    }
  }
  return undefined;
}

/** Reads a tokenizer.json (with tokenizer_config.json beside it when present) or a WordPiece vocab.txt. */
export function loadTokenizer(path: string): TextTokenizer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (cause) {
    throw new EncoderError('NOT_FOUND', path, 'cannot read the tokenizer file', { cause });
  }
  const dir = path.slice(0, Math.max(path.lastIndexOf('/'), 0)) || '.';
  const configPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(configPath) ? parseJsonObject(readFileSync(configPath, 'utf8'), configPath) : {};
  const json = path.endsWith('.txt') ? wordPieceJson(bytes.toString('utf8'), config, path) : parseJsonObject(bytes.toString('utf8'), path);
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(json, config);
  } catch (cause) {
    throw new EncoderError('BAD_CONFIG', path, `not a tokenizer the tokenizers library can read: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
  const vocab = tokenizer.get_vocab(true);
  let maxId = -1;
  for (const id of vocab.values()) maxId = Math.max(maxId, id);
  if (maxId < 0) throw new EncoderError('BAD_CONFIG', path, 'the tokenizer has an empty vocabulary');
  const specialIds = new Set<number>();
  for (const [id, token] of tokenizer.get_added_tokens_decoder()) if (token.special) specialIds.add(id);
  const padId = pickPadId(tokenizer, config);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  return {
    sha256,
    path,
    vocabSize: maxId + 1,
    padId,
    tokenId: (token) => tokenizer.token_to_id(token),
    encode(text, contextLength) {
      const ids = tokenizer.encode(text).ids;
      if (ids.length <= contextLength) return { ids, tokenCount: ids.length, truncated: false };
      const last = ids[ids.length - 1];
      const kept = specialIds.has(last) ? [...ids.slice(0, contextLength - 1), last] : ids.slice(0, contextLength);
      return { ids: kept, tokenCount: ids.length, truncated: true };
    },
  };
}

function pickPadId(tokenizer: Tokenizer, config: Record<string, unknown>): number {
  const named = tokenText(config.pad_token);
  for (const candidate of [named, '[PAD]', '<pad>', '<|endoftext|>']) {
    if (candidate === undefined) continue;
    const id = tokenizer.token_to_id(candidate);
    if (id !== undefined) return id;
  }
  return 0;
}

/** tokenizer_config.json writes special tokens as text or as {content: text}. */
function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string') return (value as { content: string }).content;
  return undefined;
}

/** A BERT vocab.txt (one token a line, id = line number) as the tokenizer.json that BertTokenizerFast writes. */
function wordPieceJson(text: string, config: Record<string, unknown>, path: string): Record<string, unknown> {
  const tokens = text.split(/\r?\n/);
  if (tokens.length > 0 && tokens[tokens.length - 1] === '') tokens.pop();
  const vocab: Record<string, number> = {};
  tokens.forEach((token, id) => {
    if (!(token in vocab)) vocab[token] = id;
  });
  const special = (key: string, fallback: string): string => tokenText(config[key]) ?? fallback;
  const [cls, sep, unk, pad, mask] = [special('cls_token', '[CLS]'), special('sep_token', '[SEP]'), special('unk_token', '[UNK]'), special('pad_token', '[PAD]'), special('mask_token', '[MASK]')];
  for (const required of [cls, sep, unk]) {
    if (!(required in vocab)) throw new EncoderError('BAD_CONFIG', path, `vocab.txt has no ${required} token; it is not a BERT WordPiece vocabulary`);
  }
  const added = [pad, unk, cls, sep, mask]
    .filter((token) => token in vocab)
    .map((token) => ({ id: vocab[token], content: token, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const lowercase = config.do_lower_case !== false;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: sep, type_id: 0 } }],
      pair: [{ SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: sep, type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: sep, type_id: 1 } }],
      special_tokens: {
        [cls]: { id: cls, ids: [vocab[cls]], tokens: [cls] },
        [sep]: { id: sep, ids: [vocab[sep]], tokens: [sep] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: unk, continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
}

function parseJsonObject(text: string, path: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (cause) {
    throw new EncoderError('BAD_CONFIG', path, `not valid JSON: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new EncoderError('BAD_CONFIG', path, 'not a JSON object');
  return value as Record<string, unknown>;
}
