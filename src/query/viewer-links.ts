import type { SearchResult } from '../search/types.js';
import type { DicomWebClient } from '../source/dicomweb/client.js';
import { DicomWebError } from '../source/dicomweb/errors.js';
import { ViewerLinker, type ViewerLinkInfo } from '../source/dicomweb/links.js';
import { PacsState } from '../source/dicomweb/pacs-state.js';
import type { UidPseudonymizer } from '../source/dicomweb/pseudonym.js';
import { checkViewerTemplate } from '../source/dicomweb/viewer-link.js';
import type { Store } from '../store/types.js';

/**
 * Links back to the PACS viewer for search results, the one way for every front end (`mir3d search`,
 * the HTTP server): each result from a PACS-sourced volume gets the UIDs of its best-matching slice and,
 * with a template, the URL. Front ends only say where the template, the PACS client and the secret come
 * from (flags, the server's environment).
 */

export interface ViewerLinkSettings {
  /** `{study}` `{series}` `{sop}` template; default the one the index was synced with. */
  template?: string;
  /** Where the template came from, for the message when it is malformed (`--viewer-url`). */
  templateOrigin?: string;
  /** For pseudonymized indexes: QIDO-RS lookups that turn keyed hashes back into UIDs. */
  client?: DicomWebClient;
  pseudonymizer?: UidPseudonymizer;
}

/** Whether the index was ever synced from a PACS (only then can a result have a link). */
export function hasPacsVolumes(store: Store): boolean {
  return new PacsState(store.state).settings().endpoint !== undefined;
}

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

/** A linker for this index and these settings (a malformed template is refused here, once). */
export function viewerLinkerOf(store: Store, settings: ViewerLinkSettings = {}): ViewerLinker {
  const state = new PacsState(store.state);
  if (settings.template !== undefined) {
    const problem = checkViewerTemplate(settings.template);
    if (problem) throw new DicomWebError('BAD_URL', settings.templateOrigin ?? 'viewer template', problem);
  }
  const template = settings.template ?? state.settings().viewerTemplate;
  return new ViewerLinker(state, {
    ...(template ? { template } : {}),
    ...(settings.client ? { client: settings.client } : {}),
    ...(settings.pseudonymizer ? { pseudonymizer: settings.pseudonymizer } : {}),
  });
}

/** Links of the results that came from a PACS, keyed by volume id (empty for an index never synced). */
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

/** `viewerLinkerOf` + `resultViewerLinks` in one call. */
export async function viewerLinksFor(store: Store, results: SearchResult[], settings: ViewerLinkSettings = {}): Promise<Map<string, ViewerLinkInfo>> {
  if (!hasPacsVolumes(store)) return new Map();
  return resultViewerLinks(viewerLinkerOf(store, settings), store, results);
}
