import {
  ApiCallError,
  call,
  forgetToken,
  picture,
  postJson,
  query,
  saveToken,
  setUnauthorizedHandler,
  takeToken,
  type IndexInfo,
  type SearchResponse,
  type SearchResultInfo,
  type UploadInfo,
  type VolumeInfo,
} from './api.js';
import { placeBand, SlabPicker } from './slab.js';
import { openPane, type ViewerPane, type ViewTarget } from './viewer.js';

/**
 * The search page: pick a query (an indexed volume or an upload), draw the slab on its coronal view,
 * choose the method, and read the ranked results with where each match lies; open any result beside
 * the query in the slice viewer.
 */

type QuerySource = { kind: 'indexed'; volume: VolumeInfo } | { kind: 'upload'; upload: UploadInfo };

function $(id: string): HTMLElement {
  const element = document.getElementById(id);
  if (!element) throw new Error(`page element #${id} is missing`);
  return element;
}
const input = (id: string): HTMLInputElement => $(id) as HTMLInputElement;
const select = (id: string): HTMLSelectElement => $(id) as HTMLSelectElement;

let source: QuerySource | undefined;
let indexInfo: IndexInfo | undefined;
let lastSearch: { response: SearchResponse; source: QuerySource } | undefined;
let viewerPanes: ViewerPane[] = [];

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

function windowName(): string {
  return select('display-window').value;
}

function sliceZ(affine: number[], dims: [number, number, number], k: number): number {
  return affine[8] * ((dims[0] - 1) / 2) + affine[9] * ((dims[1] - 1) / 2) + affine[10] * k + affine[11];
}

function labelText(labels: Record<string, string | number>): string {
  return Object.entries(labels)
    .map(([key, value]) => `${key}=${value}`)
    .join(' · ');
}

function showError(element: HTMLElement, error: unknown): void {
  element.textContent = error instanceof ApiCallError ? `${error.message} [${error.code}]` : error instanceof Error ? error.message : String(error);
  element.classList.add('error');
}

function setStatus(element: HTMLElement, text: string): void {
  element.textContent = text;
  element.classList.remove('error');
}

// ---- sign-in ---------------------------------------------------------------------------------------

