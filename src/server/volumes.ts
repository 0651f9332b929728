import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { encodeNifti } from '../io/nifti-writer.js';
import { DISPLAY_WINDOWS, encodePng, renderSlice, type DisplayWindow, type Plane, type Rgb, type SliceSource } from '../io/png.js';
import { readVolume, type ReadOptions } from '../io/read.js';
import { sliceZMm, type Vec3, type Volume } from '../io/volume.js';
import { canonicalInt16Sha256 } from '../io/volume-stats.js';
import { MATCH_COLOR, QUERY_COLOR } from '../io/sheet.js';
import type { Store, VolumeRecord } from '../store/types.js';
import type * as Contract from '../api/contract.js';
import { ApiError, toApiError } from './errors.js';
import { Limiter } from './limiter.js';
import { ByteLru } from './lru.js';

/**
 * Volumes as the API hands them out: records without the fields that could identify a patient, voxels
 * decoded from the indexed source (cached), slice pictures and NIfTI copies for the viewer.
 */

const gzipAsync = promisify(gzip);

export type WindowName = keyof typeof DISPLAY_WINDOWS;
export const WINDOW_NAMES = Object.keys(DISPLAY_WINDOWS) as WindowName[];
/** The presets as the page lists them. */
export const WINDOW_PRESETS: Contract.WindowPreset[] = (
  [
    ['softTissue', 'soft tissue'],
    ['lung', 'lung'],
    ['bone', 'bone'],
    ['brain', 'brain'],
    ['liver', 'liver'],
  ] as const satisfies readonly (readonly [WindowName, string])[]
).map(([name, title]) => ({ name, title, ...DISPLAY_WINDOWS[name] }));
export const PLANES: readonly Plane[] = ['axial', 'coronal', 'sagittal'];

/** An indexed volume as the API shows it (see the contract for what is left out, and why). */
export type PublicVolume = Contract.PublicVolume;

function zRangeOf(geometry: { dims: Vec3; affineRas: number[] }): [number, number] {
  const volume = { dims: geometry.dims, affineRas: geometry.affineRas } as Volume;
  return [sliceZMm(volume, 0), sliceZMm(volume, geometry.dims[2] - 1)];
}

/**
 * A name people can read: the last two parts of the source path (`case-17/ct.nii.gz`, a DICOM series'
 * `patient-dir/series-dir`). Archive folder names often carry patient names or record numbers, so the
 * server gives it only when started with --show-source-names; PACS volumes never get one (their path
 * holds the study UIDs, and they carry a viewer link instead).
 */
export function sourceNameOf(record: Pick<VolumeRecord, 'sourcePath'>): string | undefined {
  if (/^dicomweb\+/i.test(record.sourcePath)) return undefined;
  const parts = record.sourcePath.split(/[\\/]/).filter(Boolean);
  return parts.length > 0 ? parts.slice(-2).join('/') : undefined;
}

export function publicVolume(record: VolumeRecord, showSourceName = false): PublicVolume {
  const sourceName = showSourceName ? sourceNameOf(record) : undefined;
  const year = record.studyDate && /^\d{4}/.test(record.studyDate) ? Number(record.studyDate.slice(0, 4)) : undefined;
  return {
    volumeId: record.volumeId,
    dims: [...record.dims],
    spacingMm: [...record.spacingMm],
    affineRas: [...record.affineRas],
    zRangeMm: zRangeOf(record),
    modality: record.modality,
    ...(record.bodyPart ? { bodyPart: record.bodyPart } : {}),
    ...(year ? { studyYear: year } : {}),
    ...(record.seriesKey ? { seriesKey: record.seriesKey } : {}),
    labels: { ...record.labels },
    embeddedSlices: record.sliceCount,
    addedAt: record.addedAt,
    ...(sourceName ? { sourceName } : {}),
  };
}

