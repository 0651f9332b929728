import { join } from 'node:path';
import { indexVolumes } from '../ingest/indexer.js';
import { openIndex } from '../ingest/open-index.js';
import { readVolume } from '../io/read.js';
import { MATCH_COLOR, QUERY_COLOR, writeSheet, type SheetPanel } from '../io/sheet.js';
import { LABEL } from '../synth/index.js';
import { searchRequestOf } from '../query/request.js';
import { runSearch } from '../query/run.js';
import type { SearchResult } from '../search/types.js';
import type { DemoContext, DemoStep } from './demo-steps.js';
import { displayPath, formatTable } from './format.js';

/**
 * The retrieval half of the demo: index the phantoms, then ask the question a radiologist would —
 * "where is anatomy like this liver slab in the other scans?" — and check each answer against the
 * phantoms' known organ extents.
 */

export interface DemoRetrieval {
  indexDir: string;
  encoderName: string;
  queryId: string;
  results: SearchResult[];
  /** Per result: IoU of the localized slice range with the true liver slice range. */
  liverIoU: Map<string, number>;
  picture: string;
}

export interface DemoRetrievalContext extends DemoContext {
  retrieval?: DemoRetrieval;
}

/** The phantom the query slab is cut from: the first with a lesion and a whole liver. */
function queryPhantom(context: DemoContext): DemoContext['phantoms'][number] {
  return (
    context.phantoms.find((p) => p.truth.lesions.length > 0 && p.truth.organs.some((o) => o.name === 'liver' && o.complete)) ?? context.phantoms[0]
  );
}

/** IoU of two inclusive slice ranges of one volume. */
function sliceRangeIoU(a: [number, number], b: [number, number]): number {
  const overlap = Math.max(0, Math.min(a[1], b[1]) - Math.max(a[0], b[0]) + 1);
  const union = Math.max(a[1], b[1]) - Math.min(a[0], b[0]) + 1;
  return overlap / union;
}

export function demoIndexStep(encoderName: string): DemoStep {
  return {
    name: 'index',
    async run(context: DemoRetrievalContext) {
      const { outDir, print } = context.options;
      const indexDir = join(outDir, 'index');
      const index = await openIndex(indexDir, { spec: { encoder: encoderName }, onStatus: (m) => print(`${m}\n`) });
      const { store } = index;
      const encoder = await index.encoder();
      const byPath = new Map(context.phantoms.map((p) => [join(outDir, p.files.ct), p]));
      try {
        const summary = await indexVolumes(
          context.phantoms.map((p) => ({ path: join(outDir, p.files.ct), kind: 'nifti' as const })),
          {
            store,
            encoder,
            labelsFor: (source): Record<string, string | number> => {
              const phantom = byPath.get(source.path);
              return phantom ? { phantom: phantom.id, coverage: phantom.truth.coverage, cancer_flag: phantom.truth.cancerFlag, lesion_group: phantom.truth.lesionGroup } : {};
            },
          },
        );
        const stats = store.stats();
        print(`\nindexed ${summary.added} phantoms (${summary.unchanged} unchanged) with ${encoder.name}: ${stats.volumes} volumes, ${stats.slices} slice vectors in ${displayPath(indexDir)}\n`);
        context.retrieval = { indexDir, encoderName: encoder.name, queryId: '', results: [], liverIoU: new Map(), picture: '' };
      } finally {
        await index.close();
      }
    },
  };
}

export const demoSearchStep: DemoStep = {
  name: 'search',
  async run(context: DemoRetrievalContext) {
    const { outDir, print } = context.options;
    const retrieval = context.retrieval;
    if (!retrieval) throw new Error('the search step needs the index step first');
    const query = queryPhantom(context);
    const index = await openIndex(retrieval.indexDir, { readOnly: true });
    const { store } = index;
    try {
      const request = searchRequestOf({ kind: 'path', path: join(outDir, query.files.ct) }, { mask: join(outDir, query.files.labels), label: LABEL.liver, method: 'rerank', top: 5 });
      const { resolved, results } = await runSearch(request, { store, encoder: () => index.encoder() });
      retrieval.queryId = query.id;
      retrieval.results = results;
      const phantomOf = (volumeId: string): DemoContext['phantoms'][number] | undefined => {
        const label = store.getVolume(volumeId)?.labels.phantom;
        return context.phantoms.find((p) => p.id === label);
      };
      const panels: SheetPanel[] = [];
      if (resolved.volume) {
        panels.push({ volume: resolved.volume, band: { firstSlice: Math.min(...resolved.sliceIndices), lastSlice: Math.max(...resolved.sliceIndices) }, color: QUERY_COLOR });
      }
      const rows: string[][] = [];
      for (const result of results) {
        const phantom = phantomOf(result.volumeId);
        const liver = phantom?.truth.organs.find((o) => o.name === 'liver');
        const iou = result.region && liver?.sliceRange ? sliceRangeIoU([result.region.firstSlice, result.region.lastSlice], liver.sliceRange) : NaN;
        retrieval.liverIoU.set(result.volumeId, iou);
        rows.push([
          String(result.rank),
          phantom?.id ?? result.volumeId,
          result.score.toFixed(4),
          result.region ? `${result.region.zStartMm.toFixed(0)}…${result.region.zEndMm.toFixed(0)}` : '-',
          liver?.zRangeMm ? liver.zRangeMm.map((z) => z.toFixed(0)).join('…') : '-',
          Number.isFinite(iou) ? iou.toFixed(2) : '-',
        ]);
        if (phantom) {
          const volume = await readVolume(join(outDir, phantom.files.ct));
          panels.push({ volume, ...(result.region ? { band: { firstSlice: result.region.firstSlice, lastSlice: result.region.lastSlice } } : {}), color: MATCH_COLOR });
        }
      }
      retrieval.picture = join(outDir, 'search.png');
      await writeSheet(retrieval.picture, panels);
      const header = ['rank', 'volume', 'score', 'localized z mm', 'true liver z mm', 'IoU'];
      const liverTruth = query.truth.organs.find((o) => o.name === 'liver');
      print(
        `\nquery: the liver slab of ${query.id} (mask label ${LABEL.liver}, ${resolved.sliceIndices.length} slices, z ${liverTruth?.zRangeMm?.map((z) => z.toFixed(0)).join('…') ?? '?'} mm), ` +
          `C-MIR re-ranking of slice-count candidates; the query's own volume excluded\n\n`,
      );
      print(`${formatTable(header, rows)}\n`);
      const ious = [...retrieval.liverIoU.values()].filter(Number.isFinite);
      if (ious.length) print(`\nmean IoU of the localized region with the true liver extent: ${(ious.reduce((a, b) => a + b, 0) / ious.length).toFixed(2)}\n`);
      print(`picture: ${displayPath(retrieval.picture)} (query slab in blue, localized regions in orange)\n`);
    } finally {
      await index.close();
    }
  },
};
