import type { EvalHeadInfo, EvalHeadOptions } from './head-stage.js';
import type { EvalMethod } from './methods.js';
import type { SliceRetrievalScore } from './slice-retrieval.js';
import type { RankedCase, SameScanShare } from './scoring.js';
import type { EvalDatasetSpec, EvalProgress, PreparedDataset } from './tasks.js';
import type { Encoder } from '../encode/encoder.js';
import { type FirstStageMethod } from '../search/types.js';
import type { ZExtent } from './datasets/types.js';
import { type LocalizationEvaluation, type RegionEvaluation, type TumourEvaluation } from './metrics.js';


// ---------------------------------------------------------------------------------------------------
// Results (results.json)
// ---------------------------------------------------------------------------------------------------


export interface EvalEncoderInfo {
  name: string;
  id: string;
  dim: number;
  indexDir: string;
  index: { volumes: number; slices: number; added: number; unchanged: number; failed: number; problems: string[]; seconds: number };
  queryEmbedSeconds: number;
  querySlices: number;
  searchSeconds: Record<string, number>;
  /** The fine-tuned heads of this encoder's run (EvalOptions.head; several when query patients have scans
   * in the database: one per such patient, fitted without them). */
  heads?: EvalHeadInfo[];
  /** With slice targets: the query split's slices retrieving database slices, raw and fine-tuned. */
  sliceRetrieval?: SliceRetrievalScore[];
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
  /** Also fine-tune a head on each encoder's database split and run every method in it (head-stage.ts). */
  head?: EvalHeadOptions;
}
