import { embedVolume } from '../encode/embed-volume.js';
import type { Encoder } from '../encode/encoder.js';
import type { SliceFeeder } from '../encode/slice-feeder.js';
import { EncoderError } from '../encode/errors.js';
import type { TextEncoder } from '../encode/text-encoder.js';
import { seriesKeyOf } from '../io/dicom.js';
import { readVolume, type ReadOptions } from '../io/read.js';
import { sliceZMm, type SliceGeometry, type Volume } from '../io/volume.js';
import { canonicalInt16Sha256 } from '../io/volume-stats.js';
import { SearchError } from '../search/errors.js';
import { textQuery } from '../search/text.js';
import type { QueryVectors } from '../search/types.js';
import type { DicomWebClient } from '../source/dicomweb/client.js';
import type { Store, VolumeRecord } from '../store/types.js';
import { querySliceIndices, rangeInterval, rowsInInterval, selectRows, type QueryRange, type QueryRangeInput } from './range.js';

/**
 * Turns what a user points at into embedded query rows. Every front end (CLI, HTTP server, eval, demo)
 * resolves its queries here, so a range selects the same rows of a scan whether it comes as a file, as
 * an upload or as the id of its indexed copy.
 *
 * To add a kind of source: add a member to `QuerySource` and its resolver to
 * `RESOLVERS`; the compiler then holds every switch over sources to account for it.
 */
export type QuerySource =
  /** A NIfTI file or a DICOM series folder on disk. */
  | { kind: 'path'; path: string; seriesKey?: string }
  /** An indexed volume: its stored rows. */
  | { kind: 'indexed'; volumeId: string }
  /** A volume already in memory (an upload). `record`: its indexed copy, `null` when known not to be
   * indexed, absent to look it up by content. `embedded` keeps slices embedded by earlier queries. */
  | { kind: 'volume'; volume: Volume; record?: VolumeRecord | null; embedded?: EmbeddedSliceCache }
  /** Rows embedded before (a whole query volume embedded once, cut into slabs), on `geometry`'s grid. */
  | { kind: 'vectors'; rows: QueryVectors; geometry: SliceGeometry }
  /** A series in a PACS: fetched over DICOMweb and decoded in memory, never added to the index. Without
   * a series UID, the study's CT series with the most instances. */
  | { kind: 'dicomweb'; client: DicomWebClient; studyInstanceUid: string; seriesInstanceUid?: string }
  /** A finding typed by a person: one query row from the index's text encoder (its learned text space
   * or its CLIP model's text tower), searched like one slice. */
  | { kind: 'text'; text: string };

export type QuerySourceKind = QuerySource['kind'];

/** Embedded slices of one volume by canonical slice index. */
export type EmbeddedSliceCache = Map<number, { vector: Float32Array; zMm: number }>;

export interface ResolvedQuery {
  query: QueryVectors;
  /** The query volume when its voxels are at hand (for pictures). */
  volume?: Volume;
  /** The indexed record when the query is (or has the same content as) an indexed volume. */
  record?: VolumeRecord;
  /** Canonical slices the query uses, ascending. */
  sliceIndices: number[];
  /** True when no slice had to be embedded (stored or given rows). */
  reusedStoredVectors: boolean;
  /** The text searched (a text query) or fused with the image query. */
  text?: string;
  /** For people: a text cut to the model's context, and the like. */
  warnings?: string[];
}

export interface ResolveOptions {
  store: Store;
  /** Needed only when slices must be embedded (a volume that is not indexed); may be opened lazily. */
  encoder?: Encoder | (() => Promise<Encoder>);
  feeder?: SliceFeeder;
  /** How key images are read (the index's own way, from its encoder spec). */
  readOptions?: ReadOptions;
  /** Needed only for text: the index's text encoder (ingest's `OpenedIndex.textEncoder`, whose error
   * names what to add when the index has none); may be opened lazily. */
  textEncoder?: TextEncoder | (() => Promise<TextEncoder>);
}

type Resolver<S extends QuerySource> = (source: S, range: QueryRangeInput, options: ResolveOptions) => Promise<ResolvedQuery>;

