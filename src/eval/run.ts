import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import type { Encoder } from '../encode/encoder.js';
import { SliceFeeder } from '../encode/slice-feeder.js';
import { indexVolumes, type IndexSummary } from '../ingest/indexer.js';
import { openIndex, type OpenedIndex } from '../ingest/open-index.js';
import { writeFileAtomic } from '../io/nifti-writer.js';
import { readVolume } from '../io/read.js';
import { searchRequestOf } from '../query/request.js';
import { resolveQuery, type QuerySource, type ResolvedQuery } from '../query/sources.js';
import { isSearchError } from '../search/errors.js';
import { DEFAULT_CANDIDATES, DEFAULT_FIRST_STAGE, DEFAULT_SLICE_K, search } from '../search/search.js';
import { SEARCH_METHODS, type FirstStageMethod, type FusionMethod, type QueryVectors, type SearchMethod, type SearchResult } from '../search/types.js';
import type { SliceHit, SliceSearchOptions, Store, VolumeRecord } from '../store/types.js';
import { cMirMixedDataset, findDecathlonTasks, threeDMirDataset } from './datasets/decathlon.js';
import { localizationRun, regionQueriesOf, regionRuns, tumourRuns, type RegionQuery } from './datasets/relevance.js';
import { hasThreeDMirFiles } from './datasets/threedmir-csv.js';
import { totalSegDataset, type RegionLevel } from './datasets/total-segmentator.js';
import type { Case, RetrievalDataset, ZExtent } from './datasets/types.js';
import { DEVBENCH_TASK_FOLDER, buildDevBenchmark, type DevBenchManifest } from './devbench.js';
import { maskZExtent } from './extents.js';
import { TUMOUR_ORGANS, type GroupRule, type TumourOrgan } from './lesions.js';
import {
  DEFAULT_PRECISION_KS,
  DEFAULT_RECALL_KS,
  evaluateLocalization,
  evaluateRegionRecall,
  evaluateTumourRetrieval,
  slabOf,
  zIoU,
  type LocalizationEvaluation,
  type LocalizationRun,
  type RegionEvaluation,
  type TumourEvaluation,
  type ZInterval,
} from './metrics.js';

/**
 * `mir3d eval` as a library function: the papers' protocols end to end. Load a dataset (3D-MIR per-organ
 * databases, C-MIR's mixed archive, TotalSegmentator regions, or the development benchmark), index its
 * database once per encoder, embed every query (queries are never indexed), run every method, and score
 * the rankings with metrics.ts — each number next to its random-retrieval expectation.
 *
 * One index per encoder holds the union of every task's database; a task searches only its own database
 * (an include filter), so 3D-MIR's four per-organ databases, which share volumes, are indexed once.
 * Store volume ids map back to dataset case ids through the indexer's outcomes (source path → volume id),
 * which stay right when the index is reused; each volume also carries a `case=<caseId>` label so a person
 * querying the index with `mir3d search` sees which case a hit is.
 */

// ---------------------------------------------------------------------------------------------------
// Methods
// ---------------------------------------------------------------------------------------------------

export interface EvalMethod {
  /** What tables and files call it: the method name, or `fusion:a+b` for a fused pair. */
  label: string;
  method: SearchMethod;
  fuseWith?: { method: SearchMethod; fusion: FusionMethod };
}

/** Every single method, then C-MIR's re-ranking fused with volume-mean by RRF and 3D-MIR's interleave. */
export const DEFAULT_EVAL_METHODS: readonly string[] = [...SEARCH_METHODS, 'rrf:rerank+volume-mean', 'interleave:slice-count+volume-mean'];
export const DEFAULT_EVAL_ENCODERS: readonly string[] = ['mobilenet_v2', 'baseline'];
/** Retrieved volumes per query whose localized region is scored against the truth. */
export const DEFAULT_LOCALIZATION_DEPTH = 5;
/** Depth of the near-duplicate share (devbench). */
export const SAME_SCAN_K = 5;

function isSearchMethod(text: string): text is SearchMethod {
  return (SEARCH_METHODS as readonly string[]).includes(text);
}

/** `slice-count`, …, or `rrf:a+b` / `interleave:a+b` (a fused with b). Shell-safe: no brackets. */
export function parseEvalMethod(text: string): EvalMethod {
  const spec = text.trim();
  if (isSearchMethod(spec)) return { label: spec, method: spec };
  const fused = /^(rrf|interleave):([a-z-]+)\+([a-z-]+)$/.exec(spec);
  if (fused && isSearchMethod(fused[2]) && isSearchMethod(fused[3])) {
    return { label: spec, method: fused[2], fuseWith: { method: fused[3], fusion: fused[1] as FusionMethod } };
  }
  throw new RangeError(`unknown method '${spec}': use ${SEARCH_METHODS.join(', ')}, or rrf:A+B / interleave:A+B`);
}

// ---------------------------------------------------------------------------------------------------
// Datasets → tasks
// ---------------------------------------------------------------------------------------------------

