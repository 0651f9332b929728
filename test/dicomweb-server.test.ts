import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ApiSearchResult, SearchResponse } from '../src/api/contract.js';
import { readDicomSeries } from '../src/io/dicom.js';
import { canonicalInt16Sha256 } from '../src/io/volume-stats.js';
import { startServer, type RunningServer } from '../src/server/app.js';
import { openStore } from '../src/store/index.js';
import { runCli } from './helpers/cli.js';
import { totalSegWithUids } from './helpers/dicom-uids.js';
import { bearer, jsonRequest, readPng, type ErrorBody } from './helpers/http.js';
import { skipWithoutOrthanc, startOrthanc, type OrthancServer, type UploadedSeries } from './helpers/orthanc.js';
import { buildPhantomIndex } from './helpers/phantom-index.js';
import { hasSharedData, projectRoot, sharedPath, skipWithoutSharedData } from './helpers/shared-data.js';

/**
 * Search by a PACS series over HTTP (POST /api/search with `dicomweb`), viewer links in the server's
 * results, and `mir3d info` on a PACS series, against a real Orthanc (test/helpers/orthanc.ts) holding
 * the three shared DICOM series, indexed over DICOMweb with the baseline encoder.
 */

const skip = skipWithoutSharedData || skipWithoutOrthanc();
const CHROMIUM = process.env.MIR3D_CHROMIUM ?? '/usr/bin/chromium';
const skipWithoutChromium = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (install Debian's chromium package, or set MIR3D_CHROMIUM)`;
const work = mkdtempSync(join(tmpdir(), 'mir3d-dicomweb-server-'));
after(() => rmSync(work, { recursive: true, force: true }));

const SERIES = { ircad: 'ircad17/dicom', totalseg: 'totalseg/dicom', head: 'ge-head-ct-dicom' } as const;
type SeriesName = keyof typeof SERIES;
const TEMPLATE = 'https://viewer.example/viewer?StudyInstanceUIDs={study}&SeriesInstanceUIDs={series}&initialSopInstanceUID={sop}';

interface Instance {
  sop: string;
  zMm: number;
}

describe('PACS over HTTP: search by a series, viewer links, mir3d info', { skip }, () => {
  let orthanc: OrthancServer;
  const uploaded = new Map<SeriesName, UploadedSeries>();
  const instances = new Map<string, Instance[]>();
  const db = join(work, 'index');
  const credentialsFile = join(work, 'pacs-credentials.json');
  let server: RunningServer;
  const logged: string[] = [];

  before(async () => {
    if (skip) return;
    orthanc = await startOrthanc();
    for (const name of Object.keys(SERIES) as SeriesName[]) {
      const series = await orthanc.uploadFolder(sharedPath(SERIES[name]), name === 'totalseg' ? totalSegWithUids : undefined);
      uploaded.set(name, series);
      const listed = (await (await orthanc.rest(`/series/${series.orthancSeriesId}/instances`)).json()) as Array<{ MainDicomTags: { SOPInstanceUID: string; ImagePositionPatient: string } }>;
      instances.set(series.seriesInstanceUid, listed.map((i) => ({ sop: i.MainDicomTags.SOPInstanceUID, zMm: Number(i.MainDicomTags.ImagePositionPatient.split('\\')[2]) })));
    }
    const indexed = runCli(['index', orthanc.dicomWebUrl, '--db', db, '--encoder', 'baseline', '--no-progress'], 180_000, orthanc.credentialsEnv);
    assert.equal(indexed.status, 0, indexed.stderr);
    writeFileSync(credentialsFile, JSON.stringify({ user: orthanc.user, password: orthanc.password }), { mode: 0o600 });
    server = await startServer({
      dbDir: db,
      port: 0,
      limits: { searchWorkers: 1 },
      pacs: { credentialsFile, viewerTemplate: TEMPLATE },
      logRequest: (line) => logged.push(line),
      logError: (line) => logged.push(line),
    });
  });
  after(async () => {
    await server?.close();
    await orthanc?.dispose();
  });

  const post = <T>(target: RunningServer, body: unknown) =>
    jsonRequest<T>(`${target.url}/api/search`, { method: 'POST', headers: { ...bearer(target.token!), 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

  /** Each result's link names the instance Orthanc holds nearest the result's best-matching slice. */
  function checkLinks(results: ApiSearchResult[], template: (s: UploadedSeries, sop: string) => string): void {
    const store = openStore(db, { readOnly: true });
    try {
      for (const result of results) {
        const viewer = result.viewer;
        assert.ok(viewer, `result ${result.volumeId} has a viewer link`);
        const series = [...uploaded.values()].find((u) => u.seriesInstanceUid === viewer.seriesInstanceUid);
        assert.ok(series, 'the link names a series in the PACS');
        assert.equal(viewer.studyInstanceUid, series.studyInstanceUid);
        const best = result.matches!.reduce((a, m) => (m.similarity > a.similarity ? m : a));
        const vectors = store.getVectors([result.volumeId]).get(result.volumeId)!;
        const zMm = vectors.zMm[Array.from(vectors.sliceIndices).indexOf(best.targetSlice)];
        const nearest = [...instances.get(series.seriesInstanceUid)!].sort((a, b) => Math.abs(a.zMm - zMm) - Math.abs(b.zMm - zMm))[0];
        assert.equal(viewer.sopInstanceUid, nearest.sop, 'the instance of the best-matching slice');
        assert.equal(viewer.url, template(series, nearest.sop));
      }
    } finally {
      store.close();
    }
  }

  test('POST /api/search with a PACS series: fetched, not added; each result carries the UIDs of its best-matching slice and the link', async () => {
    const query = uploaded.get('ircad')!;
    const reply = await post<SearchResponse>(server, { dicomweb: { studyInstanceUid: query.studyInstanceUid, seriesInstanceUid: query.seriesInstanceUid }, k: 100, matches: true });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const { body } = reply;
    assert.ok(body.query.volumeId, 'the PACS copy is recognised as the indexed volume (same voxels)');
    assert.equal(body.results.length, 2, 'the two other series');
    assert.equal(body.viewerLinkProblem, undefined);
    checkLinks(body.results, (s, sop) => `https://viewer.example/viewer?StudyInstanceUIDs=${s.studyInstanceUid}&SeriesInstanceUIDs=${s.seriesInstanceUid}&initialSopInstanceUID=${sop}`);

    // A study alone: its CT series with the most instances (the only one here).
    const byStudy = await post<SearchResponse>(server, { dicomweb: { studyInstanceUid: query.studyInstanceUid }, k: 100 });
    assert.equal(byStudy.status, 200, JSON.stringify(byStudy.body));
    assert.equal(byStudy.body.query.volumeId, body.query.volumeId);
    // Indexed queries get links too.
    const indexed = await post<SearchResponse>(server, { volumeId: body.query.volumeId, k: 100, matches: true });
    assert.equal(indexed.status, 200);
    assert.ok(indexed.body.results.every((r) => r.viewer?.url?.startsWith('https://viewer.example/')));
    // The page's way: the series kept as a query volume (like an upload), recognised as indexed.
    const kept = await jsonRequest<{ uploadId: string; indexedAs?: string; dims: number[] }>(`${server.url}/api/uploads/dicomweb`, {
      method: 'POST',
      headers: { ...bearer(server.token!), 'Content-Type': 'application/json' },
      body: JSON.stringify({ studyInstanceUid: query.studyInstanceUid, seriesInstanceUid: query.seriesInstanceUid }),
    });
    assert.equal(kept.status, 201, JSON.stringify(kept.body));
    assert.equal(kept.body.indexedAs, body.query.volumeId);
    const byUpload = await post<SearchResponse>(server, { uploadId: kept.body.uploadId, k: 100 });
    assert.deepEqual(byUpload.body.results.map((r) => r.volumeId), body.results.map((r) => r.volumeId));
    const store = openStore(db, { readOnly: true });
    assert.equal(store.stats().volumes, 3, 'nothing was added to the index');
    store.close();
    // The index keeps vectors, not images: pictures of PACS volumes are fetched from the PACS again.
    const picture = await fetch(`${server.url}/api/volumes/${body.results[0].volumeId}/thumbnail.png?plane=axial&maxPx=64`, { headers: bearer(server.token!) });
    assert.equal(picture.status, 200);
    const png = readPng(new Uint8Array(await picture.arrayBuffer()));
    assert.ok(png.width > 0 && png.height > 0);
    assert.ok(logged.every((line) => !line.includes(orthanc.password) && !line.includes(query.seriesInstanceUid)), 'no credentials or UIDs in the log');
  });

  test('refusals: unknown series, malformed UIDs, an address or credentials in the request, one of the query kinds only', async () => {
    const query = uploaded.get('head')!;
    const unknown = await post<ErrorBody>(server, { dicomweb: { studyInstanceUid: query.studyInstanceUid, seriesInstanceUid: '1.2.3.4.5.6.7.8.9' } });
    assert.equal(unknown.status, 404, JSON.stringify(unknown.body));
    assert.equal(unknown.body.error.code, 'PACS_NOT_FOUND');
    assert.equal(unknown.body.error.message.split('\n').length, 1);
    const unknownKept = await jsonRequest<ErrorBody>(`${server.url}/api/uploads/dicomweb`, {
      method: 'POST',
      headers: { ...bearer(server.token!), 'Content-Type': 'application/json' },
      body: JSON.stringify({ studyInstanceUid: query.studyInstanceUid, seriesInstanceUid: '1.2.3.4.5.6.7.8.9' }),
    });
    assert.equal(unknownKept.status, 404);
    assert.equal(unknownKept.body.error.code, 'PACS_NOT_FOUND');
    assert.ok(!unknown.body.error.message.includes('1.2.3.4.5.6.7.8.9'), 'no UID in the message');
    for (const body of [
      { dicomweb: { studyInstanceUid: '1.2.x' } },
      { dicomweb: { studyInstanceUid: query.studyInstanceUid, url: 'http://elsewhere.example/dicom-web' } },
      { dicomweb: { studyInstanceUid: query.studyInstanceUid, password: 'x' } },
      { dicomweb: {} },
    ]) {
      const reply = await post<ErrorBody>(server, body);
      assert.equal(reply.status, 400, JSON.stringify(body));
      assert.equal(reply.body.error.code, 'BAD_REQUEST');
    }
    // The server's own credentials refused by the PACS: a bad gateway, not the client's fault; no password shown.
    const wrongFile = join(work, 'wrong-credentials.json');
    writeFileSync(wrongFile, JSON.stringify({ user: orthanc.user, password: 'wrong-password' }), { mode: 0o600 });
    const refused = await startServer({ dbDir: db, port: 0, limits: { searchWorkers: 1 }, pacs: { credentialsFile: wrongFile } });
    try {
      const reply = await post<ErrorBody>(refused, { dicomweb: { studyInstanceUid: query.studyInstanceUid, seriesInstanceUid: query.seriesInstanceUid } });
      assert.equal(reply.status, 502, JSON.stringify(reply.body));
      assert.equal(reply.body.error.code, 'PACS_UNAUTHORIZED');
      assert.ok(!JSON.stringify(reply.body).includes('wrong-password'));
    } finally {
      await refused.close();
    }
    const both = await post<ErrorBody>(server, { dicomweb: { studyInstanceUid: query.studyInstanceUid }, volumeId: 'a'.repeat(16) });
    assert.equal(both.status, 400);
    assert.equal(both.body.error.code, 'BAD_QUERY');
  });

  test('a pseudonymized index: UIDs resolved back through QIDO-RS for the links; without the secret, results say why they have none', async () => {
    const pdb = join(work, 'pseudonymized');
    const secret = join(work, 'secret');
    writeFileSync(secret, randomBytes(32).toString('hex'), { mode: 0o600 });
    const indexed = runCli(['index', orthanc.dicomWebUrl, '--db', pdb, '--encoder', 'baseline', '--no-progress', '--pseudonymize', secret], 180_000, orthanc.credentialsEnv);
    assert.equal(indexed.status, 0, indexed.stderr);
    const stone = 'http://orthanc/stone-webviewer/index.html?study={study}&series={series}';
    const query = uploaded.get('totalseg')!;
    const withSecret = await startServer({ dbDir: pdb, port: 0, limits: { searchWorkers: 1 }, pacs: { credentialsFile, viewerTemplate: stone, pseudonymizeFile: secret } });
    try {
      const reply = await post<SearchResponse>(withSecret, { dicomweb: { studyInstanceUid: query.studyInstanceUid, seriesInstanceUid: query.seriesInstanceUid }, k: 100, matches: true });
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      assert.equal(reply.body.results.length, 2);
      for (const r of reply.body.results) {
        const series = [...uploaded.values()].find((u) => u.seriesInstanceUid === r.viewer?.seriesInstanceUid);
        assert.ok(series, 'resolved to a real series UID');
        assert.equal(r.viewer!.url, `http://orthanc/stone-webviewer/index.html?study=${series.studyInstanceUid}&series=${series.seriesInstanceUid}`);
        assert.ok(instances.get(series.seriesInstanceUid)!.some((i) => i.sop === r.viewer!.sopInstanceUid), 'a real SOP Instance UID');
      }
      const picture = await fetch(`${withSecret.url}/api/volumes/${reply.body.results[0].volumeId}/thumbnail.png?maxPx=64`, { headers: bearer(withSecret.token!) });
      assert.equal(picture.status, 200, 'a pseudonymized PACS volume is found again for its picture');
    } finally {
      await withSecret.close();
    }
    const noSecret = await startServer({ dbDir: pdb, port: 0, limits: { searchWorkers: 1 }, pacs: { credentialsFile } });
    try {
      const reply = await post<SearchResponse>(noSecret, { dicomweb: { studyInstanceUid: query.studyInstanceUid, seriesInstanceUid: query.seriesInstanceUid }, k: 100 });
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      assert.ok(reply.body.results.length > 0);
      assert.ok(reply.body.results.every((r) => r.viewer === undefined));
      assert.match(reply.body.viewerLinkProblem ?? '', /pseudonymized UIDs.*\[CREDENTIALS\]$/);
    } finally {
      await noSecret.close();
    }
  });

  test('mir3d info on a PACS series prints the same canonical SHA-256 as its files on disk', async () => {
    for (const name of ['ircad', 'head'] as const) {
      const series = uploaded.get(name)!;
      const run = runCli(['info', `${orthanc.dicomWebUrl}/studies/${series.studyInstanceUid}/series/${series.seriesInstanceUid}`, '--json'], 120_000, orthanc.credentialsEnv);
      assert.equal(run.status, 0, run.stderr);
      const info = JSON.parse(run.stdout) as { sha256Int16: string; path: string };
      assert.equal(info.sha256Int16, canonicalInt16Sha256(await readDicomSeries(sharedPath(SERIES[name]))));
      assert.ok(!run.stdout.includes(series.seriesInstanceUid) && !run.stdout.includes(series.studyInstanceUid), 'no UID in the output');
    }
    const text = runCli(['info', `${orthanc.dicomWebUrl}/studies/${uploaded.get('head')!.studyInstanceUid}`], 120_000, orthanc.credentialsEnv);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /sha256 int16 {2}[0-9a-f]{64}/);
    const wrong = runCli(['info', `${orthanc.dicomWebUrl}/studies/${uploaded.get('head')!.studyInstanceUid}`], 60_000, { MIR3D_DICOMWEB_USER: orthanc.user, MIR3D_DICOMWEB_PASSWORD: 'wrong' });
    assert.equal(wrong.status, 2);
    assert.match(wrong.stderr.trim(), /^[^\n]*\[UNAUTHORIZED\]$/);
  });

  test('the web page (real Chromium): enter a series UID, see results, each PACS card links to its best-matching slice', { skip: skipWithoutChromium, timeout: 180_000 }, async () => {
    const { chromium } = await import('playwright-core');
    const profile = mkdtempSync(join(work, 'chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 800 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const problems: string[] = [];
    const foreign: string[] = [];
    try {
      const origin = new URL(server.url).origin;
      await context.route('**/*', (route) => {
        const target = route.request().url();
        if (target.startsWith(origin) || target.startsWith('blob:') || target.startsWith('data:')) return route.continue();
        foreign.push(target);
        return route.abort();
      });
      const page = await context.newPage();
      page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(`console: ${message.text()}`);
      });
      await page.goto(server.pageUrl);
      await page.waitForSelector('#pacs-choice:not([hidden])');
      await page.check('input[name="source"][value="pacs"]');
      const query = uploaded.get('head')!;
      // A malformed UID is said on the page, and nothing is searched.
      await page.fill('#pacs-study', 'not a uid');
      await page.click('#pacs-search');
      assert.match((await page.textContent('#pacs-status')) ?? '', /Study Instance UID/);
      assert.equal(await page.locator('#results .result').count(), 0);

      await page.fill('#pacs-study', query.studyInstanceUid);
      await page.fill('#pacs-series', query.seriesInstanceUid);
      const fetched = page.waitForResponse((r) => r.url().endsWith('/api/uploads/dicomweb') && r.request().method() === 'POST');
      const answered = page.waitForResponse((r) => r.url().endsWith('/api/search') && r.request().method() === 'POST');
      await page.click('#pacs-search');
      const pacsUpload = await fetched;
      assert.equal(pacsUpload.status(), 201);
      assert.deepEqual(JSON.parse(pacsUpload.request().postData() ?? '{}'), { studyInstanceUid: query.studyInstanceUid, seriesInstanceUid: query.seriesInstanceUid }, 'the page sends UIDs only');
      const { uploadId } = (await pacsUpload.json()) as { uploadId: string };
      const response = await answered;
      assert.equal(response.status(), 200);
      assert.equal((JSON.parse(response.request().postData() ?? '{}') as { uploadId?: string }).uploadId, uploadId, 'the search runs on the fetched series');
      const api = (await response.json()) as SearchResponse;
      assert.ok(api.results.length > 0);
      checkLinks(api.results, (s, sop) => `https://viewer.example/viewer?StudyInstanceUIDs=${s.studyInstanceUid}&SeriesInstanceUIDs=${s.seriesInstanceUid}&initialSopInstanceUID=${sop}`);
      for (let tries = 0; tries < 200 && (await page.locator('#results .result').count()) < api.results.length; tries++) await new Promise((r) => setTimeout(r, 100));
      const cards = await page.evaluate<Array<{ volumeId: string; href?: string; study?: string; series?: string; sop?: string }>>(`[...document.querySelectorAll('#results .result')].map((item) => {
        const line = item.querySelector('.viewer-link');
        return { volumeId: item.dataset.volumeId, href: line?.querySelector('a')?.href, study: line?.dataset.studyUid, series: line?.dataset.seriesUid, sop: line?.dataset.sopUid };
      })`);
      assert.deepEqual(cards.map((c) => c.volumeId), api.results.map((r) => r.volumeId), 'the cards are the API results, in order');
      for (const [n, card] of cards.entries()) {
        const viewer = api.results[n].viewer!;
        assert.equal(card.href, viewer.url, 'the card links where the API says');
        assert.deepEqual([card.study, card.series, card.sop], [viewer.studyInstanceUid, viewer.seriesInstanceUid, viewer.sopInstanceUid]);
      }
      assert.match((await page.textContent('#search-status')) ?? '', /results? for/);
      // The fetched series is the query volume: its coronal view, and its slice beside each match.
      assert.match((await page.getAttribute('#query-coronal', 'alt')) ?? '', /PACS series/);
      assert.equal(await page.locator('#results .open-viewer:visible').count(), api.results.length);
      // Each card's pictures (fetched again from the PACS by the server) are shown.
      for (let tries = 0; tries < 300; tries++) {
        const loaded = await page.evaluate<boolean>("[...document.querySelectorAll('#results .query-slice img, #results .match-slice img, #results .coronal img')].every((img) => img.complete && img.naturalWidth > 0 && img.src.startsWith('blob:'))");
        if (loaded) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(await page.evaluate<boolean>("[...document.querySelectorAll('#results .match-slice img, #results .coronal img')].every((img) => img.complete && img.naturalWidth > 0)"), 'the result pictures load');
      await page.screenshot({ path: join(work, 'web-pacs.png') });
      if (process.env.MIR3D_UPDATE_SCREENSHOTS === '1') copyFileSync(join(work, 'web-pacs.png'), join(projectRoot, 'docs', 'screenshots', 'web-pacs.png'));
      assert.deepEqual(foreign, [], 'nothing fetched from elsewhere');
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  // Last: it stops the PACS.
  test('the PACS down: 502 PACS_UNREACHABLE in one line, and the server goes on answering', async () => {
    const query = uploaded.get('head')!;
    await orthanc.stop();
    const reply = await post<ErrorBody>(server, { dicomweb: { studyInstanceUid: query.studyInstanceUid, seriesInstanceUid: query.seriesInstanceUid } });
    assert.equal(reply.status, 502, JSON.stringify(reply.body));
    assert.equal(reply.body.error.code, 'PACS_UNREACHABLE');
    assert.equal(reply.body.error.message.split('\n').length, 1);
    assert.ok(!reply.body.error.message.includes(orthanc.password));
    const health = await jsonRequest<{ status: string }>(`${server.url}/api/health`);
    assert.equal(health.body.status, 'ok');
  });
});

test('a server without a PACS refuses a dicomweb query with NO_PACS', async () => {
  const index = await buildPhantomIndex({ count: 2, matrixPx: 32 });
  const server = await startServer({ dbDir: index.indexDir, port: 0, limits: { searchWorkers: 1 } });
  try {
    const reply = await jsonRequest<ErrorBody & { canSearchPacs?: boolean }>(`${server.url}/api/search`, {
      method: 'POST',
      headers: { ...bearer(server.token!), 'Content-Type': 'application/json' },
      body: JSON.stringify({ dicomweb: { studyInstanceUid: '1.2.3' } }),
    });
    assert.equal(reply.status, 400);
    assert.equal(reply.body.error.code, 'NO_PACS');
    const kept = await jsonRequest<ErrorBody>(`${server.url}/api/uploads/dicomweb`, {
      method: 'POST',
      headers: { ...bearer(server.token!), 'Content-Type': 'application/json' },
      body: JSON.stringify({ studyInstanceUid: '1.2.3' }),
    });
    assert.equal(kept.status, 400);
    assert.equal(kept.body.error.code, 'NO_PACS');
    const info = await jsonRequest<{ canSearchPacs?: boolean }>(`${server.url}/api/index`, { headers: bearer(server.token!) });
    assert.equal(info.body.canSearchPacs, false);
  } finally {
    await server.close();
    await index.cleanup();
  }
});

if (!hasSharedData) test('PACS server tests need the shared DICOM series', { skip: skipWithoutSharedData }, () => undefined);
