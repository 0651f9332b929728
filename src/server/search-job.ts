import type { Encoder } from '../encode/encoder.js';
import type { TextEncoder } from '../encode/text-encoder.js';
import type { SliceFeeder } from '../encode/slice-feeder.js';
import type { Volume } from '../io/volume.js';
import { searchRequestOf, textOrSource, type SearchRequest } from '../query/request.js';
import { runSearch } from '../query/run.js';
import type { EmbeddedSliceCache, QuerySource } from '../query/sources.js';
import type { MaxSimKernel } from '../search/late-interaction.js';
import type { SearchResult } from '../search/types.js';
import type { Store, VolumeRecord } from '../store/types.js';
import type { ApiSearchResult, SearchBody, SearchResponse } from '../api/contract.js';
import type { ViewerLinkInfo } from '../source/dicomweb/links.js';
import { ApiError, toApiError } from './errors.js';
import type { PacsAccess } from './pacs.js';
import { middleMatch } from './search-service.js';

/**
 * One search as a search worker runs it: the query resolved (an indexed volume's stored rows, an
 * uploaded volume embedded with the index's encoder, or a series fetched from the server's PACS and
 * embedded), the search, and the results shaped for the API, with viewer links for PACS-sourced ones.
 * Everything a job carries is structured-clonable, so it crosses into a worker thread as it is.
 */

/** Slices of an upload embedded by earlier searches, so a new range embeds only what is new. */
export interface EmbeddedSlices {
  sliceIndices: Int32Array;
  /** rows × dim. */
  vectors: Float32Array;
  zMm: Float64Array;
}

export type SearchJob =
  | { kind: 'indexed'; body: SearchBody }
  /** A series in the server's PACS (`body.dicomweb`), fetched by the worker that runs the search. */
  | { kind: 'dicomweb'; body: SearchBody }
  /** A text query (`body.text`, no volume). */
  | { kind: 'text'; body: SearchBody }
  | {
      kind: 'upload';
      body: SearchParams;
      /** Set for a kept upload (POST /api/uploads), absent for a one-shot search. */
      uploadId?: string;
      /** Voxels in shared memory: the job hands the worker a view, not a copy. */
      volume: Volume;
      /** The indexed volume with the same voxels, whose stored rows are then the query; null: none. */
      record: VolumeRecord | null;
      embedded?: EmbeddedSlices;
    };

type SearchParams = Omit<SearchBody, 'volumeId' | 'uploadId'>;

export interface SearchJobResult {
  response: SearchResponse;
  /** Slices this job embedded (uploads only), for the caller to keep with the upload. */
  embedded?: EmbeddedSlices;
}

export interface SearchJobContext {
  store: Store;
  /** The index's encoder, opened on first use (only uploads need one). */
  encoder: () => Promise<Encoder>;
  /** The index's text encoder, opened on first use (text queries and text fusion only). */
  textEncoder?: () => Promise<TextEncoder>;
  feeder?: SliceFeeder;
  /** MaxSim kernel for re-ranking and localization (a search worker's is sized to its share of the cores). */
  maxSim?: MaxSimKernel;
  /** The server's PACS: fetches PACS queries, links PACS-sourced results back to the viewer. */
  pacs?: PacsAccess;
}