export type EvalDatasetSpec =
  | {
      kind: 'decathlon';
      /** Decathlon root (task folders) or one task folder. */
      root: string;
      /** 3D-MIR CSV folder; without it labels come from the masks and the split from a hash. */
      labelsDir?: string;
      /** Default 'all' (every organ with CSVs, or with a task folder when there are none). */
      organ?: TumourOrgan | 'all';
      /** '3dmir' (default): one database per organ; 'cmir': one mixed archive. */
      protocol?: '3dmir' | 'cmir';
      /** Also run organ-region queries (the organ's z-extent) where the masks label the organ; default true. */
      regions?: boolean;
      testFraction?: number;
      /** Group table for labels computed from masks (default 'design'); the CSVs' labels are used as written. */
      groupRule?: GroupRule;
    }
  | {
      kind: 'totalseg';
      root: string;
      /** Default 'coarse'. */
      level?: RegionLevel;
      /** Only these regions (default: every region of the queries). */
      regions?: readonly string[];
      testFraction?: number;
      /** At most this many query subjects (first by id), to bound a run on the full dataset. */
      maxQueries?: number;
    }
  | {
      kind: 'devbench';
      /** ../shared/data. */
      sharedDataDir: string;
      /** Where the benchmark is (built when it has no manifest); default <outDir>/devbench. */
      benchDir?: string;
      profile?: 'full' | 'small';
      matrix?: number;
      /** Liver-region queries and localization; default true. */
      regions?: boolean;
      /** Group table for the benchmark's labels (default 'design'); fixed when the benchmark is built. */
      groupRule?: GroupRule;
    };

export interface TumourTask {
  kind: 'tumour';
  name: string;
  dataset: RetrievalDataset;
}

export interface RegionTask {
  kind: 'region';
  name: string;
  region?: string;
  dataset: RetrievalDataset;
  queries: RegionQuery[];
}

export type EvalTask = TumourTask | RegionTask;

export interface PreparedDataset {
  /** What the report shows under "Dataset". */
  description: { kind: EvalDatasetSpec['kind']; path: string; protocol?: string; organ?: string; labelsDir?: string; level?: string };
  tasks: EvalTask[];
  notes: string[];
  /** Scan of origin per case (devbench: variants of one scan share it), for the near-duplicate share. */
  scanOf?: Map<string, string>;
  /** Devbench only. */
  manifest?: DevBenchManifest;
  buildSeconds?: number;
}

interface PrepareHooks {
  onMessage?: (line: string) => void;
  onProgress?: (event: EvalProgress) => void;
  /** Folder for the mask extent cache. */
  cacheDir?: string;
}

/** Mask z-extents are slow to read from full-size masks and never change: cached by path, size, mtime. */
class ExtentCache {
  private entries: Record<string, ZExtentOrNull> = {};
  private dirty = false;
  constructor(private readonly path: string | undefined) {
    if (path && existsSync(path)) {
      try {
        this.entries = JSON.parse(readFileSync(path, 'utf8')) as Record<string, ZExtentOrNull>;
      } catch {
        // A damaged cache only costs re-reading the masks.
        this.entries = {};
      }
    }
  }

  async extentOf(maskPath: string): Promise<ZExtent | undefined> {
    const info = await stat(maskPath);
    const key = `${resolve(maskPath)}|${info.size}|${Math.round(info.mtimeMs)}`;
    if (key in this.entries) return this.entries[key] ?? undefined;
    const extent = maskZExtent(await readVolume(maskPath));
    this.entries[key] = extent ?? null;
    this.dirty = true;
    return extent;
  }

  async save(): Promise<void> {
    if (!this.path || !this.dirty) return;
    await mkdir(dirname(this.path), { recursive: true });
    await writeFileAtomic(this.path, JSON.stringify(this.entries));
  }
}
type ZExtentOrNull = ZExtent | null;

/**
 * Organ-region tasks on Decathlon-layout data: for each tumour task whose organ its masks label (liver,
 * pancreas; colon and lung masks hold only the tumour), the query is the organ's z-extent in a query
 * volume and a hit is a retrieved volume whose mask holds the organ. Volumes from other tasks' folders
 * (3D-MIR's other-organ negatives) are left out of the region task: their masks do not say whether the
 * organ is in view, so they could be judged neither way.
 */
