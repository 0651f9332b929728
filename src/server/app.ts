import { existsSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import multipart from '@fastify/multipart';
import fastifyStatic from '@fastify/static';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import { indexExists, openIndex, type OpenedIndex } from '../ingest/open-index.js';
import { filterOf } from '../query/request.js';
import { describeCauses, Mir3dError } from '../errors.js';
import { readEncoderSpec } from '../ingest/encoder-spec.js';
import { StoreError } from '../store/errors.js';
import { SEARCH_METHODS } from '../search/types.js';
import { locateWebAssets, packageVersion } from './assets.js';
import { DEFAULT_HOST, DEFAULT_PORT } from './defaults.js';
import { bearerToken, crossOriginReason, ensureToken, hostHeaderName, isLoopbackHost, tokenMatches, TokenFileError, type TokenFile } from './auth.js';
import { ApiError, clientErrorResponse, errorBody, routerError, toApiError } from './errors.js';
import { Limiter } from './limiter.js';
import { PacsAccess, pacsConfigOf, type PacsConfig, type ServerPacsOptions } from './pacs.js';
import { apiErrorSchema, publicUploadSchema, publicVolumeSchema, routeSchemas } from './schemas.js';
import { DEFAULT_MAX_QUEUED, DEFAULT_QUEUE_TIMEOUT_MS, SearchPool } from './search-pool.js';
import { SearchService, type SearchBody, type SearchParams } from './search-service.js';
import { RAW_UPLOAD_TYPES, readUploadedVolume } from './uploads.js';
import { MATCH_COLOR, QUERY_COLOR } from '../io/sheet.js';
import type { DicomWebQuery, HealthInfo, IndexInfo } from '../api/contract.js';
import { publicUpload, publicVolume, VolumeService, WINDOW_NAMES, WINDOW_PRESETS, type ThumbnailRequest } from './volumes.js';

/**
 * `mir3d serve`: the HTTP API and the web page over one index, in one Fastify process.
 *
 * Everything under /api except health and version needs the bearer token; the page, its scripts, the
 * OpenAPI description and its docs UI are public (they hold no data). Request values reach the file
 * system only as keys: volume ids are looked up in the store, upload ids in memory, and uploads are
 * written under generated names in fresh temp folders.
 */

export { DEFAULT_HOST, DEFAULT_PORT };
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

export interface ServerLimits {
  /** Largest upload accepted, as sent (gzip or zip). */
  maxUploadBytes: number;
  /** Largest JSON body. */
  maxJsonBytes: number;
  /** Most bytes a zipped DICOM series may unpack to. */
  maxUnzippedBytes: number;
  maxZipEntries: number;
  volumeCacheBytes: number;
  thumbnailCacheBytes: number;
  niftiCacheBytes: number;
  uploadCacheBytes: number;
  maxUploads: number;
  /** Search worker threads (default: the number of cores). */
  searchWorkers?: number;
  /** Kernel threads per search worker (default: cores / workers, at least one). */
  searchThreads?: number;
  /** Searches waiting for a worker, at most, before 503 BUSY. */
  searchQueueLength: number;
  /** Longest a search waits for a worker before 503 QUEUE_TIMEOUT. */
  searchQueueTimeoutMs: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxUploadBytes: 1 * GiB,
  maxJsonBytes: 64 * 1024,
  maxUnzippedBytes: 4 * GiB,
  maxZipEntries: 20_000,
  volumeCacheBytes: 1 * GiB,
  thumbnailCacheBytes: 64 * MiB,
  niftiCacheBytes: 512 * MiB,
  uploadCacheBytes: 1 * GiB,
  maxUploads: 16,
  searchQueueLength: DEFAULT_MAX_QUEUED,
  searchQueueTimeoutMs: DEFAULT_QUEUE_TIMEOUT_MS,
};

export interface ServerOptions {
  /** The index directory (as for `mir3d search --db`). */
  dbDir: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Bearer-token auth (default true). Without it the server only binds to loopback addresses. */
  auth?: boolean;
  /** Where the token is kept (default `<dbDir>/server-token`). */
  tokenFile?: string;
  limits?: Partial<ServerLimits>;
  /** Called with one line per request (method, route, status, ms); nothing is logged otherwise. */
  logRequest?: (line: string) => void;
  /** Called with unexpected errors (stack traces); default stderr. */
  logError?: (line: string) => void;
  /** The PACS searched by series UID and linked back to (default: the one the index was synced from). */
  pacs?: ServerPacsOptions;
  /** Volumes and results carry their source's last two path parts (file and folder names may identify
   * patients, so off by default). */
  showSourceNames?: boolean;
}

export class ServerConfigError extends Mir3dError<'NO_AUTH_NOT_LOCAL' | 'BAD_PORT' | 'TOKEN_FILE'> {
  override readonly name = 'ServerConfigError';
  constructor(code: 'NO_AUTH_NOT_LOCAL' | 'BAD_PORT' | 'TOKEN_FILE', message: string) {
    super(code, message, { persistent: true });
  }
}

export interface RunningServer {
  app: FastifyInstance;
  /** Base URL, e.g. http://127.0.0.1:8765 */
  url: string;
  /** The page's URL, with the token in its fragment (never sent to the server by a browser). */
  pageUrl: string;
  token?: string;
  tokenFile?: TokenFile;
  /** Why the web page is unavailable (the API still works), if it is. */
  pageProblem?: string;
  close(): Promise<void>;
}

interface AppContext {
  /** The index, opened read-only with its encoder (opened on the first upload that needs it). */
  index: OpenedIndex;
  token?: string;
  limits: ServerLimits;
  options: ServerOptions;
  pacs?: PacsConfig;
}

/** Status and code for Fastify's and its plugins' own refusals. */
function frameworkError(error: FastifyError): ApiError | undefined {
  if (error.validation) return new ApiError(400, 'BAD_REQUEST', error.message);
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError(413, 'BODY_TOO_LARGE', 'the request body is too large');
    case 'FST_REQ_FILE_TOO_LARGE':
      return new ApiError(413, 'UPLOAD_TOO_LARGE', 'the uploaded file is too large');
    case 'FST_PARTS_LIMIT':
    case 'FST_FILES_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return new ApiError(413, 'TOO_MANY_PARTS', 'send one file per upload');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
      return new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', 'unsupported content type for this route');
    default:
      break;
  }
  if (error instanceof SyntaxError || error.code === 'FST_ERR_CTP_INVALID_JSON_BODY') return new ApiError(400, 'BAD_JSON', 'the body is not valid JSON');
  if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
    return new ApiError(error.statusCode, 'BAD_REQUEST', error.message);
  }
  return undefined;
}

