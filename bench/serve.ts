/**
 * `npm run bench:serve`: the HTTP server under concurrent clients.
 *
 * Builds a demo-like phantom index (8 phantoms of 128² voxels, the baseline encoder unless
 * BENCH_ENCODER says otherwise) or uses BENCH_DB, starts `mir3d serve` on it in a child process (so the
 * load generator does not share the server's event loop), and drives it with autocannon.
 *
 * 1. Search concurrency: 1, 8 and 32 search clients (search by indexed volume with slab ranges; rerank,
 *    slice-count, volume-mean) for BENCH_DURATION_S each, against one search worker and against the
 *    default pool (one per core), while one more client lists volumes at 20 requests/s: search
 *    throughput, p50/p99 and errors, and the list requests' p99 while searches run. The ratio of pool to
 *    one-worker throughput is measured within this run, the two servers' runs alternating (absolute
 *    figures vary with the machine's load); p99 is the worst of the repeats, the rest their mean.
 * 2. Memory: the 32-client run repeated three times on the pool; the server's resident memory after each.
 * 3. Listing, slice thumbnails (varied planes and slices, so both cache hits and renders) and all mixed,
 *    with BENCH_CONNECTIONS clients.
 * Exits 1 on any error or non-2xx answer.
 *
 * Env: BENCH_DURATION_S=8 (per scenario), BENCH_CONNECTIONS=8, BENCH_CLIENTS=1,8,32, BENCH_REPEATS=2, BENCH_DB=<index dir>,
 * BENCH_ENCODER=baseline.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
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
const CLIENTS = (process.env.BENCH_CLIENTS ?? '1,8,32').split(',').map(Number);
/** People browsing while others search: list requests at this rate. */
const LIST_RATE_PER_S = 20;
/** Alternating runs per configuration and client count (their requests pooled, latencies averaged). */
const REPEATS = Number(process.env.BENCH_REPEATS ?? 2);

interface VolumeSummary {
  volumeId: string;
  dims: [number, number, number];
}

type CannonRequest = NonNullable<autocannon.Options['requests']>[number];

/** Search workers × kernel threads of each. */
interface PoolShape {
  workers: number;
  threads: number;
}

const shapeName = (shape: PoolShape): string => `${shape.workers}×${shape.threads}`;

