import type { QueryRangeInput } from '../query/range.js';
import { queryRangeOf, searchOptionsOf as buildSearchOptions, type SearchParams as QuerySearchParams } from '../query/request.js';
import type { SearchOptions } from '../search/search.js';
import type { FirstStageMethod, FusionMethod, SearchMethod, SliceMatch } from '../search/types.js';
import type { Store } from '../store/types.js';
import type * as Contract from '../api/contract.js';
import { ApiError, toApiError } from './errors.js';
import type { EmbeddedSlices } from './search-job.js';
import type { SearchPool } from './search-pool.js';
import { sourceNameOf, type UploadedVolume, type VolumeService } from './volumes.js';

/**
 * The search endpoints' work: a request (validated by its JSON schema) is checked here with the query
 * stage's one builder (`src/query/`), then runs as a job on the search pool, where the query is
 * resolved (stored rows of an indexed volume, or an upload embedded with the index's encoder) and the
 * results are shaped as the API contract (`src/api/contract.ts`) says.
 */

/** Search parameters, the same for a JSON body and an upload's query string (see the contract). */
export type SearchParams = Contract.SearchParams;
export type SearchBody = Contract.SearchBody;
export type QueryInfo = Contract.QueryInfo;
export type ApiSearchResult = Contract.ApiSearchResult;
export type SearchResponse = Contract.SearchResponse;

/** The contract names the library's types; these fail to compile if the two drift apart. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assignable<A, B> = [A] extends [B] ? true : false;
const contractMatchesLibrary: [
  Same<SearchMethod, Contract.SearchMethodName>,
  Same<FirstStageMethod, Contract.FirstStageMethodName>,
  Same<FusionMethod, Contract.FusionMethodName>,
  Same<SliceMatch, Contract.SliceMatchInfo>,
  // Every HTTP parameter is one the query stage understands (the stage has more: a mask, a scope).
  Assignable<Omit<Contract.SearchParams, 'matches'>, QuerySearchParams>,
  Same<import('../source/dicomweb/links.js').ViewerLinkInfo, Contract.ViewerLinkInfo>,
] = [true, true, true, true, true, true];
void contractMatchesLibrary;

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
  pool: SearchPool;
  /** Whether the server has a PACS to fetch `dicomweb` queries from. */
  hasPacs?: boolean;
  /** Results carry their source's short name (`--show-source-names`). */
  showSourceNames?: boolean;
}

export class SearchService {
  constructor(private readonly options: SearchServiceOptions) {}

  /** Searches with an indexed volume (`volumeId`), a kept upload (`uploadId`), a series in the PACS
   * (`dicomweb`), or an upload received with this request (`upload`, which then takes the place of
   * all), on the search pool. */
  async run(body: SearchBody, received?: UploadedVolume, signal?: AbortSignal): Promise<SearchResponse> {
    const response = await this.search(body, received, signal);
    if (this.options.showSourceNames) {
      // Added here, on the main thread, so the workers' results stay the same with and without the option.
      for (const result of response.results) {
        const record = this.options.store.getVolume(result.volumeId);
        const sourceName = record ? sourceNameOf(record) : undefined;
        if (sourceName) result.sourceName = sourceName;
      }
    }
    return response;
  }

  private async search(body: SearchBody, received?: UploadedVolume, signal?: AbortSignal): Promise<SearchResponse> {
    const named = [body.volumeId, body.uploadId, body.dicomweb].filter((v) => v !== undefined).length;
    if (!received && named > 1) {
      throw new ApiError(400, 'BAD_QUERY', 'give one of volumeId (an indexed volume), uploadId (from POST /api/uploads) or dicomweb ({studyInstanceUid, seriesInstanceUid}: a series in the PACS), not several');
    }
    if (!received && named === 0 && body.text === undefined) {
      throw new ApiError(400, 'BAD_QUERY', 'give a query: volumeId (an indexed volume), uploadId (from POST /api/uploads), dicomweb ({studyInstanceUid, seriesInstanceUid}: a series in the PACS) or text (a finding)');
    }
    if (body.dicomweb !== undefined && !this.options.hasPacs) {
      throw new ApiError(400, 'NO_PACS', 'this server has no PACS (start mir3d serve with --pacs dicomweb+http(s)://HOST/ROOT, or serve an index synced from one)');
    }
    // Refuse a malformed request here, before it takes a place in the queue.
    rangeOf(body);
    searchOptionsOf(body);
    const { volumes, pool } = this.options;
    if (!received && body.volumeId !== undefined) volumes.record(body.volumeId);
    const upload = received ?? (body.uploadId !== undefined ? volumes.upload(body.uploadId) : undefined);
    if (!upload) return (await pool.run({ kind: body.dicomweb !== undefined ? 'dicomweb' : body.volumeId !== undefined ? 'indexed' : 'text', body }, signal)).response;
    const { volumeId: _volumeId, uploadId: _uploadId, dicomweb: _dicomweb, ...params } = body;
    const result = await pool.run(
      {
        kind: 'upload',
        body: params,
        ...(received ? {} : { uploadId: upload.uploadId }),
        volume: upload.volume,
        record: upload.record ?? null,
        ...(upload.embedded.size ? { embedded: packEmbedded(upload.embedded) } : {}),
      },
      signal,
    );
    // Slices embedded by this search are kept with the upload, so another range embeds only its new ones.
    if (result.embedded) {
      const { sliceIndices, vectors, zMm } = result.embedded;
      const dim = vectors.length / Math.max(1, sliceIndices.length);
      sliceIndices.forEach((k, row) => upload.embedded.set(k, { vector: vectors.slice(row * dim, (row + 1) * dim), zMm: zMm[row] }));
    }
    return result.response;
  }
}

export function packEmbedded(embedded: UploadedVolume['embedded']): EmbeddedSlices {
  const entries = [...embedded.entries()];
  const dim = entries[0]?.[1].vector.length ?? 0;
  const vectors = new Float32Array(entries.length * dim);
  entries.forEach(([, slice], row) => vectors.set(slice.vector, row * dim));
  return { sliceIndices: Int32Array.from(entries.map(([k]) => k)), vectors, zMm: Float64Array.from(entries.map(([, slice]) => slice.zMm)) };
}
