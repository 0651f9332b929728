import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import type { SearchResponse } from '../src/api/contract.js';
import { writeNifti } from '../src/io/nifti-writer.js';
import { generatePhantom } from '../src/synth/index.js';
import { startServer, type RunningServer } from '../src/server/app.js';
import { bearer, jsonRequest, readPng } from './helpers/http.js';
import { buildPhantomIndex, type PhantomIndex } from './helpers/phantom-index.js';
import { projectRoot } from './helpers/shared-data.js';

/**
 * The web page in a real headless Chromium (Debian's `chromium`, driven by playwright-core): sign in
 * (also through the token URL opened in a tab that shows the sign-in form), draw a slab, search, check
 * the cards against the API, change the display window (pixels change, the slab stays), read query and
 * result side by side in the viewer with the keyboard (the result follows the found alignment), upload
 * volumes (stale results go), and use a narrow window. Nothing may be fetched from anywhere but the
 * server. Screenshots go to the test's temp folder; with MIR3D_UPDATE_SCREENSHOTS=1 also to
 * docs/screenshots for the README.
 */

const CHROMIUM = process.env.MIR3D_CHROMIUM ?? '/usr/bin/chromium';
const skipReason = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (install Debian's chromium package, or set MIR3D_CHROMIUM)`;
const UPDATE_SCREENSHOTS = process.env.MIR3D_UPDATE_SCREENSHOTS === '1';

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

/** Share of pixels that differ between two same-sized PNG screenshots. */
function changedFraction(a: Buffer, b: Buffer): number {
  const x = readPng(a);
  const y = readPng(b);
  assert.equal(x.width, y.width);
  assert.equal(x.height, y.height);
  let changed = 0;
  for (let p = 0; p < x.data.length; p += 4) {
    if (Math.abs(x.data[p] - y.data[p]) + Math.abs(x.data[p + 1] - y.data[p + 1]) + Math.abs(x.data[p + 2] - y.data[p + 2]) > 12) changed++;
  }
  return changed / (x.width * x.height);
}

let index: PhantomIndex;
let server: RunningServer;
let outDir: string;
let context: BrowserContext;
let page: Page;
const problems: string[] = [];
const foreign: string[] = [];

async function screenshot(name: string): Promise<void> {
  const path = join(outDir, name);
  await page.screenshot({ path });
  assert.ok((await stat(path)).size > 10_000, `${name} shows something`);
  // The README's pictures are refreshed only on request, so a test run never changes tracked files.
  if (UPDATE_SCREENSHOTS) {
    await mkdir(join(projectRoot, 'docs', 'screenshots'), { recursive: true });
    await copyFile(path, join(projectRoot, 'docs', 'screenshots', name));
  }
}

const imagesLoaded = (selector: string): string => `[...document.querySelectorAll(${JSON.stringify(selector)})].length > 0 && [...document.querySelectorAll(${JSON.stringify(selector)})].every((img) => img.complete && img.naturalWidth > 0 && img.src.startsWith('blob:'))`;

async function apiSearch(body: Record<string, unknown>): Promise<SearchResponse> {
  const reply = await jsonRequest<SearchResponse>(`${server.url}/api/search`, {
    method: 'POST',
    headers: { ...bearer(server.token!), 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(reply.status, 200);
  return reply.body;
}

async function chooseQuery(name: string): Promise<{ volumeId: string; sliceCount: number }> {
  const query = index.phantoms.find((p) => p.name === name)!;
  await page.check('input[name="source"][value="indexed"]');
  await page.selectOption('#volume-select', query.volumeId);
  await until(page, `(() => { const img = document.querySelector('#query-coronal'); return img.alt.includes(${JSON.stringify(name)}) && !document.querySelector('#query-stack').hasAttribute('aria-busy') && img.complete && img.naturalWidth > 0; })()`);
  return { volumeId: query.volumeId, sliceCount: Number(await page.getAttribute('#last-slice', 'max')) + 1 };
}

async function search(): Promise<void> {
  await page.click('#search-button');
  await until(page, "/results? for/.test(document.querySelector('#search-status').textContent) && !document.querySelector('#results').hasAttribute('aria-busy')");
}

before(async () => {
  if (skipReason) return;
  index = await buildPhantomIndex({ count: 6, matrixPx: 128 });
  server = await startServer({ dbDir: index.indexDir, port: 0 });
  outDir = await mkdtemp(join(tmpdir(), 'mir3d-web-e2e-'));
  const { chromium } = await import('playwright-core');
  context = await chromium.launchPersistentContext(join(outDir, 'chromium-profile'), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const origin = new URL(server.url).origin;
  // Anything not from our server is recorded and refused: the page must work with no network at all.
  await context.route('**/*', (route) => {
    const target = route.request().url();
    if (target.startsWith(origin) || target.startsWith('blob:') || target.startsWith('data:')) return route.continue();
    foreign.push(target);
    return route.abort();
  });
  page = await context.newPage();
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
});

after(async () => {
  await context?.close();
  await server?.close();
  await index?.cleanup();
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

describe('web page in headless Chromium', { skip: skipReason }, () => {
  test('sign in, draw a slab, search: cards show the query slice beside its match, as the API ranks them', { timeout: 120_000 }, async () => {
    // ---- sign in through the URL fragment the server prints; the token leaves the address bar.
    await page.goto(server.pageUrl);
    await page.waitForSelector('#app:not([hidden])');
    assert.ok(!page.url().includes('token'), 'the token is taken out of the URL');
    await until(page, "document.querySelector('#query-coronal')?.src.startsWith('blob:')");
    const unlabelled = await page.evaluate<string[]>(
      "[...document.querySelectorAll('input, select')].filter((e) => e.type !== 'hidden' && e.labels.length === 0).map((e) => e.id || e.outerHTML.slice(0, 60))",
    );
    assert.deepEqual(unlabelled, [], 'every form control has a label');
    // The five presets, from the server.
    const presets = await page.evaluate<string[]>("[...document.querySelectorAll('#display-window option')].map((o) => o.textContent)");
    assert.deepEqual(presets, ['soft tissue', 'lung', 'bone', 'brain', 'liver', 'custom']);

    // ---- the query: a phantom with a lesion, and a slab drawn on its coronal view.
    const { volumeId, sliceCount } = await chooseQuery('phantom-02');
    const box = (await page.locator('#query-coronal').boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height * 0.3);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height * 0.6, { steps: 5 });
    await page.mouse.up();
    const drawn = await page.evaluate<[number, number]>("(() => { const b = document.querySelector('#query-band'); return [Number(b.dataset.firstSlice), Number(b.dataset.lastSlice)]; })()");
    assert.ok(Math.abs(drawn[1] - Math.round(sliceCount * 0.7)) <= 2 && Math.abs(drawn[0] - Math.round(sliceCount * 0.4)) <= 2, `the band follows the drag: ${drawn.join('–')} of ${sliceCount}`);
    const first = Math.round(sliceCount * 0.35);
    const last = Math.round(sliceCount * 0.75);
    await page.fill('#first-slice', String(first));
    await page.fill('#last-slice', String(last));
    assert.match((await page.textContent('#range-summary')) ?? '', new RegExp(`\\(${first}–${last}\\)`));

    await page.click('details summary');
    await page.fill('#opt-top', '5');
    await page.selectOption('#method', 'rerank');
    await search();

    // ---- the cards agree with the API; each outlines the localized region and pairs the slices.
    const api = await apiSearch({ volumeId, firstSlice: first, lastSlice: last, method: 'rerank', firstStage: 'slice-count', top: 5, mode: 'exact' });
    const cards = await page.evaluate<{ volumeId: string; outline?: [number, number]; name: string; query: string; match: string; sizes: number[] }[]>(`[...document.querySelectorAll('.result')].map((item) => {
      const outline = item.querySelector('.coronal .region-outline');
      return {
        volumeId: item.dataset.volumeId,
        outline: outline ? [Number(outline.dataset.firstSlice), Number(outline.dataset.lastSlice)] : undefined,
        name: item.querySelector('h3').textContent,
        query: item.querySelector('.query-slice figcaption').textContent,
        match: item.querySelector('.match-slice figcaption').textContent,
        sizes: [...item.querySelectorAll('.slice-pair img')].map((img) => Math.min(img.getBoundingClientRect().width, img.getBoundingClientRect().height)),
      };
    })`);
    assert.deepEqual(cards.map((c) => c.volumeId), api.results.map((r) => r.volumeId));
    cards.forEach((card, n) => {
      const result = api.results[n];
      assert.deepEqual(card.outline, [result.region!.firstSlice, result.region!.lastSlice], `card ${n + 1} outlines the API's region`);
      assert.match(card.query, new RegExp(`^Query slice ${result.middleMatch!.querySlice}$`));
      assert.match(card.match, new RegExp(`^Slice ${result.middleMatch!.targetSlice}:`));
      assert.equal(card.name, String(result.labels.phantom), 'named by its label, not its id');
      assert.ok(card.sizes.every((s) => s >= 256), `slices shown at 256 px or more: ${card.sizes.join(', ')}`);
    });
    assert.match((await page.textContent('#score-note')) ?? '', /mean, over the \d+ query slices, of each one's best cosine similarity/);
    await until(page, imagesLoaded('.result img'));
    await page.evaluate('window.scrollTo(0, 0)');
    await screenshot('web-search.png');
  });

  test('a window preset changes the rendered pixels and keeps the slab; a right-drag adjusts level and width', { timeout: 60_000 }, async () => {
    const before = await page.evaluate<[string, string]>("[document.querySelector('#range-summary').textContent, document.querySelector('#first-slice').value + '-' + document.querySelector('#last-slice').value]");
    const query0 = await page.locator('#query-coronal').screenshot();
    const card0 = await page.locator('.result .match-slice img').first().screenshot();
    const oldSrc = await page.evaluate<string>("document.querySelector('.result .match-slice img').src");
    await page.selectOption('#display-window', 'bone');
    await until(page, `document.querySelector('.result .match-slice img').src !== ${JSON.stringify(oldSrc)} && ${imagesLoaded('.result img, #query-coronal')}`);
    await page.waitForTimeout(200);
    const query1 = await page.locator('#query-coronal').screenshot();
    const card1 = await page.locator('.result .match-slice img').first().screenshot();
    assert.ok(changedFraction(query0, query1) > 0.1, 'the query picture is drawn in the bone window');
    assert.ok(changedFraction(card0, card1) > 0.1, 'the result slices are drawn in the bone window');
    const after = await page.evaluate<[string, string]>("[document.querySelector('#range-summary').textContent, document.querySelector('#first-slice').value + '-' + document.querySelector('#last-slice').value]");
    assert.deepEqual(after, before, 'the drawn slab and its summary stay');
    assert.equal(await page.inputValue('#window-level'), '400');
    assert.equal(await page.inputValue('#window-width'), '1800');

    // Right-drag: down raises the level, right widens the window.
    const box = (await page.locator('#query-coronal').boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down({ button: 'right' });
    await page.mouse.move(box.x + box.width / 2 + 50, box.y + box.height / 2 + 30, { steps: 4 });
    await page.mouse.up({ button: 'right' });
    assert.equal(await page.inputValue('#window-level'), '460');
    assert.equal(await page.inputValue('#window-width'), '1900');
    assert.equal(await page.inputValue('#display-window'), 'custom');
    assert.match((await page.textContent('#window-readout')) ?? '', /L 460 W 1900/);
    assert.deepEqual(await page.evaluate<[string, string]>("[document.querySelector('#range-summary').textContent, document.querySelector('#first-slice').value + '-' + document.querySelector('#last-slice').value]"), before, 'a window drag draws no slab');
    await page.selectOption('#display-window', 'softTissue');
  });

  test('viewer: ↑/↓ scroll the query and the result lands on the aligned slice; ←/→ change result; Esc closes', { timeout: 300_000 }, async () => {
    const volumeId = await page.evaluate<string>("document.querySelector('#volume-select').value");
    const range = await page.evaluate<[number, number]>("[Number(document.querySelector('#first-slice').value), Number(document.querySelector('#last-slice').value)]");
    const api = await apiSearch({ volumeId, firstSlice: range[0], lastSlice: range[1], method: 'rerank', top: 5, matches: true });
    const matched = new Map(api.results[0].matches!.map((m) => [m.querySlice, m.targetSlice]));

    await page.click('.result .open-viewer');
    await page.waitForSelector('#viewer[data-ready="true"]', { timeout: 60_000 });
    const panes = await page.evaluate<string[]>("[...document.querySelectorAll('#viewer .pane-stage > *')].map((e) => e.tagName)");
    // WebGL2 works in headless Chromium (SwiftShader): the panes are NiiVue canvases, not the fallback.
    assert.deepEqual(panes, ['CANVAS', 'CANVAS']);
    const slices = (): Promise<[number, number]> => page.evaluate<[number, number]>("[Number(document.querySelector('#viewer-query').dataset.slice), Number(document.querySelector('#viewer-result').dataset.slice)]");
    const start = api.results[0].middleMatch!;
    assert.deepEqual(await slices(), [start.querySlice, start.targetSlice], 'opens at the middle query slice and its best match');
    assert.match((await page.textContent('#viewer-query .pane-caption')) ?? '', new RegExp(`^slice ${start.querySlice} of \\d+ · z -?\\d+\\.\\d mm · in the query slab$`));
    assert.match((await page.textContent('#viewer-result .pane-caption')) ?? '', new RegExp(`^slice ${start.targetSlice} of \\d+ · z -?\\d+\\.\\d mm`));
    await page.waitForTimeout(500);
    await screenshot('web-viewer.png');

    // Walk the query slab slice by slice with ↓ then ↑: the result follows the alignment.
    const walked: [number, number][] = [];
    for (let k = start.querySlice; k > range[0]; k--) await page.keyboard.press('ArrowDown');
    assert.equal((await slices())[0], range[0]);
    for (let k = range[0]; k <= range[1]; k++) {
      walked.push(await slices());
      await page.keyboard.press('ArrowUp');
    }
    assert.deepEqual(walked.map(([q]) => q), Array.from({ length: range[1] - range[0] + 1 }, (_, i) => range[0] + i), 'one query slice per ↑');
    for (let i = 1; i < walked.length; i++) assert.ok(walked[i][1] >= walked[i - 1][1], `the result never runs backwards (${walked[i - 1].join('→')}, ${walked[i].join('→')})`);
    // A scroll that never runs backwards can agree with at most the longest order-keeping run of the
    // matches (stray argmax matches break the slice order); it must agree with that many, exactly.
    const targets = walked.map(([q]) => matched.get(q)).filter((t): t is number => t !== undefined);
    const longest = targets.map(() => 1);
    targets.forEach((t, i) => {
      for (let j = 0; j < i; j++) if (targets[j] <= t) longest[i] = Math.max(longest[i], longest[j] + 1);
    });
    const consistent = Math.max(...longest);
    const landed = walked.filter(([q, t]) => matched.get(q) === t).length;
    assert.equal(landed, consistent, `the result shows the matched slice wherever the matches keep their order (${landed} of ${walked.length} slices)`);
    assert.ok(consistent >= walked.length / 2, `most matches keep their order (${consistent} of ${walked.length})`);

    // The wheel over the result pane scrolls it, and the query follows back.
    const before = await slices();
    const resultBox = (await page.locator('#viewer-result .pane-stage').boundingBox())!;
    await page.mouse.move(resultBox.x + resultBox.width / 2, resultBox.y + resultBox.height / 2);
    for (let n = 0; n < 4; n++) await page.mouse.wheel(0, 100);
    const wheeled = await slices();
    assert.equal(wheeled[1], Math.max(0, before[1] - 4), 'four wheel steps down: four slices inferior');
    assert.ok(wheeled[0] <= before[0], 'the query follows');

    // The window applies to the viewer too: its pixels change.
    await page.waitForTimeout(300);
    const pane0 = await page.locator('#viewer-query canvas').screenshot();
    await page.selectOption('#display-window', 'lung').catch(async () => {
      // The dialog is modal: set the window through the page's own control script instead.
      await page.evaluate("(() => { const s = document.querySelector('#display-window'); s.value = 'lung'; s.dispatchEvent(new Event('change')); })()");
    });
    await page.waitForTimeout(500);
    const pane1 = await page.locator('#viewer-query canvas').screenshot();
    assert.ok(changedFraction(pane0, pane1) > 0.1, 'the viewer draws in the lung window');
    await page.evaluate("(() => { const s = document.querySelector('#display-window'); s.value = 'softTissue'; s.dispatchEvent(new Event('change')); })()");

    // ←/→ (and j/k) go through the results.
    await page.focus('#viewer-close');
    await page.keyboard.press('ArrowRight');
    await until(page, "document.querySelector('#viewer-title').textContent.startsWith('Result 2 of') && document.querySelector('#viewer').dataset.ready === 'true'", 60_000);
    assert.equal(await page.evaluate<string>("document.querySelector('#viewer-result').dataset.slice"), String(api.results[1].middleMatch!.targetSlice));
    await page.keyboard.press('k');
    await until(page, "document.querySelector('#viewer-title').textContent.startsWith('Result 1 of') && document.querySelector('#viewer').dataset.ready === 'true'", 60_000);
    await page.keyboard.press('Escape');
    await until(page, "!document.querySelector('#viewer').open");
    assert.equal(await page.evaluate<number>("document.querySelectorAll('#viewer canvas').length"), 0, 'closing frees the viewers');
  });

  test('a new upload clears the previous results, a failed one leaves none, and an upload can be searched', { timeout: 120_000 }, async () => {
    assert.ok((await page.$$('.result')).length > 0, 'results of the last search are on screen');
    await page.check('input[name="source"][value="upload"]');
    assert.equal((await page.$$('.result')).length, 0, 'switching the query source clears them');
    assert.equal(await page.isDisabled('#search-button'), true, 'nothing to search with yet');

    // A file that is no volume: refused, with nothing stale left behind.
    await page.setInputFiles('#upload-input', { name: 'notes.nii.gz', mimeType: 'application/gzip', buffer: Buffer.from('this is not a NIfTI file at all, just text') });
    await page.click('#upload-button');
    await until(page, "document.querySelector('#upload-status').classList.contains('error')");
    assert.equal(await page.isDisabled('#search-button'), true);
    assert.equal(await page.isHidden('#query-stack'), true, 'no picture of an earlier query');
    assert.equal((await page.$$('.result')).length, 0);

    const outsider = generatePhantom({ seed: 77, matrix: [96, 96], spacingMm: [4, 4, 5], coverage: 'abdomen' });
    const uploadPath = join(outDir, 'query.nii.gz');
    await writeNifti(uploadPath, outsider.image);
    await page.setInputFiles('#upload-input', { name: 'query.nii.gz', mimeType: 'application/gzip', buffer: await readFile(uploadPath) });
    await page.click('#upload-button');
    await until(page, "/^Read /.test(document.querySelector('#upload-status').textContent)");
    assert.equal(await page.getAttribute('#last-slice', 'max'), String(outsider.image.dims[2] - 1));
    await search();
    const firstResults = await page.evaluate<string[]>("[...document.querySelectorAll('.result')].map((e) => e.dataset.volumeId)");
    assert.ok(firstResults.length > 0);

    // Uploading again clears those results at once, before the new upload is even read.
    await page.setInputFiles('#upload-input', { name: 'query.nii.gz', mimeType: 'application/gzip', buffer: await readFile(uploadPath) });
    await page.click('#upload-button');
    assert.equal((await page.$$('.result')).length, 0, 'results of the previous upload are gone');
    await until(page, "/^Read /.test(document.querySelector('#upload-status').textContent)");
    assert.equal(await page.isDisabled('#search-button'), false);
  });

  test('the token URL opened in a tab that shows the sign-in form signs in', { timeout: 60_000 }, async () => {
    const fresh = await context.newPage();
    try {
      await fresh.goto(`${server.url}/`);
      await fresh.waitForSelector('#token-panel:not([hidden])');
      await fresh.fill('#token-input', 'not-the-token-at-all');
      await fresh.click('#token-form button[type="submit"]');
      await until(fresh, "/refused/.test(document.querySelector('#token-error').textContent)");
      // The printed URL, pasted into this tab's address bar: only the fragment changes, no reload.
      await fresh.goto(server.pageUrl);
      await fresh.waitForSelector('#app:not([hidden])', { timeout: 20_000 });
      assert.equal(await fresh.isHidden('#token-panel'), true);
      assert.ok(!fresh.url().includes('token'));
    } finally {
      await fresh.close();
    }
  });

  test('a narrow window keeps everything on screen without sideways scrolling', { timeout: 60_000 }, async () => {
    await page.check('input[name="source"][value="indexed"]');
    await chooseQuery('phantom-03');
    await search();
    await page.setViewportSize({ width: 560, height: 900 });
    await page.waitForTimeout(300);
    const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
    assert.ok(overflow <= 0, `no sideways scrolling (${overflow} px too wide)`);
    const cardWidth = await page.evaluate<number>("document.querySelector('.result').getBoundingClientRect().width");
    assert.ok(cardWidth <= 560);
    await until(page, imagesLoaded('.result img'));
    await page.evaluate("document.querySelector('#search-button').scrollIntoView()");
    await screenshot('web-narrow.png');
    await page.setViewportSize({ width: 1280, height: 800 });

    assert.deepEqual(foreign, [], 'no request left the server');
    // A refused wrong token logs one 401 in the console, the refused upload one 4xx; nothing else may.
    assert.deepEqual(problems.filter((p) => !/40[01]|415|422/.test(p)), []);
  });
});
