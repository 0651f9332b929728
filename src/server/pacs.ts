import { isExpectedError } from '../errors.js';
import { fetchQuerySeries, fetchSeriesVolume } from '../ingest/dicomweb-fetch.js';
import { seriesKeyOf } from '../io/dicom.js';
import type { Volume } from '../io/volume.js';
import { hasPacsVolumes, resultViewerLinks, viewerLinkerOf } from '../query/viewer-links.js';
import type { SearchResult } from '../search/types.js';
import { DicomWebClient } from '../source/dicomweb/client.js';
import { resolveCredentials, type DicomWebCredentials } from '../source/dicomweb/credentials.js';
import { DicomWebError } from '../source/dicomweb/errors.js';
import type { ViewerLinkInfo } from '../source/dicomweb/links.js';
import { PacsState } from '../source/dicomweb/pacs-state.js';
import { pseudonymizerFromSecret, readPseudonymSecret } from '../source/dicomweb/pseudonym.js';
import { parseDicomWebUrl, type DicomWebEndpoint } from '../source/dicomweb/url.js';
import { checkViewerTemplate } from '../source/dicomweb/viewer-link.js';
import type { Store, VolumeRecord } from '../store/types.js';

/**
 * The server's PACS: where searches by a PACS series are fetched from and how results link back to the
 * viewer. Everything about it comes from the server's own setup (`mir3d serve --pacs --viewer-url
 * --credentials --pseudonymize`, MIR3D_DICOMWEB_* in its environment), never from a request: a request
 * names only UIDs, so no client can make the server send its credentials to another address.
 */

export interface ServerPacsOptions {
  /** `dicomweb+http(s)://HOST/ROOT`; default the PACS the index was synced from. */
  url?: string;
  /** JSON credentials file, mode 0600; else MIR3D_DICOMWEB_USER/PASSWORD or MIR3D_DICOMWEB_TOKEN. */
  credentialsFile?: string;
  caFile?: string;
  /** `{study}` `{series}` `{sop}`; default the one the index was synced with. */
  viewerTemplate?: string;
  /** The secret of a pseudonymized index, to resolve its UIDs through QIDO-RS. */
  pseudonymizeFile?: string;
}

/** What a search worker needs of the PACS. Structured-clonable; it holds the credentials, so it goes
 * to the workers (in this process) and nowhere else: not into a log, not into a reply. */
export interface PacsConfig {
  endpoint: DicomWebEndpoint;
  credentials: DicomWebCredentials;
  caFile?: string;
  viewerTemplate?: string;
  pseudonymSecret?: string;
}

/** The server's PACS, checked at start (a bad template, address, credentials file or CA fails there),
 * or undefined when there is none: no `--pacs` and an index never synced from one. */
export async function pacsConfigOf(store: Store, options: ServerPacsOptions = {}): Promise<PacsConfig | undefined> {
  if (options.viewerTemplate !== undefined) {
    const problem = checkViewerTemplate(options.viewerTemplate);
    if (problem) throw new DicomWebError('BAD_URL', '--viewer-url', problem);
  }
  const url = options.url ?? new PacsState(store.state).settings().endpoint;
  if (url === undefined) {
    if (options.pseudonymizeFile !== undefined || options.credentialsFile !== undefined) {
      throw new DicomWebError('BAD_URL', 'mir3d serve', 'PACS options were given, but no PACS: add --pacs dicomweb+http(s)://HOST/ROOT (the index was not synced from one)');
    }
    return undefined;
  }
  const address = parseDicomWebUrl(url);
  if (address.studyInstanceUid) throw new DicomWebError('BAD_URL', address.endpoint.display, '--pacs takes the DICOMweb root, without /studies/…');
  const credentials = resolveCredentials(options.credentialsFile ? { file: options.credentialsFile } : {});
  const config: PacsConfig = {
    endpoint: address.endpoint,
    credentials,
    ...(options.caFile ? { caFile: options.caFile } : {}),
    ...(options.viewerTemplate !== undefined ? { viewerTemplate: options.viewerTemplate } : {}),
    ...(options.pseudonymizeFile ? { pseudonymSecret: readPseudonymSecret(options.pseudonymizeFile) } : {}),
  };
  if (config.caFile) {
    // The client reads the CA file: an unreadable one is said at start, not at the first search.
    const probe = new PacsAccess(config);
    probe.client();
    await probe.close();
  }
  return config;
}

