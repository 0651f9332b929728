import { SEARCH_METHODS } from '../search/types.js';
import { PLANES, UPLOAD_ID_PATTERN, WINDOW_NAMES } from './volumes.js';

/**
 * JSON schemas of every route: Fastify validates requests against them (unknown fields are refused,
 * not dropped) and serializes responses through them, so a field that is not declared here (a source
 * path, a date of care) can never leave the server by accident. @fastify/swagger turns them into the
 * OpenAPI description at /openapi.json.
 */

/** Volume ids are keys into the store, never paths; this pattern also keeps `/`, `..` and `%` out. */
export const VOLUME_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$';

const FIRST_STAGE_METHODS = SEARCH_METHODS.filter((m) => m !== 'rerank');

export const apiErrorSchema = {
  $id: 'ApiError',
  type: 'object',
  description: 'Every error: a stable code and one line for people.',
  properties: {
    error: {
      type: 'object',
      properties: { code: { type: 'string' }, message: { type: 'string' } },
      required: ['code', 'message'],
    },
  },
  required: ['error'],
} as const;

const errorResponses = {
  '4xx': { $ref: 'ApiError#' },
  '5xx': { $ref: 'ApiError#' },
} as const;

const vec3 = { type: 'array', items: { type: 'number' }, minItems: 3, maxItems: 3 } as const;
const vec3Int = { type: 'array', items: { type: 'integer' }, minItems: 3, maxItems: 3 } as const;
const labelsSchema = { type: 'object', additionalProperties: { type: ['string', 'number'] }, description: 'User labels (organ, cancer_flag, lesion_group …)' } as const;
const sliceIndex = { type: 'integer', minimum: 0, maximum: 100_000 } as const;
const millimetres = { type: 'number', minimum: -100_000, maximum: 100_000 } as const;
const stringList = (description: string) => ({ type: 'array', items: { type: 'string', minLength: 1, maxLength: 200 }, maxItems: 50, description }) as const;

const sourceNameSchema = { type: 'string', description: "the source's last two path parts; only when the server runs with --show-source-names" } as const;

export const publicVolumeSchema = {
  $id: 'Volume',
  type: 'object',
  description: 'An indexed volume: pseudonymous id, geometry and labels. No source path (a short source name only with --show-source-names), no patient identifiers.',
  properties: {
    volumeId: { type: 'string' },
    dims: vec3Int,
    spacingMm: vec3,
    affineRas: { type: 'array', items: { type: 'number' }, minItems: 16, maxItems: 16, description: 'canonical voxel → RAS+ mm, row-major' },
    zRangeMm: { type: 'array', items: { type: 'number' }, minItems: 2, maxItems: 2, description: 'z of the first (inferior) and last slice centres' },
    modality: { type: 'string' },
    bodyPart: { type: 'string' },
    studyYear: { type: 'integer' },
    seriesKey: { type: 'string', description: 'pseudonymous DICOM series key' },
    labels: labelsSchema,
    embeddedSlices: { type: 'integer', description: 'slices with a vector in the index' },
    addedAt: { type: 'string' },
    sourceName: sourceNameSchema,
  },
  required: ['volumeId', 'dims', 'spacingMm', 'affineRas', 'zRangeMm', 'modality', 'labels', 'embeddedSlices', 'addedAt'],
} as const;

export const publicUploadSchema = {
  $id: 'Upload',
  type: 'object',
  description: 'An uploaded query volume, kept in memory for a while.',
  properties: {
    uploadId: { type: 'string' },
    dims: vec3Int,
    spacingMm: vec3,
    affineRas: { type: 'array', items: { type: 'number' } },
    zRangeMm: { type: 'array', items: { type: 'number' } },
    modality: { type: 'string' },
    indexedAs: { type: 'string', description: 'the indexed volume with the same voxels' },
    createdAt: { type: 'string' },
  },
  required: ['uploadId', 'dims', 'spacingMm', 'affineRas', 'zRangeMm', 'modality', 'createdAt'],
} as const;

const sliceMatchSchema = {
  type: 'object',
  properties: { querySlice: { type: 'integer' }, targetSlice: { type: 'integer' }, similarity: { type: 'number' } },
  required: ['querySlice', 'targetSlice', 'similarity'],
} as const;

