import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writeNifti } from '../src/io/nifti-writer.js';
import { generatePhantom } from '../src/synth/index.js';
import { startServer, type RunningServer } from '../src/server/app.js';
import { bearer, jsonRequest } from './helpers/http.js';
import { buildPhantomIndex, type PhantomIndex } from './helpers/phantom-index.js';
import { projectRoot } from './helpers/shared-data.js';

/**
 * The web page in a real headless Chromium (Debian's `chromium`, driven by playwright-core): sign in,
 * pick a query and draw its slab, search, check the rows against the API, open the viewer, upload a
 * volume; screenshots go to the test's temp folder, and with MIR3D_UPDATE_SCREENSHOTS=1 one to docs/screenshots for the README.
 */

const CHROMIUM = process.env.MIR3D_CHROMIUM ?? '/usr/bin/chromium';
const skipReason = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (install Debian's chromium package, or set MIR3D_CHROMIUM)`;

interface ApiSearch {
  query: { firstSlice: number; lastSlice: number };
  results: { volumeId: string; region?: { firstSlice: number; lastSlice: number }; middleMatch?: { targetSlice: number } }[];
}

interface Evaluator {
  evaluate<T>(expression: string): Promise<T>;
}

/** Polls a page expression until it is true. (Playwright's waitForFunction evaluates strings with
 * eval, which the page's content security policy rightly refuses; evaluate() goes through the
 * DevTools protocol instead.) */
async function until(page: Evaluator, expression: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await page.evaluate<boolean>(`Boolean(${expression})`)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${expression}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

let index: PhantomIndex;
let server: RunningServer;
let outDir: string;

before(async () => {
  if (skipReason) return;
  index = await buildPhantomIndex({ count: 6, matrixPx: 128 });
  server = await startServer({ dbDir: index.indexDir, port: 0 });
  outDir = await mkdtemp(join(tmpdir(), 'mir3d-web-e2e-'));
});

after(async () => {
  await server?.close();
  await index?.cleanup();
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

test('search, results, highlighted region and viewer in headless Chromium', { skip: skipReason, timeout: 90_000 }, async () => {
  const { chromium } = await import('playwright-core');
  const userDataDir = join(outDir, 'chromium-profile');
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 820 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const problems: string[] = [];
  const foreign: string[] = [];
  const origin = new URL(server.url).origin;
  // Anything not from our server is recorded and refused: the page must work with no network at all.
  await context.route('**/*', (route) => {
    const target = route.request().url();
    if (target.startsWith(origin) || target.startsWith('blob:') || target.startsWith('data:')) return route.continue();
    foreign.push(target);
    return route.abort();
  });
  try {
    const page = await context.newPage();
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });

    // ---- sign in through the URL fragment the server prints; the token leaves the address bar.
    await page.goto(server.pageUrl);
    await page.waitForSelector('#app:not([hidden])');
    assert.ok(!page.url().includes('token'), 'the token is taken out of the URL');
    await until(page, "document.querySelector('#query-coronal')?.src.startsWith('blob:')");

    // Every form control has a label.
    const unlabelled = await page.evaluate<string[]>(
      "[...document.querySelectorAll('input, select')].filter((e) => e.type !== 'hidden' && e.labels.length === 0).map((e) => e.id || e.outerHTML.slice(0, 60))",
    );
    assert.deepEqual(unlabelled, []);

    // ---- choose the query: a phantom with a lesion, and a slab drawn on its coronal view.
    const query = index.phantoms.find((p) => p.name === 'phantom-02')!;
    await page.selectOption('#volume-select', query.volumeId);
    await until(page, `(() => { const img = document.querySelector('#query-coronal'); return img.alt.includes(${JSON.stringify(query.volumeId)}) && !document.querySelector('#query-stack').hasAttribute('aria-busy') && img.complete && img.naturalWidth > 0; })()`,
    );
    const box = (await page.locator('#query-coronal').boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height * 0.3);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height * 0.6, { steps: 5 });
    await page.mouse.up();
    const drawn = await page.evaluate<[number, number]>("(() => { const b = document.querySelector('#query-band'); return [Number(b.dataset.firstSlice), Number(b.dataset.lastSlice)]; })()");
    const sliceCount = Number(await page.getAttribute('#last-slice', 'max')) + 1;
    assert.ok(drawn[0] < drawn[1], `a slab was drawn: ${drawn.join('–')}`);
    assert.ok(Math.abs(drawn[1] - Math.round(sliceCount * 0.7)) <= 2 && Math.abs(drawn[0] - Math.round(sliceCount * 0.4)) <= 2, `the band follows the drag: ${drawn.join('–')} of ${sliceCount}`);
    // The sliders then set it exactly.
    const first = Math.round(sliceCount * 0.35);
    const last = Math.round(sliceCount * 0.75);
    await page.fill('#first-slice', String(first));
    await page.fill('#last-slice', String(last));
    assert.match((await page.textContent('#range-summary')) ?? '', new RegExp(`\\(${first}–${last}\\)`));

    await page.click('details summary');
    await page.fill('#opt-top', '5');
    await page.selectOption('#method', 'rerank');
    await page.click('#search-button');
    await page.waitForSelector('.result');
    await until(page, "!document.querySelector('#results').hasAttribute('aria-busy')");

    // ---- the rows agree with the API, and each band marks the localized region.
    const api = await jsonRequest<ApiSearch>(`${server.url}/api/search`, {
      method: 'POST',
      headers: { ...bearer(server.token!), 'Content-Type': 'application/json' },
      body: JSON.stringify({ volumeId: query.volumeId, firstSlice: first, lastSlice: last, method: 'rerank', firstStage: 'slice-count', top: 5, mode: 'exact' }),
    });
    assert.equal(api.status, 200);
    const rows = await page.evaluate<{ volumeId: string; band?: [number, number]; axial: string }[]>(`[...document.querySelectorAll('.result')].map((item) => {
      const band = item.querySelector('.band-match');
      return {
        volumeId: item.dataset.volumeId,
        band: band ? [Number(band.dataset.firstSlice), Number(band.dataset.lastSlice)] : undefined,
        axial: item.querySelector('.axial figcaption')?.textContent ?? '',
      };
    })`);
    assert.deepEqual(rows.map((r) => r.volumeId), api.body.results.map((r) => r.volumeId));
    rows.forEach((row, n) => {
      const region = api.body.results[n].region!;
      assert.deepEqual(row.band, [region.firstSlice, region.lastSlice], `row ${n + 1}'s band is the API's region`);
      assert.match(row.axial, new RegExp(`Axial slice ${api.body.results[n].middleMatch!.targetSlice}:`));
    });
    await until(page, "[...document.querySelectorAll('.result img')].every((img) => img.complete && img.naturalWidth > 0)");
    await page.evaluate('window.scrollTo(0, 0)');
    const resultsShot = join(outDir, 'web-search.png');
    await page.screenshot({ path: resultsShot });
    // The README's picture is refreshed only on request, so a test run never changes tracked files.
    if (process.env.MIR3D_UPDATE_SCREENSHOTS === '1') {
      await mkdir(join(projectRoot, 'docs', 'screenshots'), { recursive: true });
      await copyFile(resultsShot, join(projectRoot, 'docs', 'screenshots', 'web-search.png'));
    }
    assert.ok((await stat(resultsShot)).size > 10_000);

    // ---- the viewer: query and first result side by side at their regions.
    await page.click('.result .open-viewer');
    await page.waitForSelector('#viewer[data-ready="true"]', { timeout: 30_000 });
    const panes = await page.evaluate<string[]>("[...document.querySelectorAll('#viewer .viewer-pane > *')].map((e) => e.tagName)");
    assert.equal(panes.length, 2);
    // WebGL2 works in headless Chromium (SwiftShader): the panes are NiiVue canvases, not the fallback.
    assert.deepEqual(panes, ['CANVAS', 'CANVAS']);
    const titles = await page.evaluate<string[]>("[...document.querySelectorAll('#viewer h3')].map((e) => e.textContent)");
    const region = api.body.results[0].region!;
    assert.match(titles[0], new RegExp(`slices ${api.body.query.firstSlice}–${api.body.query.lastSlice}`));
    assert.match(titles[1], new RegExp(`slices ${region.firstSlice}–${region.lastSlice}`));
    await page.waitForTimeout(300);
    await page.screenshot({ path: join(outDir, 'web-viewer.png') });
    await page.click('#viewer-close');
    assert.equal(await page.evaluate<boolean>("document.querySelector('#viewer').open"), false);

    // ---- an uploaded volume as the query.
    const outsider = generatePhantom({ seed: 77, matrix: [96, 96], spacingMm: [4, 4, 5], coverage: 'abdomen' });
    const uploadPath = join(outDir, 'query.nii.gz');
    await writeNifti(uploadPath, outsider.image);
    await page.check('input[name="source"][value="upload"]');
    await page.setInputFiles('#upload-input', { name: 'query.nii.gz', mimeType: 'application/gzip', buffer: await readFile(uploadPath) });
    await page.click('#upload-button');
    await until(page, "/^Read /.test(document.querySelector('#upload-status').textContent)");
    assert.equal(await page.getAttribute('#last-slice', 'max'), String(outsider.image.dims[2] - 1));
    await page.click('#search-button');
    await until(page, "/results? for/.test(document.querySelector('#search-status').textContent)");
    assert.ok((await page.$$('.result')).length > 0);

    // ---- a tab without the token is asked for it, and a wrong one is refused.
    const fresh = await context.newPage();
    await fresh.goto(`${server.url}/`);
    await fresh.waitForSelector('#token-panel:not([hidden])');
    await fresh.fill('#token-input', 'not-the-token-at-all');
    await fresh.click('#token-form button[type="submit"]');
    await until(fresh, "/refused/.test(document.querySelector('#token-error').textContent)");
    await fresh.fill('#token-input', server.token!);
    await fresh.click('#token-form button[type="submit"]');
    await fresh.waitForSelector('#app:not([hidden])');

    assert.deepEqual(foreign, [], 'no request left the server');
    // A refused wrong token logs one 401 in the console; nothing else may.
    assert.deepEqual(problems.filter((p) => !/401/.test(p)), []);
  } finally {
    await context.close();
  }
});
