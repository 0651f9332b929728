import type { EvalResults, EvalScore } from './run.js';
import type { TumourQueryScore } from './metrics.js';

/**
 * "Reading the results": short statements computed from the numbers, never written in advance. Each
 * comparison is paired over queries (the same queries, two methods) and called a difference only when
 * the mean per-query difference exceeds twice its standard error; otherwise it says there is none to
 * see at this number of queries. Statements are Markdown (bold, code); report-html converts the two.
 */

export interface PairedDifference {
  n: number;
  /** Mean of a − b over the queries both have. */
  meanDiff: number;
  /** Standard error of that mean (sample sd / √n); NaN below two queries. */
  se: number;
  better: number;
  worse: number;
  tied: number;
}

export function pairedDifference(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): PairedDifference {
  const diffs: number[] = [];
  for (const [key, va] of a) {
    const vb = b.get(key);
    if (vb !== undefined && Number.isFinite(va) && Number.isFinite(vb)) diffs.push(va - vb);
  }
  const n = diffs.length;
  const meanDiff = n ? diffs.reduce((s, d) => s + d, 0) / n : NaN;
  const variance = n > 1 ? diffs.reduce((s, d) => s + (d - meanDiff) ** 2, 0) / (n - 1) : NaN;
  const eps = 1e-12;
  return {
    n,
    meanDiff,
    se: n > 1 ? Math.sqrt(variance / n) : NaN,
    better: diffs.filter((d) => d > eps).length,
    worse: diffs.filter((d) => d < -eps).length,
    tied: diffs.filter((d) => Math.abs(d) <= eps).length,
  };
}

/** 'better' / 'worse' only beyond two standard errors (and never on fewer than three queries). */
export function verdictOf(d: PairedDifference): 'better' | 'worse' | 'no clear difference' {
  if (d.n < 3 || !Number.isFinite(d.meanDiff)) return 'no clear difference';
  const se = Number.isFinite(d.se) ? d.se : 0;
  // All queries tied: se = 0 and meanDiff = 0.
  if (Math.abs(d.meanDiff) <= 2 * se || Math.abs(d.meanDiff) < 1e-9) return 'no clear difference';
  return d.meanDiff > 0 ? 'better' : 'worse';
}

const f2 = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : 'n/a');
/** "0.42", or "0.40–0.45" when the values differ at two decimals. */
const span = (values: readonly number[]): string => {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return 'n/a';
  const [lo, hi] = [f2(Math.min(...finite)), f2(Math.max(...finite))];
  return lo === hi ? lo : `${lo}–${hi}`;
};
const signed = (v: number): string => (Number.isFinite(v) ? `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(2)}` : 'n/a');

/** "every method 0.33", or the values listed (highest first) when they differ. */
export function listByMethod(values: readonly { method: string; value: number }[], sayEvery = true): string {
  const shown = values.filter((v) => Number.isFinite(v.value));
  if (shown.length === 0) return 'n/a';
  const groups = new Map<string, { value: number; methods: string[] }>();
  for (const v of shown) {
    const key = f2(v.value);
    const group = groups.get(key) ?? { value: v.value, methods: [] };
    group.methods.push(`\`${v.method}\``);
    groups.set(key, group);
  }
  if (groups.size === 1 && sayEvery) return `${[...groups.keys()][0]} for every method`;
  return [...groups.entries()]
    .sort((a, b) => b[1].value - a[1].value)
    .map(([key, g]) => `${g.methods.join('/')} ${key}`)
    .join(', ');
}

export function describeDifference(d: PairedDifference): string {
  return `${signed(d.meanDiff)} ± ${f2(d.se)} (better on ${d.better}, worse on ${d.worse}, tied on ${d.tied} of ${d.n} queries): **${verdictOf(d)}**`;
}

type TumourValue = (q: TumourQueryScore) => number;
const GROUP_P10: TumourValue = (q) => q.group.precisionAtK[10];
const FLAG_P10: TumourValue = (q) => q.flag.precisionAtK[10];
const GROUP_AP: TumourValue = (q) => q.group.ap10;

function perQuery(score: EvalScore | undefined, value: TumourValue): Map<string, number> {
  return new Map((score?.tumour?.perQuery ?? []).map((q) => [q.queryId, value(q)]));
}

