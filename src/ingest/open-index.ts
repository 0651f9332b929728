import { mkdir } from 'node:fs/promises';
import type { Encoder } from '../encode/encoder.js';
import type { TextEncoder } from '../encode/text-encoder.js';
import type { OpenEncoderOptions } from '../encode/registry.js';
import { DEFAULT_ENCODER } from '../encode/registry.js';
import { StoreError } from '../store/errors.js';
import { indexExists, openStore } from '../store/index.js';
import type { OpenStoreOptions } from '../store/index.js';
import type { Store } from '../store/types.js';

export { indexExists };
import { ENCODER_SPEC_FILE, openSpecEncoder, readEncoderSpec, writeEncoderSpec, type EncoderSpec } from './encoder-spec.js';
import { openIndexTextEncoder } from './text-encoder-spec.js';

/**
 * An index directory opened with the encoder that fills and queries it, so a query can never be
 * embedded differently from the archive (ColBERT's searcher reads its model from the index the same
 * way). Every front end opens indexes here: `mir3d index`/`search`/`serve`, the demo and eval.
 */
export interface OpenedIndex {
  dir: string;
  store: Store;
  /** The index's encoder: opened at open when writing, on first call when reading (a search by an
   * indexed id needs none). A failed open is retried on the next call. */
  encoder(): Promise<Encoder>;
  /** Whether an encoder can be opened at all (a spec beside the index, or one given). */
  readonly canOpenEncoder: boolean;
  /** The index's text side (a learned text space by name, default the captions one, else the text
   * tower of its CLIP model), opened on first call and kept; without one the error names what to add. */
  textEncoder(textSpace?: string): Promise<TextEncoder>;
  /** Closes the store and the encoder (and text encoders), if they were opened. */
  close(): Promise<void>;
}

export interface OpenIndexOptions {
  /** Open the store read-only (searching); default false (indexing: the index is created if absent). */
  readOnly?: boolean;
  /** Writing: the encoder asked for. A new index is created with it (default: the spec already beside
   * the folder, else the built-in default); an existing one must hold its vectors. */
  spec?: EncoderSpec;
  /** Opens the encoder; default openSpecEncoder of the spec (eval, tests and embedders hand in their
   * own). Its encoder must still yield the id the index pins. */
  openEncoder?: (spec: EncoderSpec | undefined) => Promise<Encoder>;
  onStatus?: (message: string) => void;
  /** Threads of the store's kernels (a search worker opens the index with its share of the cores). */
  store?: Pick<OpenStoreOptions, 'threads' | 'compute'>;
  /** Options of the spec's encoder beyond the spec (e.g. its ONNX Runtime threads). */
  encoderOptions?: OpenEncoderOptions;
}

export async function openIndex(dir: string, options: OpenIndexOptions = {}): Promise<OpenedIndex> {
  const openSpec = (spec: EncoderSpec | undefined): Promise<Encoder> => {
    if (options.openEncoder) return options.openEncoder(spec);
    if (!spec) throw new StoreError('MISSING_ENCODER', dir, `no ${ENCODER_SPEC_FILE} beside the index: give --encoder with the encoder it was built with`);
    return openSpecEncoder(spec, options.onStatus, options.encoderOptions);
  };
  if (options.readOnly) {
    if (!indexExists(dir)) throw new StoreError('NOT_FOUND', dir, 'no index here (create one with mir3d index)');
    const store = openStore(dir, { ...options.store, readOnly: true });
    return readingIndex(dir, store, options, openSpec);
  }

  const exists = indexExists(dir);
  const saved = readEncoderSpec(dir);
  // The spec is written before the index exists, so a run killed in between leaves an index that can
  // always be reopened (a spec without an index is simply used for the new one).
  const spec = options.spec ?? saved ?? (exists ? undefined : { encoder: DEFAULT_ENCODER });
  if (!spec) {
    const probe = openStore(dir, { readOnly: true });
    const pinned = probe.encoderId;
    probe.close();
    throw new StoreError('MISSING_ENCODER', dir, `no ${ENCODER_SPEC_FILE} beside the index: give --encoder with the encoder it was built with (${pinned})`);
  }
  const encoder = await openSpec(spec);
  let store: Store;
  try {
    if (!exists) await mkdir(dir, { recursive: true });
    if (!exists || !saved) await writeEncoderSpec(dir, spec);
    store = openStore(dir, { encoderId: encoder.id, dim: encoder.dim });
  } catch (error) {
    await encoder.close();
    if (error instanceof StoreError && error.code === 'ENCODER_MISMATCH') {
      throw new StoreError('ENCODER_MISMATCH', dir, `this index holds vectors of another encoder than ${encoder.id} ("${spec.encoder}"). Use another --db, or leave out --encoder to use the index's own`);
    }
    throw error;
  }
  const texts = textEncoders(dir, store);
  return {
    dir,
    store,
    canOpenEncoder: true,
    encoder: () => Promise.resolve(encoder),
    textEncoder: texts.open,
    async close() {
      await texts.close();
      store.close();
      await encoder.close();
    },
  };
}

function readingIndex(dir: string, store: Store, options: OpenIndexOptions, openSpec: (spec: EncoderSpec | undefined) => Promise<Encoder>): OpenedIndex {
  let opening: Promise<Encoder> | undefined;
  const open = async (): Promise<Encoder> => {
    const spec = options.spec ?? readEncoderSpec(dir);
    if (!spec && !options.openEncoder) {
      throw new StoreError('MISSING_ENCODER', dir, `no ${ENCODER_SPEC_FILE} beside the index: give --encoder with the encoder it was built with (${store.encoderId})`);
    }
    const encoder = await openSpec(spec);
    // A model file replaced in place would yield another id than the one the index pins.
    if (encoder.id !== store.encoderId) {
      await encoder.close();
      throw new StoreError('ENCODER_MISMATCH', dir, `encoder "${spec?.encoder ?? encoder.name}" now yields id ${encoder.id}, but the index holds vectors of ${store.encoderId} (was the model file changed?)`);
    }
    return encoder;
  };
  const texts = textEncoders(dir, store);
  return {
    dir,
    store,
    textEncoder: texts.open,
    get canOpenEncoder() {
      return options.spec !== undefined || options.openEncoder !== undefined || readEncoderSpec(dir) !== undefined;
    },
    encoder() {
      opening ??= open().catch((error: unknown) => {
        opening = undefined;
        throw error;
      });
      return opening;
    },
    async close() {
      await texts.close();
      store.close();
      const encoder = await opening?.catch(() => undefined);
      await encoder?.close();
    },
  };
}

/** Text encoders of one index, opened once per text space name; a failed open is retried next time. */
function textEncoders(dir: string, store: Store): { open(textSpace?: string): Promise<TextEncoder>; close(): Promise<void> } {
  const opened = new Map<string, Promise<TextEncoder>>();
  return {
    open(textSpace) {
      const key = textSpace ?? '';
      let opening = opened.get(key);
      if (!opening) {
        opening = openIndexTextEncoder(dir, store, textSpace !== undefined ? { textSpace } : {});
        opening.catch(() => opened.delete(key));
        opened.set(key, opening);
      }
      return opening;
    },
    async close() {
      const all = [...opened.values()];
      opened.clear();
      for (const opening of all) await (await opening.catch(() => undefined))?.close();
    },
  };
}
