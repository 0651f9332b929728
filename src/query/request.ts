import { SearchError } from '../search/errors.js';
import type { SearchOptions } from '../search/search.js';
import { DEFAULT_TEXT_METHOD } from '../search/text.js';
import { SEARCH_METHODS, type FirstStageMethod, type FusionMethod, type SearchMethod } from '../search/types.js';
import type { VolumeFilter, VolumeRecord } from '../store/types.js';
import type { QueryRangeInput } from './range.js';
import type { QuerySource } from './sources.js';

/**
 * One search as every front end states it. `mir3d search` flags (see `SEARCH_FLAGS`), the HTTP API's
 * bodies and query strings (src/server/schemas.ts declares the same names) and eval tasks all fill in
 * `SearchParams`, and `searchRequestOf` alone turns them into a query range, a filter and
 * `SearchOptions`. A new search option is a field here, a line in `searchOptionsOf` (and in
 * `SEARCH_FLAGS` for the command line), plus its HTTP schema entry.
 */
export interface SearchParams {
  method?: SearchMethod;
  firstStage?: FirstStageMethod;
  k?: number;
  candidates?: number;
  top?: number;
  mode?: 'exact' | 'approximate';
  /** Query range: at most one of a slice range, an mm range, a mask label's z-extent, one slice. */
  firstSlice?: number;
  lastSlice?: number;
  zStartMm?: number;
  zEndMm?: number;
  /** A mask file on the query's grid, with the label whose z-extent is the query (never from HTTP). */
  mask?: string;
  label?: number;
  slice?: number;
  modality?: readonly string[];
  bodyPart?: readonly string[];
  /** Label filters, `key=value` (numbers compare as numbers). */
  where?: readonly string[];
  /** Search only these volumes (an eval task's database). */
  includeVolumeIds?: readonly string[];
  exclude?: readonly string[];
  includeSelf?: boolean;
  fuse?: SearchMethod;
  fusion?: FusionMethod;
  localization?: 'consistent' | 'extent';
  /** Give pooled-vector results a region by aligning the query to them; default true. */
  localize?: boolean;
  /** A finding ("liver tumour larger than 5 cm"): the query itself when there is no image query (see
   * `textOrSource`), else fused with the image query's list by `fusion` (3D-MIR's multi-modal ensemble). */
  text?: string;
  /** Fuse the image query with the caption its indexed volume carries in this label. */
  captionLabel?: string;
  /** The learned space searched (`mir3d train`): a stored normalization or head, or 'raw' (the backbone's
   * own vectors); default the index's chosen default ('raw' until one is chosen). */
  space?: string;
}

export interface SearchRequest {
  source: QuerySource;
  range: QueryRangeInput;
  options: SearchOptions;
  /** A text whose list is fused with the image query's (`options.fuseWith` is then unset; `fusion`
   * says how): typed, or the caption label of the indexed query volume. */
  withText?: { text: string; fusion: FusionMethod } | { captionLabel: string; fusion: FusionMethod };
  /** The space asked for; undefined: the index's default. */
  space?: string;
}

export const FUSION_METHODS: readonly FusionMethod[] = ['rrf', 'interleave'];
export const LOCALIZATIONS: readonly NonNullable<SearchParams['localization']>[] = ['consistent', 'extent'];
export const DEFAULT_METHOD: SearchMethod = 'rerank';

