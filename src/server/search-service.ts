import { resolveQuery, type QueryRangeInput } from '../app/query.js';
import type { Encoder } from '../encode/encoder.js';
import { embedVolume } from '../encode/embed-volume.js';
import { SliceFeeder } from '../encode/slice-feeder.js';
import { sliceZMm } from '../io/volume.js';
import { querySliceIndices, type QueryRange } from '../search/query-range.js';
import { search, type SearchOptions } from '../search/search.js';
import type { FirstStageMethod, FusionMethod, QueryVectors, SearchMethod, SearchResult, SliceMatch } from '../search/types.js';
import type { Store, VolumeFilter } from '../store/types.js';
import { ApiError } from './errors.js';
import { Limiter } from './limiter.js';
import type { UploadedVolume, VolumeService } from './volumes.js';

/**
 * The search endpoints' work: a request (validated by its JSON schema) becomes a query range and
 * `SearchOptions` exactly as `mir3d search` builds them, the query is resolved (stored vectors of an
 * indexed volume, or an uploaded volume embedded with the index's encoder), and results come back with
 * what a viewer needs to show where each match lies.
 */

/** Search parameters, the same for a JSON body and an upload's query string (names as in `mir3d search`). */
export interface SearchParams {
  method?: SearchMethod;
  firstStage?: FirstStageMethod;
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
  fuse?: SearchMethod;
  fusion?: FusionMethod;
  localization?: 'consistent' | 'extent';
  /** Return every slice match (large for whole-volume queries); default false. */
  matches?: boolean;
}

export interface SearchBody extends SearchParams {
  volumeId?: string;
  uploadId?: string;
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
}

export interface ApiSearchResult {
  rank: number;
  volumeId: string;
  score: number;
  region?: { firstSlice: number; lastSlice: number; zStartMm: number; zEndMm: number };
  /** The match of the query slice nearest the middle of the query: the axial slice to show beside it. */
  middleMatch?: SliceMatch;
  matchCount: number;
  matches?: SliceMatch[];
  labels: Record<string, string | number>;
  dims: [number, number, number];
  spacingMm: [number, number, number];
  modality: string;
}

export interface SearchResponse {
  query: QueryInfo;
  options: { method: SearchMethod; firstStage?: FirstStageMethod; k?: number; candidates?: number; top?: number; mode: 'exact' | 'approximate'; fuse?: SearchMethod; fusion?: FusionMethod };
  timings: { queryMs: number; searchMs: number };
  results: ApiSearchResult[];
}

/** `key=value`; numbers stay numbers, as `mir3d search --where`. */
export function parseWhere(text: string): [string, string | number] {
  const at = text.indexOf('=');
  if (at <= 0) throw new ApiError(400, 'BAD_FILTER', `label filter "${text}" must look like key=value`);
  const key = text.slice(0, at).trim();
  const raw = text.slice(at + 1).trim();
  const number = Number(raw);
  return [key, raw !== '' && Number.isFinite(number) ? number : raw];
}

export function rangeOf(params: SearchParams): QueryRangeInput & QueryRange {
  const slices = params.firstSlice !== undefined || params.lastSlice !== undefined;
  const mm = params.zStartMm !== undefined || params.zEndMm !== undefined;
  const one = params.slice !== undefined;
  if ([slices, mm, one].filter(Boolean).length > 1) throw new ApiError(400, 'BAD_RANGE', 'give at most one of firstSlice/lastSlice, zStartMm/zEndMm, slice');
  if (slices) {
    if (params.firstSlice === undefined || params.lastSlice === undefined) throw new ApiError(400, 'BAD_RANGE', 'give both firstSlice and lastSlice');
    if (params.firstSlice > params.lastSlice) throw new ApiError(400, 'BAD_RANGE', 'firstSlice must not exceed lastSlice');
    return { kind: 'slices', firstSlice: params.firstSlice, lastSlice: params.lastSlice };
  }
  if (mm) {
    if (params.zStartMm === undefined || params.zEndMm === undefined) throw new ApiError(400, 'BAD_RANGE', 'give both zStartMm and zEndMm');
    return { kind: 'mm', zStartMm: params.zStartMm, zEndMm: params.zEndMm };
  }
  if (one) return { kind: 'slice', slice: params.slice! };
  return { kind: 'volume' };
}