function showSignIn(message?: string): void {
  $('app').hidden = true;
  $('sign-out').hidden = true;
  $('token-panel').hidden = false;
  setStatus($('token-error'), message ?? '');
  if (message) $('token-error').classList.add('error');
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

// ---- query source ------------------------------------------------------------------------------------

function thumbnailBase(from: QuerySource): string {
  return from.kind === 'indexed' ? `/api/volumes/${encodeURIComponent(from.volume.volumeId)}/thumbnail.png` : `/api/uploads/${encodeURIComponent(from.upload.uploadId)}/thumbnail.png`;
}

function geometryOf(from: QuerySource): { dims: [number, number, number]; affineRas: number[] } {
  return from.kind === 'indexed' ? from.volume : from.upload;
}

async function setSource(next: QuerySource): Promise<void> {
  source = next;
  const { dims, affineRas } = geometryOf(next);
  slab.setVolume(dims[2], (k) => sliceZ(affineRas, dims, k));
  const image = $('query-coronal') as HTMLImageElement;
  image.alt = next.kind === 'indexed' ? `Coronal view of volume ${next.volume.volumeId}` : 'Coronal view of the uploaded volume';
  $('query-stack').setAttribute('aria-busy', 'true');
  try {
    image.src = await picture(thumbnailBase(next) + query({ plane: 'coronal', window: windowName(), maxPx: 512 }));
  } catch (error) {
    showError($('search-status'), error);
  } finally {
    $('query-stack').removeAttribute('aria-busy');
  }
  ($('search-button') as HTMLButtonElement).disabled = false;
}

async function loadVolumes(): Promise<void> {
  const list = await call<{ volumes: VolumeInfo[]; total: number }>('/api/volumes?limit=1000');
  const menu = select('volume-select');
  menu.replaceChildren(
    ...list.volumes.map((volume) => {
      const option = document.createElement('option');
      option.value = volume.volumeId;
      const labels = labelText(volume.labels);
      option.textContent = `${volume.volumeId}${labels ? ` — ${labels}` : ''} (${volume.dims[2]} slices)`;
      return option;
    }),
  );
  const byId = new Map(list.volumes.map((v) => [v.volumeId, v]));
  menu.onchange = () => {
    const volume = byId.get(menu.value);
    if (volume) void setSource({ kind: 'indexed', volume });
  };
  if (list.volumes.length > 0) await setSource({ kind: 'indexed', volume: list.volumes[0] });
  else setStatus($('search-status'), 'The index holds no volumes yet.');
}

function sourceKindChanged(): void {
  const kind = (document.querySelector('input[name="source"]:checked') as HTMLInputElement | null)?.value;
  $('indexed-source').hidden = kind !== 'indexed';
  $('upload-source').hidden = kind !== 'upload';
  if (kind === 'indexed') select('volume-select').dispatchEvent(new Event('change'));
}
for (const radio of document.querySelectorAll<HTMLInputElement>('input[name="source"]')) radio.addEventListener('change', sourceKindChanged);

$('upload-button').addEventListener('click', () => void upload());

async function upload(): Promise<void> {
  const file = input('upload-input').files?.[0];
  const status = $('upload-status');
  if (!file) {
    showError(status, new Error('Choose a NIfTI file or a zip of a DICOM series first.'));
    return;
  }
  if (indexInfo && file.size > indexInfo.limits.maxUploadBytes) {
    showError(status, new Error(`The file is ${(file.size / 1e6).toFixed(0)} MB; this server accepts at most ${(indexInfo.limits.maxUploadBytes / 1e6).toFixed(0)} MB.`));
    return;
  }
  setStatus(status, `Uploading ${(file.size / 1e6).toFixed(1)} MB and reading it…`);
  const form = new FormData();
  form.append('file', file);
  try {
    const uploaded = await call<UploadInfo>('/api/uploads', { method: 'POST', body: form });
    setStatus(status, `Read ${uploaded.dims.join('×')} voxels${uploaded.indexedAs ? ` (the same scan as indexed volume ${uploaded.indexedAs})` : ''}.`);
    await setSource({ kind: 'upload', upload: uploaded });
  } catch (error) {
    showError(status, error);
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
  select('fusion').disabled = select('fuse').value === '';
}
select('method').addEventListener('change', methodChanged);
select('fuse').addEventListener('change', methodChanged);

function numberField(id: string): number | undefined {
  const value = input(id).value.trim();
  return value === '' ? undefined : Number(value);
}

function searchBody(from: QuerySource): Record<string, unknown> {
  const body: Record<string, unknown> = from.kind === 'indexed' ? { volumeId: from.volume.volumeId } : { uploadId: from.upload.uploadId };
  if (!slab.isWholeVolume) {
    body.firstSlice = slab.range.first;
    body.lastSlice = slab.range.last;
  }
  body.method = select('method').value;
  if (body.method === 'rerank') body.firstStage = select('first-stage').value;
  for (const [id, key] of [['opt-k', 'k'], ['opt-candidates', 'candidates'], ['opt-top', 'top']] as const) {
    const value = numberField(id);
    if (value !== undefined) body[key] = value;
  }
  body.mode = select('opt-mode').value;
  if (select('fuse').value) {
    body.fuse = select('fuse').value;
    body.fusion = select('fusion').value;
  }
  const where = input('opt-where').value.split(',').map((s) => s.trim()).filter(Boolean);
  if (where.length) body.where = where;
  if (input('opt-include-self').checked) body.includeSelf = true;
  return body;
}

// ---- search and results ------------------------------------------------------------------------------

$('search-button').addEventListener('click', () => void runSearch());

async function runSearch(): Promise<void> {
  if (!source) return;
  const status = $('search-status');
  const button = $('search-button') as HTMLButtonElement;
  button.disabled = true;
  $('results').setAttribute('aria-busy', 'true');
  setStatus(status, 'Searching…');
  const from = source;
  try {
    const response = await postJson<SearchResponse>('/api/search', searchBody(from));
    lastSearch = { response, source: from };
    const { timings, query: q } = response;
    setStatus(
      status,
      `${response.results.length} result${response.results.length === 1 ? '' : 's'} for ${q.sliceCount} query slice${q.sliceCount === 1 ? '' : 's'} (${q.firstSlice}–${q.lastSlice}); ` +
        `search ${timings.searchMs.toFixed(0)} ms${q.reusedStoredVectors ? '' : `, embedding ${timings.queryMs.toFixed(0)} ms`}.`,
    );
    renderResults(response, from);
  } catch (error) {
    showError(status, error);
  } finally {
    button.disabled = false;
    $('results').removeAttribute('aria-busy');
  }
}

function figure(className: string, caption: string): { figure: HTMLElement; stack: HTMLElement; image: HTMLImageElement } {
  const fig = document.createElement('figure');
  fig.className = className;
  const stack = document.createElement('div');
  stack.className = 'stack';
  const image = document.createElement('img');
  image.decoding = 'async';
  stack.append(image);
  const text = document.createElement('figcaption');
  text.textContent = caption;
  fig.append(stack, text);
  return { figure: fig, stack, image };
}

function renderResults(response: SearchResponse, from: QuerySource): void {
  const list = $('results');
  list.replaceChildren();
  $('results-empty').hidden = response.results.length > 0;
  for (const result of response.results) list.append(resultRow(result, response, from));
}

function resultRow(result: SearchResultInfo, response: SearchResponse, from: QuerySource): HTMLElement {
  const item = document.createElement('li');
  item.className = 'result';
  item.dataset.volumeId = result.volumeId;
  const region = result.region;
  const regionText = region
    ? `Match at z ${region.zStartMm.toFixed(1)} … ${region.zEndMm.toFixed(1)} mm, slices ${region.firstSlice}–${region.lastSlice}`
    : 'No localized region';
  const base = `/api/volumes/${encodeURIComponent(result.volumeId)}/thumbnail.png`;

  const coronal = figure('coronal', region ? `slices ${region.firstSlice}–${region.lastSlice}` : 'coronal');
  coronal.image.alt = `Coronal view of ${result.volumeId}${region ? `, slices ${region.firstSlice} to ${region.lastSlice} tinted` : ''}`;
  void picture(base + query({ plane: 'coronal', window: windowName(), maxPx: 320, ...(region ? { bandFirst: region.firstSlice, bandLast: region.lastSlice, tint: 'match' } : {}) })).then(
    (url) => (coronal.image.src = url),
    () => (coronal.image.alt = 'picture unavailable'),
  );
  if (region) {
    const band = document.createElement('div');
    band.className = 'band band-match';
    band.title = regionText;
    placeBand(band, { first: region.firstSlice, last: region.lastSlice }, result.dims[2]);
    coronal.stack.append(band);
  }
  item.append(coronal.figure);

  const match = result.middleMatch;
  if (match) {
    const axial = figure('axial', `Axial slice ${match.targetSlice}: best match of query slice ${match.querySlice}`);
    axial.image.alt = `Axial slice ${match.targetSlice} of ${result.volumeId}`;
    void picture(base + query({ plane: 'axial', index: match.targetSlice, window: windowName(), maxPx: 256 })).then(
      (url) => (axial.image.src = url),
      () => (axial.image.alt = 'picture unavailable'),
    );
    item.append(axial.figure);
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
  title.textContent = result.volumeId;
  const score = document.createElement('span');
  score.className = 'score';
  score.textContent = `score ${result.score.toFixed(4)}`;
  head.append(rank, title, score);
  const labels = document.createElement('p');
  labels.className = 'labels';
  labels.textContent = labelText(result.labels);
  const where = document.createElement('p');
  where.className = 'region';
  where.textContent = regionText;
  const similarity = document.createElement('p');
  similarity.className = 'muted small';
  if (match) similarity.textContent = `Query slice ${match.querySlice} ↔ slice ${match.targetSlice}: similarity ${match.similarity.toFixed(3)}`;
  const open = document.createElement('button');
  open.type = 'button';
  open.className = 'open-viewer';
  open.textContent = 'Open in viewer';
  open.setAttribute('aria-label', `Open ${result.volumeId} in the viewer beside the query`);
  open.addEventListener('click', () => void openViewer(result, response, from));
  info.append(head, labels, where, similarity, open);
  item.append(info);
  return item;
}

// ---- viewer --------------------------------------------------------------------------------------------

function closeViewer(): void {
  for (const pane of viewerPanes) pane.close();
  viewerPanes = [];
}

async function openViewer(result: SearchResultInfo, response: SearchResponse, from: QuerySource): Promise<void> {
  const dialog = $('viewer') as HTMLDialogElement;
  closeViewer();
  const note = $('viewer-note');
  setStatus(note, '');
  const queryGeometry = geometryOf(from);
  const queryTarget: ViewTarget = {
    title: `Query ${from.kind === 'indexed' ? from.volume.volumeId : 'upload'}, slices ${response.query.firstSlice}–${response.query.lastSlice}`,
    niftiPath: from.kind === 'indexed' ? `/api/volumes/${encodeURIComponent(from.volume.volumeId)}/volume.nii.gz` : `/api/uploads/${encodeURIComponent(from.upload.uploadId)}/volume.nii.gz`,
    thumbnailPath: thumbnailBase(from),
    dims: queryGeometry.dims,
    affineRas: queryGeometry.affineRas,
    band: { first: response.query.firstSlice, last: response.query.lastSlice },
    tint: 'query',
  };
  const record = await call<VolumeInfo>(`/api/volumes/${encodeURIComponent(result.volumeId)}`);
  const region = result.region ?? { firstSlice: 0, lastSlice: record.dims[2] - 1 };
  const resultTarget: ViewTarget = {
    title: `Rank ${result.rank}: ${result.volumeId}, slices ${region.firstSlice}–${region.lastSlice}`,
    niftiPath: `/api/volumes/${encodeURIComponent(result.volumeId)}/volume.nii.gz`,
    thumbnailPath: `/api/volumes/${encodeURIComponent(result.volumeId)}/thumbnail.png`,
    dims: record.dims,
    affineRas: record.affineRas,
    band: { first: region.firstSlice, last: region.lastSlice },
    tint: 'match',
  };
  $('viewer-query-title').textContent = queryTarget.title;
  $('viewer-result-title').textContent = resultTarget.title;
  if (!dialog.open) dialog.showModal();
  dialog.setAttribute('aria-busy', 'true');
  const onNote = (text: string): void => setStatus(note, text);
  try {
    viewerPanes = await Promise.all([openPane($('viewer-query'), queryTarget, onNote), openPane($('viewer-result'), resultTarget, onNote)]);
    dialog.dataset.ready = 'true';
  } catch (error) {
    showError(note, error);
  } finally {
    dialog.removeAttribute('aria-busy');
  }
}

$('viewer-close').addEventListener('click', () => ($('viewer') as HTMLDialogElement).close());
$('viewer').addEventListener('close', () => {
  closeViewer();
  delete ($('viewer') as HTMLElement).dataset.ready;
});

select('display-window').addEventListener('change', () => {
  if (source) void setSource(source);
  if (lastSearch) renderResults(lastSearch.response, lastSearch.source);
});

// ---- start ---------------------------------------------------------------------------------------------

async function start(): Promise<void> {
  try {
    indexInfo = await call<IndexInfo>('/api/index');
  } catch (error) {
    if (!(error instanceof ApiCallError && error.status === 401)) showSignIn(error instanceof Error ? error.message : String(error));
    return;
  }
  $('token-panel').hidden = true;
  $('app').hidden = false;
  $('sign-out').hidden = false;
  const encoder = indexInfo.encoderId.split(/[@|]/)[0];
  $('index-info').textContent = `${indexInfo.volumes} volumes, ${indexInfo.slices} slices · encoder ${encoder}`;
  fillMethods(indexInfo.methods);
  if (!indexInfo.canEmbedUploads) {
    input('upload-input').disabled = true;
    setStatus($('upload-status'), 'Uploads are off: the index has no encoder.json to embed them with.');
  }
  try {
    await loadVolumes();
  } catch (error) {
    showError($('search-status'), error);
  }
}

// A server started with --no-auth needs no token, so try first and ask only when refused.
takeToken();
void start();
