/**
 * Text-to-image retrieval and the multi-modal ensembles, evaluated with grouped k-fold cross-validation on
 * an index whose volumes carry captions and a target label (COVID-CT key slices: `caption`, `covid`,
 * `patient`; the 3D-MIR CSVs: CaptionV1…V3, cancer_flag). For each fold, a text space is learned from the
 * captions of the other folds' groups only (trainTextSpace), and each caption of the fold is a query:
 * - text: 3D-MIR's text method (slice-count), the query's own group excluded → target P@k, AP@10;
 * - recall@k of the described volume(s), nothing excluded (the described image must be findable);
 * - control: one fixed vector for every query (the mean of the training captions' text vectors): what a
 *   text space scores without reading the caption. Text beating it is what shows the caption was read;
 * - image: the described volume itself as the query (slice-count), its group excluded;
 * - ensembles: image ⊕ text by 3D-MIR's interleaving and by reciprocal-rank fusion.
 * Every figure has the exact random level of its query's pool beside it.
 */
import { createHash } from 'node:crypto';
import { interleave, reciprocalRankFusion } from '../search/fusion.js';
import { search } from '../search/search.js';
import { searchByText } from '../search/text.js';
import type { SearchResult } from '../search/types.js';
import { trainTextSpace } from '../space/learned-text.js';
import type { Store, VolumeRecord } from '../store/types.js';
import { averagePrecisionAtK, hitAtK, precisionAtK, randomAveragePrecision, randomHitAtK, randomPrecisionAtK } from './metrics.js';

export const TEXT_EVAL_LISTS = ['text', 'control', 'image', 'interleave', 'rrf'] as const;
export type TextEvalList = (typeof TEXT_EVAL_LISTS)[number];

export interface TextEvalOptions {
  captionColumn: string;
  targetColumn: string;
  groupBy: string;
  folds?: number;
  ks?: readonly number[];
  seed?: number;
  steps?: number;
  onFold?: (fold: number, folds: number, detail: string) => void;
  /** Only these volumes (the ones a labels file lists); default every volume of the store. */
  volumeIds?: readonly string[];
  /** A fixed split instead of k folds (3D-MIR's protocol, devbench): the text space learns from the
   * database's captions only, the queries' captions are the queries, and only the database is searched. */
  split?: { database: readonly string[]; queries: readonly string[] };
}

export interface MeanWithError {
  mean: number;
  standardError: number;
}

export interface TextEvalReport {
  /** 'folds': grouped k-fold; 'split': a fixed database/query split. */
  protocol: 'folds' | 'split';
  queries: number;
  folds: number;
  groups: number;
  volumes: number;
  ks: number[];
  /** Per list: P@k for each k, and AP@10, over the query group's excluded pool. */
  precision: Record<TextEvalList, { pAtK: Record<string, MeanWithError>; ap10: MeanWithError }>;
  /** The same expected at random for each query's pool. */
  randomPrecision: { pAtK: Record<string, number>; ap10: number };
  /** recall@k of the described volume by the text query (whole archive), and at random. */
  recall: { text: Record<string, MeanWithError>; control: Record<string, MeanWithError>; random: Record<string, number> };
  perFold: Array<{ fold: number; queries: number; trainingCaptions: number; steps: number; validationLoss: number | null }>;
  /** How many queries describe a volume of each target value. */
  queryTargets: Record<string, number>;
}

interface Query {
  text: string;
  group: string;
  target: string;
  described: string[];
}

