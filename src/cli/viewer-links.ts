import type { DicomWebClient } from '../source/dicomweb/client.js';
import { ViewerLinker, type ViewerLinkInfo } from '../source/dicomweb/links.js';
import { PacsState } from '../source/dicomweb/pacs-state.js';
import { pseudonymizerFromFile } from '../source/dicomweb/pseudonym.js';
import { parseDicomWebUrl } from '../source/dicomweb/url.js';
import { checkViewerTemplate } from '../source/dicomweb/viewer-link.js';
import { DicomWebError } from '../source/dicomweb/errors.js';
import { resultViewerLinks } from '../query/viewer-links.js';
import type { SearchResult } from '../search/types.js';
import type { Store } from '../store/types.js';
import type { DicomWebCliOptions } from './dicomweb-options.js';

export interface ViewerLinkOptions extends DicomWebCliOptions {
  viewerUrl?: string;
  pseudonymize?: string;
}

/**
 * Viewer links for the results that came from a PACS, keyed by volume id (none when the index was never
 * synced from one). The template is `--viewer-url`, else the one the index was synced with.
 */
export async function viewerLinksFor(store: Store, results: SearchResult[], options: ViewerLinkOptions): Promise<Map<string, ViewerLinkInfo>> {
  const state = new PacsState(store.state);
  if (state.settings().endpoint === undefined) return new Map();
  let client: DicomWebClient | undefined;
  try {
    const settings = state.settings();
    const template = options.viewerUrl ?? settings.viewerTemplate;
    if (options.viewerUrl) {
      const problem = checkViewerTemplate(options.viewerUrl);
      if (problem) throw new DicomWebError('BAD_URL', '--viewer-url', problem);
    }
    const pseudonymizer = options.pseudonymize ? pseudonymizerFromFile(options.pseudonymize) : undefined;
    if (pseudonymizer && settings.endpoint) {
      const { dicomWebClient } = await import('./dicomweb-client.js');
      client = dicomWebClient(parseDicomWebUrl(settings.endpoint).endpoint, options);
    }
    const linker = new ViewerLinker(state, { ...(template ? { template } : {}), ...(client ? { client } : {}), ...(pseudonymizer ? { pseudonymizer } : {}) });
    return await resultViewerLinks(linker, store, results);
  } finally {
    await client?.close();
  }
}