async function organRegionTasks(root: string, tumourTasks: readonly TumourTask[], cache: ExtentCache, hooks: PrepareHooks): Promise<RegionTask[]> {
  const labelledBy = new Map<string, Set<string>>();
  for (const task of await findDecathlonTasks(root)) {
    const names = new Set(Object.values(task.labelNames).map((n) => n.toLowerCase()));
    for (const c of task.training) if (c.maskPath) labelledBy.set(resolve(c.maskPath), names);
  }
  const out: RegionTask[] = [];
  for (const task of tumourTasks) {
    const organs = [...new Set([...task.dataset.database, ...task.dataset.queries].map((c) => c.labelOrgan ?? c.organ ?? ''))].filter(Boolean).sort();
    for (const organ of organs) {
      const known = (c: Case): boolean => c.maskPath !== undefined && (labelledBy.get(resolve(c.maskPath))?.has(organ) ?? false);
      const candidates = [...task.dataset.database, ...task.dataset.queries].filter(known);
      const withRegions = new Map<string, Case>();
      let done = 0;
      for (const c of candidates) {
        hooks.onProgress?.({ phase: 'masks', label: `reading ${organ} masks`, done, total: candidates.length, detail: c.caseId });
        const extent = await cache.extentOf(c.maskPath!);
        withRegions.set(c.caseId, { ...c, regions: extent ? { [organ]: extent } : {} });
        done++;
      }
      hooks.onProgress?.({ phase: 'masks', label: `reading ${organ} masks`, done, total: done });
      const database = task.dataset.database.filter((c) => withRegions.has(c.caseId)).map((c) => withRegions.get(c.caseId)!);
      const queries = task.dataset.queries.filter((c) => withRegions.has(c.caseId) && withRegions.get(c.caseId)!.regions![organ]).map((c) => withRegions.get(c.caseId)!);
      if (database.length === 0 || queries.length === 0) continue;
      const left = task.dataset.database.length - database.length;
      const dataset: RetrievalDataset = {
        name: `${task.name}/${organ}-region`,
        database,
        queries,
        judging: 'region',
        notes: [
          `${organ} region: the query is the ${organ}'s z-extent in each query volume whose mask holds it (${queries.length}); ` +
            `a hit is a database volume whose mask holds the ${organ} (${database.filter((c) => c.regions?.[organ]).length} of ${database.length})` +
            (left > 0 ? `; ${left} database volumes whose masks do not label the ${organ} are left out of this task` : ''),
        ],
      };
      out.push({ kind: 'region', name: `${task.name}/${organ}-region`, region: organ, dataset, queries: regionQueriesOf(dataset, [organ]) });
    }
  }
  return out;
}

/** Loads the dataset a spec names and turns it into tasks. */
export async function prepareEvalDataset(spec: EvalDatasetSpec, outDir: string, hooks: PrepareHooks = {}): Promise<PreparedDataset> {
  const cache = new ExtentCache(hooks.cacheDir ? join(hooks.cacheDir, 'mask-extents.json') : undefined);
  try {
    if (spec.kind === 'devbench') {
      const benchDir = resolve(spec.benchDir ?? join(outDir, 'devbench'));
      let manifest: DevBenchManifest;
      let buildSeconds: number | undefined;
      const manifestPath = join(benchDir, 'manifest.json');
      if (existsSync(manifestPath)) {
        manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as DevBenchManifest;
        if (spec.groupRule !== undefined && manifest.groupRule !== spec.groupRule) {
          throw new Error(`${benchDir} was built with group rule '${manifest.groupRule}', not '${spec.groupRule}': use another output folder (or remove this one) to build it again`);
        }
        hooks.onMessage?.(`development benchmark: reusing ${benchDir} (${manifest.cases.length} volumes, profile ${manifest.profile})`);
      } else {
        hooks.onMessage?.(`development benchmark: building from ${spec.sharedDataDir} into ${benchDir}`);
        // No manifest means no finished build here: whatever a killed build left is ours to replace.
        manifest = await buildDevBenchmark(spec.sharedDataDir, benchDir, {
          profile: spec.profile ?? 'full',
          ...(spec.matrix ? { matrix: spec.matrix } : {}),
          ...(spec.groupRule ? { groupRule: spec.groupRule } : {}),
          overwrite: true,
          onProgress: (m) => hooks.onProgress?.({ phase: 'build', label: 'building devbench', done: 0, total: 0, detail: m }),
        });
        buildSeconds = manifest.buildSeconds;
      }
      const dataset = await threeDMirDataset('liver', { root: benchDir, csvDir: join(benchDir, '3dmir') });
      const tumour: TumourTask = { kind: 'tumour', name: 'devbench-liver', dataset: { ...dataset, name: 'devbench-liver' } };
      const regionTasks = spec.regions === false ? [] : await organRegionTasks(join(benchDir, DEVBENCH_TASK_FOLDER), [tumour], cache, hooks);
      for (const r of regionTasks) {
        r.name = 'devbench-liver-region';
        r.dataset.name = r.name;
      }
      const scanOf = new Map(manifest.cases.map((c) => [c.name, c.source as string]));
      const sameScan = [...tumour.dataset.queries].map((q) => tumour.dataset.database.filter((c) => scanOf.get(c.caseId) === scanOf.get(q.caseId)).length);
      return {
        description: { kind: 'devbench', path: benchDir, protocol: '3dmir', organ: 'liver', labelsDir: join(benchDir, '3dmir') },
        tasks: [tumour, ...regionTasks],
        notes: [
          `development benchmark (profile ${manifest.profile}, seed ${manifest.seed}): ${manifest.cases.length} volumes derived from ${new Set(manifest.cases.map((c) => c.source)).size} real CT series; see ${join(benchDir, 'README.md')}`,
          `every query has variants of its own scan in the database (${Math.min(...sameScan)}–${Math.max(...sameScan)} of ${tumour.dataset.database.length}): absolute numbers are optimistic and not comparable with the papers`,
          ...dataset.notes,
          ...regionTasks.flatMap((r) => r.dataset.notes),
        ],
        scanOf,
        manifest,
        ...(buildSeconds !== undefined ? { buildSeconds } : {}),
      };
    }

    if (spec.kind === 'totalseg') {
      const dataset = await totalSegDataset(spec.root, { level: spec.level ?? 'coarse', ...(spec.testFraction !== undefined ? { testFraction: spec.testFraction } : {}) });
      if (spec.maxQueries !== undefined && dataset.queries.length > spec.maxQueries) dataset.queries = dataset.queries.slice(0, spec.maxQueries);
      const queries = regionQueriesOf(dataset, spec.regions);
      const task: RegionTask = { kind: 'region', name: dataset.name, dataset, queries };
      return {
        description: { kind: 'totalseg', path: resolve(spec.root), level: spec.level ?? 'coarse' },
        tasks: [task],
        notes: [...dataset.notes, `${queries.length} region queries over ${new Set(queries.map((q) => q.region)).size} regions`],
      };
    }

    const protocol = spec.protocol ?? '3dmir';
    const organ = spec.organ ?? 'all';
    const organs: TumourOrgan[] =
      organ !== 'all'
        ? [organ]
        : spec.labelsDir
          ? TUMOUR_ORGANS.filter((o) => hasThreeDMirFiles(spec.labelsDir!, o))
          : [...new Set((await findDecathlonTasks(spec.root)).map((t) => t.organ))].filter((o): o is TumourOrgan => (TUMOUR_ORGANS as readonly string[]).includes(o));
    if (organs.length === 0) throw new Error(`no organ to evaluate under ${spec.root}${spec.labelsDir ? ` with the CSVs in ${spec.labelsDir}` : ''}`);
    const options = { root: spec.root, ...(spec.labelsDir ? { csvDir: spec.labelsDir } : {}), ...(spec.testFraction !== undefined ? { testFraction: spec.testFraction } : {}), ...(spec.groupRule ? { groupRule: spec.groupRule } : {}) };
    let tumourTasks: TumourTask[];
    if (protocol === 'cmir') {
      if (!spec.labelsDir) throw new Error('the C-MIR mixed archive needs the 3D-MIR CSVs (--labels-dir)');
      const dataset = await cMirMixedDataset({ ...options, csvDir: spec.labelsDir, organs });
      tumourTasks = [{ kind: 'tumour', name: dataset.name, dataset }];
    } else {
      tumourTasks = await Promise.all(organs.map(async (o) => {
        const dataset = await threeDMirDataset(o, options);
        return { kind: 'tumour' as const, name: dataset.name, dataset };
      }));
    }
    const regionTasks = spec.regions === false ? [] : await organRegionTasks(spec.root, tumourTasks, cache, hooks);
    return {
      description: { kind: 'decathlon', path: resolve(spec.root), protocol, organ, ...(spec.labelsDir ? { labelsDir: resolve(spec.labelsDir) } : {}) },
      tasks: [...tumourTasks, ...regionTasks],
      notes: [...tumourTasks.flatMap((t) => t.dataset.notes), ...regionTasks.flatMap((t) => t.dataset.notes)],
    };
  } finally {
    await cache.save();
  }
}