export async function evaluateTextRetrieval(store: Store, options: TextEvalOptions): Promise<TextEvalReport> {
  const ks = [...(options.ks ?? [1, 5, 10])];
  const depth = Math.max(10, ...ks);
  const folds = options.split ? 1 : (options.folds ?? 5);
  const only = options.volumeIds ? new Set(options.volumeIds) : undefined;
  const volumes = store.listVolumes().filter((v) => !only || only.has(v.volumeId));
  const groupOf = (v: VolumeRecord): string => String(v.labels[options.groupBy] ?? v.volumeId);
  const targetOf = (v: VolumeRecord): string => String(v.labels[options.targetColumn] ?? '');
  const groups = [...new Set(volumes.map(groupOf))].sort();
  const foldOf = new Map(groups.map((g) => [g, createHash('sha256').update(`${g}/${options.seed ?? 1}`).digest().readUInt32BE(0) % folds]));
  const byId = new Map(volumes.map((v) => [v.volumeId, v]));
  const lists = Object.fromEntries(TEXT_EVAL_LISTS.map((l) => [l, { p: Object.fromEntries(ks.map((k) => [k, [] as number[]])), ap: [] as number[] }])) as Record<TextEvalList, { p: Record<number, number[]>; ap: number[] }>;
  const random = { p: Object.fromEntries(ks.map((k) => [k, [] as number[]])) as Record<number, number[]>, ap: [] as number[] };
  const recall = { text: Object.fromEntries(ks.map((k) => [k, [] as number[]])) as Record<number, number[]>, control: Object.fromEntries(ks.map((k) => [k, [] as number[]])) as Record<number, number[]>, random: Object.fromEntries(ks.map((k) => [k, [] as number[]])) as Record<number, number[]> };
  const perFold: TextEvalReport['perFold'] = [];
  const queryTargets: Record<string, number> = {};

  for (let fold = 0; fold < folds; fold++) {
    const database = options.split ? new Set(options.split.database) : undefined;
    const queryIds = options.split ? new Set(options.split.queries) : undefined;
    const training = volumes.filter((v) => (database ? database.has(v.volumeId) : foldOf.get(groupOf(v)) !== fold)).map((v) => v.volumeId);
    const testing = volumes.filter((v) => (queryIds ? queryIds.has(v.volumeId) : foldOf.get(groupOf(v)) === fold));
    // k folds search every other group; a fixed split searches its database only.
    const searched = database ? volumes.filter((v) => database.has(v.volumeId)) : volumes;
    const scope = database ? { filter: { includeVolumeIds: [...database] } } : only ? { filter: { includeVolumeIds: [...only] } } : {};
    const queries = queriesOf(testing, options, groupOf, targetOf);
    if (queries.length === 0) continue;
    options.onFold?.(fold + 1, folds, `learning the text space from ${training.length} volumes`);
    const trained = trainTextSpace(store, { captionColumn: options.captionColumn, groupBy: options.groupBy, volumeIds: training, seed: options.seed ?? 1, maxSteps: options.steps ?? 200, name: `fold-${fold}` });
    const encoder = trained.encoder;
    // The control: one vector for every query, the mean of the training captions' text vectors.
    const trainingCaptions = [...new Set(training.map((id) => byId.get(id)?.labels[options.captionColumn]).filter((c): c is string | number => c !== undefined && String(c).trim() !== '').map(String))];
    const embedded = await encoder.embedTexts(trainingCaptions);
    const control = new Float32Array(store.dim);
    for (let i = 0; i < trainingCaptions.length; i++) for (let d = 0; d < store.dim; d++) control[d] += embedded.rows[i * store.dim + d];
    const norm = Math.hypot(...control) || 1;
    for (let d = 0; d < store.dim; d++) control[d] /= norm;
    perFold.push({ fold, queries: queries.length, trainingCaptions: trained.record.captions, steps: trained.record.steps, validationLoss: trained.record.validationLoss });
    options.onFold?.(fold + 1, folds, `${queries.length} caption queries`);

    for (const query of queries) {
      queryTargets[query.target] = (queryTargets[query.target] ?? 0) + 1;
      const sameGroup = volumes.filter((v) => groupOf(v) === query.group).map((v) => v.volumeId);
      const pool = searched.filter((v) => groupOf(v) !== query.group);
      const relevantInPool = pool.filter((v) => targetOf(v) === query.target).length;
      const options_ = { method: 'slice-count' as const, top: depth, candidates: depth, excludeVolumeIds: sameGroup, ...scope };
      const text = (await searchByText(store, encoder, query.text, options_)).results;
      const controlList = await search(store, { vectors: control, dim: store.dim, sliceIndices: [0] }, options_);
      const imageVectors = store.getVectors([query.described[0]]).get(query.described[0]);
      const image = imageVectors ? await search(store, { vectors: imageVectors.vectors, dim: imageVectors.dim, sliceIndices: imageVectors.sliceIndices, zMm: imageVectors.zMm, volumeId: query.described[0] }, options_) : [];
      const fused: Record<TextEvalList, SearchResult[]> = {
        text,
        control: controlList,
        image,
        interleave: interleave(image, text, depth),
        rrf: reciprocalRankFusion([image, text], { top: depth }),
      };
      for (const list of TEXT_EVAL_LISTS) {
        const relevant = fused[list].map((r) => targetOf(byId.get(r.volumeId) as VolumeRecord) === query.target);
        for (const k of ks) lists[list].p[k].push(precisionAtK(relevant, k));
        lists[list].ap.push(averagePrecisionAtK(relevant, 10));
      }
      for (const k of ks) random.p[k].push(randomPrecisionAtK(pool.length, relevantInPool, k));
      random.ap.push(randomAveragePrecision(pool.length, relevantInPool, 10));
      // recall@k of the described volume(s): the whole archive, nothing excluded.
      const all = { method: 'slice-count' as const, top: depth, candidates: depth, ...(only ? { filter: { includeVolumeIds: [...only] } } : {}) };
      const described = new Set(query.described);
      const textAll = (await searchByText(store, encoder, query.text, all)).results.map((r) => described.has(r.volumeId));
      const controlAll = (await search(store, { vectors: control, dim: store.dim, sliceIndices: [0] }, all)).map((r) => described.has(r.volumeId));
      for (const k of ks) {
        recall.text[k].push(hitAtK(textAll, k));
        recall.control[k].push(hitAtK(controlAll, k));
        recall.random[k].push(randomHitAtK(volumes.length, described.size, k));
      }
    }
    await encoder.close();
  }
  const summary = (values: number[]): MeanWithError => {
    const mean = values.reduce((s, v) => s + v, 0) / Math.max(values.length, 1);
    const variance = values.length > 1 ? values.reduce((s, v) => s + (v - mean) ** 2, 0) / (values.length - 1) : 0;
    return { mean, standardError: Math.sqrt(variance / Math.max(values.length, 1)) };
  };
  const plain = (values: number[]): number => summary(values).mean;
  return {
    protocol: options.split ? 'split' : 'folds',
    queries: random.ap.length,
    folds,
    groups: groups.length,
    volumes: volumes.length,
    ks,
    precision: Object.fromEntries(TEXT_EVAL_LISTS.map((l) => [l, { pAtK: Object.fromEntries(ks.map((k) => [`${k}`, summary(lists[l].p[k])])), ap10: summary(lists[l].ap) }])) as TextEvalReport['precision'],
    randomPrecision: { pAtK: Object.fromEntries(ks.map((k) => [`${k}`, plain(random.p[k])])), ap10: plain(random.ap) },
    recall: {
      text: Object.fromEntries(ks.map((k) => [`${k}`, summary(recall.text[k])])),
      control: Object.fromEntries(ks.map((k) => [`${k}`, summary(recall.control[k])])),
      random: Object.fromEntries(ks.map((k) => [`${k}`, plain(recall.random[k])])),
    },
    perFold,
    queryTargets,
  };
}