/** Search parameters shared by the JSON body and the one-shot upload's query string. */
export const searchParamProperties = {
  method: { type: 'string', enum: SEARCH_METHODS, description: 'retrieval method (default rerank; slice-count for a text query)' },
  firstStage: { type: 'string', enum: FIRST_STAGE_METHODS, description: 'first stage of rerank (default slice-count)' },
  k: { type: 'integer', minimum: 1, maximum: 1000, description: 'nearest slices per query slice (default 20)' },
  candidates: { type: 'integer', minimum: 1, maximum: 1000, description: 'candidates re-ranked (default 50)' },
  top: { type: 'integer', minimum: 1, maximum: 200, description: 'results returned (default 10)' },
  mode: { type: 'string', enum: ['exact', 'approximate'], description: 'slice kNN: exact (default) or HNSW' },
  firstSlice: { ...sliceIndex, description: 'query slab: first canonical slice (with lastSlice)' },
  lastSlice: { ...sliceIndex, description: 'query slab: last canonical slice, inclusive' },
  zStartMm: { ...millimetres, description: 'query slab by patient z (with zEndMm)' },
  zEndMm: millimetres,
  slice: { ...sliceIndex, description: 'query with one slice' },
  modality: stringList('only volumes of these modalities'),
  bodyPart: stringList('only volumes of these body parts'),
  where: stringList('only volumes with these labels, key=value'),
  exclude: { type: 'array', items: { type: 'string', pattern: VOLUME_ID_PATTERN }, maxItems: 1000, description: 'volume ids to leave out' },
  includeSelf: { type: 'boolean', description: "let the query's own volume appear" },
  fuse: { type: 'string', enum: SEARCH_METHODS, description: 'fuse with a second method' },
  fusion: { type: 'string', enum: ['rrf', 'interleave'], description: 'how to fuse (default rrf)' },
  localization: { type: 'string', enum: ['consistent', 'extent'], description: 'region from the robust alignment (default) or the extent of all argmax slices' },
  matches: { type: 'boolean', description: 'return every slice match (default false)' },
  text: { type: 'string', minLength: 1, maxLength: 4000, description: 'a finding to search by; with volumeId or uploadId, fused with that query (fusion)' },
  captionLabel: { type: 'string', minLength: 1, maxLength: 200, description: "fuse the volume query with the caption its indexed volume carries in this label" },
  space: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$', description: "the index's learned space (mir3d train): a stored space's name or raw (default: the index's default)" },
} as const;

/** A DICOM UID: digits and dots, at most 64 characters (PS3.5 9.1). */
const uidSchema = { type: 'string', pattern: '^[0-9]+(\\.[0-9]+)*$', maxLength: 64 } as const;

const dicomWebQuerySchema = {
  type: 'object',
  description: "a series in the server's PACS (fetched, embedded, not added to the index); without seriesInstanceUid, the study's CT series with the most instances",
  properties: { studyInstanceUid: uidSchema, seriesInstanceUid: uidSchema },
  required: ['studyInstanceUid'],
  additionalProperties: false,
} as const;

const viewerLinkSchema = {
  type: 'object',
  description: 'for results indexed from a PACS: the UIDs of the best-matching slice and the viewer link (mir3d serve --viewer-url)',
  properties: { studyInstanceUid: { type: 'string' }, seriesInstanceUid: { type: 'string' }, sopInstanceUid: { type: 'string' }, url: { type: 'string' } },
  required: ['studyInstanceUid', 'seriesInstanceUid', 'sopInstanceUid'],
} as const;

const searchResponseSchema = {
  type: 'object',
  properties: {
    query: {
      type: 'object',
      properties: {
        volumeId: { type: 'string' },
        uploadId: { type: 'string' },
        sliceCount: { type: 'integer' },
        firstSlice: { type: 'integer' },
        lastSlice: { type: 'integer' },
        zStartMm: { type: 'number' },
        zEndMm: { type: 'number' },
        reusedStoredVectors: { type: 'boolean' },
        text: { type: 'string', description: 'the text searched (sliceCount 0) or fused with the volume query' },
        warnings: { type: 'array', items: { type: 'string' } },
      },
      required: ['sliceCount', 'firstSlice', 'lastSlice', 'reusedStoredVectors'],
    },
    options: {
      type: 'object',
      properties: {
        method: { type: 'string' },
        firstStage: { type: 'string' },
        k: { type: 'integer' },
        candidates: { type: 'integer' },
        top: { type: 'integer' },
        mode: { type: 'string' },
        fuse: { type: 'string' },
        fusion: { type: 'string' },
        space: { type: 'string' },
      },
    },
    timings: { type: 'object', properties: { queryMs: { type: 'number' }, searchMs: { type: 'number' } } },
    results: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          rank: { type: 'integer' },
          volumeId: { type: 'string' },
          score: { type: 'number' },
          region: {
            type: 'object',
            description: 'where the match lies in this volume',
            properties: { firstSlice: { type: 'integer' }, lastSlice: { type: 'integer' }, zStartMm: { type: 'number' }, zEndMm: { type: 'number' } },
            required: ['firstSlice', 'lastSlice', 'zStartMm', 'zEndMm'],
          },
          middleMatch: { ...sliceMatchSchema, description: 'best match of the query slice nearest the middle of the query' },
          matchCount: { type: 'integer' },
          matches: { type: 'array', items: sliceMatchSchema },
          labels: labelsSchema,
          dims: vec3Int,
          spacingMm: vec3,
          modality: { type: 'string' },
          viewer: viewerLinkSchema,
          sourceName: sourceNameSchema,
        },
        required: ['rank', 'volumeId', 'score', 'matchCount', 'labels', 'dims', 'spacingMm', 'modality'],
      },
    },
    viewerLinkProblem: { type: 'string', description: 'why PACS results carry no viewer link this time' },
  },
  required: ['query', 'options', 'timings', 'results'],
} as const;

