import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MATCH_COLOR, QUERY_COLOR, writeSheet, type SheetPanel } from '../io/sheet.js';
import { encodePng, renderSlice, type Rgb, type SliceBand } from '../io/png.js';
import { readVolume } from '../io/read.js';
import type { Volume } from '../io/volume.js';
import type { ZExtent } from './datasets/types.js';
import { slabOf, zIoU } from './metrics.js';
import type { EvalResults, RankedCase } from './run.js';

/**
 * Example queries as pictures: the query and its top results as coronal views, the query slab tinted
 * blue, each result's localized region orange and, where a mask says where the queried anatomy truly
 * is, that extent green. Panels are PNGs for embedding in report.html (base64); a sheet per example is
 * also written with io/sheet.ts for people who want the file.
 */

export const TRUTH_COLOR: Rgb = [40, 200, 90];
/** Longest side of a panel, px: enough to see the organ, small enough that the HTML stays light. */
const PANEL_PX = 180;
const RESULTS_SHOWN = 5;

export interface ExamplePanel {
  caption: string[];
  pngBase64: string;
  widthPx: number;
  heightPx: number;
}

export interface Example {
  task: string;
  encoder: string;
  method: string;
  queryKey: string;
  title: string;
  panels: ExamplePanel[];
  /** The composite picture written by io/sheet.ts, relative to the out dir. */
  sheet?: string;
  problems: string[];
}

function band(extent: { firstSlice: number; lastSlice: number } | undefined, color: Rgb, alpha: number): SliceBand[] {
  return extent ? [{ kFirst: extent.firstSlice, kLast: extent.lastSlice, color, alpha }] : [];
}

function panelOf(volume: Volume, bands: SliceBand[], caption: string[]): ExamplePanel {
  const fovU = volume.dims[0] * volume.spacingMm[0];
  const fovV = volume.dims[2] * volume.spacingMm[2];
  const image = renderSlice(volume, { plane: 'coronal', bands, pixelMm: Math.max(fovU, fovV) / PANEL_PX });
  return { caption, pngBase64: encodePng(image).toString('base64'), widthPx: image.width, heightPx: image.height };
}

/** Queries worth showing: for tumour tasks one per lesion group (largest first), for region tasks the
 * first ones; `perTask` at most. */
export function pickExampleQueries(results: EvalResults, perTask = 3): { task: string; queryKey: string }[] {
  const picks: { task: string; queryKey: string }[] = [];
  for (const task of results.tasks) {
    if (task.kind === 'tumour') {
      const byGroup = new Map<number, string>();
      const sorted = [...task.queryKeys].sort((a, b) => (results.cases[b]?.lesionGroup ?? -1) - (results.cases[a]?.lesionGroup ?? -1));
      for (const key of sorted) {
        const group = results.cases[key]?.lesionGroup ?? -1;
        if (!byGroup.has(group)) byGroup.set(group, key);
      }
      for (const key of [...byGroup.values()].slice(0, perTask)) picks.push({ task: task.name, queryKey: key });
    } else {
      for (const key of task.queryKeys.slice(0, Math.max(1, perTask - 1))) picks.push({ task: task.name, queryKey: key });
    }
  }
  return picks;
}

/** The extent of `region` in a case, if a mask gave one. */
function regionExtent(results: EvalResults, caseId: string, region: string | undefined): ZExtent | undefined {
  return region ? results.cases[caseId]?.regions?.[region] : undefined;
}

