import type { DicomWebClient } from './client.js';
import { DicomWebError } from './errors.js';
import type { PacsState, PacsVolumeRef } from './pacs-state.js';
import type { UidPseudonymizer } from './pseudonym.js';
import { nearestInstance, viewerLink, type ViewerTarget } from './viewer-link.js';

/**
 * What a viewer needs to open a PACS-sourced result at its best-matching slice: the three UIDs and,
 * when a template is configured, the link. Pseudonymized indexes keep only keyed hashes, so the UIDs are
 * found again by asking the PACS (QIDO-RS) for its series and instances and hashing what it lists, with
 * the secret; the answers are cached for the linker's lifetime.
 */
export interface ViewerLinkInfo extends ViewerTarget {
  url?: string;
}

export interface ViewerLinkerOptions {
  /** URL template with {study} {series} {sop}; without one, links carry the UIDs only. */
  template?: string;
  /** Needed for pseudonymized indexes only. */
  client?: DicomWebClient;
  pseudonymizer?: UidPseudonymizer;
}

export class ViewerLinker {
  private seriesByHash?: Promise<Map<string, { study: string; series: string }>>;
  private readonly sopByHash = new Map<string, Promise<Map<string, string>>>();

  constructor(
    private readonly state: PacsState,
    private readonly options: ViewerLinkerOptions = {},
  ) {}

  /** Whether a volume came from a PACS (and so can have a link). */
  has(volumeId: string): boolean {
    return this.state.volume(volumeId) !== undefined;
  }

  /** The link for a volume at patient z, or undefined for volumes that did not come from a PACS. */
  async linkFor(volumeId: string, zMm: number): Promise<ViewerLinkInfo | undefined> {
    const ref = this.state.volume(volumeId);
    if (!ref) return undefined;
    const instance = nearestInstance(ref.instances, zMm);
    if (!instance) return undefined;
    const target = ref.pseudonymized ? await this.resolve(ref, instance.sop) : { studyInstanceUid: ref.study, seriesInstanceUid: ref.series, sopInstanceUid: instance.sop };
    return { ...target, ...(this.options.template ? { url: viewerLink(this.options.template, target) } : {}) };
  }

  private async resolve(ref: PacsVolumeRef, sopHash: string): Promise<ViewerTarget> {
    const { client, pseudonymizer } = this.options;
    if (!client || !pseudonymizer) {
      throw new DicomWebError('CREDENTIALS', ref.endpoint, 'this index keeps pseudonymized UIDs: links need --pseudonymize with its secret and access to the PACS');
    }
    this.seriesByHash ??= client.searchSeries({}).then((all) => new Map(all.map((s) => [pseudonymizer.pseudonym(s.seriesInstanceUid), { study: s.studyInstanceUid, series: s.seriesInstanceUid }])));
    const series = (await this.seriesByHash).get(ref.series);
    if (!series) throw new DicomWebError('NOT_FOUND', ref.endpoint, `the series of volume ${ref.volumeId} is no longer in the PACS (or the secret differs)`);
    let sops = this.sopByHash.get(ref.series);
    if (!sops) {
      sops = client.searchInstances(series.study, series.series, ref.series.slice(1, 13)).then((all) => new Map(all.map((i) => [pseudonymizer.pseudonym(i.sopInstanceUid), i.sopInstanceUid])));
      this.sopByHash.set(ref.series, sops);
    }
    const sop = (await sops).get(sopHash);
    if (!sop) throw new DicomWebError('NOT_FOUND', ref.endpoint, `an instance of volume ${ref.volumeId} is no longer in the PACS`);
    return { studyInstanceUid: series.study, seriesInstanceUid: series.series, sopInstanceUid: sop };
  }
}