/** Aborts when the client closes the connection before its answer (the page's Cancel, a closed tab),
 * so a search still waiting for a worker leaves the queue. */
function clientGone(response: ServerResponse): AbortSignal {
  const controller = new AbortController();
  // 'close' comes after every answer too; only one not yet written means the client left.
  response.once('close', () => {
    if (!response.writableFinished) controller.abort();
  });
  return controller.signal;
}

function sendError(reply: FastifyReply, error: ApiError): FastifyReply {
  if (error.retryAfterS) reply.header('retry-after', String(error.retryAfterS));
  if (error.statusCode === 401) reply.header('www-authenticate', 'Bearer realm="mir3d"');
  return reply.code(error.statusCode).type('application/json; charset=utf-8').send(errorBody(error));
}

const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

const PAGE_CSP = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "connect-src 'self' blob: data:",
  "worker-src 'self' blob:",
  "font-src 'self' data:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export async function buildApp(context: AppContext): Promise<FastifyInstance> {
  const { index, limits, options } = context;
  const { store } = index;
  const logError = options.logError ?? ((line: string) => process.stderr.write(`${line}\n`));
  const app = Fastify({
    logger: false,
    bodyLimit: limits.maxJsonBytes,
    forceCloseConnections: true,
    return503OnClosing: true,
    routerOptions: { maxParamLength: 256 },
    // Unknown fields are refused (400), not silently dropped: a misspelt option must not be ignored.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false } },
    // Refusals before routing answer in the API's own body too (not Fastify's), so a client reads one shape.
    frameworkErrors: (error, _request, reply) => sendError(reply, routerError(error)),
    clientErrorHandler: (error: NodeJS.ErrnoException, socket) => {
      if (error.code === 'ECONNRESET' || socket.destroyed) return;
      if (socket.writable) socket.write(clientErrorResponse(error));
      socket.destroy(error);
    },
  });

  const keyImages = readEncoderSpec(index.dir)?.keyImages ?? {};
  // The main thread's own PACS client, for pictures of PACS-sourced volumes (fetched again, not stored).
  const pacs = context.pacs ? new PacsAccess(context.pacs) : undefined;
  const volumes = new VolumeService(store, limits, keyImages, pacs ? (record) => pacs.volume(store, record) : undefined);
  // Searches run on worker threads, so list, picture and health requests never wait behind one.
  const pool = new SearchPool({
    dbDir: index.dir,
    ...(limits.searchWorkers !== undefined ? { workers: limits.searchWorkers } : {}),
    ...(limits.searchThreads !== undefined ? { threadsPerWorker: limits.searchThreads } : {}),
    maxQueued: limits.searchQueueLength,
    queueTimeoutMs: limits.searchQueueTimeoutMs,
    logError,
    ...(context.pacs ? { pacs: context.pacs } : {}),
  });
  const showSourceNames = context.options.showSourceNames ?? false;
  const searches = new SearchService({ store, volumes, pool, hasPacs: context.pacs !== undefined, showSourceNames });
  /** Uploads hold a temp file of up to maxUploadBytes each until read. */
  const uploadLimiter = new Limiter('upload', 2, 4);
  const startedAt = Date.now();
  const version = packageVersion();
  const uploadLimits = { maxUploadBytes: limits.maxUploadBytes, maxTotalBytes: limits.maxUnzippedBytes, maxEntries: limits.maxZipEntries };

  // Only JSON bodies outside the upload routes: a text/plain body must be refused (415), not parsed.
  app.removeContentTypeParser('text/plain');
  app.addSchema(apiErrorSchema);
  app.addSchema(publicVolumeSchema);
  app.addSchema(publicUploadSchema);

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const known = error instanceof ApiError ? error : frameworkError(error);
    const apiError = known ?? toApiError(error);
    if (apiError.statusCode >= 500 && apiError.code === 'INTERNAL') {
      // The route pattern, never the URL (it may hold ids); the cause chain, not the wrapper's stack.
      logError(`mir3d serve: ${request.method} ${request.routeOptions.url ?? '?'}: ${describeCauses(apiError.cause ?? error)}`);
    }
    return sendError(reply, apiError);
  });
  app.setNotFoundHandler((request, reply) => sendError(reply, new ApiError(404, 'NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`)));

  app.addHook('onRequest', async (request, reply) => {
    // A page on another site can make a browser send a form or a fetch here (no token needed with
    // --no-auth, and none is checked before the body is read); browsers say where a request comes from.
    if (!SAFE_METHODS.has(request.method)) {
      const crossOrigin = crossOriginReason(request.headers);
      if (crossOrigin) return sendError(reply, new ApiError(403, 'CROSS_ORIGIN', `${crossOrigin}: requests that change state are taken only from this server's own page`));
    }
    // Without a token the server is reachable only from this machine; checking the Host header as well
    // keeps a web page elsewhere from reaching it through DNS rebinding.
    if (!context.token) {
      const host = request.headers.host;
      if (!host || !isLoopbackHost(hostHeaderName(host))) {
        return sendError(reply, new ApiError(403, 'FORBIDDEN_HOST', 'this server (started with --no-auth) answers only requests addressed to localhost'));
      }
      return undefined;
    }
    const route = request.routeOptions.url;
    const path = request.url.split('?')[0].toLowerCase();
    const guarded = route !== undefined ? route.startsWith('/api/') && route !== '/api/health' && route !== '/api/version' : path.startsWith('/api');
    if (!guarded) return undefined;
    const given = bearerToken(request.headers.authorization);
    if (!given) return sendError(reply, new ApiError(401, 'UNAUTHORIZED', 'send the token as Authorization: Bearer <token> (printed by mir3d serve)'));
    if (!tokenMatches(context.token, given)) return sendError(reply, new ApiError(401, 'UNAUTHORIZED', 'the token is not valid for this server'));
    return undefined;
  });

  app.addHook('onSend', async (request, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('x-frame-options', 'DENY');
    reply.header('cross-origin-opener-policy', 'same-origin');
    const route = request.routeOptions.url ?? '';
    if (!route.startsWith('/docs')) reply.header('content-security-policy', PAGE_CSP);
    // Medical data: JSON answers are never cached; pictures and volumes are private to this browser.
    if (route.startsWith('/api/') && !reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return payload;
  });

  if (options.logRequest) {
    const log = options.logRequest;
    app.addHook('onResponse', async (request, reply) => {
      log(`${request.method} ${request.url.split('?')[0]} ${reply.statusCode} ${reply.elapsedTime.toFixed(0)} ms`);
    });
  }

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'mir3d', description: 'Content-based retrieval of 3D CT volumes: search an index with a volume or a slab, see where each match lies.', version: version.version },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'the token printed by mir3d serve (kept in <db>/server-token)' } } },
      security: [{ bearer: [] }],
      tags: [
        { name: 'service', description: 'health and version' },
        { name: 'index', description: 'the index' },
        { name: 'volumes', description: 'indexed volumes' },
        { name: 'uploads', description: 'uploaded query volumes' },
        { name: 'search', description: 'retrieval' },
      ],
    },
    // Shared schemas keep their $id as their name in the description (ApiError, Volume, Upload).
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
    // Upload bodies are streamed, not validated as JSON; the description documents them anyway.
    transform: ({ schema, url }) => {
      if (url !== '/api/uploads' && url !== '/api/search/upload') return { schema, url };
      const body = {
        content: {
          'multipart/form-data': { schema: { type: 'object', properties: { file: { type: 'string', format: 'binary' } }, required: ['file'] } },
          'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
        },
      };
      return { schema: { ...schema, body } as typeof schema, url };
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list' } });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  app.get('/api/health', { schema: routeSchemas.health }, async (): Promise<HealthInfo> => {
    const { workers, busy, queued, maxQueued } = pool.info();
    return { status: 'ok', uptimeS: (Date.now() - startedAt) / 1000, searches: { workers, busy, queued, maxQueued } };
  });
  app.get('/api/version', { schema: routeSchemas.version }, async () => ({ name: version.name, version: version.version, api: 1 }));

  app.get('/api/index', { schema: routeSchemas.index }, async (): Promise<IndexInfo> => {
    const stats = store.stats();
    return {
      encoderId: store.encoderId,
      dim: store.dim,
      volumes: stats.volumes,
      slices: stats.slices,
      methods: [...SEARCH_METHODS],
      windows: WINDOW_NAMES,
      canEmbedUploads: index.canOpenEncoder,
      canSearchPacs: context.pacs !== undefined,
      limits: { maxUploadBytes: limits.maxUploadBytes },
      display: { windows: WINDOW_PRESETS, colors: { query: QUERY_COLOR, match: MATCH_COLOR } },
    };
  });

  app.get<{ Querystring: Pick<SearchParams, 'modality' | 'bodyPart' | 'where'> & { offset: number; limit: number } }>(
    '/api/volumes',
    { schema: routeSchemas.listVolumes },
    async (request) => {
      const { offset, limit } = request.query;
      const filter = filterOf(request.query);
      const all = store.listVolumes(filter);
      return { total: all.length, offset, limit, volumes: all.slice(offset, offset + limit).map((r) => publicVolume(r, showSourceNames)) };
    },
  );

  app.get<{ Params: { volumeId: string } }>('/api/volumes/:volumeId', { schema: routeSchemas.getVolume }, async (request) =>
    publicVolume(volumes.record(request.params.volumeId), showSourceNames),
  );

  app.get<{ Params: { volumeId: string }; Querystring: ThumbnailRequest }>(
    '/api/volumes/:volumeId/thumbnail.png',
    { schema: routeSchemas.volumeThumbnail },
    async (request, reply) => {
      const { volumeId } = request.params;
      volumes.record(volumeId);
      const png = await volumes.thumbnail(volumeId, () => volumes.volume(volumeId), request.query);
      return reply.type('image/png').header('cache-control', 'private, max-age=3600').send(png);
    },
  );

  app.get<{ Params: { volumeId: string } }>('/api/volumes/:volumeId/volume.nii.gz', { schema: routeSchemas.volumeNifti }, async (request, reply) => {
    const { volumeId } = request.params;
    volumes.record(volumeId);
    const bytes = await volumes.niftiGz(volumeId, () => volumes.volume(volumeId));
    return reply
      .type('application/gzip')
      .header('content-disposition', `attachment; filename="${volumeId}.nii.gz"`)
      .header('cache-control', 'private, max-age=3600')
      .send(bytes);
  });

  app.get<{ Params: { uploadId: string } }>('/api/uploads/:uploadId', { schema: routeSchemas.getUpload }, async (request) =>
    publicUpload(volumes.upload(request.params.uploadId)),
  );

  app.delete<{ Params: { uploadId: string } }>('/api/uploads/:uploadId', { schema: routeSchemas.deleteUpload }, async (request, reply) => {
    if (!volumes.deleteUpload(request.params.uploadId)) throw new ApiError(404, 'UPLOAD_NOT_FOUND', `no upload ${request.params.uploadId}`);
    return reply.code(204).send();
  });

  app.get<{ Params: { uploadId: string }; Querystring: ThumbnailRequest }>(
    '/api/uploads/:uploadId/thumbnail.png',
    { schema: routeSchemas.uploadThumbnail },
    async (request, reply) => {
      const upload = volumes.upload(request.params.uploadId);
      const png = await volumes.thumbnail(upload.uploadId, async () => upload.volume, request.query);
      return reply.type('image/png').header('cache-control', 'private, max-age=3600').send(png);
    },
  );

  app.get<{ Params: { uploadId: string } }>('/api/uploads/:uploadId/volume.nii.gz', { schema: routeSchemas.uploadNifti }, async (request, reply) => {
    const upload = volumes.upload(request.params.uploadId);
    const bytes = await volumes.niftiGz(upload.uploadId, async () => upload.volume);
    return reply.type('application/gzip').header('content-disposition', 'attachment; filename="query.nii.gz"').header('cache-control', 'private, max-age=3600').send(bytes);
  });

  // A PACS series as a kept query volume: the page then draws it, cuts slabs of it and shows it beside
  // the results, as for an upload. UIDs only; the server's own PACS and credentials.
  app.post<{ Body: DicomWebQuery }>('/api/uploads/dicomweb', { schema: routeSchemas.createPacsUpload }, async (request, reply) => {
    if (!pacs) throw new ApiError(400, 'NO_PACS', 'this server has no PACS (start mir3d serve with --pacs dicomweb+http(s)://HOST/ROOT, or serve an index synced from one)');
    const { studyInstanceUid, seriesInstanceUid } = request.body;
    // A series that cannot be decoded is the PACS's data, not an indexed source gone bad (422, not 409).
    const volume = await uploadLimiter.run(() => pacs.querySeries(studyInstanceUid, seriesInstanceUid)).catch((error: unknown) => {
      throw toApiError(error, { volumeFromClient: true });
    });
    return reply.code(201).send(publicUpload(volumes.addUpload(volume)));
  });

  app.post<{ Body: SearchBody }>('/api/search', { schema: routeSchemas.search }, async (request, reply) => searches.run(request.body, undefined, clientGone(reply.raw)));

  // Uploads live in their own scope: only these two routes accept multipart and raw volume bytes.
  await app.register(async (scope) => {
    await scope.register(multipart, { throwFileSizeLimit: true, limits: { fileSize: limits.maxUploadBytes, files: 1, fields: 4, parts: 5 } });
    scope.addContentTypeParser(RAW_UPLOAD_TYPES, (_request, payload, done) => done(null, payload));

    scope.post<{ Querystring: { series?: string } }>('/api/uploads', { schema: routeSchemas.createUpload }, async (request, reply) => {
      const { volume } = await uploadLimiter.run(() => readUploadedVolume(request, uploadLimits, request.query.series, keyImages));
      return reply.code(201).send(publicUpload(volumes.addUpload(volume)));
    });

    scope.post<{ Querystring: SearchParams & { series?: string } }>('/api/search/upload', { schema: routeSchemas.searchUpload }, async (request, reply) => {
      const { series, ...params } = request.query;
      const { volume } = await uploadLimiter.run(() => readUploadedVolume(request, uploadLimits, series, keyImages));
      return searches.run(params, volumes.addUpload(volume, false), clientGone(reply.raw));
    });
  });

  const assets = locateWebAssets();
  await app.register(fastifyStatic, { root: assets.publicDir, prefix: '/', wildcard: false, index: ['index.html'] });
  if (existsSync(assets.scriptsDir)) {
    await app.register(fastifyStatic, { root: assets.scriptsDir, prefix: '/app/', wildcard: false, decorateReply: false, allowedPath: (path) => /\.js(\.map)?$/.test(path) });
  }
  if (assets.niivueDir) {
    await app.register(fastifyStatic, { root: assets.niivueDir, prefix: '/vendor/niivue/', wildcard: false, decorateReply: false, allowedPath: (path) => path === '/index.js' });
  }

  app.addHook('onClose', async () => {
    await pool.close();
    await pacs?.close();
  });
  return app;
}

