import type { VolumeRecord } from '../store/types.js';
import { localizationRun, regionRuns, tumourRuns, type RegionQuery } from './datasets/relevance.js';
import type { RetrievalDataset } from './datasets/types.js';
import { DEFAULT_PRECISION_KS, DEFAULT_RECALL_KS, evaluateLocalization, mean, evaluateRegionRecall, evaluateTumourRetrieval, slabOf, zIoU, type LocalizationEvaluation, type LocalizationRun, type RegionEvaluation, type TumourEvaluation, type ZInterval } from './metrics.js';


// ---------------------------------------------------------------------------------------------------
// Rankings and their scores (pure: the glue between search results and metrics.ts)
// ---------------------------------------------------------------------------------------------------

/** Retrieved volumes per query whose localized region is scored against the truth. */
export const DEFAULT_LOCALIZATION_DEPTH = 5;
/** Depth of the near-duplicate share (devbench). */
export const SAME_SCAN_K = 5;

/** A retrieved volume as the evaluation keeps it. */
export interface RankedCase {
  caseId: string;
  volumeId: string;
  score: number;
  /** Localized region (slice centres, as search reports it). */
  region?: { firstSlice: number; lastSlice: number; zStartMm: number; zEndMm: number };
}

/** Where a database volume lies along z: what localization needs to turn slice centres into slabs and
 * to place a random window. */
export interface CaseGeometry {
  sliceSpacingMm: number;
  /** The volume's scanned slab (first slice centre − half a slice … last + half). */
  scan: ZInterval;
}

export function geometryOfRecord(record: Pick<VolumeRecord, 'dims' | 'spacingMm' | 'affineRas'>): CaseGeometry {
  const a = record.affineRas;
  const ci = (record.dims[0] - 1) / 2;
  const cj = (record.dims[1] - 1) / 2;
  const zAt = (k: number): number => a[8] * ci + a[9] * cj + a[10] * k + a[11];
  const spacing = record.spacingMm[2];
  return { sliceSpacingMm: spacing, scan: slabOf(zAt(0), zAt(record.dims[2] - 1), spacing) };
}

export function scoreTumourRankings(dataset: RetrievalDataset, rankings: ReadonlyMap<string, readonly RankedCase[]>, ks: readonly number[] = DEFAULT_PRECISION_KS): TumourEvaluation {
  const ids = new Map([...rankings].map(([q, list]) => [q, list.map((r) => r.caseId)]));
  return evaluateTumourRetrieval(tumourRuns(dataset, ids), { ks });
}

/** Pairs whose true extent covers less than this share of the retrieved scan: where a localization can
 * be wrong at all (when the structure fills the scan, any region inside it overlaps the truth). */
export const PARTIAL_EXTENT_SHARE = 0.9;

export interface RegionScores {
  region: RegionEvaluation;
  localization: LocalizationEvaluation;
  /** The same over the pairs whose true extent covers < PARTIAL_EXTENT_SHARE of the retrieved scan. */
  partialLocalization: LocalizationEvaluation;
  /** IoU of every scored (query, retrieved volume) pair, per region, for the distribution plot. */
  iousByRegion: Record<string, number[]>;
}

export const regionQueryKey = (q: RegionQuery): string => `${q.queryId}#${q.region}`;

/**
 * Region recall over every region query with a ranking, and z-IoU of the localized region against the
 * queried structure's true extent for each of the top `localizationDepth` retrieved volumes that hold
 * it (those that do not are counted, not scored). A retrieved volume without a region scores IoU 0.
 */
export function scoreRegionRankings(
  dataset: RetrievalDataset,
  queries: readonly RegionQuery[],
  rankings: ReadonlyMap<string, readonly RankedCase[]>,
  geometry: ReadonlyMap<string, CaseGeometry>,
  options: { ks?: readonly number[]; localizationDepth?: number } = {},
): RegionScores {
  const ids = new Map([...rankings].map(([q, list]) => [q, list.map((r) => r.caseId)]));
  const region = evaluateRegionRecall(regionRuns(dataset, queries, ids, regionQueryKey), { ks: options.ks ?? DEFAULT_RECALL_KS });
  const depth = options.localizationDepth ?? DEFAULT_LOCALIZATION_DEPTH;
  const byId = new Map(dataset.database.map((c) => [c.caseId, c]));
  const runs: LocalizationRun[] = [];
  const iousByRegion: Record<string, number[]> = {};
  for (const q of queries) {
    const list = rankings.get(regionQueryKey(q));
    if (!list) continue;
    for (const hit of list.filter((r) => r.caseId !== q.queryId).slice(0, depth)) {
      const retrieved = byId.get(hit.caseId);
      if (!retrieved) throw new RangeError(`query ${regionQueryKey(q)}: retrieved id ${hit.caseId} is not in the database`);
      const g = geometry.get(hit.caseId);
      const returned = hit.region && g ? slabOf(hit.region.zStartMm, hit.region.zEndMm, g.sliceSpacingMm) : undefined;
      const run = localizationRun(q, retrieved, returned, g?.scan);
      runs.push(run);
      if (run.truth) (iousByRegion[q.region] ??= []).push(run.returned ? zIoU(run.returned, run.truth) : 0);
    }
  }
  const length = (i: ZInterval): number => Math.abs(i.zEndMm - i.zStartMm);
  const partial = runs.filter((r) => r.truth && r.scan && length(r.truth) < PARTIAL_EXTENT_SHARE * length(r.scan));
  return { region, localization: evaluateLocalization(runs), partialLocalization: evaluateLocalization(partial), iousByRegion };
}

export interface SameScanShare {
  k: number;
  /** Mean over queries of the share of the top k that are variants of the query's own scan. */
  share: number;
  /** The same under random retrieval: (same-scan volumes in the pool / pool) · min(k, N)/k. */
  randomShare: number;
}

/** How much of what a method returns is a near-duplicate (another variant of the query's own scan). */
export function scoreSameScan(dataset: RetrievalDataset, rankings: ReadonlyMap<string, readonly RankedCase[]>, scanOf: ReadonlyMap<string, string>, k = SAME_SCAN_K, queryCaseOf: (key: string) => string = (key) => key.split('#')[0]): SameScanShare {
  const shares: number[] = [];
  const randoms: number[] = [];
  for (const [key, list] of rankings) {
    const queryId = queryCaseOf(key);
    const scan = scanOf.get(queryId);
    const pool = dataset.database.filter((c) => c.caseId !== queryId);
    if (scan === undefined || pool.length === 0) continue;
    shares.push(list.filter((r) => r.caseId !== queryId).slice(0, k).filter((r) => scanOf.get(r.caseId) === scan).length / k);
    randoms.push((pool.filter((c) => scanOf.get(c.caseId) === scan).length / pool.length) * (Math.min(k, pool.length) / k));
  }
  return { k, share: mean(shares), randomShare: mean(randoms) };
}