const RESOLVERS: { [K in QuerySourceKind]: Resolver<Extract<QuerySource, { kind: K }>> } = {
  path: async (source, range, options) => {
    const volume = await readVolume(source.path, { ...(options.readOptions ?? {}), ...(source.seriesKey ? { seriesKey: source.seriesKey } : {}) });
    return resolveVolume(volume, undefined, undefined, range, options, source.path);
  },
  indexed: async (source, range, { store }) => {
    const record = store.getVolume(source.volumeId);
    const vectors = store.getVectors([source.volumeId]).get(source.volumeId);
    if (!record || !vectors) throw new SearchError('BAD_QUERY', `no volume ${source.volumeId} in the index`);
    const query = selectRows(vectors, record, await toQueryRange(range));
    return { query, record, sliceIndices: Array.from(query.sliceIndices), reusedStoredVectors: true };
  },
  volume: (source, range, options) => resolveVolume(source.volume, source.record, source.embedded, range, options, 'the uploaded volume'),
  dicomweb: async (source, range, options) => {
    // Loaded only for a PACS query: the HTTP client would slow every other start.
    const { fetchQuerySeries } = await import('../ingest/dicomweb-fetch.js');
    const fetched = await fetchQuerySeries(source.client, source.studyInstanceUid, source.seriesInstanceUid, seriesKeyOf);
    return resolveVolume(fetched.volume, undefined, undefined, range, options, `${source.client.endpoint.display} series ${fetched.seriesKey}`);
  },
  text: async (source, range, options) => {
    if (range.kind !== 'volume') throw new SearchError('BAD_RANGE', 'a text query has no slices to choose: leave out the slice range');
    if (!options.textEncoder) throw new EncoderError('NO_TEXT_SPACE', 'text query', 'no text encoder is open for this index');
    const encoder = typeof options.textEncoder === 'function' ? await options.textEncoder() : options.textEncoder;
    const { query, warnings } = await textQuery(options.store, encoder, source.text);
    return { query, sliceIndices: [0], reusedStoredVectors: false, text: source.text, warnings };
  },
  vectors: async (source, range) => {
    const query = selectRows(source.rows, source.geometry, await toQueryRange(range));
    return { query, sliceIndices: Array.from(query.sliceIndices), reusedStoredVectors: true };
  },
};

/** The query rows of a source and range (see `QuerySource`, `QueryRange`). */
export function resolveQuery(source: QuerySource, range: QueryRangeInput, options: ResolveOptions): Promise<ResolvedQuery> {
  const resolver = RESOLVERS[source.kind] as Resolver<QuerySource> | undefined;
  if (!resolver) throw new SearchError('BAD_QUERY', `unknown query source '${String(source.kind)}'`);
  return resolver(source, range, options);
}

export async function toQueryRange(range: QueryRangeInput): Promise<QueryRange> {
  if (range.kind !== 'mask') return range;
  return { kind: 'mask', mask: await readVolume(range.maskPath), label: range.label };
}

/**
 * A volume's query rows. When the same scan is indexed (same voxels), its stored rows in the range are
 * used, exactly as a query by its id: they are what embedding would give with the same encoder. Only a
 * volume that is not indexed (or whose stored rows miss the range, as a single slice between the
 * slices of an index built every few mm can) is embedded, and then only slices not embedded before.
 */
async function resolveVolume(
  volume: Volume,
  knownRecord: VolumeRecord | null | undefined,
  cache: EmbeddedSliceCache | undefined,
  rangeInput: QueryRangeInput,
  options: ResolveOptions,
  what: string,
): Promise<ResolvedQuery> {
  const { store } = options;
  const range = await toQueryRange(rangeInput);
  const record = knownRecord === undefined ? store.findByContent(canonicalInt16Sha256(volume)) : (knownRecord ?? undefined);
  if (record) {
    const vectors = store.getVectors([record.volumeId]).get(record.volumeId);
    if (vectors) {
      // A range outside the volume is the user's error whichever rows are used (rangeInterval throws);
      // a range between stored rows is embedded instead.
      const stored = rowsInInterval(vectors, rangeInterval(volume, range));
      if (stored) return { query: stored, volume, record, sliceIndices: Array.from(stored.sliceIndices), reusedStoredVectors: true };
    }
  }
  if (!options.encoder) throw new SearchError('BAD_QUERY', `${what} is not indexed; an encoder is needed to embed it`);
  const encoder = typeof options.encoder === 'function' ? await options.encoder() : options.encoder;
  // The encoder's slice step decides which slices a range selects, as when indexing.
  const stepMm = encoder.preprocessing.sliceStepMm;
  const wanted = querySliceIndices(volume, range, stepMm ? { stepMm } : {});
  const slices = cache ?? new Map();
  const missing = wanted.filter((k) => !slices.has(k));
  if (missing.length > 0) {
    const embedded = await embedVolume(volume, encoder, { sliceIndices: missing, ...(options.feeder ? { feeder: options.feeder } : {}) });
    embedded.sliceIndices.forEach((k, row) => {
      slices.set(k, { vector: embedded.vectors.slice(row * encoder.dim, (row + 1) * encoder.dim), zMm: embedded.zMm[row] });
    });
  }
  const vectors = new Float32Array(wanted.length * encoder.dim);
  const zMm = new Float64Array(wanted.length);
  wanted.forEach((k, row) => {
    const slice = slices.get(k)!;
    vectors.set(slice.vector, row * encoder.dim);
    zMm[row] = Number.isFinite(slice.zMm) ? slice.zMm : sliceZMm(volume, k);
  });
  const query: QueryVectors = { vectors, dim: encoder.dim, sliceIndices: Int32Array.from(wanted), zMm, ...(record ? { volumeId: record.volumeId } : {}) };
  return { query, volume, ...(record ? { record } : {}), sliceIndices: wanted, reusedStoredVectors: false };
}

