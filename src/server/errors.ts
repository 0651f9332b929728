import { EncoderError } from '../encode/errors.js';
import { isExpectedError, Mir3dError } from '../errors.js';
import { VolumeReadError } from '../io/errors.js';
import { SearchError } from '../search/errors.js';
import { DicomWebError } from '../source/dicomweb/errors.js';
import { SpaceError } from '../space/errors.js';
import { StoreError } from '../store/errors.js';

/**
 * Every refusal of the API is `{ error: { code, message } }` with an HTTP status a client can act on.
 * Library errors keep their stable codes; messages use the errors' detail, never the server's paths
 * (temp folders, the index directory) and never an uploaded file's name.
 */

export interface ApiErrorBody {
  error: { code: string; message: string };
}

/** A refusal the server chose (any status below 500, and 503) is expected; 500 is a defect. */
export class ApiError extends Mir3dError {
  override readonly name = 'ApiError';
  constructor(
    readonly statusCode: number,
    code: string,
    message: string,
    /** Seconds a client should wait before retrying (503). */
    readonly retryAfterS?: number,
    options: { cause?: unknown } = {},
  ) {
    super(code, message, { ...options, expected: statusCode !== 500 });
  }
}

/** The file the client sent is not one we can read as a volume. */
const VOLUME_CODES_UNSUPPORTED = new Set(['UNKNOWN_FORMAT', 'BAD_MAGIC']);

const SEARCH_STATUS: Record<string, number> = {
  BAD_QUERY: 400,
  BAD_OPTION: 400,
  SLICE_OUT_OF_RANGE: 400,
  GRID_MISMATCH: 422,
  LABEL_ABSENT: 422,
  DIM_MISMATCH: 500,
  KERNEL_OUTPUT: 500,
};

/** The PACS behind the server: a series it does not hold is the client's 404; the PACS down, refusing
 * the server's credentials or answering wrongly is a bad gateway (502), not the client's fault. Codes
 * get a PACS_ prefix so a client tells "no such series" from "no such route". */
const DICOMWEB_STATUS: Record<string, number> = {
  NOT_FOUND: 404,
  BAD_URL: 400,
  TOO_LARGE: 413,
  CREDENTIALS: 503,
};

const STORE_STATUS: Record<string, number> = {
  BAD_QUERY: 400,
  NOT_FOUND: 503,
  MISSING_ENCODER: 503,
  ENCODER_MISMATCH: 503,
  CLOSED: 503,
};

/**
 * Maps an error from the library to an ApiError. `volumeFromClient` says whether a VolumeReadError
 * concerns a file the client uploaded (422/415: their file is bad) or an indexed volume's source on the
 * server (409: the archive changed under the index).
 */
export function toApiError(error: unknown, context: { volumeFromClient?: boolean } = {}): ApiError {
  if (error instanceof ApiError) return error;
  // Defects answer 500 whatever their class; the handler logs the cause.
  if (!isExpectedError(error)) return new ApiError(500, 'INTERNAL', 'internal error', undefined, { cause: error });
  if (error instanceof VolumeReadError) {
    if (!context.volumeFromClient) return new ApiError(409, 'SOURCE_UNREADABLE', `the indexed volume's source cannot be read (${error.code})`);
    const status = VOLUME_CODES_UNSUPPORTED.has(error.code) ? 415 : 422;
    return new ApiError(status, error.code, error.detail);
  }
  if (error instanceof SearchError) return new ApiError(SEARCH_STATUS[error.code] ?? 400, error.code, error.message);
  if (error instanceof DicomWebError) return new ApiError(DICOMWEB_STATUS[error.code] ?? 502, `PACS_${error.code}`, error.message.split('\n')[0]);
  // An unknown space is the client's mistake; a damaged or foreign one is the index's.
  if (error instanceof SpaceError) return new ApiError(error.code === 'UNKNOWN_SPACE' || error.code === 'BAD_NAME' ? 400 : 503, error.code, error.detail);
  if (error instanceof StoreError) return new ApiError(STORE_STATUS[error.code] ?? 500, error.code, error.detail);
  if (error instanceof EncoderError) {
    if (error.code === 'BAD_BATCH' || error.code === 'INCOMPATIBLE_INPUT') return new ApiError(422, error.code, error.detail);
    // Text: an empty text is the client's; an index without a text side says what to add to it; a text
    // model that does not fit its tokenizer or the index is the server's setup, said as such.
    if (error.code === 'BAD_TEXT') return new ApiError(400, error.code, error.detail);
    if (error.code === 'NO_TEXT_SPACE') return new ApiError(409, error.code, error.detail);
    if (error.code === 'TOKENIZER_MISMATCH' || error.code === 'DIM_MISMATCH') return new ApiError(503, error.code, `the index's text encoder cannot be used: ${error.detail}`);
    return new ApiError(503, 'ENCODER_UNAVAILABLE', `the index's encoder cannot embed queries here (${error.code})`);
  }
  // Any other expected error (compute provider, server setup): the service cannot answer this now.
  return new ApiError(503, error.code, error.message.split('\n')[0]);
}

export function errorBody(error: ApiError): ApiErrorBody {
  return { error: { code: error.code, message: error.message } };
}

/**
 * The answer to a request Node's HTTP parser refused before Fastify saw it (headers too large, a control
 * character in the URL or a header, a request that took too long), written straight to the socket in
 * the API's own body. Fastify's default writes its own body shape here.
 */
export function clientErrorResponse(error: { code?: string }): string {
  const refusal =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? new ApiError(431, 'HEADERS_TOO_LARGE', 'the request line and headers are too large')
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new ApiError(408, 'REQUEST_TIMEOUT', 'the request was not received in time')
        : new ApiError(400, 'BAD_REQUEST', 'the request is not valid HTTP (a control character or a malformed line in the URL or a header)');
  const body = JSON.stringify(errorBody(refusal));
  const reason = refusal.statusCode === 431 ? 'Request Header Fields Too Large' : refusal.statusCode === 408 ? 'Request Timeout' : 'Bad Request';
  return `HTTP/1.1 ${refusal.statusCode} ${reason}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`;
}

/** Fastify's router refusals (a malformed percent escape, a path segment over maxParamLength). */
export function routerError(error: { code?: string }): ApiError {
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') return new ApiError(414, 'URI_TOO_LONG', 'a path segment of the URL is too long');
  if (error.code === 'FST_ERR_BAD_URL') return new ApiError(400, 'BAD_URL', 'the URL holds a malformed percent escape');
  return new ApiError(400, 'BAD_REQUEST', 'the request cannot be routed');
}