/** Opens the index read-only, prepares the token, and listens. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const host = options.host ?? DEFAULT_HOST;
  const port = options.port ?? DEFAULT_PORT;
  const auth = options.auth ?? true;
  if (!auth && !isLoopbackHost(host)) {
    throw new ServerConfigError('NO_AUTH_NOT_LOCAL', `--no-auth serves the index to anyone who can reach ${host}; without a token the server binds only to localhost (127.0.0.1, ::1)`);
  }
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new ServerConfigError('BAD_PORT', `port ${port} is not 0..65535`);
  if (!indexExists(options.dbDir)) throw new StoreError('NOT_FOUND', options.dbDir, 'no index here (create one with mir3d index)');
  const limits: ServerLimits = { ...DEFAULT_LIMITS, ...options.limits };
  let tokenFile: TokenFile | undefined;
  if (auth) {
    try {
      tokenFile = await ensureToken(options.dbDir, options.tokenFile);
    } catch (error) {
      if (error instanceof TokenFileError) throw new ServerConfigError('TOKEN_FILE', `--token-file ${error.message}`);
      const code = (error as NodeJS.ErrnoException).code;
      throw new ServerConfigError('TOKEN_FILE', `cannot keep the access token${code ? ` (${code})` : ''}: ${error instanceof Error ? error.message : String(error)}; give --token-file with a writable path`);
    }
  }
  const index = await openIndex(options.dbDir, { readOnly: true });
  let app: FastifyInstance;
  try {
    const pacs = await pacsConfigOf(index.store, options.pacs);
    app = await buildApp({ index, ...(tokenFile ? { token: tokenFile.token } : {}), limits, options, ...(pacs ? { pacs } : {}) });
    app.addHook('onClose', async () => index.close());
    await app.listen({ host, port });
  } catch (error) {
    await index.close();
    throw error;
  }
  const address = app.server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  // A wildcard bind is reachable at every address; print one that works from this machine.
  const urlHost = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : shownHost;
  const url = `http://${urlHost}:${address.port}`;
  const assets = locateWebAssets();
  return {
    app,
    url,
    pageUrl: tokenFile ? `${url}/#token=${tokenFile.token}` : `${url}/`,
    ...(tokenFile ? { token: tokenFile.token, tokenFile } : {}),
    ...(assets.problem ? { pageProblem: assets.problem } : {}),
    close: () => app.close(),
  };
}

