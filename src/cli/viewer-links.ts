import type { DicomWebClient } from '../source/dicomweb/client.js';
import type { ViewerLinkInfo } from '../source/dicomweb/links.js';
import { PacsState } from '../source/dicomweb/pacs-state.js';
import { pseudonymizerFromFile } from '../source/dicomweb/pseudonym.js';
import { parseDicomWebUrl } from '../source/dicomweb/url.js';
import { hasPacsVolumes, viewerLinksFor as buildViewerLinks } from '../query/viewer-links.js';
import type { SearchResult } from '../search/types.js';
import type { Store } from '../store/types.js';
import type { DicomWebCliOptions } from './dicomweb-options.js';

export interface ViewerLinkOptions extends DicomWebCliOptions {
  viewerUrl?: string;
  pseudonymize?: string;
}

/**
 * Viewer links for `mir3d search`: the library's (src/query/viewer-links.ts), with the template from
 * `--viewer-url` and, for a pseudonymized index, the secret from `--pseudonymize` and a PACS client from
 * the usual credentials.
 */
export async function viewerLinksFor(store: Store, results: SearchResult[], options: ViewerLinkOptions): Promise<Map<string, ViewerLinkInfo>> {
  if (!hasPacsVolumes(store)) return new Map();
  let client: DicomWebClient | undefined;
  try {
    const pseudonymizer = options.pseudonymize ? pseudonymizerFromFile(options.pseudonymize) : undefined;
    const endpoint = new PacsState(store.state).settings().endpoint;
    if (pseudonymizer && endpoint) {
      const { dicomWebClient } = await import('./dicomweb-client.js');
      client = dicomWebClient(parseDicomWebUrl(endpoint).endpoint, options);
    }
    return await buildViewerLinks(store, results, {
      ...(options.viewerUrl !== undefined ? { template: options.viewerUrl, templateOrigin: '--viewer-url' } : {}),
      ...(client ? { client } : {}),
      ...(pseudonymizer ? { pseudonymizer } : {}),
    });
  } finally {
    await client?.close();
  }
}
