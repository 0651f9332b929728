import { ApiCallError, call, isAbort, uploadWithProgress, type IndexInfo, type SearchBody, type UploadInfo, type VolumeInfo } from './api.js';
import { describeVolume } from './names.js';

/**
 * Where a query comes from. Each kind is a radio (`name="source"`, `value=kind`) and a panel
 * (`data-source=kind`) in index.html, and one `SourcePanel` here; the page asks the chosen panel for its
 * current query and knows nothing else about it. A new kind (a text box, a PACS study/series UID)
 * adds its radio, its panel and one entry to `sourcePanels`.
 */

/** A query volume the page can draw (slab picker, viewer). Text queries have none. */
export interface QueryVolume {
  title: string;
  dims: [number, number, number];
  spacingMm: [number, number, number];
  affineRas: number[];
  thumbnailPath: string;
  niftiPath: string;
}

export interface QuerySource {
  kind: string;
  /** The fields of the search body that name this query (volumeId, uploadId, …). */
  body: Partial<SearchBody>;
  volume?: QueryVolume;
}

/** What a panel may do to the page. */
export interface SourceHost {
  /** The panel's query changed (undefined: it has none yet, or it failed). Clears stale results. */
  setSource(source: QuerySource | undefined): void;
  /** Status line of the panel. */
  status(element: HTMLElement, text: string, isError?: boolean): void;
  index(): IndexInfo | undefined;
}

export interface SourcePanel {
  kind: string;
  /** Chosen by its radio: its current query, if it has one. */
  activate(): QuerySource | undefined;
}

function $(id: string): HTMLElement {
  const element = document.getElementById(id);
  if (!element) throw new Error(`page element #${id} is missing`);
  return element;
}

export function indexedSource(volume: VolumeInfo): QuerySource {
  const id = encodeURIComponent(volume.volumeId);
  return {
    kind: 'indexed',
    body: { volumeId: volume.volumeId },
    volume: {
      title: describeVolume(volume).name,
      dims: volume.dims,
      spacingMm: volume.spacingMm,
      affineRas: volume.affineRas,
      thumbnailPath: `/api/volumes/${id}/thumbnail.png`,
      niftiPath: `/api/volumes/${id}/volume.nii.gz`,
    },
  };
}

export function uploadSource(upload: UploadInfo): QuerySource {
  const id = encodeURIComponent(upload.uploadId);
  return {
    kind: 'upload',
    body: { uploadId: upload.uploadId },
    volume: {
      title: upload.indexedAs ? `upload (same scan as ${upload.indexedAs})` : 'uploaded volume',
      dims: upload.dims,
      spacingMm: upload.spacingMm,
      affineRas: upload.affineRas,
      thumbnailPath: `/api/uploads/${id}/thumbnail.png`,
      niftiPath: `/api/uploads/${id}/volume.nii.gz`,
    },
  };
}

/** An indexed volume, chosen from the list. */
export class IndexedPanel implements SourcePanel {
  readonly kind = 'indexed';
  private byId = new Map<string, VolumeInfo>();
  private readonly menu = $('volume-select') as HTMLSelectElement;

  constructor(private readonly host: SourceHost) {
    this.menu.addEventListener('change', () => host.setSource(this.activate()));
  }

  fill(volumes: VolumeInfo[]): void {
    this.byId = new Map(volumes.map((v) => [v.volumeId, v]));
    this.menu.replaceChildren(
      ...volumes.map((volume) => {
        const option = document.createElement('option');
        option.value = volume.volumeId;
        const { name, detail } = describeVolume(volume);
        option.textContent = `${name} — ${detail} · ${volume.volumeId.slice(0, 12)}`;
        return option;
      }),
    );
  }

  volume(volumeId: string): VolumeInfo | undefined {
    return this.byId.get(volumeId);
  }

  activate(): QuerySource | undefined {
    const volume = this.byId.get(this.menu.value);
    return volume ? indexedSource(volume) : undefined;
  }
}

/** A NIfTI file or a zipped DICOM series uploaded from this computer, with progress and Cancel. */
export class UploadPanel implements SourcePanel {
  readonly kind = 'upload';
  private current: QuerySource | undefined;
  private controller: AbortController | undefined;
  private readonly input = $('upload-input') as HTMLInputElement;
  private readonly statusLine = $('upload-status');
  private readonly progress = $('upload-progress');
  private readonly bar = $('upload-bar') as HTMLProgressElement;

  constructor(private readonly host: SourceHost) {
    $('upload-button').addEventListener('click', () => void this.upload());
    $('upload-cancel').addEventListener('click', () => this.controller?.abort());
  }

  disable(reason: string): void {
    this.input.disabled = true;
    ($('upload-button') as HTMLButtonElement).disabled = true;
    this.host.status(this.statusLine, reason);
  }

  activate(): QuerySource | undefined {
    return this.current;
  }

  private async upload(): Promise<void> {
    const file = this.input.files?.[0];
    if (!file) {
      this.host.status(this.statusLine, 'Choose a NIfTI file or a zip of a DICOM series first.', true);
      return;
    }
    // A new upload replaces the query: what was shown for the old one must go now, even if this fails.
    this.current = undefined;
    this.host.setSource(undefined);
    const limit = this.host.index()?.limits.maxUploadBytes;
    if (limit !== undefined && file.size > limit) {
      this.host.status(this.statusLine, `The file is ${(file.size / 1e6).toFixed(0)} MB; this server accepts at most ${(limit / 1e6).toFixed(0)} MB.`, true);
      return;
    }
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.progress.hidden = false;
    this.bar.value = 0;
    const megabytes = (file.size / 1e6).toFixed(1);
    this.host.status(this.statusLine, `Uploading ${megabytes} MB…`);
    try {
      const uploaded = await uploadWithProgress<UploadInfo>(
        '/api/uploads',
        file,
        (fraction) => {
          this.bar.value = fraction;
          this.host.status(this.statusLine, fraction < 1 ? `Uploading ${megabytes} MB: ${(fraction * 100).toFixed(0)} %` : 'Reading the volume on the server…');
          // Sent: the server now reads it, for an unknown time.
          if (fraction >= 1) this.bar.removeAttribute('value');
        },
        controller.signal,
      );
      this.current = uploadSource(uploaded);
      this.host.status(this.statusLine, `Read ${uploaded.dims.join('×')} voxels${uploaded.indexedAs ? ` (the same scan as indexed volume ${uploaded.indexedAs})` : ''}.`);
      this.host.setSource(this.current);
    } catch (error) {
      const text = isAbort(error) ? 'Upload cancelled.' : error instanceof ApiCallError ? `${error.message} [${error.code}]` : error instanceof Error ? error.message : String(error);
      this.host.status(this.statusLine, text, !isAbort(error));
    } finally {
      if (this.controller === controller) this.controller = undefined;
      this.progress.hidden = true;
    }
  }
}

/** Every indexed volume, in pages of the API's largest page. */
export async function listAllVolumes(): Promise<VolumeInfo[]> {
  const out: VolumeInfo[] = [];
  for (let offset = 0; ; offset += 1000) {
    const page = await call<{ volumes: VolumeInfo[]; total: number }>(`/api/volumes?limit=1000&offset=${offset}`);
    out.push(...page.volumes);
    if (out.length >= page.total || page.volumes.length === 0) return out;
  }
}