export interface ThumbnailRequest {
  plane: Plane;
  /** Index along the plane's normal (k axial, j coronal, i sagittal); default the middle. */
  index?: number;
  window?: WindowName;
  levelHu?: number;
  widthHu?: number;
  /** Inclusive canonical slice range to tint (coronal and sagittal only). */
  bandFirst?: number;
  bandLast?: number;
  tint?: 'match' | 'query';
  /** Longest side of the picture in pixels, at most (it is never enlarged past the voxel grid). */
  maxPx: number;
}

const NORMAL_AXIS: Record<Plane, 0 | 1 | 2> = { axial: 2, coronal: 1, sagittal: 0 };
const VIEW_AXES: Record<Plane, [0 | 1 | 2, 0 | 1 | 2]> = { axial: [0, 1], coronal: [0, 2], sagittal: [1, 2] };

/** Pixel size and picture size of a thumbnail: square pixels of the finer voxel size of the view, made
 * coarser when the picture would exceed `maxPx`. */
export function thumbnailGeometry(dims: Vec3, spacingMm: Vec3, plane: Plane, maxPx: number): { pixelMm: number; widthPx: number; heightPx: number } {
  const [u, v] = VIEW_AXES[plane];
  const extentU = dims[u] * spacingMm[u];
  const extentV = dims[v] * spacingMm[v];
  const pixelMm = Math.max(Math.min(spacingMm[u], spacingMm[v]), Math.max(extentU, extentV) / maxPx);
  return { pixelMm, widthPx: Math.max(1, Math.round(extentU / pixelMm)), heightPx: Math.max(1, Math.round(extentV / pixelMm)) };
}

function windowOf(request: ThumbnailRequest): DisplayWindow {
  if (request.levelHu !== undefined || request.widthHu !== undefined) {
    if (request.levelHu === undefined || request.widthHu === undefined) throw new ApiError(400, 'BAD_WINDOW', 'give both levelHu and widthHu, or a window name');
    if (request.window) throw new ApiError(400, 'BAD_WINDOW', 'give a window name or levelHu and widthHu, not both');
    return { levelHu: request.levelHu, widthHu: request.widthHu };
  }
  return DISPLAY_WINDOWS[request.window ?? 'softTissue'];
}

export function renderThumbnail(volume: SliceSource, request: ThumbnailRequest): Buffer {
  const normal = NORMAL_AXIS[request.plane];
  const index = request.index ?? Math.floor(volume.dims[normal] / 2);
  if (index >= volume.dims[normal]) {
    throw new ApiError(400, 'SLICE_OUT_OF_RANGE', `${request.plane} index ${index} is outside 0..${volume.dims[normal] - 1}`);
  }
  const hasBand = request.bandFirst !== undefined || request.bandLast !== undefined;
  if (hasBand) {
    if (request.bandFirst === undefined || request.bandLast === undefined) throw new ApiError(400, 'BAD_BAND', 'give both bandFirst and bandLast');
    if (request.plane === 'axial') throw new ApiError(400, 'BAD_BAND', 'a slice band needs a coronal or sagittal view');
    if (request.bandFirst > request.bandLast) throw new ApiError(400, 'BAD_BAND', 'bandFirst must not exceed bandLast');
    if (request.bandLast >= volume.dims[2]) throw new ApiError(400, 'SLICE_OUT_OF_RANGE', `band slice ${request.bandLast} is outside 0..${volume.dims[2] - 1}`);
  }
  const { pixelMm } = thumbnailGeometry(volume.dims, volume.spacingMm, request.plane, request.maxPx);
  const color: Rgb = request.tint === 'query' ? QUERY_COLOR : MATCH_COLOR;
  const image = renderSlice(volume, {
    plane: request.plane,
    index,
    window: windowOf(request),
    pixelMm,
    ...(hasBand ? { bands: [{ kFirst: request.bandFirst!, kLast: request.bandLast!, color, alpha: 0.3 }] } : {}),
  });
  return encodePng(image);
}