/** The one builder of a search request from its parameters. */
export function searchRequestOf(source: QuerySource, params: SearchParams): SearchRequest {
  // Text vectors live in the backbone's raw space (a text tower's or a learned text space's map lands
  // there), so a text query or an image query fused with a text is searched in raw.
  const withAnyText = source.kind === 'text' || params.text !== undefined || params.captionLabel !== undefined;
  if (withAnyText && params.space !== undefined && params.space !== 'raw') throw new SearchError('BAD_OPTION', `a text is matched in the raw space only; leave out space ${params.space} (or search the image alone in it)`);
  if (source.kind === 'text') {
    if (params.captionLabel !== undefined) throw new SearchError('BAD_QUERY', 'a caption label names the caption of an image query; a text query has none');
    if (params.fuse !== undefined) throw new SearchError('BAD_OPTION', `a text query is one row, searched by ${DEFAULT_TEXT_METHOD} (or --method); fuse it with an image query instead of a second method`);
    // 3D-MIR ranked a text's nearest slices by count, not the image queries' rerank.
    return { source, range: queryRangeOf(params), options: searchOptionsOf({ ...params, method: params.method ?? DEFAULT_TEXT_METHOD }), space: 'raw' };
  }
  const request: SearchRequest = { source, range: queryRangeOf(params), options: searchOptionsOf(params), ...(params.space !== undefined ? { space: params.space } : {}) };
  if (params.text === undefined && params.captionLabel === undefined) return request;
  if (params.text !== undefined && params.captionLabel !== undefined) throw new SearchError('BAD_QUERY', 'give a text or a caption label to fuse with the image query, not both');
  if (params.fuse !== undefined) throw new SearchError('BAD_OPTION', 'fuse the image query with a text or with a second method (fuse), not both');
  const fusion = params.fusion ?? 'rrf';
  return { ...request, space: 'raw', withText: params.text !== undefined ? { text: params.text, fusion } : { captionLabel: params.captionLabel!, fusion } };
}

/** The source a front end names, or the text when it names none (a text query). */
export function textOrSource(source: QuerySource | undefined, params: Pick<SearchParams, 'text'>): QuerySource {
  if (source) return source;
  if (params.text === undefined) throw new SearchError('BAD_QUERY', 'give a query: a volume (a file, an indexed id, an upload) or a text');
  return { kind: 'text', text: params.text };
}

/** The caption an indexed query volume carries in `column`, for the multi-modal ensemble. */
export function captionOf(record: VolumeRecord | undefined, column: string): string {
  if (!record) throw new SearchError('BAD_QUERY', `a caption label needs an indexed query volume (its label '${column}' is the caption)`);
  const caption = record.labels[column];
  if (caption === undefined || String(caption).trim() === '') throw new SearchError('BAD_QUERY', `volume ${record.volumeId} has no label '${column}' to use as its caption`);
  return String(caption);
}

export function queryRangeOf(params: SearchParams): QueryRangeInput {
  const slices = params.firstSlice !== undefined || params.lastSlice !== undefined;
  const mm = params.zStartMm !== undefined || params.zEndMm !== undefined;
  const mask = params.mask !== undefined;
  const one = params.slice !== undefined;
  if ([slices, mm, mask, one].filter(Boolean).length > 1) {
    throw new SearchError('BAD_RANGE', 'give at most one query range: a slice range (firstSlice/lastSlice, --slices), an mm range (zStartMm/zEndMm, --mm), a mask (--mask) or one slice');
  }
  if (slices) {
    if (params.firstSlice === undefined || params.lastSlice === undefined) throw new SearchError('BAD_RANGE', 'give both firstSlice and lastSlice');
    if (params.firstSlice > params.lastSlice) throw new SearchError('BAD_RANGE', `the first slice (${params.firstSlice}) must not exceed the last (${params.lastSlice})`);
    return { kind: 'slices', firstSlice: params.firstSlice, lastSlice: params.lastSlice };
  }
  if (mm) {
    if (params.zStartMm === undefined || params.zEndMm === undefined) throw new SearchError('BAD_RANGE', 'give both zStartMm and zEndMm');
    return { kind: 'mm', zStartMm: params.zStartMm, zEndMm: params.zEndMm };
  }
  if (mask) {
    if (params.label === undefined) throw new SearchError('BAD_RANGE', 'a mask needs a label (--label N: the label value whose z-extent is the query)');
    return { kind: 'mask', maskPath: params.mask!, label: params.label };
  }
  if (params.label !== undefined) throw new SearchError('BAD_RANGE', 'a label needs the mask it is in (--mask FILE)');
  if (one) return { kind: 'slice', slice: params.slice! };
  return { kind: 'volume' };
}

