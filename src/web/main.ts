import {
  ApiCallError,
  call,
  forgetToken,
  isAbort,
  picture,
  postJson,
  query,
  saveToken,
  setUnauthorizedHandler,
  takeToken,
  type IndexInfo,
  type SearchBody,
  type SearchResponse,
  type SearchResultInfo,
} from './api.js';
import { alignmentOf } from './alignment.js';
import { WindowControl } from './display.js';
import { describeVolume, scoreMeaning, searchSummary } from './names.js';
import { SlabPicker } from './slab.js';
import { IndexedPanel, listAllVolumes, UploadPanel, type QuerySource, type SourceHost, type SourcePanel } from './sources.js';
import { PacsPanel, viewerLinkElement } from './pacs.js';
import { fusedText, TextPanel } from './text-source.js';
import { ResultViewer, sliceZ, type PaneTarget } from './viewer.js';

/**
 * The search page: choose a query (an indexed volume, an upload, or any source in sources.ts), draw
 * the slab on its coronal view, choose the method, and read the ranked results: each card shows the
 * query's slice beside the one it matched, where the match lies, and what the score means. Open a
 * result to scroll query and result side by side along the found alignment.
 */

function $(id: string): HTMLElement {
  const element = document.getElementById(id);
  if (!element) throw new Error(`page element #${id} is missing`);
  return element;
}
const input = (id: string): HTMLInputElement => $(id) as HTMLInputElement;
const select = (id: string): HTMLSelectElement => $(id) as HTMLSelectElement;
const button = (id: string): HTMLButtonElement => $(id) as HTMLButtonElement;

let indexInfo: IndexInfo | undefined;
let source: QuerySource | undefined;
let lastSearch: { response: SearchResponse; source: QuerySource } | undefined;
let searchController: AbortController | undefined;
/** Bumped on every new query or search: late answers of older ones are dropped. */
let generation = 0;

const display = new WindowControl({ preset: select('display-window'), level: input('window-level'), width: input('window-width'), readout: $('window-readout') });
const viewer = new ResultViewer();
let viewerIndex = -1;

const slab = new SlabPicker({
  stack: $('query-stack'),
  image: $('query-coronal') as HTMLImageElement,
  band: $('query-band'),
  first: input('first-slice'),
  last: input('last-slice'),
  firstOut: $('first-out') as HTMLOutputElement,
  lastOut: $('last-out') as HTMLOutputElement,
  summary: $('range-summary'),
});
display.attachDrag($('query-stack'));

function errorText(error: unknown): string {
  return error instanceof ApiCallError ? `${error.message} [${error.code}]` : error instanceof Error ? error.message : String(error);
}

function setStatus(element: HTMLElement, text: string, isError = false): void {
  element.textContent = text;
  element.classList.toggle('error', isError);
}

function labelText(labels: Record<string, string | number>): string {
  return Object.entries(labels)
    .map(([key, value]) => `${key}=${value}`)
    .join(' · ');
}

// ---- sign-in ---------------------------------------------------------------------------------------

function showSignIn(message?: string): void {
  $('app').hidden = true;
  $('sign-out').hidden = true;
  $('token-panel').hidden = false;
  setStatus($('token-error'), message ?? '', message !== undefined);
  input('token-input').focus();
}

setUnauthorizedHandler(() => {
  const hadToken = takeToken() !== undefined;
  forgetToken();
  showSignIn(hadToken ? 'The token was refused: enter the one printed by mir3d serve.' : undefined);
});

$('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const token = input('token-input').value.trim();
  if (!token) return;
  saveToken(token);
  input('token-input').value = '';
  void start();
});

$('sign-out').addEventListener('click', () => {
  forgetToken();
  showSignIn();
});