export async function runSearchJob(context: SearchJobContext, job: SearchJob): Promise<SearchJobResult> {
  const cache: EmbeddedSliceCache = new Map();
  if (job.kind === 'upload' && job.embedded) {
    const { sliceIndices, vectors, zMm } = job.embedded;
    const dim = vectors.length / Math.max(1, sliceIndices.length);
    sliceIndices.forEach((k, row) => cache.set(k, { vector: vectors.subarray(row * dim, (row + 1) * dim), zMm: zMm[row] }));
  }
  const known = new Set(cache.keys());
  const source = sourceOf(job, cache, context.pacs);
  let request: SearchRequest;
  try {
    request = searchRequestOf(textOrSource(source, job.body), job.body);
  } catch (error) {
    throw toApiError(error);
  }
  if (context.maxSim) request = { ...request, options: { ...request.options, maxSim: context.maxSim } };
  const searchOptions = request.options;
  const { resolved, results, timings, space } = await runSearch(request, {
    store: context.store,
    encoder: context.encoder,
    ...(context.textEncoder ? { textEncoder: context.textEncoder } : {}),
    ...(context.feeder ? { feeder: context.feeder } : {}),
  });
  const { query } = resolved;
  // A text is one query row, not a slice of a volume.
  const sliceIndices = request.source.kind === 'text' ? [] : resolved.sliceIndices;
  const zs = query.zMm ? Array.from(query.zMm) : [];
  const queryVolumeId = job.kind === 'text' ? undefined : job.kind === 'indexed' ? job.body.volumeId : job.kind === 'upload' ? (job.record?.volumeId ?? resolved.record?.volumeId) : resolved.record?.volumeId;
  const viewer = context.pacs ? await context.pacs.links(context.store, results) : undefined;
  const response: SearchResponse = {
    query: {
      ...(queryVolumeId !== undefined ? { volumeId: queryVolumeId } : {}),
      ...(job.kind === 'upload' && job.uploadId ? { uploadId: job.uploadId } : {}),
      sliceCount: sliceIndices.length,
      firstSlice: sliceIndices.length ? Math.min(...sliceIndices) : 0,
      lastSlice: sliceIndices.length ? Math.max(...sliceIndices) : 0,
      ...(zs.length ? { zStartMm: Math.min(...zs), zEndMm: Math.max(...zs) } : {}),
      reusedStoredVectors: resolved.reusedStoredVectors,
      ...(resolved.text !== undefined ? { text: resolved.text, warnings: resolved.warnings ?? [] } : {}),
    },
    options: {
      method: searchOptions.method,
      ...(searchOptions.firstStage ? { firstStage: searchOptions.firstStage } : {}),
      ...(searchOptions.k ? { k: searchOptions.k } : {}),
      ...(searchOptions.candidates ? { candidates: searchOptions.candidates } : {}),
      ...(searchOptions.top ? { top: searchOptions.top } : {}),
      mode: searchOptions.mode ?? 'exact',
      ...(searchOptions.fuseWith ? { fuse: searchOptions.fuseWith.method, fusion: searchOptions.fuseWith.fusion } : {}),
      ...(request.withText ? { fusion: request.withText.fusion } : {}),
      space,
    },
    timings,
    results: results.map((r) => shapeResult(context.store, r, resolved.sliceIndices, job.body.matches ?? false, viewer?.links.get(r.volumeId))),
    ...(viewer?.problem ? { viewerLinkProblem: viewer.problem } : {}),
  };
  // The slices this search embedded go back to the caller, which keeps them with the upload.
  const fresh = [...cache.entries()].filter(([k]) => !known.has(k));
  if (fresh.length === 0) return { response };
  const dim = fresh[0][1].vector.length;
  const vectors = new Float32Array(fresh.length * dim);
  fresh.forEach(([, slice], row) => vectors.set(slice.vector, row * dim));
  return { response, embedded: { sliceIndices: Int32Array.from(fresh.map(([k]) => k)), vectors, zMm: Float64Array.from(fresh.map(([, slice]) => slice.zMm)) } };
}

/** The job's query source; undefined for a text query (the request's text is then the source). */
function sourceOf(job: SearchJob, cache: EmbeddedSliceCache, pacs: PacsAccess | undefined): QuerySource | undefined {
  switch (job.kind) {
    case 'text':
      return undefined;
    case 'indexed':
      return { kind: 'indexed', volumeId: job.body.volumeId! };
    case 'upload':
      return { kind: 'volume', volume: job.volume, record: job.record, embedded: cache };
    case 'dicomweb': {
      const query = job.body.dicomweb!;
      if (!pacs) throw new ApiError(400, 'NO_PACS', 'this server has no PACS (start mir3d serve with --pacs dicomweb+http(s)://HOST/ROOT, or serve an index synced from one)');
      return { kind: 'dicomweb', client: pacs.client(), studyInstanceUid: query.studyInstanceUid, ...(query.seriesInstanceUid ? { seriesInstanceUid: query.seriesInstanceUid } : {}) };
    }
  }
}

function shapeResult(store: Store, result: SearchResult, querySlices: number[], withMatches: boolean, viewer: ViewerLinkInfo | undefined): ApiSearchResult {
  const record = store.getVolume(result.volumeId);
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
    ...(viewer ? { viewer: { ...viewer } } : {}),
  };
}