function randomPerQuery(score: EvalScore | undefined, value: TumourValue): Map<string, number> {
  return new Map((score?.tumour?.perQuery ?? []).map((q) => [q.queryId, value({ ...q, flag: q.random.flag, group: q.random.group })]));
}

function findScore(results: EvalResults, task: string, encoder: string, method: string): EvalScore | undefined {
  return results.scores.find((s) => s.task === task && s.encoder === encoder && s.method === method);
}

/** The reading, as Markdown paragraphs. */
export function readingOf(results: EvalResults): string[] {
  const out: string[] = [];
  const methods = results.methods.map((m) => m.label);
  const firstStage = results.settings.firstStage;
  const rerankFused = results.methods.filter((m) => m.method === 'rerank' && m.fuseWith).map((m) => m.label);

  for (const task of results.tasks.filter((t) => t.kind === 'tumour')) {
    const paragraphs: string[] = [];
    for (const encoder of results.encoders.map((e) => e.name)) {
      const scored = methods.map((m) => ({ method: m, score: findScore(results, task.name, encoder, m) })).filter((x) => x.score?.tumour);
      if (scored.length === 0) continue;
      const random = scored[0].score!.tumour!.random.overall;
      const best = (pick: (s: EvalScore) => number): { method: string; value: number } =>
        scored.map((x) => ({ method: x.method, value: pick(x.score!) })).reduce((a, b) => (b.value > a.value ? b : a));
      const bestGroup = best((s) => s.tumour!.overall.group.precisionAtK[10]);
      const bestFlag = best((s) => s.tumour!.overall.flag.precisionAtK[10]);
      const aboveRandom = scored.filter((x) => verdictOf(pairedDifference(perQuery(x.score, GROUP_P10), randomPerQuery(x.score, GROUP_P10))) === 'better').map((x) => x.method);
      let text =
        `**${encoder}** on ${task.name} (${task.queryCount} queries, ${task.databaseSize} database volumes): the best group P@10 is \`${bestGroup.method}\` ${f2(bestGroup.value)} ` +
        `against ${f2(random.group.precisionAtK[10])} at random; the best flag P@10 is \`${bestFlag.method}\` ${f2(bestFlag.value)} against ${f2(random.flag.precisionAtK[10])}. ` +
        `${aboveRandom.length} of ${scored.length} methods beat random on group P@10 by more than two standard errors${aboveRandom.length > 0 && aboveRandom.length < scored.length ? ` (${aboveRandom.map((m) => `\`${m}\``).join(', ')})` : ''}.`;
      const short = scored.filter((x) => x.score!.meanResults < results.settings.top - 0.05);
      if (short.length > 0) {
        text +=
          ` Volumes returned per query on average, instead of ${results.settings.top}: ${listByMethod(short.map((x) => ({ method: x.method, value: x.score!.meanResults })), false)}; ` +
          `a slice method ranks only volumes that hold one of the ${results.settings.sliceK} nearest slices of some query slice (and \`rerank\` re-orders only those), so its P@10 pays for ranks it leaves empty.`;
      }
      const rerank = findScore(results, task.name, encoder, 'rerank');
      const first = findScore(results, task.name, encoder, firstStage);
      if (rerank?.tumour && first?.tumour) {
        text +=
          ` Re-ranking against its first stage \`${firstStage}\`: group P@10 ${describeDifference(pairedDifference(perQuery(rerank, GROUP_P10), perQuery(first, GROUP_P10)))}; ` +
          `flag P@10 ${describeDifference(pairedDifference(perQuery(rerank, FLAG_P10), perQuery(first, FLAG_P10)))}; ` +
          `group AP@10 ${describeDifference(pairedDifference(perQuery(rerank, GROUP_AP), perQuery(first, GROUP_AP)))}.`;
      }
      for (const fused of rerankFused) {
        const f = findScore(results, task.name, encoder, fused);
        if (!f?.tumour || !rerank?.tumour) continue;
        text += ` \`${fused}\` against \`rerank\` alone: group P@10 ${describeDifference(pairedDifference(perQuery(f, GROUP_P10), perQuery(rerank, GROUP_P10)))}`;
        if (rerank.meanResults < results.settings.top - 0.05 && f.meanResults > rerank.meanResults + 0.5) {
          text += ` — partly list length: the fused list holds ${f.meanResults.toFixed(1)} volumes per query against ${rerank.meanResults.toFixed(1)}, and P@10 counts the empty ranks of \`rerank\` as misses`;
        }
        text += '.';
      }
      paragraphs.push(text);
    }
    const encoders = results.encoders.map((e) => e.name);
    if (encoders.length >= 2) {
      const [a, b] = encoders;
      const wins = methods.map((m) => verdictOf(pairedDifference(perQuery(findScore(results, task.name, a, m), GROUP_P10), perQuery(findScore(results, task.name, b, m), GROUP_P10))));
      const mean = methods.map((m) => (findScore(results, task.name, a, m)?.tumour?.overall.group.precisionAtK[10] ?? NaN) - (findScore(results, task.name, b, m)?.tumour?.overall.group.precisionAtK[10] ?? NaN)).filter(Number.isFinite);
      paragraphs.push(
        `Encoders on ${task.name}: \`${a}\` minus \`${b}\` in group P@10 averages ${signed(mean.reduce((s, d) => s + d, 0) / Math.max(1, mean.length))} over the ${mean.length} methods; ` +
          `per method (paired over queries) \`${a}\` is better on ${wins.filter((w) => w === 'better').length}, worse on ${wins.filter((w) => w === 'worse').length}, not clearly different on ${wins.filter((w) => w === 'no clear difference').length}.`,
      );
    }
    const candidates = results.settings.candidates;
    if (candidates >= task.databaseSize && methods.includes('rerank')) {
      paragraphs.push(
        `Why re-ranking can change little here: with N = ${candidates} candidates and ${task.databaseSize} database volumes, the first stage hands the re-ranking every volume it found at all, ` +
          `so \`rerank\` is a full late-interaction ranking of those; it differs from \`${firstStage}\` only in scoring (mean over query slices of the best match, instead of ${firstStage === 'slice-count' ? 'counting kNN hits' : 'the first stage score'}), not in what it can reach.`,
      );
    }
    const n = task.queryCount;
    if (n > 0) paragraphs.push(`Resolution: with ${n} queries, one more relevant volume in one query's top 10 moves the mean P@10 by ${(0.1 / n).toFixed(3)}; the ± after each difference is its standard error over queries.`);
    out.push(...paragraphs);
  }

  for (const task of results.tasks.filter((t) => t.kind === 'region')) {
    for (const encoder of results.encoders.map((e) => e.name)) {
      const scored = methods.map((m) => ({ method: m, score: findScore(results, task.name, encoder, m) })).filter((x) => x.score?.region && x.score.localization);
      if (scored.length === 0) continue;
      const random = scored[0].score!.region!.random.overall.recallAtK;
      const recall1 = scored.map((x) => ({ method: x.method, value: x.score!.region!.overall.recallAtK[1] }));
      const ious = scored.map((x) => ({ method: x.method, value: x.score!.localization!.overall.meanIoU }));
      const randomIoU = scored.map((x) => x.score!.localization!.overall.randomMeanIoU).filter(Number.isFinite);
      const pairs = scored[0].score!.localization!.overall.scoredCount;
      let text = `**${encoder}** on ${task.name} (${task.queryCount} region queries): recall@1 is ${listByMethod(recall1)}, against ${f2(random[1])} at random`;
      if (random[1] >= 0.9) text += ' — uninformative here, since nearly every database volume contains the region';
      text +=
        `. Localization (z-IoU of the returned region with the true extent, over the top ${results.settings.localizationDepth} results that contain the structure, ~${pairs} pairs): ${listByMethod(ious)}; ` +
        `a random window of the true length scores ${span(randomIoU)}`;
      const partial = scored.filter((x) => (x.score!.partialLocalization?.overall.scoredCount ?? 0) > 0);
      if (randomIoU.length && Math.min(...randomIoU) >= 0.9 && partial.length > 0) text += ' — the structure fills nearly the whole scanned slab of most retrieved volumes, so most pairs hardly test localization';
      text += '.';
      if (partial.length > 0) {
        const p = partial.map((x) => x.score!.partialLocalization!.overall);
        const randomPartial = p.map((x) => x.randomMeanIoU).filter(Number.isFinite);
        text +=
          ` Over the pairs where the structure covers less than 90 % of the retrieved scan (${Math.min(...p.map((x) => x.scoredCount))}–${Math.max(...p.map((x) => x.scoredCount))} pairs per method), the IoU is ` +
          `${listByMethod(partial.map((x) => ({ method: x.method, value: x.score!.partialLocalization!.overall.meanIoU })))}, against ${span(randomPartial)} for a random window.`;
      } else {
        text += ` In every scored pair the structure covers 90 % or more of the retrieved volume's scan, so any region inside the scan overlaps it: localization is not tested here, and a method scores below the random window only by returning a region shorter than the structure.`;
      }
      const rerank = findScore(results, task.name, encoder, 'rerank');
      const first = findScore(results, task.name, encoder, firstStage);
      const view = (s: EvalScore): number => (s.partialLocalization?.overall.scoredCount ? s.partialLocalization.overall.meanIoU : s.localization!.overall.meanIoU);
      if (rerank?.localization && first?.localization) {
        const a = view(rerank);
        const b = view(first);
        text += ` \`rerank\` localizes at ${f2(a)} against ${f2(b)} for \`${firstStage}\` (${rerank.partialLocalization?.overall.scoredCount ? 'partial pairs' : 'all pairs'}), whose region comes from its kNN hits rather than from the late-interaction alignment${Math.abs(a - b) < 0.02 ? ': no difference at this resolution' : ''}.`;
      }
      out.push(text);
    }
    out.push(
      `On ${task.name}, the volume methods have no alignment of their own: search gives their results a region by the same late-interaction alignment \`rerank\` uses, so their IoU differs from \`rerank\`'s only through which volumes they retrieve.`,
    );
  }

  // Development benchmark: how much of what comes back is the query's own scan, and whether lesions
  // matter within a scan (variants of one scan differ only by the inserted lesions, noise and crop).
  const scanned = results.scores.filter((s) => s.sameScan && Number.isFinite(s.sameScan.share) && results.tasks.find((t) => t.name === s.task)?.kind === 'tumour');
  if (scanned.length > 0) {
    const byEncoder = new Map<string, EvalScore[]>();
    for (const s of scanned) byEncoder.set(s.encoder, [...(byEncoder.get(s.encoder) ?? []), s]);
    for (const [encoder, list] of byEncoder) {
      const random = list[0].sameScan!.randomShare;
      const within = withinScanGroupPrecision(results, list[0].task, encoder);
      out.push(
        `Near-duplicates (**${encoder}**, ${list[0].task}): of the top ${list[0].sameScan!.k}, the share that are variants of the query's own scan is ${listByMethod(list.map((x) => ({ method: x.method, value: x.sameScan!.share })))}, against ${f2(random)} at random: ` +
          `retrieval here is first of all scan identity. ` +
          (within.length > 0
            ? `Among the same-scan volumes a method returns in its top 10, the share with the query's lesion group is ${listByMethod(within.map((w) => ({ method: w.method, value: w.observed })))}, ` +
              `against ${f2(within[0].random)} for the same-scan database volumes as a whole (pooled over queries): ` +
              `${within.every((w) => Math.abs(w.observed - w.random) < 0.1) ? 'no method tells lesion groups apart within a scan by 0.1 or more, so the group precision above is carried by anatomy and field of view, not by the lesions' : within.some((w) => w.observed - w.random >= 0.1) ? `some lesion signal survives within a scan (${within.filter((w) => w.observed - w.random >= 0.1).map((w) => `\`${w.method}\``).join(', ')})` : "within a scan the methods prefer other groups than the query's"}.`
            : ''),
      );
    }
  }
  for (const task of results.tasks.filter((t) => t.kind === 'tumour')) {
    for (const encoder of results.encoders.map((e) => e.name)) {
      const spread = sameScanScoreSpread(results, task.name, encoder, 'rerank');
      if (!spread) continue;
      const alike = spread.sameScanRange < 0.25 * spread.leadOverOtherScan;
      out.push(
        `Re-ranking and lesions (**${encoder}**, ${task.name}): in a query's \`rerank\` top 10, the late-interaction scores of the variants of its own scan span a median of ${spread.sameScanRange.toFixed(4)} (largest ${spread.sameScanRangeMax.toFixed(4)}), ` +
          `and the best of them leads the best volume of another scan by a median of ${spread.leadOverOtherScan.toFixed(4)}. ` +
          (alike
            ? 'The variants score nearly alike next to that gap: the score is a mean over all query slices of each one\'s best match, a lesion changes only the slices it lies in, so the order among same-scan variants carries little lesion information.'
            : 'The variants\' scores differ by about as much as that gap, yet (above) their order does not follow the lesion group, so what spreads them is what else differs between variants of one scan — crop, slice thickness, noise — more than the lesion (the score is a mean over all query slices; a lesion changes only the slices it lies in).'),
      );
    }
  }
  if (results.dataset.kind === 'devbench') {
    out.push(
      `What this benchmark cannot show: anything about new patients. Its liver volumes come from ${new Set(Object.values(results.cases).filter((c) => c.organ === 'liver' && c.scan).map((c) => c.scan)).size} scans, every query has variants of its own scan in the database, and the lesions are idealized inserts; ` +
        'its numbers test that the protocol runs and how methods react to crop, thickness, noise and lesion size on the same anatomy, not how they would rank on 3D-MIR.',
    );
  }
  if (results.dataset.kind === 'demo') {
    out.push(
      'What this benchmark cannot show: anything about real CT. Its volumes are generated phantoms (smooth organs of fixed densities, spherical lesions); ' +
        'the numbers show that indexing, every method, localization and the scoring run end to end on volumes whose organs and lesions are known, not how a method would rank patients.',
    );
  }
  return out;
}