// The server's URL opened in a tab that already shows the page changes only the fragment: take the
// token from it and sign in, rather than leaving the token form up.
window.addEventListener('hashchange', () => {
  if (/(?:^#|&)token=/.test(window.location.hash) && takeToken()) void start();
});

// ---- query sources -----------------------------------------------------------------------------------

const host: SourceHost = {
  setSource: (next) => void setSource(next),
  status: (element, text, isError) => setStatus(element, text, isError),
  index: () => indexInfo,
};
const indexedPanel = new IndexedPanel(host);
const uploadPanel = new UploadPanel(host);
const pacsPanel = new PacsPanel(host, () => void runSearch());
const textPanel = new TextPanel(host, () => void runSearch());
const sourcePanels: SourcePanel[] = [indexedPanel, uploadPanel, pacsPanel, textPanel];

function chosenKind(): string | undefined {
  return (document.querySelector('input[name="source"]:checked') as HTMLInputElement | null)?.value;
}

function sourceKindChanged(): void {
  const kind = chosenKind();
  for (const panel of document.querySelectorAll<HTMLElement>('.source-panel')) panel.hidden = panel.dataset.source !== kind;
  // A text has no slices to choose; it is searched by 3D-MIR's text method (slice-count) by default.
  $('slab-fieldset').hidden = kind === 'text';
  if (textPanel.chooseMethod(kind === 'text', select('method'))) methodChanged();
  void setSource(sourcePanels.find((p) => p.kind === kind)?.activate());
}
for (const radio of document.querySelectorAll<HTMLInputElement>('input[name="source"]')) radio.addEventListener('change', sourceKindChanged);

/** Forgets results, the viewer and any search in flight: they belong to the previous query. */
function clearResults(): void {
  searchController?.abort();
  lastSearch = undefined;
  $('results').replaceChildren();
  $('results-empty').hidden = false;
  $('score-note').hidden = true;
  if (($('viewer') as HTMLDialogElement).open) ($('viewer') as HTMLDialogElement).close();
}

async function setSource(next: QuerySource | undefined): Promise<void> {
  generation++;
  clearResults();
  source = next;
  setStatus($('search-status'), '');
  const image = $('query-coronal') as HTMLImageElement;
  button('search-button').disabled = !next;
  const volume = next?.volume;
  $('query-stack').hidden = !volume;
  if (!volume) {
    image.removeAttribute('src');
    slab.setVolume(0, (k) => k);
    return;
  }
  slab.setVolume(volume.dims[2], (k) => sliceZ(volume.affineRas, volume.dims, k));
  image.alt = `Coronal view of ${volume.title}`;
  image.removeAttribute('src');
  await refreshQueryPicture();
}

/** The query's coronal picture in the current window; the drawn slab stays as it is. */
async function refreshQueryPicture(): Promise<void> {
  const volume = source?.volume;
  if (!volume) return;
  const image = $('query-coronal') as HTMLImageElement;
  const mine = source;
  $('query-stack').setAttribute('aria-busy', 'true');
  try {
    const url = await picture(volume.thumbnailPath + query({ plane: 'coronal', maxPx: 512, ...display.query() }));
    if (source === mine) image.src = url;
  } catch (error) {
    setStatus($('search-status'), errorText(error), true);
  } finally {
    $('query-stack').removeAttribute('aria-busy');
  }
}

// ---- method options ----------------------------------------------------------------------------------

function fillMethods(methods: string[]): void {
  const options = (values: string[], selected: string): HTMLOptionElement[] =>
    values.map((value) => {
      const option = document.createElement('option');
      option.value = value;
      option.textContent = value;
      option.selected = value === selected;
      return option;
    });
  select('method').replaceChildren(...options(methods, 'rerank'));
  select('first-stage').replaceChildren(...options(methods.filter((m) => m !== 'rerank'), 'slice-count'));
  const none = document.createElement('option');
  none.value = '';
  none.textContent = 'none';
  select('fuse').replaceChildren(none, ...options(methods, ''));
  methodChanged();
}

function methodChanged(): void {
  select('first-stage').disabled = select('method').value !== 'rerank';
  // Fusion applies to a second method or to a text fused with the volume query.
  select('fusion').disabled = select('fuse').value === '' && input('opt-text').value.trim() === '' && input('opt-caption').value.trim() === '';
}
select('method').addEventListener('change', methodChanged);
select('fuse').addEventListener('change', methodChanged);
input('opt-text').addEventListener('input', methodChanged);
input('opt-caption').addEventListener('input', methodChanged);

function numberField(id: string): number | undefined {
  const value = input(id).value.trim();
  return value === '' ? undefined : Number(value);
}

function searchBody(from: QuerySource): SearchBody {
  const body: SearchBody = { ...from.body, method: select('method').value as SearchBody['method'] };
  if (from.volume && !slab.isWholeVolume) {
    body.firstSlice = slab.range.first;
    body.lastSlice = slab.range.last;
  }
  if (body.method === 'rerank') body.firstStage = select('first-stage').value as SearchBody['firstStage'];
  const k = numberField('opt-k');
  const candidates = numberField('opt-candidates');
  const top = numberField('opt-top');
  if (k !== undefined) body.k = k;
  if (candidates !== undefined) body.candidates = candidates;
  if (top !== undefined) body.top = top;
  body.mode = select('opt-mode').value as SearchBody['mode'];
  if (select('fuse').value) {
    body.fuse = select('fuse').value as SearchBody['fuse'];
    body.fusion = select('fusion').value as SearchBody['fusion'];
  }
  // A volume query fused with a text, or with the caption its indexed volume carries.
  if (from.volume) {
    const text = fusedText();
    const caption = input('opt-caption').value.trim();
    if (text) body.text = text;
    else if (caption) body.captionLabel = caption;
  }
  const where = input('opt-where').value.split(',').map((s) => s.trim()).filter(Boolean);
  if (where.length) body.where = where;
  if (input('opt-include-self').checked) body.includeSelf = true;
  // Every slice match: the viewer scrolls along them.
  body.matches = true;
  return body;
}

// ---- search --------------------------------------------------------------------------------------------

button('search-button').addEventListener('click', () => void runSearch());
button('search-cancel').addEventListener('click', () => searchController?.abort());

async function runSearch(): Promise<void> {
  const from = source;
  if (!from) return;
  clearResults();
  const mine = ++generation;
  const controller = new AbortController();
  searchController = controller;
  const status = $('search-status');
  button('search-button').disabled = true;
  button('search-cancel').hidden = false;
  $('search-progress').hidden = false;
  $('results').setAttribute('aria-busy', 'true');
  setStatus(status, 'Searching…');
  const started = performance.now();
  const timer = setInterval(() => {
    $('search-elapsed').textContent = `${((performance.now() - started) / 1000).toFixed(1)} s`;
  }, 200);
  $('search-elapsed').textContent = '';
  try {
    const response = await postJson<SearchResponse>('/api/search', searchBody(from), controller.signal);
    if (mine !== generation) return;
    lastSearch = { response, source: from };
    setStatus(status, searchSummary(response, from.kind === 'text'));
    renderResults(response, from);
  } catch (error) {
    if (mine !== generation && !isAbort(error)) return;
    // A failed or cancelled search leaves no results of an older one on screen.
    $('results').replaceChildren();
    $('results-empty').hidden = false;
    setStatus(status, isAbort(error) ? 'Search cancelled.' : errorText(error), !isAbort(error));
  } finally {
    clearInterval(timer);
    if (searchController === controller) searchController = undefined;
    button('search-button').disabled = !source;
    button('search-cancel').hidden = true;
    $('search-progress').hidden = true;
    $('results').removeAttribute('aria-busy');
  }
}

// ---- results ---------------------------------------------------------------------------------------

function renderResults(response: SearchResponse, from: QuerySource): void {
  const list = $('results');
  list.replaceChildren(...response.results.map((result, n) => resultCard(result, n, response, from)));
  $('results-empty').hidden = response.results.length > 0;
  const note = $('score-note');
  note.textContent = scoreMeaning(response.options, response.query.sliceCount, response.query.text);
  note.hidden = response.results.length === 0;
}

function figure(className: string, caption: string): { figure: HTMLElement; stack: HTMLElement; image: HTMLImageElement } {
  const fig = document.createElement('figure');
  fig.className = className;
  const stack = document.createElement('div');
  stack.className = 'stack';
  const image = document.createElement('img');
  image.decoding = 'async';
  image.draggable = false;
  stack.append(image);
  const text = document.createElement('figcaption');
  text.textContent = caption;
  fig.append(stack, text);
  display.attachDrag(stack);
  return { figure: fig, stack, image };
}

function load(image: HTMLImageElement, path: string): void {
  const stamp = generation;
  void picture(path).then(
    (url) => {
      if (stamp === generation) image.src = url;
    },
    () => (image.alt = 'picture unavailable'),
  );
}

/** Pictures of a card, fetched again in the current window. */
function cardPictures(item: HTMLElement, result: SearchResultInfo, from: QuerySource): void {
  const base = `/api/volumes/${encodeURIComponent(result.volumeId)}/thumbnail.png`;
  const match = result.middleMatch;
  const w = display.query();
  const queryImage = item.querySelector<HTMLImageElement>('.query-slice img');
  const matchImage = item.querySelector<HTMLImageElement>('.match-slice img');
  const coronalImage = item.querySelector<HTMLImageElement>('.coronal img');
  if (match && queryImage && from.volume) load(queryImage, from.volume.thumbnailPath + query({ plane: 'axial', index: match.querySlice, maxPx: 256, ...w }));
  if (match && matchImage) load(matchImage, base + query({ plane: 'axial', index: match.targetSlice, maxPx: 256, ...w }));
  if (coronalImage) load(coronalImage, base + query({ plane: 'coronal', maxPx: 320, ...w }));
}

function resultCard(result: SearchResultInfo, n: number, response: SearchResponse, from: QuerySource): HTMLElement {
  const item = document.createElement('li');
  item.className = 'result';
  item.tabIndex = 0;
  item.dataset.volumeId = result.volumeId;
  item.dataset.index = String(n);
  const known = indexedPanel.volume(result.volumeId);
  const { name, detail } = describeVolume({ ...result, ...(known?.bodyPart ? { bodyPart: known.bodyPart } : {}) });
  const region = result.region;
  const match = result.middleMatch;
  const regionText = region ? `Match at z ${region.zStartMm.toFixed(1)} … ${region.zEndMm.toFixed(1)} mm (slices ${region.firstSlice}–${region.lastSlice})` : 'No localized region';

  const pair = document.createElement('div');
  pair.className = 'slice-pair';
  if (match) {
    const querySide = figure('query-slice', `Query slice ${match.querySlice}`);
    querySide.image.alt = `Query, axial slice ${match.querySlice}`;
    const matchSide = figure('match-slice', `Slice ${match.targetSlice}: its best match, similarity ${match.similarity.toFixed(3)}`);
    matchSide.image.alt = `${name}, axial slice ${match.targetSlice}`;
    if (!from.volume) querySide.figure.hidden = true;
    pair.append(querySide.figure, matchSide.figure);
  }
  const coronal = figure('coronal', region ? `slices ${region.firstSlice}–${region.lastSlice} outlined` : 'coronal');
  coronal.image.alt = `Coronal view of ${name}${region ? `, slices ${region.firstSlice} to ${region.lastSlice} outlined` : ''}`;
  if (region) {
    const box = document.createElement('div');
    box.className = 'region-outline region-match';
    const slices = result.dims[2];
    box.style.top = `${((slices - 1 - region.lastSlice) / slices) * 100}%`;
    box.style.height = `${((region.lastSlice - region.firstSlice + 1) / slices) * 100}%`;
    box.dataset.firstSlice = String(region.firstSlice);
    box.dataset.lastSlice = String(region.lastSlice);
    box.title = regionText;
    coronal.stack.append(box);
  }

  const info = document.createElement('div');
  info.className = 'result-info';
  const head = document.createElement('div');
  head.className = 'result-head';
  const rank = document.createElement('span');
  rank.className = 'rank';
  rank.textContent = String(result.rank);
  rank.setAttribute('aria-label', `rank ${result.rank}`);
  const title = document.createElement('h3');
  title.textContent = name;
  head.append(rank, title);
  const id = document.createElement('p');
  id.className = 'volume-id';
  id.textContent = `${detail} · id ${result.volumeId}`;
  const scoreLine = document.createElement('p');
  scoreLine.className = 'score';
  const top = response.results[0]?.score || 1;
  const bar = document.createElement('meter');
  bar.min = 0;
  bar.max = 1;
  bar.value = Math.max(0, Math.min(1, result.score / top));
  bar.title = 'score relative to the first result';
  scoreLine.append(`score ${result.score.toFixed(4)} `, bar);
  const where = document.createElement('p');
  where.className = 'region';
  where.textContent = regionText;
  const labels = document.createElement('p');
  labels.className = 'labels';
  labels.textContent = labelText(result.labels);
  const open = document.createElement('button');
  open.type = 'button';
  open.className = 'open-viewer';
  open.textContent = 'Open beside the query';
  open.setAttribute('aria-label', `Open ${name} beside the query`);
  open.addEventListener('click', () => void openViewer(n));
  open.hidden = !from.volume; // a PACS series or a text has no query volume here to show beside it
  info.append(head, id, scoreLine, where, labels, ...[viewerLinkElement(result)].filter((e) => e !== undefined), open);
  item.append(pair, info, coronal.figure);
  cardPictures(item, result, from);
  return item;
}

function refreshCards(): void {
  if (!lastSearch) return;
  const { response, source: from } = lastSearch;
  for (const item of document.querySelectorAll<HTMLElement>('#results .result')) {
    const result = response.results[Number(item.dataset.index)];
    if (result) cardPictures(item, result, from);
  }
}

// j/k (or ←/→) move between result cards when the viewer is closed.
$('results').addEventListener('keydown', (event) => {
  const cards = [...document.querySelectorAll<HTMLElement>('#results .result')];
  const at = cards.indexOf(document.activeElement as HTMLElement);
  if (at < 0) return;
  const delta = event.key === 'j' || event.key === 'ArrowRight' || event.key === 'ArrowDown' ? 1 : event.key === 'k' || event.key === 'ArrowLeft' || event.key === 'ArrowUp' ? -1 : 0;
  if (delta !== 0) {
    event.preventDefault();
    cards[Math.min(cards.length - 1, Math.max(0, at + delta))].focus();
  } else if (event.key === 'Enter') {
    event.preventDefault();
    void openViewer(at);
  }
});

// ---- viewer --------------------------------------------------------------------------------------------

async function openViewer(n: number): Promise<void> {
  if (!lastSearch) return;
  const { response, source: from } = lastSearch;
  const result = response.results[n];
  if (!result || !from.volume) return;
  viewerIndex = n;
  const dialog = $('viewer') as HTMLDialogElement;
  const note = $('viewer-note');
  setStatus(note, '');
  delete dialog.dataset.ready;
  const q = from.volume;
  const queryTarget: PaneTarget = {
    role: 'query',
    title: `Query: ${q.title}, slices ${response.query.firstSlice}–${response.query.lastSlice}`,
    niftiPath: q.niftiPath,
    thumbnailPath: q.thumbnailPath,
    dims: q.dims,
    affineRas: q.affineRas,
    band: { first: response.query.firstSlice, last: response.query.lastSlice },
  };
  const record = indexedPanel.volume(result.volumeId) ?? (await call<NonNullable<ReturnType<typeof indexedPanel.volume>>>(`/api/volumes/${encodeURIComponent(result.volumeId)}`));
  const region = result.region ?? { firstSlice: 0, lastSlice: record.dims[2] - 1 };
  const { name } = describeVolume({ ...result, ...(record.bodyPart ? { bodyPart: record.bodyPart } : {}) });
  const resultTarget: PaneTarget = {
    role: 'match',
    title: `Rank ${result.rank}: ${name}, matched slices ${region.firstSlice}–${region.lastSlice}`,
    niftiPath: `/api/volumes/${encodeURIComponent(result.volumeId)}/volume.nii.gz`,
    thumbnailPath: `/api/volumes/${encodeURIComponent(result.volumeId)}/thumbnail.png`,
    dims: record.dims,
    affineRas: record.affineRas,
    band: { first: region.firstSlice, last: region.lastSlice },
  };
  $('viewer-title').textContent = `Result ${result.rank} of ${response.results.length}`;
  $('viewer-query-title').textContent = queryTarget.title;
  $('viewer-result-title').textContent = resultTarget.title;
  button('viewer-prev').disabled = n === 0;
  button('viewer-next').disabled = n === response.results.length - 1;
  const alignment = alignmentOf(result.matches ?? (result.middleMatch ? [result.middleMatch] : []), {
    querySpacingMm: q.spacingMm[2],
    targetSpacingMm: record.spacingMm[2],
    querySlices: q.dims[2],
    targetSlices: record.dims[2],
  });
  const start = result.middleMatch ?? { querySlice: Math.round((response.query.firstSlice + response.query.lastSlice) / 2), targetSlice: Math.round((region.firstSlice + region.lastSlice) / 2) };
  if (!dialog.open) dialog.showModal();
  dialog.setAttribute('aria-busy', 'true');
  try {
    await viewer.open(
      { query: $('viewer-query'), result: $('viewer-result') },
      { query: queryTarget, result: resultTarget },
      alignment,
      start,
      display.value,
      () => display.query(),
      (text) => setStatus(note, text),
    );
    if (viewerIndex === n) dialog.dataset.ready = 'true';
  } catch (error) {
    setStatus(note, errorText(error), true);
  } finally {
    dialog.removeAttribute('aria-busy');
  }
}

display.attachDrag($('viewer-query'));
display.attachDrag($('viewer-result'));
button('viewer-close').addEventListener('click', () => ($('viewer') as HTMLDialogElement).close());
button('viewer-prev').addEventListener('click', () => void openViewer(viewerIndex - 1));
button('viewer-next').addEventListener('click', () => void openViewer(viewerIndex + 1));
$('viewer').addEventListener('close', () => {
  viewer.close();
  delete ($('viewer') as HTMLElement).dataset.ready;
  // Back to the card that was open, for the keyboard.
  document.querySelector<HTMLElement>(`#results .result[data-index="${viewerIndex}"]`)?.focus();
});
$('viewer').addEventListener('keydown', (event) => {
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  const results = lastSearch?.response.results.length ?? 0;
  switch (event.key) {
    case 'ArrowUp':
      viewer.step(1);
      break;
    case 'ArrowDown':
      viewer.step(-1);
      break;
    case 'PageUp':
      viewer.step(10);
      break;
    case 'PageDown':
      viewer.step(-10);
      break;
    case 'ArrowLeft':
    case 'k':
      if (viewerIndex > 0) void openViewer(viewerIndex - 1);
      break;
    case 'ArrowRight':
    case 'j':
      if (viewerIndex < results - 1) void openViewer(viewerIndex + 1);
      break;
    default:
      // Esc closes the dialog by itself.
      return;
  }
  event.preventDefault();
});

// ---- display window --------------------------------------------------------------------------------

display.onChange((window, settled) => {
  viewer.setWindow(window, settled);
  if (!settled) return;
  // Pictures only: the drawn slab and the results stay as they are.
  void refreshQueryPicture();
  refreshCards();
});

// ---- start ---------------------------------------------------------------------------------------------

async function start(): Promise<void> {
  try {
    indexInfo = await call<IndexInfo>('/api/index');
  } catch (error) {
    if (!(error instanceof ApiCallError && error.status === 401)) showSignIn(errorText(error));
    return;
  }
  $('token-panel').hidden = true;
  $('app').hidden = false;
  $('sign-out').hidden = false;
  const encoder = indexInfo.encoderId.split(/[@|]/)[0];
  $('index-info').textContent = `${indexInfo.volumes} volumes, ${indexInfo.slices} slices · encoder ${encoder}`;
  const { colors, windows } = indexInfo.display;
  document.documentElement.style.setProperty('--query', `rgb(${colors.query.join(' ')})`);
  document.documentElement.style.setProperty('--match', `rgb(${colors.match.join(' ')})`);
  if (display.presetList.length === 0) display.setPresets(windows);
  fillMethods(indexInfo.methods);
  pacsPanel.enable(indexInfo.canSearchPacs ?? false);
  if (!indexInfo.canEmbedUploads) uploadPanel.disable('Uploads are off: the index has no encoder.json to embed them with.');
  try {
    const volumes = await listAllVolumes();
    indexedPanel.fill(volumes);
    if (volumes.length === 0) setStatus($('search-status'), 'The index holds no volumes yet.');
    sourceKindChanged();
  } catch (error) {
    setStatus($('search-status'), errorText(error), true);
  }
}

// A server started with --no-auth needs no token, so try first and ask only when refused.
takeToken();
void start();
