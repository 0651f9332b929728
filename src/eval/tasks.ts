import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/nifti-writer.js';
import { readVolume } from '../io/read.js';
import { cMirMixedDataset, findDecathlonTasks, threeDMirDataset } from './datasets/decathlon.js';
import { regionQueriesOf, type RegionQuery } from './datasets/relevance.js';
import { hasThreeDMirFiles } from '../labels/threedmir-csv.js';
import { totalSegDataset, type RegionLevel } from './datasets/total-segmentator.js';
import type { Case, RetrievalDataset, ZExtent } from './datasets/types.js';
import { DEVBENCH_TASK_FOLDER, buildDevBenchmark, type DevBenchManifest } from '../synth/devbench.js';
import { PHANTOM_BENCH_TASK_FOLDER, buildPhantomBenchmark, type PhantomBenchManifest } from '../synth/phantom-bench.js';
import { maskZExtent } from './extents.js';
import { TUMOUR_ORGANS, type GroupRule, type TumourOrgan } from '../labels/tumours.js';
import { DatasetError } from './errors.js';


// ---------------------------------------------------------------------------------------------------
// Datasets → tasks
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
    }
  | {
      /** Generated phantoms (src/synth/phantom-bench.ts): runs anywhere, nothing outside the checkout. */
      kind: 'demo';
      /** Where the phantoms are (generated when absent or built otherwise); default <outDir>/phantoms. */
      benchDir?: string;
      count?: number;
      seed?: number;
      matrix?: number;
      /** Liver-region queries and localization; default true. */
      regions?: boolean;
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
    if (spec.kind === 'demo') return await preparePhantomDataset(spec, outDir, cache, hooks);
    if (spec.kind === 'devbench') {
      const benchDir = resolve(spec.benchDir ?? join(outDir, 'devbench'));
      let manifest: DevBenchManifest;
      let buildSeconds: number | undefined;
      const manifestPath = join(benchDir, 'manifest.json');
      if (existsSync(manifestPath)) {
        manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as DevBenchManifest;
        if (spec.groupRule !== undefined && manifest.groupRule !== spec.groupRule) {
          throw new DatasetError(`${benchDir} was built with group rule '${manifest.groupRule}', not '${spec.groupRule}': use another output folder (or remove this one) to build it again`);
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
    if (organs.length === 0) throw new DatasetError(`no organ to evaluate under ${spec.root}${spec.labelsDir ? ` with the CSVs in ${spec.labelsDir}` : ''}`);
    const options = { root: spec.root, ...(spec.labelsDir ? { csvDir: spec.labelsDir } : {}), ...(spec.testFraction !== undefined ? { testFraction: spec.testFraction } : {}), ...(spec.groupRule ? { groupRule: spec.groupRule } : {}) };
    let tumourTasks: TumourTask[];
    if (protocol === 'cmir') {
      if (!spec.labelsDir) throw new DatasetError('the C-MIR mixed archive needs the 3D-MIR CSVs (--labels-dir)');
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

/** The phantom benchmark: reused when its manifest says it was built with these settings. */
async function preparePhantomDataset(spec: Extract<EvalDatasetSpec, { kind: 'demo' }>, outDir: string, cache: ExtentCache, hooks: PrepareHooks): Promise<PreparedDataset> {
  const benchDir = resolve(spec.benchDir ?? join(outDir, 'phantoms'));
  const wanted = { count: spec.count ?? 24, seed: spec.seed ?? 1, matrix: spec.matrix ?? 96, groupRule: spec.groupRule ?? 'design' };
  const manifestPath = join(benchDir, 'manifest.json');
  let manifest: PhantomBenchManifest | undefined = existsSync(manifestPath) ? (JSON.parse(await readFile(manifestPath, 'utf8')) as PhantomBenchManifest) : undefined;
  let buildSeconds: number | undefined;
  if (manifest && manifest.count === wanted.count && manifest.seed === wanted.seed && manifest.matrix === wanted.matrix && manifest.groupRule === wanted.groupRule) {
    hooks.onMessage?.(`phantom benchmark: reusing ${benchDir} (${manifest.cases.length} phantoms)`);
  } else {
    hooks.onMessage?.(`phantom benchmark: generating ${wanted.count} phantoms into ${benchDir}`);
    // Only a folder this function wrote (with a manifest) or an empty one is replaced.
    manifest = await buildPhantomBenchmark(benchDir, {
      ...wanted,
      overwrite: manifest !== undefined,
      onProgress: (m) => hooks.onProgress?.({ phase: 'build', label: 'generating phantoms', done: 0, total: 0, detail: m }),
    });
    buildSeconds = manifest.buildSeconds;
  }
  const dataset = await threeDMirDataset('liver', { root: benchDir, csvDir: manifest.csvDir });
  const tumour: TumourTask = { kind: 'tumour', name: 'phantom-liver', dataset: { ...dataset, name: 'phantom-liver' } };
  const regionTasks = spec.regions === false ? [] : await organRegionTasks(join(benchDir, PHANTOM_BENCH_TASK_FOLDER), [tumour], cache, hooks);
  for (const r of regionTasks) {
    r.name = 'phantom-liver-region';
    r.dataset.name = r.name;
  }
  return {
    description: { kind: 'demo', path: benchDir, protocol: '3dmir', organ: 'liver', labelsDir: manifest.csvDir },
    tasks: [tumour, ...regionTasks],
    notes: [
      `${manifest.cases.length} generated phantoms (seed ${manifest.seed}): synthetic anatomy with known organs and liver lesions; ` +
        'the numbers show that the pipeline and its scoring work end to end, not how a method does on real CT',
      ...dataset.notes,
      ...regionTasks.flatMap((r) => r.dataset.notes),
    ],
    ...(buildSeconds !== undefined ? { buildSeconds } : {}),
  };
}
