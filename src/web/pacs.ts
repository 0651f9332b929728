import { ApiCallError, isAbort, postJson, type SearchResultInfo, type UploadInfo } from './api.js';
import { uploadSource, type QuerySource, type SourceHost, type SourcePanel } from './sources.js';

/**
 * The PACS on the page: a query by Study / Series Instance UID (the server fetches the series from its
 * own PACS with its own credentials and keeps it as a query volume, POST /api/uploads/dicomweb; the page
 * sends UIDs only), and on each result from a PACS-sourced volume, the link that opens the hospital's
 * viewer at the best-matching slice.
 */

const UID = /^[0-9]+(\.[0-9]+)*$/;

function $(id: string): HTMLElement {
  const element = document.getElementById(id);
  if (!element) throw new Error(`page element #${id} is missing`);
  return element;
}

/** UIDs from the two fields; the first may hold a whole `…/studies/S/series/SE` address instead. */
export function pacsUids(studyField: string, seriesField: string): { studyInstanceUid: string; seriesInstanceUid?: string } | string {
  let study = studyField.trim();
  let series = seriesField.trim();
  const path = /\/studies\/([^/?#]+)(?:\/series\/([^/?#]+))?\/?$/.exec(study);
  if (path) {
    study = decodeURIComponent(path[1]);
    if (path[2] !== undefined) series = decodeURIComponent(path[2]);
  }
  if (!UID.test(study) || study.length > 64) return 'Enter a Study Instance UID (digits and dots), or an address ending in /studies/UID/series/UID.';
  if (series !== '' && (!UID.test(series) || series.length > 64)) return 'The Series Instance UID must be digits and dots (or leave it empty).';
  return { studyInstanceUid: study, ...(series ? { seriesInstanceUid: series } : {}) };
}

export class PacsPanel implements SourcePanel {
  readonly kind = 'pacs';
  private current: QuerySource | undefined;
  private readonly statusLine = $('pacs-status');

  /** `search`: runs the search once the panel has its query. */
  constructor(
    private readonly host: SourceHost,
    search: () => void,
  ) {
    $('pacs-form').addEventListener('submit', (event) => {
      event.preventDefault();
      void this.fetchSeries(search);
    });
  }

  private async fetchSeries(search: () => void): Promise<void> {
    // A new series replaces the query: what was shown for the old one goes now, even if this fails.
    this.current = undefined;
    this.host.setSource(undefined);
    const uids = pacsUids(($('pacs-study') as HTMLInputElement).value, ($('pacs-series') as HTMLInputElement).value);
    if (typeof uids === 'string') {
      this.host.status(this.statusLine, uids, true);
      return;
    }
    const button = $('pacs-search') as HTMLButtonElement;
    button.disabled = true;
    this.host.status(this.statusLine, 'Fetching the series from the PACS…');
    try {
      const upload = await postJson<UploadInfo>('/api/uploads/dicomweb', uids);
      this.current = { ...uploadSource(upload), kind: 'pacs' };
      this.current.volume!.title = upload.indexedAs ? `PACS series (indexed as ${upload.indexedAs})` : 'PACS series';
      this.host.status(this.statusLine, `Fetched ${upload.dims.join('×')} voxels; not added to the index.`);
      this.host.setSource(this.current);
      search();
    } catch (error) {
      const text = isAbort(error) ? 'Cancelled.' : error instanceof ApiCallError ? `${error.message} [${error.code}]` : error instanceof Error ? error.message : String(error);
      this.host.status(this.statusLine, text, true);
    } finally {
      button.disabled = false;
    }
  }

  /** Shown only when the server has a PACS. */
  enable(available: boolean): void {
    $('pacs-choice').hidden = !available;
  }

  activate(): QuerySource | undefined {
    return this.current;
  }
}

/** "Open in the viewer" for a result from a PACS-sourced volume (http(s) links only), or undefined. */
export function viewerLinkElement(result: SearchResultInfo): HTMLElement | undefined {
  const viewer = result.viewer;
  if (!viewer) return undefined;
  const line = document.createElement('p');
  line.className = 'viewer-link';
  Object.assign(line.dataset, { studyUid: viewer.studyInstanceUid, seriesUid: viewer.seriesInstanceUid, sopUid: viewer.sopInstanceUid });
  let url: URL | undefined;
  try {
    url = viewer.url !== undefined ? new URL(viewer.url, window.location.href) : undefined;
  } catch {
    url = undefined;
  }
  if (url && (url.protocol === 'https:' || url.protocol === 'http:')) {
    const link = document.createElement('a');
    link.href = url.href;
    link.target = '_blank';
    link.rel = 'noopener noreferrer';
    link.textContent = 'Open in the viewer at the best-matching slice';
    line.append(link);
  } else {
    // No template on the server: the UIDs, to paste into the viewer.
    line.textContent = `PACS: series ${viewer.seriesInstanceUid}, instance ${viewer.sopInstanceUid}`;
  }
  line.title = `Study ${viewer.studyInstanceUid}\nSeries ${viewer.seriesInstanceUid}\nInstance ${viewer.sopInstanceUid}`;
  return line;
}