/** Which volumes a search (or a listing) may return. */
export function filterOf(params: Pick<SearchParams, 'modality' | 'bodyPart' | 'where' | 'includeVolumeIds'>): VolumeFilter | undefined {
  const filter: VolumeFilter = {};
  if (params.modality?.length) filter.modalities = [...params.modality];
  if (params.bodyPart?.length) filter.bodyParts = [...params.bodyPart];
  if (params.where?.length) filter.labels = Object.fromEntries(params.where.map(parseLabel));
  if (params.includeVolumeIds) filter.includeVolumeIds = [...params.includeVolumeIds];
  return Object.keys(filter).length ? filter : undefined;
}

export function searchOptionsOf(params: SearchParams): SearchOptions {
  const filter = filterOf(params);
  if (params.fusion !== undefined && !FUSION_METHODS.includes(params.fusion)) {
    throw new SearchError('BAD_OPTION', `unknown fusion '${String(params.fusion)}' (use ${FUSION_METHODS.join(', ')})`);
  }
  if (params.localization !== undefined && !LOCALIZATIONS.includes(params.localization)) {
    throw new SearchError('BAD_OPTION', `unknown localization '${String(params.localization)}' (use ${LOCALIZATIONS.join(', ')})`);
  }
  return {
    method: params.method ?? DEFAULT_METHOD,
    ...(params.firstStage ? { firstStage: params.firstStage } : {}),
    ...(params.k ? { k: params.k } : {}),
    ...(params.candidates ? { candidates: params.candidates } : {}),
    ...(params.top ? { top: params.top } : {}),
    mode: params.mode ?? 'exact',
    ...(filter ? { filter } : {}),
    excludeVolumeIds: [...(params.exclude ?? [])],
    includeQueryVolume: params.includeSelf ?? false,
    ...(params.fuse ? { fuseWith: { method: params.fuse, fusion: params.fusion ?? 'rrf' } } : {}),
    localization: { method: params.localization ?? 'consistent' },
    ...(params.localize !== undefined ? { localize: params.localize } : {}),
  };
}

/** `key=value` (a label filter, or a label to store); numbers stay numbers so filters and metrics
 * compare them as such. */
export function parseLabel(text: string): [string, string | number] {
  const at = text.indexOf('=');
  if (at <= 0) throw new SearchError('BAD_FILTER', `label "${text}" must look like key=value`);
  const key = text.slice(0, at).trim();
  const raw = text.slice(at + 1).trim();
  const number = Number(raw);
  return [key, raw !== '' && Number.isFinite(number) ? number : raw];
}

// ---------------------------------------------------------------------------------------------------
// The command line's names for the same parameters
// ---------------------------------------------------------------------------------------------------

/** What a flag's value is; the CLI turns each kind into its parser (src/cli/options.ts). */
export interface FlagValues {
  /** A search method name. */
  method: SearchMethod;
  /** A value from `choices`. */
  choice: string;
  positiveInteger: number;
  integer: number;
  /** `a:b`, numbers (either may be negative mm). */
  pair: [number, number];
  /** Repeatable; each occurrence appends. */
  list: string[];
  text: string;
  /** Present or not. */
  switch: boolean;
}

export interface SearchFlag<K extends keyof FlagValues = keyof FlagValues> {
  /** Commander syntax, e.g. `--k <n>`. */
  flags: string;
  description: string;
  value: K;
  choices?: readonly string[];
  /** Puts the parsed value into the parameters. */
  apply(value: FlagValues[K], params: SearchParams): void;
}

const flag = <K extends keyof FlagValues>(spec: SearchFlag<K>): SearchFlag => spec as unknown as SearchFlag;

