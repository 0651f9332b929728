/**
 * Text queries (3D-MIR's third method) and multi-modal ensembles. A text is one query row: it retrieves its
 * k nearest slices and volumes are ranked by how many of them they hold (slice-count, the paper's choice);
 * every other method applies to the one row as well (rerank then scores a volume by its best slice). The
 * slices a text matched in a volume are its localized region, as for any slice query.
 * The ensemble runs the image query and the text query separately and fuses the two ranked lists by
 * 3D-MIR's interleaving or by reciprocal-rank fusion.
 */
import { EncoderError } from '../encode/errors.js';
import { textEncoderFits, type TextEncoder } from '../encode/text-encoder.js';
import type { Store } from '../store/types.js';
import { SearchError } from './errors.js';
import { interleave, reciprocalRankFusion } from './fusion.js';
import { DEFAULT_CANDIDATES, DEFAULT_TOP, search, type SearchOptions } from './search.js';
import type { FusionMethod, QueryVectors, SearchMethod, SearchResult } from './types.js';

/** 3D-MIR ranked text hits by count. */
export const DEFAULT_TEXT_METHOD: SearchMethod = 'slice-count';

export interface TextSearchResult {
  results: SearchResult[];
  /** From the text encoder: context truncation, words it cannot read. */
  warnings: string[];
  query: QueryVectors;
}

/** Refuses a text encoder that does not belong to the index's image space. */
export function checkTextEncoderFits(store: Store, text: TextEncoder): void {
  if (!textEncoderFits(text, store.encoderId)) {
    throw new EncoderError('NO_TEXT_SPACE', text.name, `text encoder ${text.id} belongs to another image encoder than the index's (${store.encoderId})`);
  }
  if (text.dim !== store.dim) throw new EncoderError('DIM_MISMATCH', text.name, `text vectors are ${text.dim}-d, the index holds ${store.dim}-d vectors`);
}

export async function textQuery(store: Store, text: TextEncoder, query: string): Promise<{ query: QueryVectors; warnings: string[] }> {
  checkTextEncoderFits(store, text);
  const { rows, dim, warnings } = await text.embedTexts([query]);
  return { query: { vectors: rows, dim, sliceIndices: [0] }, warnings };
}

export async function searchByText(store: Store, text: TextEncoder, query: string, options: Partial<SearchOptions> = {}): Promise<TextSearchResult> {
  const embedded = await textQuery(store, text, query);
  const results = await search(store, embedded.query, { ...options, method: options.method ?? DEFAULT_TEXT_METHOD });
  return { results, warnings: embedded.warnings, query: embedded.query };
}

export interface MultiModalOptions {
  fusion: FusionMethod;
  top?: number;
  /** Depth of each list before fusing (default: the candidates, 50). */
  depth?: number;
  k0?: number;
}

/**
 * The image query's list fused with the text query's list (3D-MIR's multi-modal ensemble). The text list
 * uses 3D-MIR's text method (slice-count) unless `text.options` says otherwise, and leaves out what the
 * image query leaves out (its own volume, filters).
 */
export async function searchImageAndText(
  store: Store,
  image: { query: QueryVectors; options: SearchOptions },
  text: { query: QueryVectors; options?: Partial<SearchOptions> },
  fusion: MultiModalOptions,
): Promise<{ results: SearchResult[]; imageResults: SearchResult[]; textResults: SearchResult[] }> {
  if (fusion.fusion !== 'interleave' && fusion.fusion !== 'rrf') throw new SearchError('BAD_OPTION', `unknown fusion '${String(fusion.fusion)}' (use interleave, rrf)`);
  const top = fusion.top ?? image.options.top ?? DEFAULT_TOP;
  const depth = Math.max(top, fusion.depth ?? image.options.candidates ?? DEFAULT_CANDIDATES);
  const excluded = [...(image.options.excludeVolumeIds ?? []), ...(image.query.volumeId !== undefined && !image.options.includeQueryVolume ? [image.query.volumeId] : [])];
  const [imageResults, textResults] = await Promise.all([
    search(store, image.query, { ...image.options, top: depth, fuseWith: undefined }),
    search(store, text.query, {
      method: DEFAULT_TEXT_METHOD,
      ...(image.options.filter ? { filter: image.options.filter } : {}),
      ...(image.options.mode ? { mode: image.options.mode } : {}),
      ...(image.options.k ? { k: image.options.k } : {}),
      ...(image.options.maxSim ? { maxSim: image.options.maxSim } : {}),
      ...text.options,
      excludeVolumeIds: excluded,
      top: depth,
    }),
  ]);
  const results = fusion.fusion === 'interleave' ? interleave(imageResults, textResults, top) : reciprocalRankFusion([imageResults, textResults], { top, ...(fusion.k0 !== undefined ? { k0: fusion.k0 } : {}) });
  return { results, imageResults, textResults };
}