export function filterOf(params: SearchParams): VolumeFilter | undefined {
  const filter: VolumeFilter = {};
  if (params.modality?.length) filter.modalities = params.modality;
  if (params.bodyPart?.length) filter.bodyParts = params.bodyPart;
  if (params.where?.length) filter.labels = Object.fromEntries(params.where.map(parseWhere));
  return Object.keys(filter).length ? filter : undefined;
}

export function searchOptionsOf(params: SearchParams): SearchOptions {
  const filter = filterOf(params);
  return {
    method: params.method ?? 'rerank',
    ...(params.firstStage ? { firstStage: params.firstStage } : {}),
    ...(params.k ? { k: params.k } : {}),
    ...(params.candidates ? { candidates: params.candidates } : {}),
    ...(params.top ? { top: params.top } : {}),
    mode: params.mode ?? 'exact',
    ...(filter ? { filter } : {}),
    excludeVolumeIds: params.exclude ?? [],
    includeQueryVolume: params.includeSelf ?? false,
    ...(params.fuse ? { fuseWith: { method: params.fuse, fusion: params.fusion ?? 'rrf' } } : {}),
    localization: { method: params.localization ?? 'consistent' },
  };
}

/** The match whose query slice is nearest the middle of the query (ties: the more similar). */
export function middleMatch(matches: readonly SliceMatch[], querySlices: readonly number[]): SliceMatch | undefined {
  if (matches.length === 0 || querySlices.length === 0) return undefined;
  const middle = (Math.min(...querySlices) + Math.max(...querySlices)) / 2;
  let best: SliceMatch | undefined;
  for (const m of matches) {
    if (!best) best = m;
    else {
      const d = Math.abs(m.querySlice - middle);
      const bestD = Math.abs(best.querySlice - middle);
      if (d < bestD || (d === bestD && m.similarity > best.similarity)) best = m;
    }
  }
  return best;
}

export interface SearchServiceOptions {
  store: Store;
  volumes: VolumeService;
  /** Opens the index's encoder on first use (only uploads need one). */
  encoder: () => Promise<Encoder>;
}

export class SearchService {
  /** One search (or query embedding) at a time: both saturate the CPU, and the encoder is not
   * re-entrant; a short queue absorbs bursts, past it clients get 503. */
  readonly limiter = new Limiter('search', 1, 16);
  private readonly feeder = new SliceFeeder(false);

  constructor(private readonly options: SearchServiceOptions) {}

  /** Searches with an indexed volume (`volumeId`), a kept upload (`uploadId`), or an upload received
   * with this request (`upload`, which then takes the place of both). */
  async run(body: SearchBody, received?: UploadedVolume): Promise<SearchResponse> {
    if (!received && (body.volumeId === undefined) === (body.uploadId === undefined)) {
      throw new ApiError(400, 'BAD_QUERY', 'give exactly one of volumeId (an indexed volume) or uploadId (from POST /api/uploads)');
    }
    const range = rangeOf(body);
    const searchOptions = searchOptionsOf(body);
    const { store, volumes } = this.options;
    if (!received && body.volumeId !== undefined) volumes.record(body.volumeId);
    const upload = received ?? (body.uploadId !== undefined ? volumes.upload(body.uploadId) : undefined);
    return this.limiter.run(async () => {
      const started = performance.now();
      let query: QueryVectors;
      let sliceIndices: number[];
      let reused: boolean;
      if (upload) {
        ({ query, sliceIndices, reused } = await this.uploadQuery(upload, range));
      } else {
        const resolved = await resolveQuery({ kind: 'indexed', volumeId: body.volumeId! }, range, { store });
        ({ query, sliceIndices, reusedStoredVectors: reused } = resolved);
      }
      const queryMs = performance.now() - started;
      const searchStarted = performance.now();
      const results = await search(store, query, searchOptions);
      const searchMs = performance.now() - searchStarted;
      const zs = query.zMm ? Array.from(query.zMm) : [];
      return {
        query: {
          ...(!upload && body.volumeId !== undefined ? { volumeId: body.volumeId } : upload?.record ? { volumeId: upload.record.volumeId } : {}),
          ...(upload && !received ? { uploadId: upload.uploadId } : {}),
          sliceCount: sliceIndices.length,
          firstSlice: Math.min(...sliceIndices),
          lastSlice: Math.max(...sliceIndices),
          ...(zs.length ? { zStartMm: Math.min(...zs), zEndMm: Math.max(...zs) } : {}),
          reusedStoredVectors: reused,
        },
        options: {
          method: searchOptions.method,
          ...(searchOptions.firstStage ? { firstStage: searchOptions.firstStage } : {}),
          ...(searchOptions.k ? { k: searchOptions.k } : {}),
          ...(searchOptions.candidates ? { candidates: searchOptions.candidates } : {}),
          ...(searchOptions.top ? { top: searchOptions.top } : {}),
          mode: searchOptions.mode ?? 'exact',
          ...(searchOptions.fuseWith ? { fuse: searchOptions.fuseWith.method, fusion: searchOptions.fuseWith.fusion } : {}),
        },
        timings: { queryMs, searchMs },
        results: results.map((r) => this.shape(r, sliceIndices, body.matches ?? false)),
      };
    });
  }

