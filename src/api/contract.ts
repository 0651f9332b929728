/**
 * The HTTP API's contract, as types only: what `src/server/` sends and `src/web/` reads. Both compile
 * against this one file (the page with its own tsconfig, which includes it), so a field renamed on one
 * side fails the build of the other. It imports nothing, so the browser build pulls in no Node code, and
 * it has no values: the JSON schemas in `server/schemas.ts` stay the run-time check, and the server
 * asserts at compile time that its library types are the ones named here.
 */

export type SliceMethodName = 'slice-count' | 'slice-sum' | 'slice-max';
export type VolumeMethodName = 'volume-mean' | 'volume-median' | 'volume-max' | 'volume-std';
export type FirstStageMethodName = SliceMethodName | VolumeMethodName;
export type SearchMethodName = FirstStageMethodName | 'rerank';
export type FusionMethodName = 'interleave' | 'rrf';
export type Vec3 = [number, number, number];
export type Rgb = [number, number, number];
export type Labels = Record<string, string | number>;

/** Every refusal: a stable code and one line for people. */
export interface ApiErrorBody {
  error: { code: string; message: string };
}

/** Search parameters, the same for a JSON body and an upload's query string (names as in `mir3d search`). */
export interface SearchParams {
  method?: SearchMethodName;
  firstStage?: FirstStageMethodName;
  k?: number;
  candidates?: number;
  top?: number;
  mode?: 'exact' | 'approximate';
  /** Query range: at most one of a slice range, an mm range, one slice. */
  firstSlice?: number;
  lastSlice?: number;
  zStartMm?: number;
  zEndMm?: number;
  slice?: number;
  modality?: string[];
  bodyPart?: string[];
  /** Label filters, `key=value` (numbers compare as numbers). */
  where?: string[];
  exclude?: string[];
  includeSelf?: boolean;
  fuse?: SearchMethodName;
  fusion?: FusionMethodName;
  localization?: 'consistent' | 'extent';
  /** Return every slice match (large for whole-volume queries); default false. */
  matches?: boolean;
  /** A finding ("liver tumour larger than 5 cm"): the query when no volume is named, else fused with
   * the volume's list (`fusion`, 3D-MIR's multi-modal ensemble). Needs a text space in the index. */
  text?: string;
  /** Fuse the volume query with the caption its indexed volume carries in this label. */
  captionLabel?: string;
  /** The index's learned space to search in ('raw': the backbone's own vectors); default the index's default. */
  space?: string;
}

/** A series in the PACS the server is connected to (`mir3d serve --pacs`, else the one the index was
 * synced from): fetched over DICOMweb and embedded, never added to the index. Without a series UID, the
 * study's CT series with the most instances. The server's own credentials are used; a request never
 * names an address or carries credentials. */
export interface DicomWebQuery {
  studyInstanceUid: string;
  seriesInstanceUid?: string;
}

/** POST /api/search: the query is an indexed volume, a kept upload, a series in the PACS, or a text. */
export interface SearchBody extends SearchParams {
  volumeId?: string;
  uploadId?: string;
  dicomweb?: DicomWebQuery;
}

export interface QueryInfo {
  volumeId?: string;
  uploadId?: string;
  /** Query slices (canonical) and the span they cover. */
  sliceCount: number;
  firstSlice: number;
  lastSlice: number;
  zStartMm?: number;
  zEndMm?: number;
  reusedStoredVectors: boolean;
  /** The text searched (a text query: sliceCount 0) or fused with the volume query. */
  text?: string;
  /** For people: a text cut to the model's context, and the like. */
  warnings?: string[];
}

export interface SliceMatchInfo {
  /** Canonical slice index in the query volume. */
  querySlice: number;
  /** Canonical slice index in the retrieved volume. */
  targetSlice: number;
  /** Cosine of the two slices' vectors. */
  similarity: number;
}

export interface RegionInfo {
  firstSlice: number;
  lastSlice: number;
  zStartMm: number;
  zEndMm: number;
}