/**
 * Within-scan lesion sensitivity: of the top-10 results that are variants of the query's own scan, the
 * share with the query's lesion group, per method; and the same for the same-scan pool (random). Both
 * are pooled over queries (counts summed, then divided).
 */
export function withinScanGroupPrecision(results: EvalResults, task: string, encoder: string): { method: string; observed: number; random: number }[] {
  const cases = results.cases;
  const taskInfo = results.tasks.find((t) => t.name === task);
  if (!taskInfo) return [];
  const databaseIds = taskInfo.databaseIds;
  const out: { method: string; observed: number; random: number }[] = [];
  for (const ranking of results.rankings.filter((r) => r.task === task && r.encoder === encoder)) {
    let same = 0;
    let sameGroup = 0;
    let poolSame = 0;
    let poolSameGroup = 0;
    for (const q of ranking.queries) {
      const query = cases[q.queryKey];
      if (!query?.scan) continue;
      for (const r of q.results.slice(0, 10)) {
        const c = cases[r.caseId];
        if (c?.scan !== query.scan) continue;
        same++;
        if (c.lesionGroup === query.lesionGroup) sameGroup++;
      }
      for (const id of databaseIds) {
        const c = cases[id];
        if (id === q.queryKey || c.scan !== query.scan) continue;
        poolSame++;
        if (c.lesionGroup === query.lesionGroup) poolSameGroup++;
      }
    }
    if (same > 0 && poolSame > 0) out.push({ method: ranking.method, observed: sameGroup / same, random: poolSameGroup / poolSame });
  }
  return out;
}

