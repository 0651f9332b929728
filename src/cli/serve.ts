import { resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import type { RunningServer, ServerOptions } from '../server/app.js';
import { DEFAULT_HOST, DEFAULT_PORT } from '../server/defaults.js';
import { displayPath } from './format.js';

interface ServeCommandOptions {
  db: string;
  port: number;
  host: string;
  auth: boolean;
  tokenFile?: string;
  showSourceNames?: boolean;
  maxUploadMb: number;
  cacheMb: number;
  searchWorkers?: number;
  searchThreads?: number;
  searchQueue: number;
  searchTimeoutS: number;
  log?: boolean;
  pacs?: string;
  viewerUrl?: string;
  credentials?: string;
  caFile?: string;
  pseudonymize?: string;
}

const portNumber = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535) throw new InvalidArgumentError('a port 0..65535 (0 picks a free one)');
  return n;
};

const megabytes = (label: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${label} must be a positive number of MB`);
  return n;
};

const positiveInteger = (label: string, min: number) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${label} must be an integer ≥ ${min}`);
  return n;
};

const seconds = (label: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${label} must be a positive number of seconds`);
  return n;
};

/** The lines `mir3d serve` (and `mir3d demo --serve`) print once listening. */
export function serverBanner(server: RunningServer, dbDir: string): string {
  const lines = [`mir3d serve: index ${displayPath(dbDir)} at ${server.url}`];
  if (server.token) {
    lines.push(`  page:  ${server.pageUrl}`);
    lines.push(`  API:   ${server.url}/api  (Authorization: Bearer <token>; token in ${displayPath(server.tokenFile!.path)})`);
    if (server.tokenFile?.permissionsFixed) lines.push(`  note:  ${displayPath(server.tokenFile.path)} was readable by others; narrowed to 0600`);
  } else {
    lines.push(`  page:  ${server.pageUrl}  (no token: --no-auth, localhost only)`);
  }
  lines.push(`  docs:  ${server.url}/docs  (OpenAPI: ${server.url}/openapi.json)`);
  if (server.pageProblem) lines.push(`  warning: the web page is unavailable: ${server.pageProblem}`);
  lines.push('  Ctrl-C stops it.');
  return `${lines.join('\n')}\n`;
}

/** Resolves when the process is asked to stop (Ctrl-C, SIGTERM), after closing the server. */
export function serveUntilSignal(server: RunningServer): Promise<void> {
  return new Promise((done) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      process.stderr.write('\nmir3d serve: stopping\n');
      server.close().then(done, done);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('Serve an index over HTTP: a JSON API (OpenAPI at /openapi.json) and a web page to search and view results')
    .requiredOption('--db <dir>', 'index directory')
    .option('--port <n>', `port (0 picks a free one)`, portNumber, DEFAULT_PORT)
    .option('--host <addr>', 'address to listen on', DEFAULT_HOST)
    .option('--no-auth', 'no bearer token (only allowed on localhost)')
    .option('--token-file <path>', 'where the token is kept (default <db>/server-token)')
    .option('--max-upload-mb <n>', 'largest upload accepted, in MB', megabytes('--max-upload-mb'), 1024)
    .option('--cache-mb <n>', 'memory for decoded volumes, in MB', megabytes('--cache-mb'), 1024)
    .option('--search-workers <n>', 'search worker threads (default: one per core)', positiveInteger('--search-workers', 1))
    .option('--search-threads <n>', 'kernel threads per search worker (default: cores / workers)', positiveInteger('--search-threads', 1))
    .option('--search-queue <n>', 'searches that may wait for a worker before 503 BUSY', positiveInteger('--search-queue', 0), 64)
    .option('--search-timeout-s <s>', 'longest a search waits for a worker before 503', seconds('--search-timeout-s'), 20)
    .option('--log', 'print one line per request')
    .option('--show-source-names', "show each volume's file and folder name (off by default: archive names often carry patient names or record numbers)")
    .option('--pacs <url>', 'PACS to search by series UID: dicomweb+http(s)://HOST/ROOT (default: the one the index was synced from)')
    .option('--viewer-url <template>', 'viewer link for PACS results, {study} {series} {sop} (default: the one given at index time)')
    .option('--credentials <file>', 'PACS: JSON credentials file, mode 0600 (else MIR3D_DICOMWEB_USER/PASSWORD or MIR3D_DICOMWEB_TOKEN)')
    .option('--ca-file <pem>', 'PACS: CA certificate(s) to trust for https')
    .option('--pseudonymize <secret-file>', 'PACS: the secret of a pseudonymized index, to resolve its links')
    .action(async (options: ServeCommandOptions) => {
      const dbDir = resolve(options.db);
      const serverOptions: ServerOptions = {
        dbDir,
        host: options.host,
        port: options.port,
        auth: options.auth,
        ...(options.tokenFile ? { tokenFile: resolve(options.tokenFile) } : {}),
        limits: {
          maxUploadBytes: Math.round(options.maxUploadMb * 1024 * 1024),
          volumeCacheBytes: Math.round(options.cacheMb * 1024 * 1024),
          ...(options.searchWorkers !== undefined ? { searchWorkers: options.searchWorkers } : {}),
          ...(options.searchThreads !== undefined ? { searchThreads: options.searchThreads } : {}),
          searchQueueLength: options.searchQueue,
          searchQueueTimeoutMs: Math.round(options.searchTimeoutS * 1000),
        },
        ...(options.log ? { logRequest: (line: string) => process.stderr.write(`${line}\n`) } : {}),
        ...(options.showSourceNames ? { showSourceNames: true } : {}),
        pacs: {
          ...(options.pacs !== undefined ? { url: options.pacs } : {}),
          ...(options.viewerUrl !== undefined ? { viewerTemplate: options.viewerUrl } : {}),
          ...(options.credentials !== undefined ? { credentialsFile: resolve(options.credentials) } : {}),
          ...(options.caFile !== undefined ? { caFile: resolve(options.caFile) } : {}),
          ...(options.pseudonymize !== undefined ? { pseudonymizeFile: resolve(options.pseudonymize) } : {}),
        },
      };
      // Loaded here, not at the top: Fastify and its plugins would add ~0.3 s to every other command.
      const { ServerConfigError, startServer } = await import('../server/app.js');
      let server: RunningServer;
      try {
        server = await startServer(serverOptions);
      } catch (error) {
        if (error instanceof ServerConfigError) {
          process.stderr.write(`mir3d serve: ${error.message} [${error.code}]\n`);
          process.exitCode = 2;
          return;
        }
        if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
          process.stderr.write(`mir3d serve: ${options.host}:${options.port} is in use (choose another --port, or 0 for a free one) [EADDRINUSE]\n`);
          process.exitCode = 2;
          return;
        }
        throw error;
      }
      if (options.host !== DEFAULT_HOST && options.auth) {
        process.stderr.write(`mir3d serve: listening on ${options.host} over plain HTTP: put TLS (a reverse proxy) in front before exposing it beyond a trusted network\n`);
      }
      process.stdout.write(serverBanner(server, dbDir));
      await serveUntilSignal(server);
    });
}
