/**
 * The fine-tuned space inside the papers' protocols (3D-MIR on the Decathlon, devbench): after the
 * database is indexed, a head learns from the database split's own labels (never a query's: queries are
 * not in the index), validated on whole held-out patients of that split, and is stored in the eval index.
 * Every method then runs a second time in that space, through the SpaceStore path `mir3d search --space`
 * takes, so raw and fine-tuned are scored by the same code against the same random levels.
 */
import { sliceLabelsFromMasks, type SliceTarget } from '../labels/slice-targets.js';
import { trainHeadOnRows, type HeadMethod, type TrainedHead } from '../space/train-head.js';
import { saveSpace } from '../space/persist.js';
import { slicesOfStore } from '../space/slices.js';
import { SpaceError } from '../space/errors.js';
import type { Store } from '../store/types.js';
import type { Case } from './datasets/types.js';
import type { IndexedDatabase } from './index-stage.js';
import type { EvalMethod } from './methods.js';
import type { SliceRetrievalScore } from './slice-retrieval.js';

/** The space the eval head is kept under in each encoder's eval index. */
export const EVAL_HEAD_SPACE = 'fine-tuned';

/** Labels of a case a head can learn, by 3D-MIR's column names. */
export const EVAL_HEAD_TARGETS = ['lesion_group', 'cancer_flag', 'organ'] as const;
export type EvalHeadTarget = (typeof EVAL_HEAD_TARGETS)[number];

export interface EvalHeadOptions {
  /** Volume labels (every slice of a case shares its value). */
  targets: EvalHeadTarget[];
  /** Per-slice labels from each database case's mask (its label file), e.g. tumour = 2 in a Decathlon task. */
  sliceTargets?: SliceTarget[];
  method?: HeadMethod;
  seed?: number;
}

export interface EvalHeadInfo {
  space: string;
  targets: string[];
  description: string;
  validation: TrainedHead['validation'];
  trainingRows: number;
  trainingVolumes: number;
  /** Patients (devbench: real scans of origin) the head learned from. */
  trainingPatients: number;
  /** Per slice target: database slices labelled present / absent from the masks (volumes without one: neither). */
  sliceCounts?: Record<string, { present: number; absent: number }>;
  /** Per slice target, the query split's slices retrieving database slices (slice-retrieval.ts). */
  sliceRetrieval?: SliceRetrievalScore[];
  /** Queries whose patient is among them: 0 is patient-disjoint. */
  queriesWithTrainingPatient: number;
  queries: number;
  seconds: number;
}

export function isEvalHeadTarget(text: string): text is EvalHeadTarget {
  return (EVAL_HEAD_TARGETS as readonly string[]).includes(text);
}

function labelOf(c: Case, target: EvalHeadTarget): string | undefined {
  if (target === 'lesion_group') return String(c.labels.lesionGroup);
  if (target === 'cancer_flag') return String(c.labels.cancerFlag);
  return c.organ;
}

/** Every method once more in the fine-tuned space, labelled `<method>@fine-tuned`. */
export function methodsInSpace(methods: readonly EvalMethod[], space = EVAL_HEAD_SPACE): EvalMethod[] {
  return methods.map((m) => ({ ...m, label: `${m.label}@${space}`, space }));
}

/**
 * Fits the head on the database cases' slices (the index's volumes of this run's database) with each
 * slice carrying its volume's labels; `patientOf` groups the validation split (and says which queries
 * share a patient with the training data). Stores it as EVAL_HEAD_SPACE.
 */