async function startChild(dbDir: string, shape?: PoolShape): Promise<{ child: ChildProcess; url: string }> {
  const args = [join(projectRoot, 'dist/src/cli/main.js'), 'serve', '--db', dbDir, '--port', '0', '--search-queue', '64'];
  if (shape) args.push('--search-workers', String(shape.workers), '--search-threads', String(shape.threads));
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
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

async function run(scenario: string, url: string, requests: CannonRequest[], connections = CONNECTIONS, overallRate?: number): Promise<Row> {
  const result = await autocannon({ url, connections, duration: DURATION_S, requests, timeout: 30, ...(overallRate ? { overallRate } : {}) });
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

/** Resident memory of a process in MB (Linux /proc), or NaN where unavailable. */
async function residentMb(pid: number | undefined): Promise<number> {
  if (pid === undefined) return Number.NaN;
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status);
    return kb ? Number(kb[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

function table(header: string[], cells: string[][]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...cells.map((row) => row[c].length)));
  const line = (row: string[]): string => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ');
  return `${[line(header), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n')}\n`;
}

interface Served {
  child: ChildProcess;
  url: string;
  headers: Record<string, string>;
  volumes: VolumeSummary[];
}

async function serve(dbDir: string, shape?: PoolShape): Promise<Served> {
  const { child, url } = await startChild(dbDir, shape);
  const token = (await readFile(join(dbDir, 'server-token'), 'utf8')).trim();
  const headers = { authorization: `Bearer ${token}` };
  const list = (await (await fetch(`${url}/api/volumes?limit=1000`, { headers })).json()) as { volumes: VolumeSummary[] };
  return { child, url, headers, volumes: list.volumes };
}

async function stop(served: Served): Promise<void> {
  served.child.kill('SIGTERM');
  await new Promise((resolve) => served.child.once('exit', resolve));
}

interface ConcurrencyRow {
  shape: string;
  clients: number;
  search: Row;
  list: Row;
}

function mergeRuns(runs: ConcurrencyRow[]): ConcurrencyRow {
  const merge = (rows: Row[]): Row => {
    const mean = (pick: (r: Row) => number): number => rows.reduce((sum, r) => sum + pick(r), 0) / rows.length;
    return {
      scenario: rows[0].scenario,
      requests: rows.reduce((sum, r) => sum + r.requests, 0),
      perSecond: mean((r) => r.perSecond),
      p50: mean((r) => r.p50),
      p90: mean((r) => r.p90),
      p99: Math.max(...rows.map((r) => r.p99)),
      errors: rows.reduce((sum, r) => sum + r.errors, 0),
    };
  };
  return { shape: runs[0].shape, clients: runs[0].clients, search: merge(runs.map((r) => r.search)), list: merge(runs.map((r) => r.list)) };
}

/** Searches from `clients` connections while one more lists volumes at a steady rate. */
async function concurrencyRun(served: Served, shape: string, clients: number): Promise<ConcurrencyRow> {
  const searches = searchRequests(served.volumes, served.headers);
  const listing: CannonRequest[] = [{ method: 'GET', path: '/api/volumes', headers: served.headers }];
  const [search, list] = await Promise.all([
    run(`search ×${clients}`, served.url, searches, clients),
    run('list while searching', served.url, listing, 1, LIST_RATE_PER_S),
  ]);
  return { shape, clients, search, list };
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
  const cores = availableParallelism();
  process.stdout.write(`${cores} CPU cores shared by server and clients; ${DURATION_S} s per run\n\n`);

  // ---- 1. search concurrency: one worker against the pool, and 2. memory over repeated runs. Both
  // servers run side by side and their runs alternate (A B A B), so a change in the machine's load
  // between runs (other work on the shared cores) does not fall on one configuration only.
  // One worker with every core's kernel threads (the old one-search-at-a-time server), one worker with
  // one thread, and the default pool: a worker per core with one thread each.
  const shapes: PoolShape[] = [{ workers: 1, threads: cores }, ...(cores > 1 ? [{ workers: 1, threads: 1 }, { workers: cores, threads: 1 }] : [])];
  const names = shapes.map(shapeName);
  const poolName = names[names.length - 1];
  const servers = new Map<string, Served>();
  let errors = 0;
  const memory: number[] = [];
  const rows: ConcurrencyRow[] = [];
  try {
    for (const shape of shapes) servers.set(shapeName(shape), await serve(dbDir, shape));
    // Warm-up: every worker opens the index and runs its first searches before timing starts.
    for (const [n, served] of [...servers.values()].entries()) await run('warm-up', served.url, searchRequests(served.volumes, served.headers), shapes[n].workers);
    for (const clients of CLIENTS) {
      const runs = new Map<string, ConcurrencyRow[]>();
      for (let repeat = 0; repeat < REPEATS; repeat++) {
        for (const name of names) {
          const row = await concurrencyRun(servers.get(name)!, name, clients);
          runs.set(name, [...(runs.get(name) ?? []), row]);
        }
      }
      for (const name of names) {
        const row = mergeRuns(runs.get(name)!);
        rows.push(row);
        process.stdout.write(`  workers×threads ${name}, ${clients} search clients: ${row.search.perSecond.toFixed(1)} searches/s, p99 ${row.search.p99.toFixed(0)} ms, ${row.search.errors} errors; list p99 ${row.list.p99.toFixed(1)} ms\n`);
      }
    }
    const pool = servers.get(poolName)!;
    memory.push(await residentMb(pool.child.pid));
    for (let repeat = 0; repeat < 3; repeat++) {
      const row = await concurrencyRun(pool, poolName, Math.max(...CLIENTS));
      errors += row.search.errors + row.list.errors;
      memory.push(await residentMb(pool.child.pid));
    }
  } finally {
    for (const served of servers.values()) await stop(served);
  }
  process.stdout.write('\n');
  process.stdout.write(
    table(
      ['workers×threads', 'clients', 'searches', 'searches/s', 'p50 ms', 'p99 ms', 'errors', 'list p50 ms', 'list p99 ms', 'list errors'],
      rows.map((r) => [r.shape, String(r.clients), String(r.search.requests), r.search.perSecond.toFixed(1), r.search.p50.toFixed(0), r.search.p99.toFixed(0), String(r.search.errors), r.list.p50.toFixed(1), r.list.p99.toFixed(1), String(r.list.errors)]),
    ),
  );
  errors += rows.reduce((sum, r) => sum + r.search.errors + r.list.errors, 0);
  for (const clients of CLIENTS) {
    const pool = rows.find((r) => r.shape === poolName && r.clients === clients)!;
    const ratios = names.slice(0, -1).map((name) => {
      const one = rows.find((r) => r.shape === name && r.clients === clients)!;
      return `${(pool.search.perSecond / one.search.perSecond).toFixed(2)}× ${name}`;
    });
    if (ratios.length) process.stdout.write(`${clients} clients: pool ${poolName} throughput = ${ratios.join(', ')} (same run)\n`);
  }
  process.stdout.write(`server memory (RSS MB) before and after each of three ${Math.max(...CLIENTS)}-client runs: ${memory.map((m) => m.toFixed(0)).join(' → ')}\n\n`);

  // ---- 3. the other requests, on the default pool.
  const served = await serve(dbDir);
  const { url, headers, volumes } = served;
  try {
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

    process.stdout.write(`server: ${url}, ${volumes.length} volumes; autocannon ${CONNECTIONS} connections × ${DURATION_S} s per scenario\n\n`);
    const others: Row[] = [];
    others.push(await run('list + inspect', url, listRequests));
    others.push(await run('thumbnails (PNG)', url, thumbs));
    others.push(await run('search by id', url, searches));
    others.push(await run('mixed', url, mixed));
    process.stdout.write(
      table(
        ['scenario', 'requests', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'errors'],
        others.map((r) => [r.scenario, String(r.requests), r.perSecond.toFixed(0), r.p50.toFixed(1), r.p90.toFixed(1), r.p99.toFixed(1), String(r.errors)]),
      ),
    );
    errors += others.reduce((sum, r) => sum + r.errors, 0);
    process.stdout.write(`\nerrors (connection errors, timeouts and non-2xx answers): ${errors}\n`);
    if (errors > 0) process.exitCode = 1;
  } finally {
    await stop(served);
    await built?.cleanup();
  }
}

await main();
