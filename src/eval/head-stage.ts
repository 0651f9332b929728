/**
 * The fine-tuned space inside the papers' protocols (3D-MIR on the Decathlon, devbench): after the
 * database is indexed, a head learns from the database split's own labels (never a query's: queries are
 * not in the index), validated on whole held-out patients of that split, and is stored in the eval index.
 * Every method then runs a second time in that space, through the SpaceStore path `mir3d search --space`
 * takes, so raw and fine-tuned are scored by the same code against the same random levels.
 */
import { sliceLabelsFromMasks, type SliceTarget } from '../labels/slice-targets.js';
import { trainHeadOnRows, type HeadMethod, type TrainedHead } from '../space/train-head.js';
import { listSpaces, removeSpace, saveSpace } from '../space/persist.js';
import { rowSliceLabels, sliceLabelsBySliceIndex, slicesOfStore, volumeSliceIndices } from '../space/slices.js';
import { SpaceError } from '../space/errors.js';
import type { Store } from '../store/types.js';
import type { Case } from './datasets/types.js';
import type { IndexedDatabase } from './index-stage.js';
import type { EvalMethod } from './methods.js';

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
  /** The query patient none of whose scans this head learned from (undefined: a head for queries whose
   * patient has no scan in the database). */
  leftOutPatient?: string;
  targets: string[];
  description: string;
  validation: TrainedHead['validation'];
  trainingRows: number;
  trainingVolumes: number;
  /** Patients (devbench: real scans of origin) the head learned from. */
  trainingPatients: number;
  /** Per slice target: database slices labelled present / absent from the masks (volumes without one: neither). */
  sliceCounts?: Record<string, { present: number; absent: number }>;
  /** Of the queries this head serves, those whose patient is among its training patients: 0 is patient-disjoint. */
  queriesWithTrainingPatient: number;
  /** Queries whose `@fine-tuned` rows search this head. */
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

/** The heads of one encoder's run and which one each query searches in. */
export interface EvalHeads {
  infos: EvalHeadInfo[];
  /** Query case id → the stored space (one of the infos' `space`) its `@fine-tuned` rows search. */
  spaceOfQuery: Map<string, string>;
  /** Database slice → its per-slice labels (volume id → slice index → label per slice target), for
   * scoring the query split's slices (slice-retrieval.ts). Empty without slice targets. */
  databaseSliceLabels: Map<string, Map<number, string[]>>;
}

/**
 * Fits the heads on the database cases' slices (the index's volumes of this run's database), each slice
 * carrying its volume's labels and, with slice targets, its own from the case's mask; `patientOf` groups
 * the validation split. When query patients also have scans in the database (devbench: variants of one
 * real scan), each such patient gets a head fitted without any of its scans, so no query's patient is in
 * the data its head learned from; the database searched stays the protocol's. Otherwise one head serves
 * every query. Heads are stored as EVAL_HEAD_SPACE (and EVAL_HEAD_SPACE-N).
 */