function thumbnailKey(owner: string, r: ThumbnailRequest): string {
  return [owner, r.plane, r.index ?? 'mid', r.window ?? '', r.levelHu ?? '', r.widthHu ?? '', r.bandFirst ?? '', r.bandLast ?? '', r.tint ?? '', r.maxPx].join('|');
}

export interface VolumeServiceLimits {
  /** Decoded voxels kept in memory (indexed volumes). */
  volumeCacheBytes: number;
  /** Rendered PNGs kept. */
  thumbnailCacheBytes: number;
  /** gzipped NIfTI copies kept for the viewer. */
  niftiCacheBytes: number;
  /** Uploaded query volumes kept (so a page can draw ranges on them and search again). */
  uploadCacheBytes: number;
  /** Most uploaded volumes kept, whatever their size. */
  maxUploads: number;
}

/** An uploaded query volume, kept in memory for a while under a random id. */
export interface UploadedVolume {
  uploadId: string;
  volume: Volume;
  /** The indexed record with the same voxels, if any (then its stored vectors are reused). */
  record?: VolumeRecord;
  /** Vectors embedded so far, by canonical slice, so searching again with another range embeds only
   * the new slices. */
  embedded: Map<number, { vector: Float32Array; zMm: number }>;
  createdAt: string;
}

/** The voxels moved into shared memory once, so each search of the upload hands a search worker a
 * view of them instead of a copy (a CT is 50–500 MB). */
function withSharedVoxels(volume: Volume): Volume {
  if (volume.data.buffer instanceof SharedArrayBuffer) return volume;
  const shared = new SharedArrayBuffer(volume.data.byteLength);
  const data = volume.data instanceof Int16Array ? new Int16Array(shared) : new Float32Array(shared);
  data.set(volume.data);
  return { ...volume, data };
}

export const UPLOAD_ID_PATTERN = '^u[0-9a-f]{24}$';

export class VolumeService {
  private readonly volumes: ByteLru<Volume>;
  private readonly thumbnails: ByteLru<Buffer>;
  private readonly niftis: ByteLru<Buffer>;
  private readonly uploads: ByteLru<UploadedVolume>;
  /** Decoding and gzip run on libuv's threads; two at a time keeps memory bounded on a small machine. */
  readonly work = new Limiter('volume', 2, 64);

  constructor(
    private readonly store: Store,
    limits: VolumeServiceLimits,
    /** How the index reads its key images (from its encoder spec). */
    private readonly readOptions: ReadOptions = {},
    /** Voxels of a volume indexed from a PACS, fetched from it again (undefined: not from a PACS). */
    private readonly fromPacs?: (record: VolumeRecord) => Promise<Volume | undefined>,
  ) {
    const voxelBytes = (v: Volume): number => v.data.byteLength;
    this.volumes = new ByteLru(limits.volumeCacheBytes, voxelBytes);
    this.thumbnails = new ByteLru(limits.thumbnailCacheBytes, (b: Buffer) => b.byteLength, 4096);
    this.niftis = new ByteLru(limits.niftiCacheBytes, (b: Buffer) => b.byteLength);
    // Voxels plus room for one vector per slice (up to 2048 floats), which later searches fill in.
    this.uploads = new ByteLru(limits.uploadCacheBytes, (u: UploadedVolume) => u.volume.data.byteLength + u.volume.dims[2] * 2048 * 4, limits.maxUploads);
  }

  /** The record of an indexed volume; the id is only ever a key into the store. */
  record(volumeId: string): VolumeRecord {
    const record = this.store.getVolume(volumeId);
    if (!record) throw new ApiError(404, 'VOLUME_NOT_FOUND', `no volume ${volumeId} in the index`);
    return record;
  }

