/**
 * Writes tiny CLIP-like model folders in the layouts real exports use (see src/encode/clip-folder.ts), from
 * the graphs in tiny-onnx.ts and a tokenizer file written here. Words name one of the three HU windows the
 * image tower pools: soft-tissue words the abdomen window, lung words the lung window, bone words the bone
 * window; every other word is a zero vector.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tinyClipCombined, tinyClipImageTower, tinyClipTextTower, wordPieceTokenizerJson } from './tiny-onnx.js';

export const CLIP_WORDS: Record<string, [number, number, number]> = {
  abdomen: [1, 0, 0],
  soft: [1, 0, 0],
  tissue: [1, 0, 0],
  liver: [1, 0, 0],
  lung: [0, 1, 0],
  lungs: [0, 1, 0],
  air: [0, 1, 0],
  chest: [0, 1, 0],
  bone: [0, 0, 1],
  bones: [0, 0, 1],
  skeleton: [0, 0, 1],
  a: [0, 0, 0],
  the: [0, 0, 0],
  with: [0, 0, 0],
  slice: [0, 0, 0],
  of: [0, 0, 0],
  and: [0, 0, 0],
  shows: [0, 0, 0],
};
export const CLIP_DIM = 4;
/** 3 → 4 dims, shared by both towers; not the identity, so the projection is really applied. */
export const CLIP_PROJECTION = [
  [1, 0, 0, 0.5],
  [0, 1, 0, -0.5],
  [0, 0, 1, 0.25],
];

export interface TinyClipOptions {
  layout?: 'hf-separate' | 'hf-combined' | 'open-clip';
  sizePx?: number;
  /** Image tower bias (e.g. minus the archive's mean channel response, so contrasts, not levels, match). */
  imageBias?: number[];
  /** Replaces the image projection (e.g. a wrong width for the dimension-mismatch test). */
  textProjection?: number[][];
  /** Extra words in the tokenizer beyond the model's embedding table (the tokenizer-mismatch test). */
  extraTokenizerWords?: string[];
  tokenizerFile?: 'tokenizer.json' | 'vocab.txt';
  /** tokenizer_config.json's model_max_length (the context). */
  contextLength?: number;
  /** Word vectors that replace CLIP_WORDS' (the words stay the same). */
  wordVectors?: Partial<Record<keyof typeof CLIP_WORDS, [number, number, number]>>;
}

function wordVectors(overrides: TinyClipOptions['wordVectors'] = {}): number[][] {
  return [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], ...Object.entries(CLIP_WORDS).map(([word, v]) => overrides[word as keyof typeof CLIP_WORDS] ?? v)];
}

export function writeTinyClipFolder(dir: string, options: TinyClipOptions = {}): string {
  const layout = options.layout ?? 'hf-separate';
  const sizePx = options.sizePx ?? 8;
  const words = [...Object.keys(CLIP_WORDS), ...(options.extraTokenizerWords ?? [])];
  const textProjection = options.textProjection ?? CLIP_PROJECTION;
  mkdirSync(dir, { recursive: true });
  const put = (path: string, content: Uint8Array | string): void => {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  };
  const textDir = layout === 'open-clip' ? 'textual' : '.';
  if (options.tokenizerFile === 'vocab.txt') put(join(textDir, 'vocab.txt'), ['[PAD]', '[UNK]', '[CLS]', '[SEP]', ...words].join('\n') + '\n');
  else put(join(textDir, 'tokenizer.json'), wordPieceTokenizerJson(words));
  put(join(textDir, 'tokenizer_config.json'), JSON.stringify({ do_lower_case: true, pad_token: '[PAD]', model_max_length: options.contextLength ?? 16 }));
  const mean = [0, 0, 0];
  const std = [1, 1, 1];
  if (layout === 'open-clip') {
    put('visual/model.onnx', tinyClipImageTower(CLIP_PROJECTION, sizePx, options.imageBias));
    put('textual/model.onnx', tinyClipTextTower(wordVectors(options.wordVectors), textProjection));
    put('visual/preprocess_cfg.json', JSON.stringify({ size: [sizePx, sizePx], mode: 'RGB', mean, std, interpolation: 'bicubic', resize_mode: 'shortest' }));
    put('config.json', JSON.stringify({ embed_dim: CLIP_DIM, vision_cfg: { image_size: sizePx }, text_cfg: { context_length: options.contextLength ?? 16, vocab_size: 4 + Object.keys(CLIP_WORDS).length } }));
  } else {
    if (layout === 'hf-combined') put('model.onnx', tinyClipCombined(wordVectors(options.wordVectors), textProjection, CLIP_PROJECTION, sizePx));
    else {
      put('vision_model.onnx', tinyClipImageTower(CLIP_PROJECTION, sizePx, options.imageBias));
      put('text_model.onnx', tinyClipTextTower(wordVectors(options.wordVectors), textProjection));
    }
    put('preprocessor_config.json', JSON.stringify({ do_rescale: true, rescale_factor: 1 / 255, do_normalize: true, image_mean: mean, image_std: std, size: { height: sizePx, width: sizePx } }));
    put('config.json', JSON.stringify({ model_type: 'clip', projection_dim: CLIP_DIM, text_config: { model_type: 'clip_text_model', max_position_embeddings: 16 }, vision_config: { image_size: sizePx, num_channels: 3 } }));
  }
  return dir;
}
