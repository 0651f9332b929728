import type { Encoder } from '../encode/encoder.js';
import { SliceFeeder } from '../encode/slice-feeder.js';
import type { QueryRangeInput } from '../query/range.js';
import { queryRangeOf, searchOptionsOf as buildSearchOptions, searchRequestOf, type SearchParams as QuerySearchParams } from '../query/request.js';
import { runSearch } from '../query/run.js';
import type { QuerySource } from '../query/sources.js';
import type { SearchOptions } from '../search/search.js';
import type { FirstStageMethod, FusionMethod, SearchMethod, SliceMatch, SearchResult } from '../search/types.js';
import type { Store } from '../store/types.js';
import { ApiError, toApiError } from './errors.js';
import { Limiter } from './limiter.js';
import type { VolumeService, UploadedVolume } from './volumes.js';

/**
 * The search endpoints' work: a request (validated by its JSON schema) becomes a query range and
 * `SearchOptions` exactly as `mir3d search` builds them, the query is resolved (stored vectors of an
 * indexed volume, or an uploaded volume embedded with the index's encoder), and results come back with
 * what a viewer needs to show where each match lies.
 */

/** Search parameters, the same for a JSON body and an upload's query string: the query stage's, less
 * those no request may set (a mask is a server path; the scope of a search is the archive). */
export type SearchParams = Omit<QuerySearchParams, 'mask' | 'label' | 'includeVolumeIds' | 'localize'> & {
  /** Return every slice match (large for whole-volume queries); default false. */
  matches?: boolean;
};

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

/** The query stage's range of a request; its refusals as API errors (400). */
export function rangeOf(params: SearchParams): QueryRangeInput {
  return asApiErrors(() => queryRangeOf(params));
}

/** The query stage's search options of a request; its refusals as API errors (400). */
export function searchOptionsOf(params: SearchParams): SearchOptions {
  return asApiErrors(() => buildSearchOptions(params));
}

function asApiErrors<T>(build: () => T): T {
  try {
    return build();
  } catch (error) {
    throw toApiError(error);
  }
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
    const { store, volumes } = this.options;
    if (!received && body.volumeId !== undefined) volumes.record(body.volumeId);
    const upload = received ?? (body.uploadId !== undefined ? volumes.upload(body.uploadId) : undefined);
    // An upload's slices embedded by earlier searches are kept with it, so another range embeds only
    // the slices it adds; an indexed upload uses its stored rows, exactly as a search by its id.
    const source: QuerySource = upload
      ? { kind: 'volume', volume: upload.volume, record: upload.record ?? null, embedded: upload.embedded }
      : { kind: 'indexed', volumeId: body.volumeId! };
    const request = asApiErrors(() => searchRequestOf(source, body));
    const searchOptions = request.options;
    return this.limiter.run(async () => {
      const { resolved, results, timings } = await runSearch(request, { store, encoder: this.options.encoder, feeder: this.feeder });
      const { query, sliceIndices } = resolved;
      const zs = query.zMm ? Array.from(query.zMm) : [];
      return {
        query: {
          ...(!upload && body.volumeId !== undefined ? { volumeId: body.volumeId } : upload?.record ? { volumeId: upload.record.volumeId } : {}),
          ...(upload && !received ? { uploadId: upload.uploadId } : {}),
          sliceCount: sliceIndices.length,
          firstSlice: Math.min(...sliceIndices),
          lastSlice: Math.max(...sliceIndices),
          ...(zs.length ? { zStartMm: Math.min(...zs), zEndMm: Math.max(...zs) } : {}),
          reusedStoredVectors: resolved.reusedStoredVectors,
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
        timings,
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

  async close(): Promise<void> {
    await this.feeder.close();
  }
}