// ---------------------------------------------------------------------------------------------------
// Rankings and their scores (pure: the glue between search results and metrics.ts)
// ---------------------------------------------------------------------------------------------------

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
  const mean = (v: number[]): number => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN);
  return { k, share: mean(shares), randomShare: mean(randoms) };
}

// ---------------------------------------------------------------------------------------------------
// Results (results.json)
// ---------------------------------------------------------------------------------------------------

export interface EvalProgress {
  phase: 'build' | 'masks' | 'index' | 'search' | 'pictures';
  /** One bar per label. */
  label: string;
  done: number;
  /** 0 when unknown (a message only). */
  total: number;
  detail?: string;
}

export interface EvalEncoderInfo {
  name: string;
  id: string;
  dim: number;
  indexDir: string;
  index: { volumes: number; slices: number; added: number; unchanged: number; failed: number; problems: string[]; seconds: number };
  queryEmbedSeconds: number;
  querySlices: number;
  searchSeconds: Record<string, number>;
}

export interface EvalTaskInfo {
  name: string;
  kind: 'tumour' | 'region';
  region?: string;
  databaseSize: number;
  queryCount: number;
  /** Strata (organs) of a tumour task, regions of a region task. */
  strata: string[];
  databaseIds: string[];
  /** Query keys: case ids, or `case#region` for region queries. */
  queryKeys: string[];
  notes: string[];
}

export interface EvalQueryRanking {
  /** The query case, or `case#region` for a region query. */
  queryKey: string;
  results: RankedCase[];
}

export interface EvalScore {
  task: string;
  encoder: string;
  method: string;
  tumour?: TumourEvaluation;
  region?: RegionEvaluation;
  localization?: LocalizationEvaluation;
  /** Localization over the pairs where the structure does not fill the retrieved scan (see
   * PARTIAL_EXTENT_SHARE). */
  partialLocalization?: LocalizationEvaluation;
  iousByRegion?: Record<string, number[]>;
  sameScan?: SameScanShare;
  /** Mean number of volumes returned per query: below `top` when a method finds fewer (slice methods
   * only rank volumes that received a kNN hit), and P@k counts the missing ranks as misses. */
  meanResults: number;
}