export async function fitEvalHeads(
  store: Store,
  database: IndexedDatabase,
  cases: { database: ReadonlyMap<string, Case>; queries: ReadonlyMap<string, Case> },
  options: EvalHeadOptions & { patientOf: (caseId: string) => string; onStatus?: (line: string) => void },
): Promise<EvalHeads> {
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
    // Only the database cases' masks are read: a query's mask never reaches a head.
    const labels = await sliceLabelsFromMasks(
      slices.volumeIds.map((volumeId, o) => {
        const c = caseOf(o);
        return { volumeId, what: c.imagePath, geometry: store.getVolume(volumeId)!, sliceIndices: volumeSliceIndices(slices, o), ...(c.maskPath ? { maskPath: c.maskPath } : {}) };
      }),
      sliceTargets,
    );
    byVolume = labels.byVolume;
    sliceCounts = labels.counts;
    sliceTargets.forEach((_, t) => targets.push(rowSliceLabels(slices, byVolume, t)));
  }
  const names = [...options.targets, ...sliceTargets.map((t) => t.name)];
  const data = { vectors: slices.vectors, dim: slices.dim, targets, groups: slices.owners.map((o) => options.patientOf(caseOf(o).caseId)) };
  const databasePatients = new Set(data.groups);
  const queries = [...cases.queries.values()];
  const shared = [...new Set(queries.map((q) => options.patientOf(q.caseId)).filter((p) => databasePatients.has(p)))].sort();
  // One head per query patient found in the database, plus one on everything for the other queries.
  const plans: Array<{ space: string; leftOut?: string; serves: Case[] }> = shared.map((patient, n) => ({
    space: `${EVAL_HEAD_SPACE}-${n + 1}`,
    leftOut: patient,
    serves: queries.filter((q) => options.patientOf(q.caseId) === patient),
  }));
  const others = queries.filter((q) => !databasePatients.has(options.patientOf(q.caseId)));
  if (others.length > 0 || plans.length === 0) plans.push({ space: EVAL_HEAD_SPACE, serves: others });
  // A reused eval index keeps the heads of an earlier run: drop them, so the index lists only this run's.
  for (const stale of listSpaces(store).filter((sp) => new RegExp(`^${EVAL_HEAD_SPACE}(-\\d+)?$`).test(sp.name))) removeSpace(store, stale.name);
  const describedTargets = names.map((n, i) => (i < options.targets.length ? n : `${n} (per slice, mask ${sliceTargets[i - options.targets.length].values.join(',')})`));
  const infos: EvalHeadInfo[] = [];
  const spaceOfQuery = new Map<string, string>();
  for (const plan of plans) {
    const rows = plan.leftOut === undefined ? undefined : data.groups.flatMap((g, r) => (g === plan.leftOut ? [] : [r]));
    const trainingVolumes = new Set((rows ?? data.groups.map((_, r) => r)).map((r) => slices.owners[r])).size;
    options.onStatus?.(
      `fine-tuning a head (${options.method ?? 'lda'}) for ${names.join(', ')} on ${rows?.length ?? slices.owners.length} slices of ${trainingVolumes} database volumes${plan.leftOut !== undefined ? ` (without the scans of query patient ${plan.leftOut})` : ''}`,
    );
    let head: TrainedHead;
    try {
      head = await trainHeadOnRows(data, {
        targets: names,
        ...(sliceTargets.length > 0 ? { sliceTargets: { targets: sliceTargets, byVolume } } : {}),
        ...(rows ? { rows } : {}),
        groupBy: 'patient',
        method: options.method ?? 'lda',
        seed: options.seed ?? 1,
      });
    } catch (error) {
      if (error instanceof SpaceError && plan.leftOut !== undefined) throw new SpaceError(error.code, `head without patient ${plan.leftOut}`, error.detail, { cause: error });
      throw error;
    }
    saveSpace(store, { name: plan.space, kind: 'head', encoderId: store.encoderId, inputDim: store.dim, outputDim: head.outputDim, training: { ...head.record, ...(plan.leftOut !== undefined ? { leftOutPatient: plan.leftOut } : {}) } }, head.model);
    const trainingPatients = new Set((rows ?? data.groups.map((_, r) => r)).map((r) => data.groups[r]));
    for (const q of plan.serves) spaceOfQuery.set(q.caseId, plan.space);
    infos.push({
      space: plan.space,
      ...(plan.leftOut !== undefined ? { leftOutPatient: plan.leftOut } : {}),
      targets: describedTargets,
      description: head.description,
      validation: head.validation,
      trainingRows: head.trainingRows,
      trainingVolumes,
      trainingPatients: trainingPatients.size,
      ...(sliceCounts ? { sliceCounts } : {}),
      queriesWithTrainingPatient: plan.serves.filter((q) => trainingPatients.has(options.patientOf(q.caseId))).length,
      queries: plan.serves.length,
      seconds: head.seconds,
    });
  }
  const ownerOf = new Map(slices.volumeIds.map((volumeId, o) => [volumeId, o]));
  return { infos, spaceOfQuery, databaseSliceLabels: sliceLabelsBySliceIndex(byVolume, (volumeId) => volumeSliceIndices(slices, ownerOf.get(volumeId)!)) };
}

/** What the report says about the heads: where they learned, how they validated, that no query patient
 * was learned from. */
export function evalHeadNotes(encoder: string, infos: readonly EvalHeadInfo[], patientIs: string): string[] {
  const first = infos[0];
  const leaked = infos.reduce((n, h) => n + h.queriesWithTrainingPatient, 0);
  const queries = infos.reduce((n, h) => n + h.queries, 0);
  const perSlice = Object.entries(first.sliceCounts ?? {}).map(([name, c]) => ` ${name} is present in ${c.present} of ${c.present + c.absent} masked database slices.`).join('');
  const split = infos.length === 1 ? `one head for all ${queries} queries` : `${infos.length} heads, one per query patient with scans in the database, each fitted without any scan of that patient (the database searched is still the whole split)`;
  const lines = [
    `${encoder}: the \`@${EVAL_HEAD_SPACE}\` rows search a head (${first.description}) fitted for ${first.targets.join(', ')} on the database split only (a patient being a ${patientIs}; queries are never indexed nor learned from): ${split}; ` +
      (leaked === 0 ? 'no query patient is in the data its head learned from (patient-disjoint).' : `NOT patient-disjoint: ${leaked} of ${queries} queries have scans of their own patient in their head's training data.`) +
      perSlice,
  ];
  for (const h of infos) {
    const v = h.validation;
    lines.push(
      `${encoder}: head \`${h.space}\`${h.leftOutPatient !== undefined ? ` (without patient ${h.leftOutPatient})` : ''} for ${h.queries} queries: ${h.trainingRows} slices of ${h.trainingVolumes} volumes, ${h.trainingPatients} patients; validation per slice on held-out training patients: P@5 ${v.p5.toFixed(3)}, raw ${v.rawP5.toFixed(3)}, random ${v.randomP5.toFixed(3)} (${v.queries} slices).`,
    );
  }
  return lines;
}