/** One query per (caption, group): the panels of one figure share a caption and are all "described". */
function queriesOf(testing: VolumeRecord[], options: TextEvalOptions, groupOf: (v: VolumeRecord) => string, targetOf: (v: VolumeRecord) => string): Query[] {
  const byKey = new Map<string, Query>();
  for (const volume of testing) {
    const raw = volume.labels[options.captionColumn];
    if (raw === undefined || String(raw).trim() === '') continue;
    const text = String(raw).trim();
    const key = `${groupOf(volume)}\u0000${text}`;
    const query = byKey.get(key) ?? { text, group: groupOf(volume), target: targetOf(volume), described: [] };
    query.described.push(volume.volumeId);
    byKey.set(key, query);
  }
  return [...byKey.values()];
}

/** The report as Markdown, with the reading generated from the numbers. */
export function textEvalMarkdown(report: TextEvalReport, context: { dataset: string; encoder: string; target: string; groupBy: string; command: string }): string {
  const f = (m: MeanWithError): string => `${m.mean.toFixed(3)} ± ${m.standardError.toFixed(3)}`;
  const names: Record<TextEvalList, string> = {
    text: 'text (learned text space, slice-count)',
    control: 'control: one fixed vector for every caption',
    image: 'image: the described image as the query',
    interleave: 'ensemble: image ⊕ text, interleave (3D-MIR)',
    rrf: 'ensemble: image ⊕ text, reciprocal-rank fusion',
  };
  const lines = [
    `# Text-to-image retrieval: ${context.dataset}`,
    '',
    `\`${context.command}\``,
    '',
    report.protocol === 'split'
      ? `Encoder ${context.encoder}; ${report.queries} caption queries (the query split), ${report.volumes} volumes in all: the text space learned only from the database split's captions, and only the database is searched.`
      : `Encoder ${context.encoder}; ${report.queries} caption queries from ${report.groups} ${context.groupBy} groups, ${report.folds} folds by ${context.groupBy}: ` +
        `each fold's text space learned only from the other folds' captions; the query's own ${context.groupBy} is excluded from the searched pool (${report.volumes} volumes in all).`,
    '',
    `| list | ${report.ks.map((k) => `${context.target} P@${k}`).join(' | ')} | AP@10 |`,
    `|---|${report.ks.map(() => '---:').join('|')}|---:|`,
    ...TEXT_EVAL_LISTS.map((l) => `| ${names[l]} | ${report.ks.map((k) => f(report.precision[l].pAtK[`${k}`])).join(' | ')} | ${f(report.precision[l].ap10)} |`),
    `| *random retrieval (exact, per query pool)* | ${report.ks.map((k) => `*${report.randomPrecision.pAtK[`${k}`].toFixed(3)}*`).join(' | ')} | *${report.randomPrecision.ap10.toFixed(3)}* |`,
    '',
    `Recall@k of the described image (the whole archive searched): ${report.ks.map((k) => `@${k} text ${f(report.recall.text[`${k}`])}, control ${f(report.recall.control[`${k}`])}, random ${report.recall.random[`${k}`].toFixed(4)}`).join('; ')}.`,
    '',
    '## Reading',
    '',
    ...textEvalReading(report, context.target),
  ];
  return `${lines.join('\n')}\n`;
}

