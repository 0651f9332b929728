import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import type { SearchResponse } from '../src/api/contract.js';
import { startServer, type RunningServer } from '../src/server/app.js';
import { runCli } from './helpers/cli.js';
import { bearer, jsonRequest } from './helpers/http.js';
import { projectRoot } from './helpers/shared-data.js';
import { writeTissueArchive } from './helpers/text-archive.js';

/**
 * The page's text box in a real headless Chromium (Debian's `chromium`, driven by playwright-core), over
 * an index built with the tiny CLIP-like pair: type a finding, press Enter, and read ranked result cards,
 * each with the slice that matched the text and its localized region outlined, in the API's order; a
 * volume query fused with a typed text; and an index without a text space saying what to add.
 */

const CHROMIUM = process.env.MIR3D_CHROMIUM ?? '/usr/bin/chromium';
const skipReason = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (install Debian's chromium package, or set MIR3D_CHROMIUM)`;

/** Polls a page expression (evaluate goes through DevTools; the page's CSP refuses eval). */
async function until(page: Page, expression: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await page.evaluate<boolean>(`Boolean(${expression})`)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${expression}: status "${await page.textContent('#search-status')}"`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

let root: string;
let clip: RunningServer;
let baseline: RunningServer;
let context: BrowserContext;
let page: Page;
const problems: string[] = [];

const searched = "!document.querySelector('#results').hasAttribute('aria-busy') && document.querySelector('#search-progress').hidden && document.querySelector('#search-status').textContent !== 'Searching…'";

async function signIn(server: RunningServer): Promise<void> {
  await page.goto(server.pageUrl);
  await page.waitForSelector('#app:not([hidden])');
  await until(page, "document.querySelectorAll('#volume-select option').length > 0");
}

async function typeText(text: string): Promise<void> {
  await page.check('input[name="source"][value="text"]');
  await page.fill('#text-query', text);
  await page.press('#text-query', 'Enter');
  await until(page, searched);
}

before(async () => {
  if (skipReason) return;
  root = await mkdtemp(join(tmpdir(), 'mir3d-web-text-'));
  const { archive, labels, clip: model } = await writeTissueArchive(join(root, 'tissues'));
  for (const [db, encoder] of [['idx-clip', model], ['idx-base', 'baseline']] as const) {
    const run = runCli(['index', archive, '--db', join(root, db), '--encoder', encoder, '--labels', labels], 120_000);
    assert.equal(run.status, 0, run.stderr);
  }
  clip = await startServer({ dbDir: join(root, 'idx-clip'), port: 0, limits: { searchWorkers: 1, searchThreads: 1 } });
  baseline = await startServer({ dbDir: join(root, 'idx-base'), port: 0, limits: { searchWorkers: 1, searchThreads: 1 } });
  const { chromium } = await import('playwright-core');
  context = await chromium.launchPersistentContext(join(root, 'chromium-profile'), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await context.newPage();
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
});

after(async () => {
  await context?.close();
  await clip?.close();
  await baseline?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

describe('the text box in headless Chromium', { skip: skipReason }, () => {
  test('type a finding, press Enter: ranked cards with the matched slice and region, as the API ranks them', { timeout: 180_000 }, async () => {
    await signIn(clip);
    await page.evaluate("document.querySelector('#query-panel details').open = true");
    await page.fill('#opt-top', '3');
    await typeText('dense bone');
    assert.match((await page.textContent('#search-status')) ?? '', /^3 results for the text “dense bone”/);
    assert.equal(await page.isHidden('#slab-fieldset'), true, 'a text has no slab to draw');
    assert.equal(await page.inputValue('#method'), 'slice-count', "3D-MIR's text method");
    const api = await jsonRequest<SearchResponse>(`${clip.url}/api/search`, {
      method: 'POST',
      headers: { ...bearer(clip.token!), 'Content-Type': 'application/json' },
      body: JSON.stringify({ text: 'dense bone', method: 'slice-count', top: 3, mode: 'exact' }),
    });
    assert.equal(api.status, 200);
    const cards = await page.evaluate<{ volumeId: string; labels: string; outline?: [number, number]; match: string; region: string }[]>(`[...document.querySelectorAll('.result')].map((item) => {
      const outline = item.querySelector('.coronal .region-outline');
      return {
        volumeId: item.dataset.volumeId,
        labels: item.querySelector('.labels').textContent,
        outline: outline ? [Number(outline.dataset.firstSlice), Number(outline.dataset.lastSlice)] : undefined,
        match: item.querySelector('.match-slice figcaption').textContent,
        region: item.querySelector('.region').textContent,
      };
    })`);
    assert.deepEqual(cards.map((c) => c.volumeId), api.body.results.map((r) => r.volumeId));
    assert.match(cards[0].labels, /tissue=bone/);
    assert.match(cards[1].labels, /tissue=bone/);
    cards.forEach((card, n) => {
      const result = api.body.results[n];
      assert.deepEqual(card.outline, [result.region!.firstSlice, result.region!.lastSlice], `card ${n + 1} outlines the region of the matched slices`);
      assert.match(card.match, new RegExp(`^Slice ${result.middleMatch!.targetSlice}: its best match`));
      assert.match(card.region, /^Match at z .* mm \(slices \d+–\d+\)$/);
    });
    assert.match((await page.textContent('#score-note')) ?? '', /the text's 20 nearest indexed slices/);
    await until(page, "[...document.querySelectorAll('.result .match-slice img')].every((img) => img.complete && img.naturalWidth > 0)");
    assert.equal(await page.isHidden('.result .query-slice'), true, 'no query slice beside a text');
    const shot = join(root, 'web-text-search.png');
    await page.screenshot({ path: shot });
    assert.ok((await stat(shot)).size > 10_000);
    // The README's picture is refreshed only on request, so a test run never changes tracked files.
    if (process.env.MIR3D_UPDATE_SCREENSHOTS === '1') {
      await mkdir(join(projectRoot, 'docs', 'screenshots'), { recursive: true });
      await copyFile(shot, join(projectRoot, 'docs', 'screenshots', 'web-text-search.png'));
    }

    // A new text clears the old results; a blank one cannot be searched.
    await page.fill('#text-query', 'lung');
    assert.equal(await page.locator('.result').count(), 0, 'stale results go when the text changes');
    await page.press('#text-query', 'Enter');
    await until(page, searched);
    assert.match((await page.textContent('.result .labels')) ?? '', /tissue=lung/);
    await page.fill('#text-query', '   ');
    assert.equal(await page.isDisabled('#search-button'), true);
  });

  test('a volume query fused with a typed text; an index without a text space says what to add', { timeout: 180_000 }, async () => {
    await signIn(clip);
    await page.check('input[name="source"][value="indexed"]');
    assert.equal(await page.inputValue('#method'), 'rerank', 'the volume method is back');
    const lung = await page.evaluate<string>("[...document.querySelectorAll('#volume-select option')].find((o) => /lung/.test(o.textContent) && !/lung2/.test(o.textContent))?.value ?? document.querySelector('#volume-select option').value");
    await page.selectOption('#volume-select', lung);
    await page.evaluate("document.querySelector('#query-panel details').open = true");
    await page.selectOption('#method', 'slice-count');
    await page.fill('#opt-text', 'bone');
    await page.selectOption('#fusion', 'interleave');
    await page.fill('#opt-top', '2');
    await page.click('#search-button');
    await until(page, searched);
    assert.match((await page.textContent('#search-status')) ?? '', /fused with the text “bone”/);
    assert.equal(await page.locator('.result').count(), 2);
    assert.match((await page.textContent('#score-note')) ?? '', /the text's slice-count list/);

    await signIn(baseline);
    await typeText('lung');
    assert.match((await page.textContent('#search-status')) ?? '', /no text space.*mir3d train --db DB --captions COLUMN.*\[NO_TEXT_SPACE\]/);
    assert.equal(await page.locator('.result').count(), 0);
    assert.deepEqual(problems, []);
  });
});
