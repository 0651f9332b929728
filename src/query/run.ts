import { search } from '../search/search.js';
import { searchImageAndText } from '../search/text.js';
import type { SearchResult } from '../search/types.js';
import { storeInSpace } from '../space/open-space.js';
import { captionOf, type SearchRequest } from './request.js';
import { resolveQuery, type ResolveOptions, type ResolvedQuery } from './sources.js';

export interface SearchOutcome {
  resolved: ResolvedQuery;
  results: SearchResult[];
  timings: { queryMs: number; searchMs: number };
  /** The space searched: 'raw' or a stored space's id (space:NAME@sha). */
  space: string;
}

/**
 * Resolves a request's query rows and runs its search: the whole query stage in one call. With a text to
 * fuse, the image query's list and the text's are fused (3D-MIR's multi-modal ensemble). Query rows are
 * always the backbone's (stored or embedded); in a learned space they pass through the same kernel the
 * archive's rows went through (SpaceStore.project), so a new scan and its indexed copy land on one point.
 * Texts are searched in raw (searchRequestOf pins it).
 */
export async function runSearch(request: SearchRequest, options: ResolveOptions): Promise<SearchOutcome> {
  const started = performance.now();
  // Opened first, so an unknown or damaged space fails before a query is embedded.
  const view = await storeInSpace(options.store, request.space);
  const resolved = await resolveQuery(request.source, request.range, options);
  const { withText } = request;
  if (!withText) {
    const searchStarted = performance.now();
    const query = view ? { ...resolved.query, vectors: await view.project(resolved.query.vectors), dim: view.dim } : resolved.query;
    const results = await search(view ?? options.store, query, request.options);
    return { resolved, results, timings: { queryMs: searchStarted - started, searchMs: performance.now() - searchStarted }, space: view ? view.spaceLabel : 'raw' };
  }
  const text = 'text' in withText ? withText.text : captionOf(resolved.record, withText.captionLabel);
  const textQuery = await resolveQuery({ kind: 'text', text }, { kind: 'volume' }, options);
  const searchStarted = performance.now();
  const fused = await searchImageAndText(options.store, { query: resolved.query, options: request.options }, { query: textQuery.query }, { fusion: withText.fusion, ...(request.options.top ? { top: request.options.top } : {}) });
  return {
    resolved: { ...resolved, text, warnings: [...(resolved.warnings ?? []), ...(textQuery.warnings ?? [])] },
    results: fused.results,
    timings: { queryMs: searchStarted - started, searchMs: performance.now() - searchStarted },
    space: 'raw',
  };
}
