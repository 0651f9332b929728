import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A real Orthanc (Debian's `orthanc` + `orthanc-dicomweb`, installed by .ci/run) for tests and the
 * benchmark: a free loopback port, a temporary storage folder, HTTP authentication on, stopped by the
 * caller (and killed with the process at the latest).
 *
 * Orthanc 1.10's defaults are not what a test (or a hospital) wants: its HTTP server listens on every
 * interface (RemoteAccessAllowed=false only refuses remote clients after accepting them), and its DICOM
 * server listens on 4242 on every interface and accepts C-STORE from anyone (DicomAlwaysAllowStore).
 * It has no option to bind an address. So: the DICOM server is switched off, and the HTTP server is
 * pinned to loopback by a 20-line LD_PRELOAD shim (compiled here with the system C compiler) that
 * turns bind(INADDR_ANY) into bind(127.0.0.1); `listeningAddresses()` lets a test prove it.
 */

const PLUGIN_CANDIDATES = ['/usr/lib/orthanc', '/usr/share/orthanc/plugins'];

const SHIM_SOURCE = `#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  static int (*real)(int, const struct sockaddr *, socklen_t);
  if (!real) real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
  if (addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    struct sockaddr_in a; memcpy(&a, addr, sizeof a);
    if (a.sin_addr.s_addr == htonl(INADDR_ANY)) { a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); return real(fd, (const struct sockaddr *)&a, sizeof a); }
  }
  if (addr && addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
    struct sockaddr_in6 a; memcpy(&a, addr, sizeof a);
    if (memcmp(&a.sin6_addr, &in6addr_any, sizeof a.sin6_addr) == 0) { a.sin6_addr = in6addr_loopback; return real(fd, (const struct sockaddr *)&a, sizeof a); }
  }
  return real(fd, addr, len);
}
`;

interface Availability {
  binary: string;
  plugin: string;
  shim: string;
}

function which(name: string): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const path = found.stdout.trim();
  return found.status === 0 && path ? path : undefined;
}

function findPlugin(): string | undefined {
  for (const dir of PLUGIN_CANDIDATES) {
    if (!existsSync(dir)) continue;
    const name = readdirSync(dir).find((f) => /^libOrthancDicomWeb\.so/.test(f));
    if (name) return join(dir, name);
  }
  return undefined;
}

function buildShim(): string | string[] {
  const cc = which('cc') ?? which('gcc');
  if (!cc) return ['no C compiler (cc) to build the loopback-only bind shim'];
  const dir = join(tmpdir(), 'mir3d-orthanc-shim');
  const hash = createHash('sha256').update(SHIM_SOURCE).digest('hex').slice(0, 12);
  const out = join(dir, `bind-loopback-${hash}.so`);
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true });
  const source = join(dir, `bind-loopback-${hash}.c`);
  writeFileSync(source, SHIM_SOURCE);
  const partial = `${out}.${process.pid}.tmp`;
  const built = spawnSync(cc, ['-shared', '-fPIC', '-O2', '-o', partial, source, '-ldl'], { encoding: 'utf8' });
  if (built.status !== 0) return [`building the loopback shim failed: ${built.stderr.trim().split('\n')[0]}`];
  spawnSync('mv', ['-f', partial, out]);
  return out;
}

let availability: Availability | string | undefined;

function probe(): Availability | string {
  const binary = which('Orthanc');
  if (!binary) return 'Orthanc is not installed (apt-get install orthanc orthanc-dicomweb; .ci/run does this)';
  const plugin = findPlugin();
  if (!plugin) return 'the Orthanc DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)';
  const shim = buildShim();
  if (Array.isArray(shim)) return shim[0];
  return { binary, plugin, shim };
}

/** false when a real Orthanc can be started here, else the reason (for a test's `skip`). */
export function skipWithoutOrthanc(): false | string {
  availability ??= probe();
  return typeof availability === 'string' ? availability : false;
}

export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface UploadedSeries {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  orthancSeriesId: string;
  instances: number;
}

export interface OrthancServer {
  port: number;
  /** http://127.0.0.1:PORT */
  httpUrl: string;
  /** dicomweb+http://127.0.0.1:PORT/dicom-web */
  dicomWebUrl: string;
  user: string;
  password: string;
  storageDir: string;
  /** Environment for a mir3d child process that should log in. */
  credentialsEnv: Record<string, string>;
  /** Uploads every file of a folder (through `transform`, e.g. to fill blank UIDs) as one series. */
  uploadFolder(dir: string, transform?: (bytes: Uint8Array, name: string) => Uint8Array): Promise<UploadedSeries>;
  /** Orthanc's own REST call with the test's credentials. */
  rest(path: string, init?: { method?: string; body?: Uint8Array | string }): Promise<Response>;
  /** Listening sockets of the Orthanc process, as "address:port". */
  listeningAddresses(): string[];
  /** Stops it (SIGTERM, then SIGKILL after 5 s); storage is kept until dispose(). */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and storage (the PACS coming back). */
  restart(): Promise<void>;
  /** Stops it and deletes the storage folder. */
  dispose(): Promise<void>;
}

export interface StartOrthancOptions {
  port?: number;
}