/** Where a viewer opens a PACS-sourced result at its match (`mir3d serve --viewer-url` template). */
export interface ViewerLinkInfo {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  /** The instance nearest the result's best-matching slice. */
  sopInstanceUid: string;
  /** The template filled in; absent when the server has no template. */
  url?: string;
}

export interface ApiSearchResult {
  rank: number;
  volumeId: string;
  score: number;
  /** Where the match lies in this volume. */
  region?: RegionInfo;
  /** The match of the query slice nearest the middle of the query: the axial slice to show beside it. */
  middleMatch?: SliceMatchInfo;
  matchCount: number;
  /** Every slice match (with `matches: true` in the request). */
  matches?: SliceMatchInfo[];
  labels: Labels;
  dims: Vec3;
  spacingMm: Vec3;
  modality: string;
  /** Only for volumes indexed from a PACS. */
  viewer?: ViewerLinkInfo;
  /** The source's last two path parts (`case-17/ct.nii.gz`), only from `mir3d serve --show-source-names`. */
  sourceName?: string;
}

export interface SearchOptionsInfo {
  method: SearchMethodName;
  firstStage?: FirstStageMethodName;
  k?: number;
  candidates?: number;
  top?: number;
  mode: 'exact' | 'approximate';
  fuse?: SearchMethodName;
  fusion?: FusionMethodName;
  /** The space searched: 'raw' or a stored space's id (space:NAME@sha). */
  space?: string;
}

export interface SearchResponse {
  query: QueryInfo;
  options: SearchOptionsInfo;
  timings: { queryMs: number; searchMs: number };
  results: ApiSearchResult[];
  /** Why PACS results carry no viewer link this time (the PACS could not resolve pseudonymized UIDs). */
  viewerLinkProblem?: string;
}

/** An indexed volume as the API shows it. No source path (folder names often carry patient names), no
 * full study date (a date of care is an identifier under HIPAA; the year is not). */
export interface PublicVolume {
  volumeId: string;
  dims: Vec3;
  spacingMm: Vec3;
  /** Canonical voxel → RAS+ mm, row-major 4×4. */
  affineRas: number[];
  /** Patient z (mm) of the centres of the first (most inferior) and last canonical slice. */
  zRangeMm: [number, number];
  modality: string;
  bodyPart?: string;
  studyYear?: number;
  seriesKey?: string;
  labels: Labels;
  /** Slices with a vector in the index (fewer than dims[2] when indexed every few mm). */
  embeddedSlices: number;
  addedAt: string;
  /** The source's last two path parts, only from `mir3d serve --show-source-names`. */
  sourceName?: string;
}

export interface VolumeList {
  total: number;
  offset: number;
  limit: number;
  volumes: PublicVolume[];
}

/** What the API says about an uploaded volume. */
export interface PublicUpload {
  uploadId: string;
  dims: Vec3;
  spacingMm: Vec3;
  affineRas: number[];
  zRangeMm: [number, number];
  modality: string;
  /** The indexed volume with the same voxels, when there is one. */
  indexedAs?: string;
  createdAt: string;
}

/** A display window preset (thumbnails and viewer alike). */
export interface WindowPreset {
  name: string;
  /** For people: "soft tissue", "lung" … */
  title: string;
  levelHu: number;
  widthHu: number;
}

export interface IndexInfo {
  encoderId: string;
  dim: number;
  volumes: number;
  slices: number;
  methods: SearchMethodName[];
  /** Names of the window presets (as `window=` of the thumbnail routes). */
  windows: string[];
  canEmbedUploads: boolean;
  /** The server has a PACS: searches may name a series in it (`dicomweb`). */
  canSearchPacs?: boolean;
  limits: { maxUploadBytes: number };
  /** How the page draws: window presets and the colours of query and match. */
  display: { windows: WindowPreset[]; colors: { query: Rgb; match: Rgb } };
}

/** Search workers and their queue (GET /api/health). */
export interface SearchQueueInfo {
  workers: number;
  busy: number;
  queued: number;
  maxQueued: number;
}

export interface HealthInfo {
  status: string;
  uptimeS: number;
  searches?: SearchQueueInfo;
}
