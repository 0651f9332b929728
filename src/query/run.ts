import { search } from '../search/search.js';
import { searchImageAndText } from '../search/text.js';
import type { SearchResult } from '../search/types.js';
import { captionOf, type SearchRequest } from './request.js';
import { resolveQuery, type ResolveOptions, type ResolvedQuery } from './sources.js';

export interface SearchOutcome {
  resolved: ResolvedQuery;
  results: SearchResult[];
  timings: { queryMs: number; searchMs: number };
}

/** Resolves a request's query rows and runs its search: the whole query stage in one call. With a text
 * to fuse, the image query's list and the text's are fused (3D-MIR's multi-modal ensemble). */
export async function runSearch(request: SearchRequest, options: ResolveOptions): Promise<SearchOutcome> {
  const started = performance.now();
  const resolved = await resolveQuery(request.source, request.range, options);
  const { withText } = request;
  if (!withText) {
    const searchStarted = performance.now();
    const results = await search(options.store, resolved.query, request.options);
    return { resolved, results, timings: { queryMs: searchStarted - started, searchMs: performance.now() - searchStarted } };
  }
  const text = 'text' in withText ? withText.text : captionOf(resolved.record, withText.captionLabel);
  const textQuery = await resolveQuery({ kind: 'text', text }, { kind: 'volume' }, options);
  const searchStarted = performance.now();
  const fused = await searchImageAndText(options.store, { query: resolved.query, options: request.options }, { query: textQuery.query }, { fusion: withText.fusion, ...(request.options.top ? { top: request.options.top } : {}) });
  return {
    resolved: { ...resolved, text, warnings: [...(resolved.warnings ?? []), ...(textQuery.warnings ?? [])] },
    results: fused.results,
    timings: { queryMs: searchStarted - started, searchMs: performance.now() - searchStarted },
  };
}
