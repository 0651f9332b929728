import { search } from '../search/search.js';
import type { SearchResult } from '../search/types.js';
import type { SearchRequest } from './request.js';
import { resolveQuery, type ResolveOptions, type ResolvedQuery } from './sources.js';

export interface SearchOutcome {
  resolved: ResolvedQuery;
  results: SearchResult[];
  timings: { queryMs: number; searchMs: number };
}

/** Resolves a request's query rows and runs its search: the whole query stage in one call. */
export async function runSearch(request: SearchRequest, options: ResolveOptions): Promise<SearchOutcome> {
  const started = performance.now();
  const resolved = await resolveQuery(request.source, request.range, options);
  const searchStarted = performance.now();
  const results = await search(options.store, resolved.query, request.options);
  return { resolved, results, timings: { queryMs: searchStarted - started, searchMs: performance.now() - searchStarted } };
}
