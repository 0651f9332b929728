import { basename } from 'node:path';
import { EncoderError } from '../encode/errors.js';
import { openTextEncoder } from '../encode/registry.js';
import type { TextEncoder } from '../encode/text-encoder.js';
import { listTextSpaces, openLearnedTextEncoder } from '../space/learned-text.js';
import type { Store } from '../store/types.js';
import { readEncoderSpec } from './encoder-spec.js';

/**
 * The text side of an index: a text space learned from its captions (kept in the index), else the text
 * tower of the CLIP-style model folder it was built with (encoder.json). With neither, the error says
 * what to add. Either way the text encoder is checked against the index's encoder id by the search.
 */
export async function openIndexTextEncoder(indexDir: string, store: Store, options: { textSpace?: string } = {}): Promise<TextEncoder> {
  const learned = openLearnedTextEncoder(store, options.textSpace);
  if (learned) return learned;
  const spec = readEncoderSpec(indexDir);
  try {
    if (!spec) throw new EncoderError('NO_TEXT_SPACE', indexDir, 'no encoder.json beside the index');
    return await openTextEncoder(spec.encoder, { imageDim: store.dim });
  } catch (error) {
    if (error instanceof EncoderError && error.code === 'NO_TEXT_SPACE') {
      const spaces = listTextSpaces(store);
      throw new EncoderError(
        'NO_TEXT_SPACE',
        indexDir,
        `the index has no text space${spaces.length ? ` named that (it has ${spaces.join(', ')})` : ''} and its encoder (${spec ? basename(spec.encoder) : 'unknown'}) has no text tower: ` +
          'add captions and learn one (mir3d index … --labels captions.csv, then mir3d train --db DB --captions COLUMN), ' +
          'or build the index with a CLIP-style model folder (vision_model.onnx + text_model.onnx + tokenizer.json)',
      );
    }
    throw error;
  }
}
