import { stat } from 'node:fs/promises';
import type { Encoder } from '../encode/encoder.js';
import { indexVolumes, type IndexSummary } from '../ingest/indexer.js';
import type { Store } from '../store/types.js';
import type { Case } from './datasets/types.js';
import { type CaseGeometry, geometryOfRecord } from './scoring.js';
import type { EvalEncoderInfo } from './results.js';
import type { EvalProgress } from './tasks.js';

/** The database cases of a run as they landed in one encoder's index. */
export interface IndexedDatabase {
  /** Store volume id → dataset case id (the first case, when two cases share voxels). */
  caseOfVolume: Map<string, string>;
  /** Dataset case id → store volume id, for every case that was indexed. */
  volumeOfCase: Map<string, string>;
  geometry: Map<string, CaseGeometry>;
  /** Filled with the index figures; the search stage adds its timings. */
  info: EvalEncoderInfo;
}

const sourceKind = async (path: string): Promise<'nifti' | 'dicom'> => ((await stat(path)).isDirectory() ? 'dicom' : 'nifti');

/**
 * Indexes every database case (the union over tasks) once. Store volume ids map back to case ids through
 * the indexer's outcomes (source path → volume id), which stay right when the index is reused; each
 * volume also carries a `case=<caseId>` label so a person querying the index with `mir3d search` sees
 * which case a hit is. Problems (unreadable cases, voxel twins) are collected in `problems`.
 */
export async function indexDatabase(
  databaseCases: ReadonlyMap<string, Case>,
  context: { store: Store; encoder: Encoder; encoderName: string; indexDir: string; methodLabels: readonly string[]; problems: string[]; progress: (event: EvalProgress) => void },
): Promise<IndexedDatabase> {
  const { store, encoder, problems, progress } = context;
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
  if (volumeOfCase.size === 0) throw new Error(`${context.encoderName}: no database volume could be indexed (${problems.slice(0, 3).join('; ')})`);

  const geometry = new Map<string, CaseGeometry>();
  for (const [caseId, volumeId] of volumeOfCase) {
    const record = store.getVolume(volumeId);
    if (record) geometry.set(caseId, geometryOfRecord(record));
  }
  const stats = store.stats();
  const info: EvalEncoderInfo = {
    name: context.encoderName,
    id: encoder.id,
    dim: encoder.dim,
    indexDir: context.indexDir,
    index: { volumes: stats.volumes, slices: stats.slices, added: summary.added, unchanged: summary.unchanged, failed: summary.failed, problems, seconds: summary.seconds },
    queryEmbedSeconds: 0,
    querySlices: 0,
    searchSeconds: Object.fromEntries(context.methodLabels.map((m) => [m, 0])),
  };
  return { caseOfVolume, volumeOfCase, geometry, info };
}