export interface EvalSettings {
  sliceK: number;
  candidates: number;
  firstStage: FirstStageMethod;
  top: number;
  precisionKs: number[];
  recallKs: number[];
  localizationDepth: number;
  localization: 'consistent';
  knn: 'exact';
}

export interface EvalResults {
  schema: 'mir3d-eval/1';
  createdAt: string;
  outDir: string;
  dataset: PreparedDataset['description'] & { notes: string[] };
  settings: EvalSettings;
  methods: EvalMethod[];
  encoders: EvalEncoderInfo[];
  tasks: EvalTaskInfo[];
  scores: EvalScore[];
  rankings: { task: string; encoder: string; method: string; queries: EvalQueryRanking[] }[];
  /** Per task, case labels the report needs (query and database), small. */
  cases: Record<string, { organ?: string; cancerFlag: number; lesionGroup: number; scan?: string; imagePath: string; maskPath?: string; regions?: Record<string, ZExtent> }>;
  timings: { totalSeconds: number; buildSeconds?: number; prepareSeconds: number; scoringSeconds: number; reportSeconds?: number };
  machine: { cpus: number; node: string; platform: string };
}

export interface EvalOptions {
  dataset: EvalDatasetSpec;
  outDir: string;
  /** Method names or specs (see parseEvalMethod); default DEFAULT_EVAL_METHODS. */
  methods?: readonly (string | EvalMethod)[];
  /** Encoder names or model paths; default mobilenet_v2 and baseline. */
  encoders?: readonly string[];
  /** Nearest slices per query slice (default 20, 3D-MIR). */
  sliceK?: number;
  /** Candidates re-ranked (default 50, C-MIR). */
  candidates?: number;
  firstStage?: FirstStageMethod;
  /** Results kept per query (default 10: AP@10 and P@10 need ten). */
  top?: number;
  localizationDepth?: number;
  onProgress?: (event: EvalProgress) => void;
  onMessage?: (line: string) => void;
  /** Replaces openEncoder (tests). */
  openEncoder?: (name: string) => Promise<Encoder>;
}

// ---------------------------------------------------------------------------------------------------
// Orchestration
// ---------------------------------------------------------------------------------------------------

/** A store whose exact slice kNN is computed once per (query vectors, options): every slice method, the
 * re-ranking's first stage and the fusions of one query share it, so ten methods cost one kNN, not five. */
function sharingSliceSearch(store: Store): Store {
  const cache = new WeakMap<Float32Array, Map<string, Promise<SliceHit[][]>>>();
  return {
    get encoderId() {
      return store.encoderId;
    },
    get dim() {
      return store.dim;
    },
    artifacts: store.artifacts,
    state: store.state,
    stats: () => store.stats(),
    findByContent: (sha) => store.findByContent(sha),
    findBySource: (path, seriesKey) => store.findBySource(path, seriesKey),
    getVolume: (id) => store.getVolume(id),
    listVolumes: (filter) => store.listVolumes(filter),
    addVolume: (record, vectors, encoderId, options) => store.addVolume(record, vectors, encoderId, options),
    removeVolume: (id) => store.removeVolume(id),
    getVectors: (ids) => store.getVectors(ids),
    searchSlices: (queries: Float32Array, options: SliceSearchOptions) => {
      let byOptions = cache.get(queries);
      if (!byOptions) cache.set(queries, (byOptions = new Map()));
      const key = JSON.stringify(options);
      let hits = byOptions.get(key);
      if (!hits) byOptions.set(key, (hits = store.searchSlices(queries, options)));
      return hits;
    },
    searchVolumes: (query, pooling, k, filter) => store.searchVolumes(query, pooling, k, filter),
    pooledVector: (id, pooling) => store.pooledVector(id, pooling),
    prepareForSearch: (options) => store.prepareForSearch(options),
    close: () => store.close(),
  };
}

function safeName(name: string): string {
  const base = basename(name).replace(/\.onnx$/i, '');
  return base.replace(/[^A-Za-z0-9_.-]+/g, '_') || 'encoder';
}

/** The rows of an embedded whole-volume query in a structure's slice extent: a slab query without
 * embedding the query volume again; undefined when no embedded slice lies in it. */
async function regionSlab(whole: QuerySource, extent: ZExtent, context: { store: Store }): Promise<QueryVectors | undefined> {
  try {
    const slab = await resolveQuery(whole, { kind: 'slices', firstSlice: extent.firstSlice, lastSlice: extent.lastSlice }, context);
    return slab.query;
  } catch (error) {
    if (isSearchError(error) && error.code === 'SLICE_OUT_OF_RANGE') return undefined;
    throw error;
  }
}

function rankedOf(results: readonly SearchResult[], caseOfVolume: ReadonlyMap<string, string>): RankedCase[] {
  return results.map((r) => {
    const caseId = caseOfVolume.get(r.volumeId);
    if (caseId === undefined) throw new Error(`search returned volume ${r.volumeId}, which is not a database volume of this run`);
    return {
      caseId,
      volumeId: r.volumeId,
      score: r.score,
      ...(r.region ? { region: { firstSlice: r.region.firstSlice, lastSlice: r.region.lastSlice, zStartMm: r.region.zStartMm, zEndMm: r.region.zEndMm } } : {}),
    };
  });
}