const volumeIdParams = {
  type: 'object',
  properties: { volumeId: { type: 'string', pattern: VOLUME_ID_PATTERN } },
  required: ['volumeId'],
  additionalProperties: false,
} as const;

const uploadIdParams = {
  type: 'object',
  properties: { uploadId: { type: 'string', pattern: UPLOAD_ID_PATTERN } },
  required: ['uploadId'],
  additionalProperties: false,
} as const;

export const thumbnailQuerySchema = {
  type: 'object',
  properties: {
    plane: { type: 'string', enum: PLANES, default: 'coronal' },
    index: { ...sliceIndex, description: 'slice along the plane normal (k axial, j coronal, i sagittal); default the middle' },
    window: { type: 'string', enum: WINDOW_NAMES, description: 'display window preset (default softTissue)' },
    levelHu: { type: 'number', minimum: -5000, maximum: 5000 },
    widthHu: { type: 'number', exclusiveMinimum: 0, maximum: 10000 },
    bandFirst: { ...sliceIndex, description: 'tint canonical slices bandFirst..bandLast (coronal, sagittal)' },
    bandLast: sliceIndex,
    tint: { type: 'string', enum: ['match', 'query'], description: 'band colour: orange (match) or blue (query)' },
    maxPx: { type: 'integer', minimum: 16, maximum: 2048, default: 512, description: 'longest side in pixels, at most' },
  },
  additionalProperties: false,
} as const;

const pngResponse = {
  200: { description: 'PNG image', content: { 'image/png': { schema: { type: 'string', format: 'binary' } } } },
  ...errorResponses,
} as const;

const niftiResponse = {
  200: { description: 'gzipped NIfTI-1 of the canonical volume', content: { 'application/gzip': { schema: { type: 'string', format: 'binary' } } } },
  ...errorResponses,
} as const;

