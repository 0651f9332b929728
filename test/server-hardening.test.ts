import assert from 'node:assert/strict';
import { chmodSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openIndex } from '../src/ingest/open-index.js';
import { ApiError } from '../src/server/errors.js';
import { buildApp, DEFAULT_LIMITS, ServerConfigError, startServer, type RunningServer } from '../src/server/app.js';
import { runCli } from './helpers/cli.js';
import { bearer, jsonRequest, type ErrorBody } from './helpers/http.js';
import { buildPhantomIndex, type PhantomIndex } from './helpers/phantom-index.js';

/**
 * The server's edges (issue 13, item 9): requests from other sites that would change state, token files
 * that are links, refusals before routing in the API's own body, and what a 500 writes to the log.
 */

let index: PhantomIndex;
let open: RunningServer;
let guarded: RunningServer;
let upload: Buffer;

before(async () => {
  index = await buildPhantomIndex({ count: 2 });
  open = await startServer({ dbDir: index.indexDir, port: 0, auth: false });
  guarded = await startServer({ dbDir: index.indexDir, port: 0 });
  upload = readFileSync(index.phantoms[0].path);
});

after(async () => {
  await open?.close();
  await guarded?.close();
  await index?.cleanup();
});

function assertError(reply: { status: number; body: unknown }, status: number, code: string): void {
  const body = reply.body as ErrorBody;
  assert.equal(reply.status, status, `expected ${status} ${code}, got ${reply.status} ${JSON.stringify(body)}`);
  assert.equal(body?.error?.code, code, JSON.stringify(body));
  assert.equal(typeof body.error.message, 'string');
}

/** Sends raw bytes and returns the status and the parsed JSON body of the answer. */
async function rawRequest(server: RunningServer, text: string): Promise<{ status: number; body: unknown }> {
  const { hostname, port } = new URL(server.url);
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.on('error', (error) => (chunks.length ? resolve(Buffer.concat(chunks).toString('utf8')) : reject(error)));
    socket.setTimeout(10_000, () => socket.destroy());
    socket.write(text);
  });
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
  const bodyText = answer.slice(answer.indexOf('\r\n\r\n') + 4);
  let body: unknown;
  try {
    body = JSON.parse(bodyText);
  } catch {
    body = bodyText;
  }
  return { status, body };
}

/** The error a start with this token file fails with; a server that does start is closed again. */
async function refusedStart(tokenFile: string): Promise<unknown> {
  try {
    const started = await startServer({ dbDir: index.indexDir, port: 0, tokenFile });
    await started.close();
    return new Error('the server started');
  } catch (error) {
    return error;
  }
}

