/**
 * Per-slice retrieval on the query split, for a head that learned per-slice targets from masks: each query
 * slice (labelled from its own mask, read only to score) retrieves its k nearest database slices, raw and
 * in the head's space, through the stores' own slice search; P@k is the share with the query slice's label.
 * The random level is exact: the share of database slices with that label. The query's mask never reaches
 * training (the head is fitted before any query is searched).
 */
import { sliceLabelsFromMasks, type SliceTarget } from '../labels/slice-targets.js';
import type { Volume } from '../io/volume.js';
import type { QueryVectors } from '../search/types.js';
import type { SpaceStore } from '../space/space-store.js';
import type { Store } from '../store/types.js';
import type { Case } from './datasets/types.js';
import { mean, standardError } from './metrics.js';

export interface SliceRetrievalScore {
  target: string;
  k: number;
  querySlices: number;
  queryVolumes: number;
  /** Mean P@k over query slices, with its standard error (slices of one volume are not independent). */
  raw: { mean: number; se: number };
  fineTuned: { mean: number; se: number };
  /** Fine-tuned minus raw, paired over query slices. */
  gain: { mean: number; se: number };
  random: number;
}

export interface QueryRows {
  queryCase: Case;
  rows: QueryVectors;
  geometry: Pick<Volume, 'dims' | 'affineRas'>;
}

const meanSe = (values: readonly number[]): { mean: number; se: number } => ({ mean: mean(values), se: standardError(values) });

/** `databaseLabels`: database volume id → its slice index → the label per slice target. */
export async function scoreSliceRetrieval(
  store: Store,
  viewOf: (queryCase: Case) => SpaceStore,
  queries: readonly QueryRows[],
  targets: readonly SliceTarget[],
  databaseLabels: ReadonlyMap<string, ReadonlyMap<number, readonly string[]>>,
  k = 5,
): Promise<SliceRetrievalScore[]> {
  const masked = queries.filter((q) => q.queryCase.maskPath !== undefined);
  if (masked.length === 0 || targets.length === 0) return [];
  const labels = await sliceLabelsFromMasks(
    masked.map((q) => ({ volumeId: q.queryCase.caseId, what: q.queryCase.imagePath, geometry: q.geometry, sliceIndices: q.rows.sliceIndices, maskPath: q.queryCase.maskPath! })),
    targets,
    undefined,
    { requirePresent: false },
  );
  const includeVolumeIds = [...databaseLabels.keys()];
  let databaseSlices = 0;
  const counts = targets.map(() => new Map<string, number>());
  for (const perSlice of databaseLabels.values()) {
    for (const values of perSlice.values()) {
      databaseSlices++;
      values.forEach((v, t) => counts[t].set(v, (counts[t].get(v) ?? 0) + 1));
    }
  }
  const scores = targets.map(() => ({ raw: [] as number[], tuned: [] as number[], random: [] as number[] }));
  for (const q of masked) {
    const own = labels.byVolume.get(q.queryCase.caseId)!;
    const options = { k, mode: 'exact' as const, filter: { includeVolumeIds } };
    const rawHits = await store.searchSlices(q.rows.vectors, options);
    const view = viewOf(q.queryCase);
    const tunedHits = await view.searchSlices(await view.project(q.rows.vectors), options);
    targets.forEach((_, t) => {
      const share = (hits: ReadonlyArray<{ volumeId: string; sliceIndex: number }>, label: string): number =>
        hits.filter((h) => databaseLabels.get(h.volumeId)?.get(h.sliceIndex)?.[t] === label).length / k;
      own[t].forEach((label, row) => {
        scores[t].raw.push(share(rawHits[row], label));
        scores[t].tuned.push(share(tunedHits[row], label));
        scores[t].random.push((counts[t].get(label) ?? 0) / Math.max(databaseSlices, 1));
      });
    });
  }
  return targets.map((target, t) => ({
    target: target.name,
    k,
    querySlices: scores[t].raw.length,
    queryVolumes: masked.length,
    raw: meanSe(scores[t].raw),
    fineTuned: meanSe(scores[t].tuned),
    gain: meanSe(scores[t].tuned.map((v, i) => v - scores[t].raw[i])),
    random: mean(scores[t].random),
  }));
}

export function sliceRetrievalNote(encoder: string, scores: readonly SliceRetrievalScore[]): string[] {
  const f = (x: { mean: number; se: number }): string => `${x.mean.toFixed(3)} ± ${x.se.toFixed(3)}`;
  return scores.map(
    (s) =>
      `${encoder}: per-slice retrieval on the query split, ${s.target} (each of ${s.querySlices} slices of ${s.queryVolumes} query volumes, labelled from its own mask, retrieves its ${s.k} nearest database slices): ` +
      `P@${s.k} raw ${f(s.raw)}, fine-tuned ${f(s.fineTuned)}, gain ${f(s.gain)}, random ${s.random.toFixed(3)} (standard errors treat slices as independent; slices of one volume are not).`,
  );
}