export interface ResultLinks {
  links: Map<string, ViewerLinkInfo>;
  /** Why no links could be made this time (a pseudonymized index whose PACS did not answer). */
  problem?: string;
}

/** One search worker's side of the PACS: one client (opened on first use) and the viewer links. */
export class PacsAccess {
  private opened: DicomWebClient | undefined;

  constructor(private readonly config: PacsConfig) {}

  get endpointDisplay(): string {
    return this.config.endpoint.display;
  }

  client(): DicomWebClient {
    this.opened ??= new DicomWebClient(this.config.endpoint, { credentials: this.config.credentials, ...(this.config.caFile ? { caFile: this.config.caFile } : {}) });
    return this.opened;
  }

  /** Links of the PACS-sourced results. A link is a convenience: when it cannot be made (pseudonymized
   * UIDs the PACS cannot resolve now), the search still answers, saying why the links are missing. */
  async links(store: Store, results: SearchResult[]): Promise<ResultLinks> {
    if (!hasPacsVolumes(store)) return { links: new Map() };
    const pseudonymizer = this.config.pseudonymSecret !== undefined ? pseudonymizerFromSecret(this.config.pseudonymSecret) : undefined;
    try {
      // A fresh linker per search: its QIDO-RS answers are cached for this search only, so series added
      // to the PACS later are found.
      const linker = viewerLinkerOf(store, {
        ...(this.config.viewerTemplate !== undefined ? { template: this.config.viewerTemplate, templateOrigin: '--viewer-url' } : {}),
        ...(pseudonymizer ? { client: this.client(), pseudonymizer } : {}),
      });
      return { links: await resultViewerLinks(linker, store, results) };
    } catch (error) {
      if (!isExpectedError(error)) throw error;
      return { links: new Map(), problem: `${error.message.split('\n')[0]} [${error.code}]` };
    }
  }

  /** A series named by a client (UIDs only) as a query volume, decoded in memory. */
  async querySeries(studyInstanceUid: string, seriesInstanceUid?: string): Promise<Volume> {
    return (await fetchQuerySeries(this.client(), studyInstanceUid, seriesInstanceUid, seriesKeyOf)).volume;
  }

  /**
   * The voxels of a PACS-sourced volume, fetched again (WADO-RS) for the pictures and the viewer: the
   * index keeps vectors, not images. Undefined for volumes that did not come from a PACS.
   */
  async volume(store: Store, record: VolumeRecord): Promise<Volume | undefined> {
    const ref = new PacsState(store.state).volume(record.volumeId);
    if (!ref || ref.instances.length === 0) return undefined;
    const pseudonymizer = this.config.pseudonymSecret !== undefined ? pseudonymizerFromSecret(this.config.pseudonymSecret) : undefined;
    let study = ref.study;
    let series = ref.series;
    if (ref.pseudonymized) {
      // The linker already knows how to turn keyed hashes back into UIDs through QIDO-RS.
      const linker = viewerLinkerOf(store, { ...(pseudonymizer ? { client: this.client(), pseudonymizer } : {}) });
      const target = await linker.linkFor(record.volumeId, ref.instances[0].zMm);
      if (!target) return undefined;
      study = target.studyInstanceUid;
      series = target.seriesInstanceUid;
    }
    const fetched = await fetchSeriesVolume(this.client(), { studyInstanceUid: study, seriesInstanceUid: series, instanceCount: ref.instances.length }, { seriesKey: record.seriesKey ?? record.volumeId.slice(0, 12), ...(pseudonymizer ? { pseudonymizer } : {}) });
    return fetched.volume;
  }

  async close(): Promise<void> {
    await this.opened?.close();
    this.opened = undefined;
  }
}