export async function fitEvalHead(
  store: Store,
  database: IndexedDatabase,
  cases: { database: ReadonlyMap<string, Case>; queries: ReadonlyMap<string, Case> },
  options: EvalHeadOptions & { patientOf: (caseId: string) => string; onStatus?: (line: string) => void },
): Promise<{ info: EvalHeadInfo; databaseSliceLabels: Map<string, Map<number, string[]>> }> {
  const volumeIds = [...database.caseOfVolume.keys()];
  const slices = slicesOfStore(store, volumeIds);
  const caseOf = (owner: number): Case => cases.database.get(database.caseOfVolume.get(slices.volumeIds[owner])!)!;
  const targets: Array<Array<string | undefined>> = options.targets.map((t) => slices.owners.map((o) => labelOf(caseOf(o), t)));
  for (const [t, target] of options.targets.entries()) {
    if (!targets[t].some((v) => v !== undefined)) throw new SpaceError('BAD_LABELS', target, 'no database case carries this label');
  }
  const sliceTargets = options.sliceTargets ?? [];
  let byVolume = new Map<string, string[][]>();
  let sliceCounts: EvalHeadInfo['sliceCounts'];
  if (sliceTargets.length > 0) {
    // Only the database cases' masks are read: a query's mask never reaches the head.
    const labels = await sliceLabelsFromMasks(
      slices.volumeIds.map((volumeId, o) => {
        const c = caseOf(o);
        const end = o + 1 < slices.firstRows.length ? slices.firstRows[o + 1] : slices.owners.length;
        return { volumeId, what: c.imagePath, geometry: store.getVolume(volumeId)!, sliceIndices: slices.sliceIndices.subarray(slices.firstRows[o], end), ...(c.maskPath ? { maskPath: c.maskPath } : {}) };
      }),
      sliceTargets,
    );
    byVolume = labels.byVolume;
    sliceCounts = labels.counts;
    sliceTargets.forEach((_, t) => targets.push(slices.owners.map((o, row) => byVolume.get(slices.volumeIds[o])?.[t][row - slices.firstRows[o]])));
  }
  const names = [...options.targets, ...sliceTargets.map((t) => t.name)];
  const data = { vectors: slices.vectors, dim: slices.dim, targets, groups: slices.owners.map((o) => options.patientOf(caseOf(o).caseId)) };
  options.onStatus?.(`fine-tuning a head (${options.method ?? 'lda'}) for ${names.join(', ')} on ${slices.owners.length} slices of ${volumeIds.length} database volumes`);
  const head = await trainHeadOnRows(data, {
    targets: names,
    ...(sliceTargets.length > 0 ? { sliceTargets: { targets: sliceTargets, byVolume } } : {}),
    groupBy: 'patient',
    method: options.method ?? 'lda',
    seed: options.seed ?? 1,
  });
  saveSpace(store, { name: EVAL_HEAD_SPACE, kind: 'head', encoderId: store.encoderId, inputDim: store.dim, outputDim: head.outputDim, training: head.record }, head.model);
  const trainingPatients = new Set(data.groups);
  // Database slice → its per-slice labels, for scoring the query split's slices (slice-retrieval.ts).
  const databaseSliceLabels = new Map<string, Map<number, string[]>>();
  for (const [volumeId, perTarget] of byVolume) {
    const o = slices.volumeIds.indexOf(volumeId);
    const bySlice = new Map<number, string[]>();
    perTarget[0].forEach((_, row) => bySlice.set(slices.sliceIndices[slices.firstRows[o] + row], perTarget.map((labels) => labels[row])));
    databaseSliceLabels.set(volumeId, bySlice);
  }
  const queries = [...cases.queries.values()];
  const info: EvalHeadInfo = {
    space: EVAL_HEAD_SPACE,
    targets: names.map((n, i) => (i < options.targets.length ? n : `${n} (per slice, mask ${sliceTargets[i - options.targets.length].values.join(',')})`)),
    description: head.description,
    validation: head.validation,
    trainingRows: head.trainingRows,
    trainingVolumes: volumeIds.length,
    trainingPatients: trainingPatients.size,
    ...(sliceCounts ? { sliceCounts } : {}),
    queriesWithTrainingPatient: queries.filter((q) => trainingPatients.has(options.patientOf(q.caseId))).length,
    queries: queries.length,
    seconds: head.seconds,
  };
  return { info, databaseSliceLabels };
}

/** What the report says about the head: where it learned, how it validated, whether it is patient-disjoint. */
export function evalHeadNote(encoder: string, info: EvalHeadInfo, patientIs: string): string {
  const v = info.validation;
  const disjoint =
    info.queriesWithTrainingPatient === 0
      ? 'no query patient is among them (patient-disjoint)'
      : `NOT patient-disjoint: ${info.queriesWithTrainingPatient} of ${info.queries} queries have other scans of their own patient among the training volumes (the database split holds them), so the fine-tuned rows are optimistic`;
  const perSlice = Object.entries(info.sliceCounts ?? {}).map(([name, c]) => ` ${name} is present in ${c.present} of ${c.present + c.absent} masked database slices.`).join('');
  return (
    `${encoder}: the \`@${info.space}\` rows search a head (${info.description}) fitted for ${info.targets.join(', ')} on the database split only ` +
    `(${info.trainingRows} slices of ${info.trainingVolumes} volumes, ${info.trainingPatients} patients, a patient being a ${patientIs}; queries are never indexed nor learned from); ${disjoint}. ` +
    `Validation on held-out database patients, per slice: P@5 ${v.p5.toFixed(3)}, raw ${v.rawP5.toFixed(3)}, random ${v.randomP5.toFixed(3)} (${v.queries} slices).${perSlice}`
  );
}