/**
 * For one method's rankings: per query, the score range among the variants of the query's own scan in
 * its top 10, and how far the best of them leads the best volume of another scan (medians over
 * queries). Undefined without scan identities or without queries that have both.
 */
export function sameScanScoreSpread(results: EvalResults, task: string, encoder: string, method: string): { sameScanRange: number; sameScanRangeMax: number; leadOverOtherScan: number; queries: number } | undefined {
  const ranking = results.rankings.find((r) => r.task === task && r.encoder === encoder && r.method === method);
  if (!ranking) return undefined;
  const ranges: number[] = [];
  const leads: number[] = [];
  for (const q of ranking.queries) {
    const scan = results.cases[q.queryKey]?.scan;
    if (!scan) continue;
    const top = q.results.slice(0, 10);
    const same = top.filter((r) => results.cases[r.caseId]?.scan === scan).map((r) => r.score);
    const other = top.filter((r) => results.cases[r.caseId]?.scan !== scan).map((r) => r.score);
    if (same.length >= 2) ranges.push(Math.max(...same) - Math.min(...same));
    if (same.length >= 1 && other.length >= 1) leads.push(Math.max(...same) - Math.max(...other));
  }
  if (ranges.length === 0 || leads.length === 0) return undefined;
  const median = (v: number[]): number => {
    const sorted = [...v].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  };
  return { sameScanRange: median(ranges), sameScanRangeMax: Math.max(...ranges), leadOverOtherScan: median(leads), queries: ranges.length };
}