function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        const match = /^socket:\[(\d+)\]$/.exec(target);
        if (match) inodes.add(match[1]);
      } catch {
        // fd closed while listing
      }
    }
  } catch {
    // process gone
  }
  return inodes;
}

function decodeAddress(hex: string): string {
  const [address, port] = hex.split(':');
  const portNumber = parseInt(port, 16);
  if (address.length === 8) {
    const bytes = address.match(/../g)!.map((b) => parseInt(b, 16)).reverse();
    return `${bytes.join('.')}:${portNumber}`;
  }
  const v6 = address === '00000000000000000000000001000000' ? '::1' : address === '00000000000000000000000000000000' ? '::' : address;
  return `[${v6}]:${portNumber}`;
}

export async function startOrthanc(options: StartOrthancOptions = {}): Promise<OrthancServer> {
  const skip = skipWithoutOrthanc();
  if (skip) throw new Error(skip);
  const tools = availability as Availability;
  const storageDir = mkdtempSync(join(tmpdir(), 'mir3d-orthanc-'));
  const port = options.port ?? (await freeLoopbackPort());
  const user = 'mir3d-test';
  const password = randomBytes(12).toString('hex');
  const config = {
    Name: 'mir3d-test',
    StorageDirectory: join(storageDir, 'db'),
    IndexDirectory: join(storageDir, 'db'),
    StorageCompression: false,
    // No in-memory cache of stored files: a test that breaks storage must see it.
    MaximumStorageCacheSize: 0,
    Plugins: [tools.plugin],
    HttpPort: port,
    HttpCompressionEnabled: false,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: true,
    RegisteredUsers: { [user]: password },
    DicomServerEnabled: false,
    WebDavEnabled: false,
    SaveJobs: false,
    HttpThreadsCount: 8,
    DicomWeb: { Enable: true, Root: '/dicom-web/', EnableWado: false },
  };
  const configPath = join(storageDir, 'orthanc.json');
  writeFileSync(configPath, JSON.stringify(config, null, 2), { mode: 0o600 });
  const logPath = join(storageDir, 'orthanc.log');
  const authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const httpUrl = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  const onExit = (): void => {
    child?.kill('SIGKILL');
  };
  process.on('exit', onExit);

  const rest = (path: string, init: { method?: string; body?: Uint8Array | string } = {}): Promise<Response> =>
    fetch(`${httpUrl}${path}`, { method: init.method ?? 'GET', headers: { authorization }, ...(init.body !== undefined ? { body: init.body } : {}) });

  const launch = async (): Promise<void> => {
    child = spawn(tools.binary, [`--logdir=${storageDir}`, configPath], {
      env: { ...process.env, LD_PRELOAD: tools.shim },
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    const started = Date.now();
    for (;;) {
      if (child.exitCode !== null) throw new Error(`Orthanc exited at start (${child.exitCode}); see ${logPath}`);
      try {
        const response = await rest('/system');
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() - started > 30_000) throw new Error('Orthanc did not answer within 30 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    running.kill(signal);
    const timer = setTimeout(() => running.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };

  await launch();
  return {
    port,
    httpUrl,
    dicomWebUrl: `dicomweb+${httpUrl}/dicom-web`,
    user,
    password,
    storageDir,
    credentialsEnv: { MIR3D_DICOMWEB_USER: user, MIR3D_DICOMWEB_PASSWORD: password },
    rest,
    async uploadFolder(dir: string, transform?: (bytes: Uint8Array, name: string) => Uint8Array): Promise<UploadedSeries> {
      let seriesId = '';
      let instances = 0;
      for (const name of readdirSync(dir).sort()) {
        const raw = readFileSync(join(dir, name));
        const bytes = transform ? transform(raw, name) : raw;
        const response = await rest('/instances', { method: 'POST', body: bytes });
        if (!response.ok) throw new Error(`Orthanc refused ${name}: HTTP ${response.status} ${await response.text()}`);
        const reply = (await response.json()) as { ParentSeries: string };
        seriesId = reply.ParentSeries;
        instances++;
      }
      const series = (await (await rest(`/series/${seriesId}`)).json()) as { MainDicomTags: { SeriesInstanceUID: string }; ParentStudy: string };
      const study = (await (await rest(`/studies/${series.ParentStudy}`)).json()) as { MainDicomTags: { StudyInstanceUID: string } };
      return { studyInstanceUid: study.MainDicomTags.StudyInstanceUID, seriesInstanceUid: series.MainDicomTags.SeriesInstanceUID, orthancSeriesId: seriesId, instances };
    },
    listeningAddresses(): string[] {
      if (!child?.pid) return [];
      const inodes = socketInodes(child.pid);
      const found: string[] = [];
      for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
        if (!existsSync(table)) continue;
        for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
          const fields = line.trim().split(/\s+/);
          if (fields.length < 10 || fields[3] !== '0A') continue;
          if (inodes.has(fields[9])) found.push(decodeAddress(fields[1]));
        }
      }
      return found;
    },
    stop,
    restart: launch,
    async dispose(): Promise<void> {
      await stop();
      process.off('exit', onExit);
      rmSync(storageDir, { recursive: true, force: true });
    },
  };
}