  private shape(result: SearchResult, querySlices: number[], withMatches: boolean): ApiSearchResult {
    const record = this.options.store.getVolume(result.volumeId);
    const middle = middleMatch(result.matches, querySlices);
    return {
      rank: result.rank,
      volumeId: result.volumeId,
      score: result.score,
      ...(result.region ? { region: { firstSlice: result.region.firstSlice, lastSlice: result.region.lastSlice, zStartMm: result.region.zStartMm, zEndMm: result.region.zEndMm } } : {}),
      ...(middle ? { middleMatch: middle } : {}),
      matchCount: result.matches.length,
      ...(withMatches ? { matches: result.matches } : {}),
      labels: { ...(record?.labels ?? {}) },
      dims: record ? [...record.dims] : [0, 0, 0],
      spacingMm: record ? [...record.spacingMm] : [0, 0, 0],
      modality: record?.modality ?? 'unknown',
    };
  }

  /** Query vectors of an uploaded volume. The same scan indexed: its stored rows, exactly as a search by
   * its volume id (no encoder needed). Otherwise embedded with the index's encoder, only the slices no
   * earlier search of this upload embedded. */
  private async uploadQuery(upload: UploadedVolume, range: QueryRange): Promise<{ query: QueryVectors; sliceIndices: number[]; reused: boolean }> {
    const { store } = this.options;
    const { volume, record } = upload;
    if (record) {
      const resolved = await resolveQuery({ kind: 'indexed', volumeId: record.volumeId }, range as QueryRangeInput, { store });
      return { query: resolved.query, sliceIndices: resolved.sliceIndices, reused: true };
    }
    const model = await this.options.encoder();
    // The encoder's slice step decides which slices a range selects, as when indexing.
    const stepMm = model.preprocessing.sliceStepMm;
    const wanted = querySliceIndices(volume, range, stepMm ? { stepMm } : {});
    const missing = wanted.filter((k) => !upload.embedded.has(k));
    if (missing.length) {
      const embedded = await embedVolume(volume, model, { sliceIndices: missing, feeder: this.feeder });
      embedded.sliceIndices.forEach((k, row) => {
        upload.embedded.set(k, { vector: embedded.vectors.slice(row * model.dim, (row + 1) * model.dim), zMm: embedded.zMm[row] });
      });
    }
    const vectors = new Float32Array(wanted.length * model.dim);
    const zMm = new Float64Array(wanted.length);
    wanted.forEach((k, row) => {
      const slice = upload.embedded.get(k)!;
      vectors.set(slice.vector, row * model.dim);
      zMm[row] = Number.isFinite(slice.zMm) ? slice.zMm : sliceZMm(volume, k);
    });
    return { query: { vectors, dim: model.dim, sliceIndices: Int32Array.from(wanted), zMm }, sliceIndices: wanted, reused: false };
  }

  async close(): Promise<void> {
    await this.feeder.close();
  }
}