export function textEvalReading(report: TextEvalReport, target: string): string[] {
  const k = report.ks.includes(5) ? '5' : `${report.ks[0]}`;
  const p = (l: TextEvalList): MeanWithError => report.precision[l].pAtK[k];
  const rand = report.randomPrecision.pAtK[k];
  const margin = (a: MeanWithError, b: MeanWithError): number => a.mean - b.mean;
  const noise = (a: MeanWithError, b: MeanWithError): number => 2 * Math.hypot(a.standardError, b.standardError);
  const out: string[] = [];
  const textVsControl = margin(p('text'), p('control'));
  out.push(
    `- Text P@${k} is ${p('text').mean.toFixed(3)} against ${rand.toFixed(3)} at random. ` +
      (Math.abs(textVsControl) <= noise(p('text'), p('control'))
        ? `A single fixed vector for every caption scores ${p('control').mean.toFixed(3)}, within noise of it: the text space has learned where captioned (${target}) images lie, not what a caption says. The margin over random is the image space separating ${target} images, not text understanding.`
        : textVsControl > 0
          ? `It beats a fixed vector for every caption (${p('control').mean.toFixed(3)}) by ${textVsControl.toFixed(3)}: the caption's words move the query.`
          : `A fixed vector for every caption does better (${p('control').mean.toFixed(3)}): the caption's words add noise here.`),
  );
  const r = report.recall;
  const kr = report.ks[report.ks.length - 1];
  out.push(
    `- Finding the described image itself: recall@${kr} ${r.text[`${kr}`].mean.toFixed(3)} (control ${r.control[`${kr}`].mean.toFixed(3)}, random ${r.random[`${kr}`].toFixed(3)}). ` +
      (r.text[`${kr}`].mean - r.random[`${kr}`] > 2 * r.text[`${kr}`].standardError
        ? 'Above random: the text space tells some described images from other images.'
        : 'Not above random by more than noise: the text space cannot pick out the described image among others of its kind.'),
  );
  const best = p('interleave').mean >= p('rrf').mean ? 'interleave' : 'rrf';
  const ensembleVsImage = margin(p(best), p('image'));
  out.push(
    `- The ensembles against their parts: image alone ${p('image').mean.toFixed(3)}, text alone ${p('text').mean.toFixed(3)}, interleave ${p('interleave').mean.toFixed(3)}, RRF ${p('rrf').mean.toFixed(3)}. ` +
      (Math.abs(ensembleVsImage) <= noise(p(best), p('image')) ? 'The best ensemble is within noise of the image query alone.' : ensembleVsImage > 0 ? `The ${best} ensemble beats the image query by ${ensembleVsImage.toFixed(3)}.` : 'The ensembles do worse than the image query alone.'),
  );
  const targets = Object.keys(report.queryTargets);
  out.push(
    "- Not shown: whether a radiologist's own wording (unlike these captions) would be understood" +
      (targets.length === 1 ? `; every query describes an image with ${target} = ${targets[0]}, so P@k measures how often such images are returned and says nothing about telling findings apart or about negative findings.` : '.'),
  );
  return out;
}