const sourceKind = async (path: string): Promise<'nifti' | 'dicom'> => ((await stat(path)).isDirectory() ? 'dicom' : 'nifti');

/**
 * Runs the evaluation and returns every number (results.json's content). Writes the indexes under
 * `<outDir>/index/<encoder>/`; the caller writes the reports (report.ts) so that a library user can
 * score without them.
 */
export async function runEval(options: EvalOptions): Promise<{ results: EvalResults; prepared: PreparedDataset }> {
  const started = performance.now();
  const outDir = resolve(options.outDir);
  await mkdir(outDir, { recursive: true });
  const methods = (options.methods ?? DEFAULT_EVAL_METHODS).map((m) => (typeof m === 'string' ? parseEvalMethod(m) : m));
  if (methods.length === 0) throw new RangeError('no method to evaluate');
  if (new Set(methods.map((m) => m.label)).size !== methods.length) throw new RangeError('a method is listed twice');
  const encoderNames = [...(options.encoders ?? DEFAULT_EVAL_ENCODERS)];
  if (encoderNames.length === 0) throw new RangeError('no encoder to evaluate');
  const settings: EvalSettings = {
    sliceK: options.sliceK ?? DEFAULT_SLICE_K,
    candidates: options.candidates ?? DEFAULT_CANDIDATES,
    firstStage: options.firstStage ?? DEFAULT_FIRST_STAGE,
    top: options.top ?? 10,
    precisionKs: [...DEFAULT_PRECISION_KS],
    recallKs: [...DEFAULT_RECALL_KS],
    localizationDepth: options.localizationDepth ?? DEFAULT_LOCALIZATION_DEPTH,
    localization: 'consistent',
    knn: 'exact',
  };
  if (settings.top < 10) throw new RangeError(`top ${settings.top}: P@10 and AP@10 need at least 10 results per query`);
  const progress = options.onProgress ?? ((): void => undefined);
  const message = options.onMessage ?? ((): void => undefined);

  const prepared = await prepareEvalDataset(options.dataset, outDir, { onMessage: message, onProgress: progress, cacheDir: join(outDir, 'cache') });
  const prepareSeconds = (performance.now() - started) / 1000;
  const { tasks } = prepared;

  // Every database case of every task (indexed), and every query case (embedded, never indexed).
  const databaseCases = new Map<string, Case>();
  const queryCases = new Map<string, Case>();
  for (const task of tasks) {
    for (const c of task.dataset.database) if (!databaseCases.has(c.caseId)) databaseCases.set(c.caseId, c);
    for (const c of task.dataset.queries) if (!queryCases.has(c.caseId)) queryCases.set(c.caseId, c);
  }
  for (const task of tasks) {
    const db = new Set(task.dataset.database.map((c) => c.caseId));
    const clash = task.dataset.queries.filter((q) => db.has(q.caseId));
    if (clash.length > 0) throw new Error(`${task.name}: ${clash.length} queries are also in its database (${clash.slice(0, 3).map((c) => c.caseId).join(', ')})`);
  }

  const encoders: EvalEncoderInfo[] = [];
  const scores: EvalScore[] = [];
  const rankingsOut: EvalResults['rankings'] = [];
  let scoringSeconds = 0;

  for (const encoderName of encoderNames) {
    const indexDir = join(outDir, 'index', safeName(encoderName));
    const openOwn = options.openEncoder;
    // The spec written beside the index lets `mir3d search --db <dir>` embed queries with this encoder.
    const index: OpenedIndex = await openIndex(indexDir, { spec: { encoder: encoderName }, onStatus: message, ...(openOwn ? { openEncoder: () => openOwn(encoderName) } : {}) });
    const { store } = index;
    const feeder = new SliceFeeder();
    try {
      const encoder = await index.encoder();
      // ---- index the databases
      const sources = await Promise.all([...databaseCases.values()].map(async (c) => ({ path: c.imagePath, kind: await sourceKind(c.imagePath) })));
      const caseOfPath = new Map([...databaseCases.values()].map((c) => [c.imagePath, c]));
      const label = `indexing (${encoder.name})`;
      const summary: IndexSummary = await indexVolumes(sources, {
        store,
        encoder,
        labelsFor: (source) => {
          const c = caseOfPath.get(source.path);
          return c ? { case: c.caseId, ...(c.organ ? { organ: c.organ } : {}) } : {};
        },
        onProgress: (p) => progress({ phase: 'index', label, done: p.volumesDone, total: p.volumesTotal, detail: `${p.slicesDone} slices embedded` }),
      });
      progress({ phase: 'index', label, done: sources.length, total: sources.length });
      const caseOfVolume = new Map<string, string>();
      const volumeOfCase = new Map<string, string>();
      const problems: string[] = [];
      for (const outcome of summary.outcomes) {
        const c = caseOfPath.get(outcome.source.path);
        if (!c) continue;
        if (outcome.status === 'failed') {
          problems.push(`${c.caseId}: ${outcome.reason}`);
          continue;
        }
        volumeOfCase.set(c.caseId, outcome.volumeId);
        if (caseOfVolume.has(outcome.volumeId)) {
          problems.push(`${c.caseId} has the same voxels as ${caseOfVolume.get(outcome.volumeId)}; both are one volume in the index, ranked as the latter`);
        } else caseOfVolume.set(outcome.volumeId, c.caseId);
      }
      if (volumeOfCase.size === 0) throw new Error(`${encoderName}: no database volume could be indexed (${problems.slice(0, 3).join('; ')})`);
      const stats = store.stats();
      const geometry = new Map<string, CaseGeometry>();
      for (const [caseId, volumeId] of volumeOfCase) {
        const record = store.getVolume(volumeId);
        if (record) geometry.set(caseId, geometryOfRecord(record));
      }
      const info: EvalEncoderInfo = {
        name: encoderName,
        id: encoder.id,
        dim: encoder.dim,
        indexDir,
        index: { volumes: stats.volumes, slices: stats.slices, added: summary.added, unchanged: summary.unchanged, failed: summary.failed, problems, seconds: summary.seconds },
        queryEmbedSeconds: 0,
        querySlices: 0,
        searchSeconds: Object.fromEntries(methods.map((m) => [m.label, 0])),
      };
      encoders.push(info);

      // ---- search: each query volume is embedded once; its tasks and region slabs reuse the vectors
      const shared = sharingSliceSearch(store);
      const allVolumeIds = new Set(store.listVolumes().map((r) => r.volumeId));
      const scopeOf = new Map<string, string[] | undefined>();
      for (const task of tasks) {
        const ids = task.dataset.database.map((c) => volumeOfCase.get(c.caseId)).filter((id): id is string => id !== undefined);
        const everything = ids.length === allVolumeIds.size && ids.every((id) => allVolumeIds.has(id));
        scopeOf.set(task.name, everything ? undefined : ids);
      }
      const rankings = new Map<string, Map<string, Map<string, RankedCase[]>>>(); // task → method → query key → list
      for (const task of tasks) rankings.set(task.name, new Map(methods.map((m) => [m.label, new Map()])));
      const work = tasks.reduce((n, t) => n + (t.kind === 'tumour' ? t.dataset.queries.length : t.queries.length), 0) * methods.length;
      const searchLabel = `searching (${encoder.name})`;
      let searchesDone = 0;
      progress({ phase: 'search', label: searchLabel, done: 0, total: work });
      for (const queryCase of queryCases.values()) {
        const embedStarted = performance.now();
        let resolved: ResolvedQuery;
        try {
          resolved = await resolveQuery({ kind: 'path', path: queryCase.imagePath }, { kind: 'volume' }, { store, encoder, feeder });
        } catch (error) {
          // One unreadable query is left out (and said so), as the indexer leaves out an unreadable volume.
          problems.push(`query ${queryCase.caseId} left out: ${(error as Error).message}`);
          searchesDone += tasks.reduce((n, t) => n + (t.kind === 'tumour' ? (t.dataset.queries.some((q) => q.caseId === queryCase.caseId) ? 1 : 0) : t.queries.filter((q) => q.queryId === queryCase.caseId).length), 0) * methods.length;
          continue;
        }
        info.queryEmbedSeconds += (performance.now() - embedStarted) / 1000;
        info.querySlices += resolved.sliceIndices.length;
        if (resolved.record) {
          const twin = caseOfVolume.get(resolved.record.volumeId);
          if (twin) problems.push(`query ${queryCase.caseId} has the same voxels as database volume ${twin}, which is therefore left out of its results`);
        }
        for (const task of tasks) {
          const jobs: { key: string; query: QueryVectors; source: QuerySource }[] = [];
          // The query volume is embedded once; a region query is the rows of its structure's extent.
          const embedded: QuerySource = { kind: 'vectors', rows: resolved.query, geometry: resolved.volume! };
          if (task.kind === 'tumour') {
            if (task.dataset.queries.some((q) => q.caseId === queryCase.caseId)) jobs.push({ key: queryCase.caseId, query: resolved.query, source: embedded });
          } else {
            for (const rq of task.queries.filter((q) => q.queryId === queryCase.caseId)) {
              const extent = queryCase.regions?.[rq.region] ?? task.dataset.queries.find((c) => c.caseId === rq.queryId)?.regions?.[rq.region];
              const slab = extent ? await regionSlab(embedded, extent, { store }) : undefined;
              if (slab) jobs.push({ key: regionQueryKey(rq), query: slab, source: embedded });
              else {
                problems.push(`region query ${regionQueryKey(rq)}: no embedded slice in the structure's extent; skipped`);
                searchesDone += methods.length;
              }
            }
          }
          for (const job of jobs) {
            for (const method of methods) {
              const scope = scopeOf.get(task.name);
              const { options: searchOptions } = searchRequestOf(job.source, {
                method: method.method,
                firstStage: settings.firstStage,
                k: settings.sliceK,
                candidates: settings.candidates,
                top: settings.top,
                mode: 'exact',
                ...(scope ? { includeVolumeIds: scope } : {}),
                ...(method.fuseWith ? { fuse: method.fuseWith.method, fusion: method.fuseWith.fusion } : {}),
                localization: settings.localization,
                // Only region tasks score localization; whole-volume tumour queries skip the extra alignment.
                localize: task.kind === 'region',
              });
              const t0 = performance.now();
              // One resolved query per job, so every method shares its slice kNN (sharingSliceSearch).
              const results = await search(shared, job.query, searchOptions);
              info.searchSeconds[method.label] += (performance.now() - t0) / 1000;
              rankings.get(task.name)!.get(method.label)!.set(job.key, rankedOf(results, caseOfVolume));
              progress({ phase: 'search', label: searchLabel, done: ++searchesDone, total: work, detail: queryCase.caseId });
            }
          }
        }
      }
      progress({ phase: 'search', label: searchLabel, done: work, total: work });

      // ---- scores, over the database volumes this index holds: one that could not be read can neither
      // be retrieved nor count in the chance level.
      const scoringStarted = performance.now();
      for (const fullTask of tasks) {
        const missing = fullTask.dataset.database.filter((c) => !volumeOfCase.has(c.caseId));
        if (missing.length > 0) problems.push(`${fullTask.name}: ${missing.length} database volume(s) not indexed and left out of its scores (${missing.slice(0, 3).map((c) => c.caseId).join(', ')})`);
        const task: EvalTask = missing.length === 0 ? fullTask : { ...fullTask, dataset: { ...fullTask.dataset, database: fullTask.dataset.database.filter((c) => volumeOfCase.has(c.caseId)) } };
        for (const method of methods) {
          const lists = rankings.get(task.name)!.get(method.label)!;
          const lengths = [...lists.values()].map((l) => l.length);
          const score: EvalScore = { task: task.name, encoder: encoderName, method: method.label, meanResults: lengths.reduce((a, b) => a + b, 0) / Math.max(1, lengths.length) };
          if (task.kind === 'tumour') {
            score.tumour = scoreTumourRankings(task.dataset, lists, settings.precisionKs);
          } else {
            const r = scoreRegionRankings(task.dataset, task.queries, lists, geometry, { ks: settings.recallKs, localizationDepth: settings.localizationDepth });
            score.region = r.region;
            score.localization = r.localization;
            score.partialLocalization = r.partialLocalization;
            score.iousByRegion = r.iousByRegion;
          }
          if (prepared.scanOf) score.sameScan = scoreSameScan(task.dataset, lists, prepared.scanOf);
          scores.push(score);
          rankingsOut.push({ task: task.name, encoder: encoderName, method: method.label, queries: [...lists].map(([queryKey, results]) => ({ queryKey, results })) });
        }
      }
      scoringSeconds += (performance.now() - scoringStarted) / 1000;
    } finally {
      await feeder.close();
      await index.close();
    }
  }

  const cases: EvalResults['cases'] = {};
  for (const task of tasks) {
    for (const c of [...task.dataset.database, ...task.dataset.queries]) {
      const entry = (cases[c.caseId] ??= {
        organ: c.organ,
        cancerFlag: c.labels.cancerFlag,
        lesionGroup: c.labels.lesionGroup,
        imagePath: c.imagePath,
        ...(c.maskPath ? { maskPath: c.maskPath } : {}),
        ...(prepared.scanOf?.get(c.caseId) ? { scan: prepared.scanOf.get(c.caseId) } : {}),
      });
      if (c.regions && Object.keys(c.regions).length > 0) entry.regions = { ...(entry.regions ?? {}), ...c.regions };
    }
  }

  const results: EvalResults = {
    schema: 'mir3d-eval/1',
    createdAt: new Date().toISOString(),
    outDir,
    dataset: { ...prepared.description, notes: prepared.notes },
    settings,
    methods,
    encoders,
    tasks: tasks.map((t) => ({
      name: t.name,
      kind: t.kind,
      ...(t.kind === 'region' && t.region ? { region: t.region } : {}),
      databaseSize: t.dataset.database.length,
      queryCount: t.kind === 'tumour' ? t.dataset.queries.length : t.queries.length,
      strata:
        t.kind === 'tumour'
          ? [...new Set(t.dataset.queries.map((q) => q.labelOrgan ?? q.organ ?? 'all'))].sort()
          : [...new Set(t.queries.map((q) => q.region))].sort(),
      databaseIds: t.dataset.database.map((c) => c.caseId),
      queryKeys: t.kind === 'tumour' ? t.dataset.queries.map((c) => c.caseId) : t.queries.map(regionQueryKey),
      notes: t.dataset.notes,
    })),
    scores,
    rankings: rankingsOut,
    cases,
    timings: {
      totalSeconds: (performance.now() - started) / 1000,
      ...(prepared.buildSeconds !== undefined ? { buildSeconds: prepared.buildSeconds } : {}),
      prepareSeconds,
      scoringSeconds,
    },
    machine: { cpus: availableParallelism(), node: process.version, platform: `${process.platform}-${process.arch}` },
  };
  return { results, prepared };
}