/** Every search parameter the command line offers (`mir3d search`), in its help's order. */
export const SEARCH_FLAGS: readonly SearchFlag[] = [
  flag({ flags: '--method <m>', description: `retrieval method: ${SEARCH_METHODS.join(', ')} (default ${DEFAULT_METHOD})`, value: 'method', apply: (v, p) => void (p.method = v) }),
  flag({ flags: '--first-stage <m>', description: 'first stage of rerank (default slice-count)', value: 'method', apply: (v, p) => void (p.firstStage = v as FirstStageMethod) }),
  flag({ flags: '--k <n>', description: 'nearest slices per query slice (slice methods; default 20)', value: 'positiveInteger', apply: (v, p) => void (p.k = v) }),
  flag({ flags: '--candidates <n>', description: 'candidates re-ranked (default 50)', value: 'positiveInteger', apply: (v, p) => void (p.candidates = v) }),
  flag({ flags: '--top <n>', description: 'results shown (default 10)', value: 'positiveInteger', apply: (v, p) => void (p.top = v) }),
  flag({ flags: '--approximate', description: 'HNSW nearest-slice search instead of exact (archives below 32768 slices are searched exactly anyway; the output says so)', value: 'switch', apply: (v, p) => void (p.mode = v ? 'approximate' : 'exact') }),
  flag({ flags: '--slices <a:b>', description: 'query with slices a..b (canonical, inferior → superior, inclusive); like --mm, clamped to the volume, refused when none of it lies inside (--slice k is never clamped)', value: 'pair', apply: ([a, b], p) => void Object.assign(p, { firstSlice: a, lastSlice: b }) }),
  flag({ flags: '--mm <a:b>', description: 'query with the slab between patient z a and b mm (clamped to the volume, refused when none of it lies inside)', value: 'pair', apply: ([a, b], p) => void Object.assign(p, { zStartMm: a, zEndMm: b }) }),
  flag({ flags: '--mask <file>', description: 'query with the z-extent of --label in this mask (same grid as the query)', value: 'text', apply: (v, p) => void (p.mask = v) }),
  flag({ flags: '--label <n>', description: 'label value in --mask', value: 'integer', apply: (v, p) => void (p.label = v) }),
  flag({ flags: '--slice <k>', description: 'query with one slice', value: 'integer', apply: (v, p) => void (p.slice = v) }),
  flag({ flags: '--fuse <m>', description: 'fuse with a second method', value: 'method', apply: (v, p) => void (p.fuse = v) }),
  flag({ flags: '--fusion <f>', description: 'interleave (3D-MIR; score 1/rank of the merged list) or rrf (default; score Σ 1/(60 + rank), at most 2/61 for two lists)', value: 'choice', choices: FUSION_METHODS, apply: (v, p) => void (p.fusion = v as FusionMethod) }),
  flag({ flags: '--exclude <id>', description: 'leave this volume out (repeatable)', value: 'list', apply: (v, p) => void (p.exclude = v) }),
  flag({ flags: '--include-self', description: 'let the query’s own volume appear in the results', value: 'switch', apply: (v, p) => void (p.includeSelf = v) }),
  flag({ flags: '--modality <m>', description: 'only volumes of this modality (repeatable)', value: 'list', apply: (v, p) => void (p.modality = v) }),
  flag({ flags: '--body-part <p>', description: 'only volumes of this body part (repeatable)', value: 'list', apply: (v, p) => void (p.bodyPart = v) }),
  flag({ flags: '--where <key=value>', description: 'only volumes with this label (repeatable)', value: 'list', apply: (v, p) => void (p.where = v) }),
  flag({ flags: '--text <finding>', description: 'search by text ("liver tumour larger than 5 cm"); with a query, fuse the two lists (--fusion)', value: 'text', apply: (v, p) => void (p.text = v) }),
  flag({ flags: '--caption-label <column>', description: 'fuse the image query with the caption its indexed volume carries in this label', value: 'text', apply: (v, p) => void (p.captionLabel = v) }),
  flag({ flags: '--space <name>', description: "the index's learned space to search in (mir3d train; 'raw': the backbone's own vectors; default: the index's default, raw until one is chosen)", value: 'text', apply: (v, p) => void (p.space = v) }),
  flag({ flags: '--localization <l>', description: 'consistent (robust, default) or extent (min..max of all argmax slices)', value: 'choice', choices: LOCALIZATIONS, apply: (v, p) => void (p.localization = v as SearchParams['localization']) }),
];
