import type { SearchResult } from '../search/types.js';
import type { ViewerLinker, ViewerLinkInfo } from '../source/dicomweb/links.js';
import type { Store } from '../store/types.js';

/**
 * Links back to the PACS viewer for search results (CLI and server alike): each result from a
 * PACS-sourced volume gets the UIDs of its best-matching slice and, with a template, the URL.
 */

/** Patient z of a result's best-matching slice: the match with the highest similarity, else the middle
 * of its localized region. */
export function bestMatchZMm(result: SearchResult, store: Store): number | undefined {
  const best = result.matches.reduce<SearchResult['matches'][number] | undefined>((a, m) => (!a || m.similarity > a.similarity ? m : a), undefined);
  if (best) {
    const vectors = store.getVectors([result.volumeId]).get(result.volumeId);
    if (vectors) {
      const row = Array.from(vectors.sliceIndices).indexOf(best.targetSlice);
      if (row >= 0) return vectors.zMm[row];
    }
  }
  return result.region ? (result.region.zStartMm + result.region.zEndMm) / 2 : undefined;
}

export async function resultViewerLinks(linker: ViewerLinker, store: Store, results: SearchResult[]): Promise<Map<string, ViewerLinkInfo>> {
  const links = new Map<string, ViewerLinkInfo>();
  for (const result of results) {
    if (!linker.has(result.volumeId)) continue;
    const zMm = bestMatchZMm(result, store);
    if (zMm === undefined) continue;
    const link = await linker.linkFor(result.volumeId, zMm);
    if (link) links.set(result.volumeId, link);
  }
  return links;
}
