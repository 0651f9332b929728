/**
 * `npm run bench:serve`: the HTTP server under concurrent clients.
 *
 * Builds a demo-like phantom index (8 phantoms of 128² voxels, the baseline encoder unless
 * BENCH_ENCODER says otherwise) or uses BENCH_DB, starts `mir3d serve` on it in a child process (so the
 * load generator does not share the server's event loop), and drives it with autocannon: listing,
 * slice thumbnails (varied planes and slices, so both cache hits and renders), search by indexed volume
 * with slab ranges (rerank, slice-count, volume-mean), then all of them mixed. Prints throughput,
 * latency percentiles and the error count per scenario; exits 1 on any error or non-2xx answer.
 *
 * Env: BENCH_DURATION_S=8 (per scenario), BENCH_CONNECTIONS=8, BENCH_DB=<index dir>, BENCH_ENCODER=baseline.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { buildPhantomIndex, type PhantomIndex } from '../test/helpers/phantom-index.js';

const here = dirname(fileURLToPath(import.meta.url));
/** dist/bench → project root. */
const projectRoot = join(here, '..', '..');
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8);

interface VolumeSummary {
  volumeId: string;
  dims: [number, number, number];
}

type CannonRequest = NonNullable<autocannon.Options['requests']>[number];

async function startChild(dbDir: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [join(projectRoot, 'dist/src/cli/main.js'), 'serve', '--db', dbDir, '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the server did not start within 30 s')), 30_000);
    child.once('exit', (code) => reject(new Error(`the server exited with ${code}`)));
    lines.on('line', (line) => {
      const match = / at (http:\/\/\S+)$/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
  });
  return { child, url };
}

function thumbnailRequests(volumes: VolumeSummary[], headers: Record<string, string>): CannonRequest[] {
  const out: CannonRequest[] = [];
  volumes.forEach((v, n) => {
    const [nx, ny, nz] = v.dims;
    out.push({ method: 'GET', path: `/api/volumes/${v.volumeId}/thumbnail.png?plane=coronal&maxPx=320&bandFirst=${Math.floor(nz / 4)}&bandLast=${Math.floor(nz / 2)}&tint=match`, headers });
    // Every axial slice: early passes render, later ones hit the picture cache, as a scrolling page would.
    for (let k = n % 3; k < nz; k += 3) out.push({ method: 'GET', path: `/api/volumes/${v.volumeId}/thumbnail.png?plane=axial&index=${k}&maxPx=256`, headers });
    out.push({ method: 'GET', path: `/api/volumes/${v.volumeId}/thumbnail.png?plane=sagittal&index=${Math.floor(nx / 2)}&window=bone`, headers });
    out.push({ method: 'GET', path: `/api/volumes/${v.volumeId}/thumbnail.png?plane=coronal&index=${Math.floor(ny / 3)}&maxPx=128`, headers });
  });
  return out;
}

function searchRequests(volumes: VolumeSummary[], headers: Record<string, string>): CannonRequest[] {
  const methods = ['rerank', 'slice-count', 'volume-mean'];
  return volumes.flatMap((v, n) => {
    const nz = v.dims[2];
    const first = Math.floor(nz * 0.3);
    const last = Math.floor(nz * 0.6);
    return methods.map((method, m) => ({
      method: 'POST' as const,
      path: '/api/search',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ volumeId: v.volumeId, method, top: 5, ...((n + m) % 2 === 0 ? { firstSlice: first, lastSlice: last } : {}) }),
    }));
  });
}

interface Row {
  scenario: string;
  requests: number;
  perSecond: number;
  p50: number;
  p90: number;
  p99: number;
  errors: number;
}

async function run(scenario: string, url: string, requests: CannonRequest[]): Promise<Row> {
  const result = await autocannon({ url, connections: CONNECTIONS, duration: DURATION_S, requests, timeout: 30 });
  return {
    scenario,
    requests: result.requests.total,
    perSecond: result.requests.average,
    p50: result.latency.p50,
    p90: result.latency.p90,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
  };
}

async function main(): Promise<void> {
  let built: PhantomIndex | undefined;
  let dbDir = process.env.BENCH_DB;
  if (!dbDir) {
    const started = performance.now();
    built = await buildPhantomIndex({ count: 8, matrixPx: 128, encoder: process.env.BENCH_ENCODER ?? 'baseline' });
    dbDir = built.indexDir;
    process.stdout.write(`index: 8 demo-like phantoms (128², ${process.env.BENCH_ENCODER ?? 'baseline'} encoder) built in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  }
  const { child, url } = await startChild(dbDir);
  try {
    const token = (await readFile(join(dbDir, 'server-token'), 'utf8')).trim();
    const headers = { authorization: `Bearer ${token}` };
    const list = (await (await fetch(`${url}/api/volumes?limit=1000`, { headers })).json()) as { volumes: VolumeSummary[] };
    const volumes = list.volumes;
    const listRequests: CannonRequest[] = [
      { method: 'GET', path: '/api/volumes', headers },
      { method: 'GET', path: '/api/volumes?where=coverage=abdomen', headers },
      { method: 'GET', path: `/api/volumes/${volumes[0].volumeId}`, headers },
    ];
    const thumbs = thumbnailRequests(volumes, headers);
    const searches = searchRequests(volumes, headers);
    // Mixed like a page in use: per search, a coronal and an axial picture per result row and a listing now and then.
    const mixed: CannonRequest[] = [];
    for (let n = 0; n < Math.max(thumbs.length, searches.length); n++) {
      mixed.push(searches[n % searches.length], thumbs[n % thumbs.length], thumbs[(n * 3 + 1) % thumbs.length], thumbs[(n * 5 + 2) % thumbs.length]);
      if (n % 4 === 0) mixed.push(listRequests[n % listRequests.length]);
    }
    // Warm-up: decode every volume once, so the first scenario does not measure the cold reads alone.
    for (const request of thumbs.slice(0, volumes.length * 4)) await fetch(`${url}${request.path}`, { headers });

    process.stdout.write(`server: ${url}, ${volumes.length} volumes; autocannon ${CONNECTIONS} connections × ${DURATION_S} s per scenario; ${cpus().length} CPU cores shared by server and clients\n\n`);
    const rows: Row[] = [];
    rows.push(await run('list + inspect', url, listRequests));
    rows.push(await run('thumbnails (PNG)', url, thumbs));
    rows.push(await run('search by id', url, searches));
    rows.push(await run('mixed', url, mixed));
    const header = ['scenario', 'requests', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'errors'];
    const cells = rows.map((r) => [r.scenario, String(r.requests), r.perSecond.toFixed(0), r.p50.toFixed(1), r.p90.toFixed(1), r.p99.toFixed(1), String(r.errors)]);
    const widths = header.map((h, c) => Math.max(h.length, ...cells.map((row) => row[c].length)));
    const line = (row: string[]): string => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ');
    process.stdout.write(`${[line(header), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n')}\n`);
    const errors = rows.reduce((sum, r) => sum + r.errors, 0);
    process.stdout.write(`\nerrors (connection errors, timeouts and non-2xx answers): ${errors}\n`);
    if (errors > 0) process.exitCode = 1;
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    await built?.cleanup();
  }
}

await main();