  /** The voxels of an indexed volume, read from its recorded source and checked against the indexed
   * content hash, so a picture never shows a file that was replaced after indexing. */
  async volume(volumeId: string): Promise<Volume> {
    const record = this.record(volumeId);
    return this.volumes.getOrLoad(volumeId, () =>
      this.work.run(async () => {
        let volume: Volume;
        try {
          volume =
            (await this.fromPacs?.(record)) ??
            (await readVolume(record.sourcePath, { ...this.readOptions, modality: record.modality, ...(record.seriesKey ? { seriesKey: record.seriesKey } : {}) }));
        } catch (error) {
          const apiError = toApiError(error);
          if (apiError.code === 'SOURCE_UNREADABLE' && (error as { code?: string }).code === 'NOT_FOUND') {
            throw new ApiError(410, 'SOURCE_GONE', `the source of volume ${volumeId} is no longer where it was indexed from`);
          }
          throw apiError;
        }
        if (canonicalInt16Sha256(volume) !== record.contentSha256) {
          throw new ApiError(409, 'SOURCE_CHANGED', `the source of volume ${volumeId} has changed since it was indexed; re-index it`);
        }
        return volume;
      }),
    );
  }

  async thumbnail(owner: string, volume: () => Promise<SliceSource>, request: ThumbnailRequest): Promise<Buffer> {
    const key = thumbnailKey(owner, request);
    const cached = this.thumbnails.get(key);
    if (cached) return cached;
    const png = renderThumbnail(await volume(), request);
    this.thumbnails.set(key, png);
    return png;
  }

  /** The volume as gzipped NIfTI-1 on its canonical grid with its exact affine. */
  async niftiGz(owner: string, volume: () => Promise<Volume>): Promise<Buffer> {
    return this.niftis.getOrLoad(owner, async () => {
      const v = await volume();
      return this.work.run(async () => {
        const { header, data } = encodeNifti(v, { description: 'mir3d' });
        // Level 1: the copy goes to a viewer over a fast link; level 6 triples the time for ~10 % less.
        return gzipAsync(Buffer.concat([header, data]), { level: 1 });
      });
    });
  }

  /** Registers an uploaded volume under a fresh random id; `keep: false` for a one-shot search. */
  addUpload(volume: Volume, keep = true): UploadedVolume {
    const record = this.store.findByContent(canonicalInt16Sha256(volume));
    const upload: UploadedVolume = {
      uploadId: `u${randomBytes(12).toString('hex')}`,
      volume: withSharedVoxels(volume),
      ...(record ? { record } : {}),
      embedded: new Map(),
      createdAt: new Date().toISOString(),
    };
    if (keep) this.uploads.set(upload.uploadId, upload);
    return upload;
  }

  upload(uploadId: string): UploadedVolume {
    const upload = this.uploads.get(uploadId);
    if (!upload) throw new ApiError(404, 'UPLOAD_NOT_FOUND', `no upload ${uploadId} (uploads are kept in memory for a while; upload again)`);
    return upload;
  }

  deleteUpload(uploadId: string): boolean {
    this.niftis.delete(uploadId);
    return this.uploads.delete(uploadId);
  }

  stats(): { volumesCached: number; volumeCacheBytes: number; uploads: number; thumbnailsCached: number } {
    return { volumesCached: this.volumes.size, volumeCacheBytes: this.volumes.bytes, uploads: this.uploads.size, thumbnailsCached: this.thumbnails.size };
  }
}

/** What the API says about an uploaded volume. */
export type PublicUpload = Contract.PublicUpload;

export function publicUpload(upload: UploadedVolume): PublicUpload {
  const { volume } = upload;
  return {
    uploadId: upload.uploadId,
    dims: [...volume.dims],
    spacingMm: [...volume.spacingMm],
    affineRas: [...volume.affineRas],
    zRangeMm: zRangeOf(volume),
    modality: volume.modality,
    ...(upload.record ? { indexedAs: upload.record.volumeId } : {}),
    createdAt: upload.createdAt,
  };
}