describe('server edges', () => {
  test('requests that change state from another site are refused, with or without a token', async () => {
    const post = (server: RunningServer, headers: Record<string, string>) =>
      jsonRequest(`${server.url}/api/uploads`, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream', ...headers }, body: upload });
    assertError(await post(open, { Origin: 'https://attacker.example' }), 403, 'CROSS_ORIGIN');
    assertError(await post(open, { Origin: 'null' }), 403, 'CROSS_ORIGIN');
    assertError(await post(open, { 'Sec-Fetch-Site': 'cross-site' }), 403, 'CROSS_ORIGIN');
    // A page on another port of this machine is another origin too.
    const otherPort = `http://127.0.0.1:${Number(new URL(open.url).port) + 1}`;
    assertError(await post(open, { Origin: otherPort }), 403, 'CROSS_ORIGIN');
    assertError(await jsonRequest(`${open.url}/api/search`, { method: 'POST', headers: { 'Content-Type': 'application/json', Origin: 'https://attacker.example' }, body: JSON.stringify({ volumeId: index.phantoms[0].volumeId }) }), 403, 'CROSS_ORIGIN');

    // The server's own page (same origin) and clients that are not browsers (no Origin) are served.
    const own = await post(open, { Origin: open.url, 'Sec-Fetch-Site': 'same-origin' });
    assert.equal(own.status, 201, JSON.stringify(own.body));
    assert.equal((await post(open, {})).status, 201);
    // Reading stays open to the same clients.
    assert.equal((await jsonRequest(`${open.url}/api/volumes`, { headers: { Origin: open.url } })).status, 200);

    assertError(await post(guarded, { ...bearer(guarded.token!), Origin: 'https://attacker.example' }), 403, 'CROSS_ORIGIN');
    assert.equal((await post(guarded, { ...bearer(guarded.token!), Origin: guarded.url })).status, 201);
  });

  test('--token-file refuses a symbolic link: the target is neither chmodded nor printed', async () => {
    const target = join(index.dir, 'not-a-token.txt');
    const secret = 'contents-of-some-other-file-0123456789';
    writeFileSync(target, `${secret}\n`);
    chmodSync(target, 0o644);
    const link = join(index.dir, 'token-link');
    symlinkSync(target, link);
    const refusal = await refusedStart(link);
    assert.ok(refusal instanceof ServerConfigError && refusal.code === 'TOKEN_FILE' && /symbolic link/.test(refusal.message), String(refusal));
    assert.ok(!refusal.message.includes(secret));
    assert.equal(statSync(target).mode & 0o777, 0o644, 'the link target keeps its mode');
    const dangling = join(index.dir, 'dangling-link');
    symlinkSync(join(index.dir, 'nowhere'), dangling);
    const danglingRefusal = await refusedStart(dangling);
    assert.ok(danglingRefusal instanceof ServerConfigError && /symbolic link/.test(danglingRefusal.message), String(danglingRefusal));

    const cli = runCli(['serve', '--db', index.indexDir, '--port', '0', '--token-file', link], 15_000);
    assert.equal(cli.status, 2, cli.stderr);
    assert.equal(cli.stderr.trim().split('\n').length, 1, cli.stderr);
    assert.match(cli.stderr, /symbolic link.*\[TOKEN_FILE\]/);
    assert.ok(!cli.stdout.includes(secret) && !cli.stderr.includes(secret), 'the target content is never printed');
  });

  test('refusals before routing (414, 431, a control character, a bad escape) use the API error body', async () => {
    const host = new URL(open.url).host;
    const long = await rawRequest(open, `GET /api/volumes/${'x'.repeat(300)} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    assertError(long, 414, 'URI_TOO_LONG');
    const badEscape = await rawRequest(open, `GET /api/volumes/%zz HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    assertError(badEscape, 400, 'BAD_URL');
    const headers = await rawRequest(open, `GET /api/volumes HTTP/1.1\r\nHost: ${host}\r\nX-Big: ${'y'.repeat(20_000)}\r\nConnection: close\r\n\r\n`);
    assertError(headers, 431, 'HEADERS_TOO_LARGE');
    const control = await rawRequest(open, `GET /api/vol\u0001umes HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    assertError(control, 400, 'BAD_REQUEST');
    const controlHeader = await rawRequest(open, `GET /api/volumes HTTP/1.1\r\nHost: ${host}\r\nX-Bad: a\u0000b\r\nConnection: close\r\n\r\n`);
    assertError(controlHeader, 400, 'BAD_REQUEST');
    // The server still answers afterwards.
    assert.equal((await jsonRequest(`${open.url}/api/health`)).status, 200);
  });

  test('a 500 logs the real cause (not only the wrapper) and the route pattern, never the URL', async () => {
    const lines: string[] = [];
    const opened = await openIndex(index.indexDir, { readOnly: true });
    const app = await buildApp({ index: opened, limits: { ...DEFAULT_LIMITS, searchWorkers: 1 }, options: { dbDir: index.indexDir, logError: (line) => lines.push(line) } });
    try {
      // What search-job does with a defect: wrap it for the API and keep it as the cause.
      app.get('/api/defect/:patient', async () => {
        throw new ApiError(500, 'INTERNAL', 'internal error', undefined, { cause: new RangeError('offset 7 outside the slice table') });
      });
      const reply = await app.inject({ method: 'GET', url: '/api/defect/DOE%5EJOHN', headers: { host: 'localhost' } });
      assert.equal(reply.statusCode, 500);
      assert.deepEqual(JSON.parse(reply.body), { error: { code: 'INTERNAL', message: 'internal error' } });
      const log = lines.join('\n');
      assert.match(log, /RangeError: offset 7 outside the slice table/);
      assert.match(log, /GET \/api\/defect\/:patient/);
      assert.ok(!log.includes('DOE'), 'the URL (which may carry names or ids) is not logged');
    } finally {
      await app.close();
      await opened.close();
    }
  });
});
