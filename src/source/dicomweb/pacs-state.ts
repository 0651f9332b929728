import { createHash } from 'node:crypto';

/**
 * What an index remembers about the PACS it was synced from, kept in the index's own key/value state
 * (the store's `IndexState`, so it lives and dies with the index):
 * - per series: the fingerprint seen at the last sync and what became of it (indexed as which volume,
 *   skipped why, failed why), so a rerun fetches only new or changed series;
 * - per PACS-sourced volume: the Study and Series Instance UIDs and, per instance, its SOP Instance UID
 *   and patient z, which is what a viewer link needs (keyed hashes instead with --pseudonymize);
 * - settings: the endpoint (without credentials), the viewer link template, the pseudonymization key id.
 * Nothing about the patient is kept (no names, IDs, birth dates), and a UID only for a PACS volume. Keys
 * are hashes, so not even a UID appears as a key.
 *
 * The source stage does not import the store (it comes later in the data flow): it takes any object
 * with the shape of the store's key/value state.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface KeyValueState {
  get(namespace: string, key: string): Json | undefined;
  set(namespace: string, key: string, value: Json): void;
  delete(namespace: string, key: string): boolean;
}

const NS = {
  settings: 'dicomweb.settings',
  series: 'dicomweb.series',
  volumes: 'dicomweb.volumes',
} as const;

export type SeriesSyncStatus = 'indexed' | 'skipped' | 'failed';

export interface SeriesSyncEntry {
  /** Series Instance UID, or its keyed hash when pseudonymized (kept in the value, not the key). */
  seriesRef: string;
  fingerprint: string;
  status: SeriesSyncStatus;
  volumeId?: string;
  reason?: string;
  updatedAt: string;
}

export interface InstanceRef {
  /** SOP Instance UID (or its keyed hash). */
  sop: string;
  /** Patient z (superior, mm) of the instance's position. */
  zMm: number;
}

export interface PacsVolumeRef {
  volumeId: string;
  /** The DICOMweb root it came from (display form, no credentials). */
  endpoint: string;
  study: string;
  series: string;
  pseudonymized: boolean;
  instances: InstanceRef[];
}

export interface PacsSettings {
  endpoint?: string;
  viewerTemplate?: string;
  pseudonymKeyId?: string;
}

function keyOf(seriesRef: string): string {
  return createHash('sha256').update(`mir3d-series:${seriesRef}`).digest('hex').slice(0, 40);
}

export class PacsState {
  constructor(private readonly state: KeyValueState) {}

  settings(): PacsSettings {
    const out: PacsSettings = {};
    for (const key of ['endpoint', 'viewerTemplate', 'pseudonymKeyId'] as const) {
      const value = this.state.get(NS.settings, key);
      if (typeof value === 'string' && value !== '') out[key] = value;
    }
    return out;
  }

  setSetting(key: keyof PacsSettings, value: string): void {
    this.state.set(NS.settings, key, value);
  }

  series(seriesRef: string): SeriesSyncEntry | undefined {
    const value = this.state.get(NS.series, keyOf(seriesRef));
    if (!value || typeof value !== 'object' || Array.isArray(value)) return undefined;
    return value as unknown as SeriesSyncEntry;
  }

  /** Records the outcome of one series; with its volume's UIDs when it was indexed (written first, so an
   * "indexed" series always has them). */
  recordSeries(entry: Omit<SeriesSyncEntry, 'updatedAt'>, volume?: PacsVolumeRef): void {
    if (volume) {
      this.state.set(NS.volumes, volume.volumeId, {
        endpoint: volume.endpoint,
        study: volume.study,
        series: volume.series,
        pseudonymized: volume.pseudonymized,
        instances: volume.instances.map((i) => [i.zMm, i.sop]),
      });
    }
    const value: SeriesSyncEntry = { ...entry, updatedAt: new Date().toISOString() };
    this.state.set(NS.series, keyOf(entry.seriesRef), value as unknown as Json);
  }

  /** Volumes that left the index (replaced by a newer copy of their series) lose their UIDs too. */
  forgetVolumes(volumeIds: string[]): void {
    for (const id of volumeIds) this.state.delete(NS.volumes, id);
  }

  volume(volumeId: string): PacsVolumeRef | undefined {
    const value = this.state.get(NS.volumes, volumeId) as
      | { endpoint: string; study: string; series: string; pseudonymized: boolean; instances: [number, string][] }
      | undefined;
    if (!value) return undefined;
    return {
      volumeId,
      endpoint: value.endpoint,
      study: value.study,
      series: value.series,
      pseudonymized: value.pseudonymized,
      instances: value.instances.map(([zMm, sop]) => ({ zMm, sop })),
    };
  }
}