export const routeSchemas = {
  health: {
    tags: ['service'],
    summary: 'Liveness (no token needed)',
    security: [],
    response: {
      200: {
        type: 'object',
        properties: {
          status: { type: 'string' },
          uptimeS: { type: 'number' },
          searches: {
            type: 'object',
            description: 'search workers and their queue',
            properties: { workers: { type: 'integer' }, busy: { type: 'integer' }, queued: { type: 'integer' }, maxQueued: { type: 'integer' } },
          },
        },
        required: ['status'],
      },
    },
  },
  version: {
    tags: ['service'],
    summary: 'Name and version (no token needed)',
    security: [],
    response: { 200: { type: 'object', properties: { name: { type: 'string' }, version: { type: 'string' }, api: { type: 'integer' } }, required: ['name', 'version', 'api'] } },
  },
  index: {
    tags: ['index'],
    summary: 'The index: encoder, size, methods and display windows',
    response: {
      200: {
        type: 'object',
        properties: {
          encoderId: { type: 'string' },
          dim: { type: 'integer' },
          volumes: { type: 'integer' },
          slices: { type: 'integer' },
          methods: { type: 'array', items: { type: 'string' } },
          windows: { type: 'array', items: { type: 'string' } },
          canEmbedUploads: { type: 'boolean' },
          canSearchPacs: { type: 'boolean', description: 'the server has a PACS: POST /api/search takes dicomweb' },
          limits: { type: 'object', properties: { maxUploadBytes: { type: 'integer' } } },
          display: {
            type: 'object',
            description: 'window presets and the colours of query and match, as the page draws them',
            properties: {
              windows: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: { name: { type: 'string' }, title: { type: 'string' }, levelHu: { type: 'number' }, widthHu: { type: 'number' } },
                  required: ['name', 'title', 'levelHu', 'widthHu'],
                },
              },
              colors: { type: 'object', properties: { query: { type: 'array', items: { type: 'integer' } }, match: { type: 'array', items: { type: 'integer' } } } },
            },
          },
        },
      },
      ...errorResponses,
    },
  },
  listVolumes: {
    tags: ['volumes'],
    summary: 'List indexed volumes, optionally filtered',
    querystring: {
      type: 'object',
      properties: {
        modality: stringList('only these modalities'),
        bodyPart: stringList('only these body parts'),
        where: stringList('only volumes with these labels, key=value'),
        offset: { type: 'integer', minimum: 0, default: 0 },
        limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
      },
      additionalProperties: false,
    },
    response: {
      200: {
        type: 'object',
        properties: { total: { type: 'integer' }, offset: { type: 'integer' }, limit: { type: 'integer' }, volumes: { type: 'array', items: { $ref: 'Volume#' } } },
        required: ['total', 'offset', 'limit', 'volumes'],
      },
      ...errorResponses,
    },
  },
  getVolume: {
    tags: ['volumes'],
    summary: 'One indexed volume: record, labels, slice count',
    params: volumeIdParams,
    response: { 200: { $ref: 'Volume#' }, ...errorResponses },
  },
  volumeThumbnail: {
    tags: ['volumes'],
    summary: 'A slice of an indexed volume as PNG, optionally with a tinted slice band',
    params: volumeIdParams,
    querystring: thumbnailQuerySchema,
    response: pngResponse,
  },
  volumeNifti: {
    tags: ['volumes'],
    summary: 'The canonical volume as gzipped NIfTI (for the viewer)',
    params: volumeIdParams,
    response: niftiResponse,
  },
  createUpload: {
    tags: ['uploads'],
    summary: 'Upload a query volume (NIfTI, or a zip of one DICOM series); kept in memory for later searches',
    description: 'Send multipart/form-data with one file, or the bytes as application/octet-stream (or application/gzip, application/zip).',
    querystring: { type: 'object', properties: { series: { type: 'string', pattern: '^[0-9a-f]{6,64}$', description: 'series key when the zip holds several series' } }, additionalProperties: false },
    response: { 201: { $ref: 'Upload#' }, ...errorResponses },
  },
  createPacsUpload: {
    tags: ['uploads'],
    summary: "Fetch a series from the server's PACS as a query volume (kept in memory like an upload, never indexed)",
    body: dicomWebQuerySchema,
    response: { 201: { $ref: 'Upload#' }, ...errorResponses },
  },
  getUpload: {
    tags: ['uploads'],
    summary: 'An uploaded query volume',
    params: uploadIdParams,
    response: { 200: { $ref: 'Upload#' }, ...errorResponses },
  },
  deleteUpload: {
    tags: ['uploads'],
    summary: 'Forget an uploaded query volume',
    params: uploadIdParams,
    response: { 204: { type: 'null', description: 'deleted' }, ...errorResponses },
  },
  uploadThumbnail: {
    tags: ['uploads'],
    summary: 'A slice of an uploaded volume as PNG',
    params: uploadIdParams,
    querystring: thumbnailQuerySchema,
    response: pngResponse,
  },
  uploadNifti: {
    tags: ['uploads'],
    summary: 'An uploaded volume as gzipped NIfTI (for the viewer)',
    params: uploadIdParams,
    response: niftiResponse,
  },
  search: {
    tags: ['search'],
    summary: 'Search with an indexed volume, an earlier upload or a series in the PACS (optionally a slab of it), or a text',
    body: {
      type: 'object',
      properties: {
        volumeId: { type: 'string', pattern: VOLUME_ID_PATTERN, description: 'query with this indexed volume' },
        uploadId: { type: 'string', pattern: UPLOAD_ID_PATTERN, description: 'or with this upload' },
        dicomweb: dicomWebQuerySchema,
        ...searchParamProperties,
      },
      additionalProperties: false,
    },
    response: { 200: searchResponseSchema, ...errorResponses },
  },
  searchUpload: {
    tags: ['search'],
    summary: 'One shot: upload a query volume and search with it (parameters in the query string)',
    description: 'Body as for POST /api/uploads. The upload is not kept.',
    querystring: {
      type: 'object',
      properties: { series: { type: 'string', pattern: '^[0-9a-f]{6,64}$' }, ...searchParamProperties },
      additionalProperties: false,
    },
    response: { 200: searchResponseSchema, ...errorResponses },
  },
} as const;
