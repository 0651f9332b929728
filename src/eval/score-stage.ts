import type { IndexedDatabase } from './index-stage.js';
import type { EvalMethod } from './methods.js';
import type { EvalResults, EvalScore, EvalSettings } from './results.js';
import { scoreRegionRankings, scoreSameScan, scoreTumourRankings } from './scoring.js';
import type { EvalRankings } from './search-stage.js';
import type { EvalTask, PreparedDataset } from './tasks.js';

/**
 * Scores one encoder's rankings over the database volumes its index holds: a volume that could not be
 * read can neither be retrieved nor count in the chance level, so it leaves the task (and is said so).
 */
export function scoreRankings(
  tasks: readonly EvalTask[],
  rankings: EvalRankings,
  database: IndexedDatabase,
  context: { encoderName: string; methods: readonly EvalMethod[]; settings: EvalSettings; scanOf: PreparedDataset['scanOf']; problems: string[] },
): { scores: EvalScore[]; rankings: EvalResults['rankings'] } {
  const { encoderName, methods, settings, problems } = context;
  const scores: EvalScore[] = [];
  const rankingsOut: EvalResults['rankings'] = [];
  for (const fullTask of tasks) {
    const missing = fullTask.dataset.database.filter((c) => !database.volumeOfCase.has(c.caseId));
    if (missing.length > 0) problems.push(`${fullTask.name}: ${missing.length} database volume(s) not indexed and left out of its scores (${missing.slice(0, 3).map((c) => c.caseId).join(', ')})`);
    const task: EvalTask = missing.length === 0 ? fullTask : { ...fullTask, dataset: { ...fullTask.dataset, database: fullTask.dataset.database.filter((c) => database.volumeOfCase.has(c.caseId)) } };
    for (const method of methods) {
      const lists = rankings.get(task.name)!.get(method.label)!;
      const lengths = [...lists.values()].map((l) => l.length);
      const score: EvalScore = { task: task.name, encoder: encoderName, method: method.label, meanResults: lengths.reduce((a, b) => a + b, 0) / Math.max(1, lengths.length) };
      if (task.kind === 'tumour') {
        score.tumour = scoreTumourRankings(task.dataset, lists, settings.precisionKs);
      } else {
        const r = scoreRegionRankings(task.dataset, task.queries, lists, database.geometry, { ks: settings.recallKs, localizationDepth: settings.localizationDepth });
        score.region = r.region;
        score.localization = r.localization;
        score.partialLocalization = r.partialLocalization;
        score.iousByRegion = r.iousByRegion;
      }
      if (context.scanOf) score.sameScan = scoreSameScan(task.dataset, lists, context.scanOf);
      scores.push(score);
      rankingsOut.push({ task: task.name, encoder: encoderName, method: method.label, queries: [...lists].map(([queryKey, results]) => ({ queryKey, results })) });
    }
  }
  return { scores, rankings: rankingsOut };
}