export async function renderExamples(results: EvalResults, outDir: string, options: { perTask?: number; method?: string; encoder?: string } = {}): Promise<Example[]> {
  const method = options.method ?? (results.methods.some((m) => m.label === 'rerank') ? 'rerank' : results.methods[0].label);
  const encoder = options.encoder ?? results.encoders[0].name;
  const examples: Example[] = [];
  await mkdir(join(outDir, 'examples'), { recursive: true });
  for (const [n, pick] of pickExampleQueries(results, options.perTask).entries()) {
    // Per example only: full-size CTs are hundreds of MB each, so none is kept past its picture.
    const cache = new Map<string, Promise<Volume>>();
    const load = (path: string): Promise<Volume> => {
      let v = cache.get(path);
      if (!v) cache.set(path, (v = readVolume(path)));
      return v;
    };
    const task = results.tasks.find((t) => t.name === pick.task)!;
    const ranking = results.rankings.find((r) => r.task === pick.task && r.encoder === encoder && r.method === method)?.queries.find((q) => q.queryKey === pick.queryKey);
    if (!ranking) continue;
    const [queryId, queryRegion] = pick.queryKey.split('#');
    // The anatomy whose true extent is drawn: the queried region, or for a tumour query the organ its
    // labels describe when a mask gave that organ's extent.
    const shownRegion = queryRegion ?? results.cases[queryId]?.organ;
    const problems: string[] = [];
    const panels: ExamplePanel[] = [];
    const sheetPanels: SheetPanel[] = [];
    const query = results.cases[queryId];
    try {
      const volume = await load(query.imagePath);
      const slab = regionExtent(results, queryId, queryRegion);
      panels.push(panelOf(volume, band(slab, QUERY_COLOR, 0.3), ['query', queryId, `group ${query.lesionGroup}`, slab ? `${queryRegion} slab, slices ${slab.firstSlice}–${slab.lastSlice}` : 'whole volume']));
      sheetPanels.push({ volume, ...(slab ? { band: { firstSlice: slab.firstSlice, lastSlice: slab.lastSlice } } : {}), color: QUERY_COLOR });
    } catch (error) {
      problems.push(`query ${queryId}: ${(error as Error).message}`);
    }
    for (const [rank, hit] of ranking.results.slice(0, RESULTS_SHOWN).entries()) {
      const c = results.cases[hit.caseId];
      try {
        const volume = await load(c.imagePath);
        const truth = regionExtent(results, hit.caseId, shownRegion);
        // IoU only for region queries: a whole-volume tumour query asks for no particular z-range.
        const caption = [`#${rank + 1} ${hit.caseId}`, `score ${hit.score.toFixed(3)} · group ${c.lesionGroup}`, regionCaption(hit, queryRegion ? truth : undefined, volume)];
        // The truth as edge lines only: a filled band over a filled band turns the picture to mud.
        panels.push(panelOf(volume, [...band(hit.region, MATCH_COLOR, 0.25), ...band(truth, TRUTH_COLOR, 0)], caption));
        sheetPanels.push({ volume, ...(hit.region ? { band: { firstSlice: hit.region.firstSlice, lastSlice: hit.region.lastSlice } } : {}), color: MATCH_COLOR });
      } catch (error) {
        problems.push(`${hit.caseId}: ${(error as Error).message}`);
      }
    }
    const sheet = join('examples', `${String(n + 1).padStart(2, '0')}-${pick.queryKey.replace(/[^A-Za-z0-9_.-]+/g, '_')}.png`);
    if (sheetPanels.length > 0) await writeSheet(join(outDir, sheet), sheetPanels, 200);
    examples.push({
      task: task.name,
      encoder,
      method,
      queryKey: pick.queryKey,
      title: `${task.name}: ${pick.queryKey} — ${method}, ${encoder}`,
      panels,
      ...(sheetPanels.length > 0 ? { sheet } : {}),
      problems,
    });
  }
  return examples;
}

function regionCaption(hit: RankedCase, truth: ZExtent | undefined, volume: Volume): string {
  if (!hit.region) return truth ? 'no region returned' : '';
  const where = `slices ${hit.region.firstSlice}–${hit.region.lastSlice}`;
  if (!truth) return where;
  const returned = slabOf(hit.region.zStartMm, hit.region.zEndMm, volume.spacingMm[2]);
  return `${where} · IoU ${zIoU(returned, truth).toFixed(2)}`;
}
