import { NO_TUMOUR, type TumourLabels } from '../../labels/tumours.js';
import type { LocalizationRun, RegionQueryRun, TumourQueryRun, ZInterval } from '../metrics.js';
import type { Case, RetrievalDataset } from './types.js';

/**
 * Turns a dataset plus rankings (per query, the retrieved database case ids, best first) into the runs the
 * metrics take. The eval command maps the store's volume ids to case ids before calling these.
 */

/**
 * The labels `candidate` carries as seen from `query`: its own when both describe the same organ,
 * "no tumour" otherwise. This is 3D-MIR's own convention (its per-organ CSVs list other organs' volumes
 * as healthy for the benchmark organ), and it is what makes C-MIR's mixed archive comparable: a lung
 * volume retrieved for a liver query shows no liver tumour.
 */
export function judgedLabels(query: Case, candidate: Case): TumourLabels {
  if ((candidate.labelOrgan ?? candidate.organ) === (query.labelOrgan ?? query.organ)) {
    return { cancerFlag: candidate.labels.cancerFlag, lesionGroup: candidate.labels.lesionGroup };
  }
  return { ...NO_TUMOUR };
}

function caseIndex(dataset: RetrievalDataset): Map<string, Case> {
  return new Map(dataset.database.map((c) => [c.caseId, c]));
}

function lookup(index: Map<string, Case>, id: string, queryId: string): Case {
  const found = index.get(id);
  if (!found) throw new RangeError(`query ${queryId}: retrieved id ${id} is not in the database`);
  return found;
}

/** Tumour runs for every query that has a ranking; the pool is the database minus the query itself. */
export function tumourRuns(dataset: RetrievalDataset, rankings: ReadonlyMap<string, readonly string[]>): TumourQueryRun[] {
  const index = caseIndex(dataset);
  return dataset.queries
    .filter((q) => rankings.has(q.caseId))
    .map((q) => ({
      queryId: q.caseId,
      stratum: q.labelOrgan ?? q.organ ?? 'all',
      query: { cancerFlag: q.labels.cancerFlag, lesionGroup: q.labels.lesionGroup },
      retrieved: rankings.get(q.caseId)!.filter((id) => id !== q.caseId).map((id) => judgedLabels(q, lookup(index, id, q.caseId))),
      pool: dataset.database.filter((c) => c.caseId !== q.caseId).map((c) => judgedLabels(q, c)),
    }));
}

/** A region query: the anatomy `region` of query volume `queryId`. */
export interface RegionQuery {
  queryId: string;
  region: string;
}

/** Region runs: a retrieved volume is a hit when its `regions` include the queried region. */
export function regionRuns(
  dataset: RetrievalDataset,
  queries: readonly RegionQuery[],
  rankings: ReadonlyMap<string, readonly string[]>,
  keyOf: (q: RegionQuery) => string = (q) => `${q.queryId}#${q.region}`,
): RegionQueryRun[] {
  const index = caseIndex(dataset);
  return queries
    .filter((q) => rankings.has(keyOf(q)))
    .map((q) => {
      const pool = dataset.database.filter((c) => c.caseId !== q.queryId);
      return {
        queryId: keyOf(q),
        region: q.region,
        retrievedContains: rankings
          .get(keyOf(q))!
          .filter((id) => id !== q.queryId)
          .map((id) => lookup(index, id, q.queryId).regions?.[q.region] !== undefined),
        poolSize: pool.length,
        poolContaining: pool.filter((c) => c.regions?.[q.region] !== undefined).length,
      };
    });
}

/** One localization run per (region query, retrieved volume) with the returned slab. */
export function localizationRun(
  query: RegionQuery,
  retrieved: Case,
  returned: ZInterval | undefined,
  scan?: ZInterval,
): LocalizationRun {
  const extent = retrieved.regions?.[query.region];
  return {
    queryId: `${query.queryId}#${query.region}→${retrieved.caseId}`,
    region: query.region,
    returned,
    truth: extent ? { zStartMm: extent.zStartMm, zEndMm: extent.zEndMm } : undefined,
    scan,
  };
}

/** Every (query case, region it contains) pair, for a region benchmark's query list. */
export function regionQueriesOf(dataset: RetrievalDataset, regionNames?: readonly string[]): RegionQuery[] {
  const wanted = regionNames ? new Set(regionNames) : undefined;
  return dataset.queries.flatMap((q) =>
    Object.keys(q.regions ?? {})
      .filter((r) => !wanted || wanted.has(r))
      .sort()
      .map((region) => ({ queryId: q.caseId, region })),
  );
}
