import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { threeDMirDataset } from '../src/eval/datasets/decathlon.js';
import type { Case, RetrievalDataset } from '../src/eval/datasets/types.js';
import { randomWindowIoU, zIoU } from '../src/eval/metrics.js';
import { evaluateAndReport, type EvalReportFiles } from '../src/eval/report.js';
import { pairedDifference, readingOf, verdictOf } from '../src/eval/report-reading.js';
import { barChartSvg, stripPlotSvg } from '../src/eval/report-svg.js';
import {
  DEFAULT_EVAL_METHODS,
  geometryOfRecord,
  parseEvalMethod,
  runEval,
  scoreRegionRankings,
  scoreSameScan,
  scoreTumourRankings,
  type EvalResults,
  type RankedCase,
} from '../src/eval/run.js';
import { runCli } from './helpers/cli.js';
import { writePhantomDecathlon, writePhantomTotalSeg, type PhantomDataset } from './helpers/eval-phantoms.js';

const tmp = mkdtempSync(join(tmpdir(), 'mir3d-eval-run-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const close = (actual: number, expected: number, what = '', tolerance = 1e-9): void => {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} vs ${expected}`);
};

/** Every number anywhere inside `value` (NaN allowed only where nothing could be scored). */
function numbersIn(value: unknown, path = ''): { path: string; value: number }[] {
  if (typeof value === 'number') return [{ path, value }];
  if (Array.isArray(value)) return value.flatMap((v, n) => numbersIn(v, `${path}[${n}]`));
  // Counts are not metrics.
  if (value && typeof value === 'object') return Object.entries(value).filter(([k]) => k !== 'queryCount' && k !== 'ks').flatMap(([k, v]) => numbersIn(v, `${path}.${k}`));
  return [];
}

const ranked = (caseId: string, region?: RankedCase['region']): RankedCase => ({ caseId, volumeId: `v-${caseId}`, score: 0, ...(region ? { region } : {}) });

describe('eval glue: rankings → metrics (golden values)', () => {
  const labels = (cancerFlag: 0 | 1, lesionGroup: -1 | 1 | 2 | 3): Case['labels'] => ({ cancerFlag, lesionGroup, source: 'generated' });
  const kase = (caseId: string, l: Case['labels'], extra: Partial<Case> = {}): Case => ({ caseId, imagePath: caseId, organ: 'liver', labelOrgan: 'liver', labels: l, ...extra });
  const dataset: RetrievalDataset = {
    name: 'toy',
    judging: 'same-label-organ',
    notes: [],
    database: [
      kase('a', labels(1, 1)),
      kase('b', labels(0, -1)),
      kase('c', labels(1, 2)),
      kase('d', labels(0, -1)),
      kase('e', labels(1, 3)),
      kase('f', labels(1, 2)),
      // A lung volume in a liver benchmark: "no liver tumour", whatever its own labels.
      kase('g', labels(1, 1), { organ: 'lung', labelOrgan: 'lung' }),
    ],
    queries: [kase('q', labels(1, 1))],
  };

  test('flag/group P@k and AP@10 of a fake ranking, and the random row, by hand', () => {
    const evaluation = scoreTumourRankings(dataset, new Map([['q', ['a', 'b', 'c', 'g', 'e'].map((id) => ranked(id))]]));
    // flag relevant: a 1, b 0, c 1, g 0 (lung → no liver tumour), e 1.
    close(evaluation.overall.flag.precisionAtK[3], 2 / 3, 'flag P@3');
    close(evaluation.overall.flag.precisionAtK[5], 3 / 5, 'flag P@5');
    close(evaluation.overall.flag.precisionAtK[10], 3 / 10, 'flag P@10');
    close(evaluation.overall.flag.ap10, (1 / 1 + 2 / 3 + 3 / 5) / 3, 'flag AP@10');
    // group 1: only a.
    close(evaluation.overall.group.precisionAtK[3], 1 / 3, 'group P@3');
    close(evaluation.overall.group.precisionAtK[10], 1 / 10, 'group P@10');
    close(evaluation.overall.group.ap10, 1, 'group AP@10');
    // Random: pool of 7, flag 1 for a, c, e, f (4), group 1 for a only (g is judged no tumour).
    const random = evaluation.random.overall;
    close(random.flag.precisionAtK[3], 4 / 7, 'random flag P@3');
    close(random.flag.precisionAtK[10], (7 / 10) * (4 / 7), 'random flag P@10');
    close(random.group.precisionAtK[5], 1 / 7, 'random group P@5');
    // Random AP@10 by enumerating all 7! orders of the pool.
    const pool = [1, 0, 1, 0, 1, 1, 0];
    let sum = 0;
    let count = 0;
    const permute = (rest: number[], prefix: number[]): void => {
      if (rest.length === 0) {
        let hits = 0;
        let ap = 0;
        prefix.forEach((r, i) => {
          if (r) ap += ++hits / (i + 1);
        });
        sum += hits ? ap / hits : 0;
        count++;
        return;
      }
      rest.forEach((r, n) => permute([...rest.slice(0, n), ...rest.slice(n + 1)], [...prefix, r]));
    };
    permute(pool, []);
    close(random.flag.ap10, sum / count, 'random flag AP@10 (enumerated)', 1e-12);
  });

  test('region recall and z-IoU of a fake ranking, by hand', () => {
    const extent = (firstSlice: number, lastSlice: number, zStartMm: number, zEndMm: number) => ({ firstSlice, lastSlice, zStartMm, zEndMm, zExtentMm: zEndMm - zStartMm, voxelCount: 1 });
    const regionData: RetrievalDataset = {
      name: 'toy-region',
      judging: 'region',
      notes: [],
      database: [kase('A', labels(0, -1), { regions: { liver: extent(10, 19, 97.5, 147.5) } }), kase('B', labels(0, -1), { regions: {} })],
      queries: [kase('Q', labels(0, -1), { regions: { liver: extent(0, 9, 0, 50) } })],
    };
    const geometry = new Map([
      ['A', { sliceSpacingMm: 5, scan: { zStartMm: 0, zEndMm: 200 } }],
      ['B', { sliceSpacingMm: 5, scan: { zStartMm: 0, zEndMm: 100 } }],
    ]);
    // A's region: slice centres 110…140 mm → slab 107.5…142.5 against the truth 97.5…147.5: IoU 35/50.
    const scores = scoreRegionRankings(regionData, [{ queryId: 'Q', region: 'liver' }], new Map([['Q#liver', [ranked('B'), ranked('A', { firstSlice: 12, lastSlice: 18, zStartMm: 110, zEndMm: 140 })]]]), geometry);
    assert.deepEqual(scores.region.overall.recallAtK, { 1: 0, 3: 1, 5: 1, 10: 1 });
    assert.deepEqual(scores.region.random.overall.recallAtK, { 1: 0.5, 3: 1, 5: 1, 10: 1 });
    close(scores.localization.overall.meanIoU, 0.7, 'IoU');
    assert.equal(scores.localization.overall.scoredCount, 1);
    assert.equal(scores.localization.overall.withoutTruthCount, 1);
    assert.deepEqual(scores.iousByRegion, { liver: [0.7] });
    // Random window of 50 mm in a 200 mm scan, brute force over start positions.
    let sum = 0;
    const steps = 20000;
    for (let s = 0; s < steps; s++) {
      const start = ((s + 0.5) / steps) * 150;
      sum += zIoU({ zStartMm: start, zEndMm: start + 50 }, { zStartMm: 97.5, zEndMm: 147.5 });
    }
    close(scores.localization.overall.randomMeanIoU, sum / steps, 'random IoU', 1e-4);
    close(scores.localization.overall.randomMeanIoU, randomWindowIoU({ zStartMm: 97.5, zEndMm: 147.5 }, { zStartMm: 0, zEndMm: 200 }, 50), 'random IoU closed form');
  });

  test('near-duplicate share and record geometry', () => {
    const scanOf = new Map([['q', 's1'], ['a', 's1'], ['b', 's1'], ['c', 's2'], ['d', 's2'], ['e', 's3'], ['f', 's3'], ['g', 's4']]);
    const share = scoreSameScan(dataset, new Map([['q', ['a', 'c', 'b', 'd', 'e'].map((id) => ranked(id))]]), scanOf, 5);
    close(share.share, 2 / 5, 'share');
    close(share.randomShare, 2 / 7, 'random share');
    const g = geometryOfRecord({ dims: [4, 4, 11], spacingMm: [1, 1, 2.5], affineRas: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 2.5, -40, 0, 0, 0, 1] });
    assert.deepEqual(g, { sliceSpacingMm: 2.5, scan: { zStartMm: -41.25, zEndMm: -13.75 } });
  });

  test('method specs, paired differences and verdicts', () => {
    assert.deepEqual(parseEvalMethod('rrf:rerank+volume-mean'), { label: 'rrf:rerank+volume-mean', method: 'rerank', fuseWith: { method: 'volume-mean', fusion: 'rrf' } });
    assert.deepEqual(parseEvalMethod(' slice-max '), { label: 'slice-max', method: 'slice-max' });
    assert.throws(() => parseEvalMethod('rrf:rerank+nope'), /unknown method/);
    assert.equal(DEFAULT_EVAL_METHODS.length, 10);
    const a = new Map([['1', 0.5], ['2', 0.6], ['3', 0.7], ['4', 0.8]]);
    const b = new Map([['1', 0.1], ['2', 0.3], ['3', 0.3], ['4', 0.8], ['5', 0.2]]);
    const d = pairedDifference(a, b);
    // diffs 0.4, 0.3, 0.4, 0: mean 0.275, sd 0.1893, se 0.0946.
    assert.deepEqual([d.n, d.better, d.worse, d.tied], [4, 3, 0, 1]);
    close(d.meanDiff, 0.275, 'mean diff');
    close(d.se, Math.sqrt((0.125 ** 2 + 0.025 ** 2 + 0.125 ** 2 + 0.275 ** 2) / 3 / 4), 'se');
    assert.equal(verdictOf(d), 'better');
    assert.equal(verdictOf(pairedDifference(b, a)), 'worse');
    assert.equal(verdictOf(pairedDifference(a, a)), 'no clear difference');
  });

  test('SVG charts: bars, random lines, no URL', () => {
    const bars = barChartSvg({ title: 'P@k <test>', groups: ['x', 'y'], series: [{ name: 's', color: '#123456', values: [0.5, NaN] }], random: { lines: [{ value: 0.25, label: 'random' }] } });
    assert.match(bars, /^<svg[^>]*class="chart"/);
    assert.equal((bars.match(/<rect x="[\d.]+" y="[\d.]+" width="12"/g) ?? []).length, 1, 'one bar drawn, NaN left out');
    assert.match(bars, /class="random"/);
    assert.match(bars, /P@k &lt;test&gt;/);
    const strip = stripPlotSvg('IoU', [{ name: 'm', values: [0.2, 0.4, 0.9], random: 0.3 }]);
    assert.equal((strip.match(/<circle/g) ?? []).length, 3);
    for (const svg of [bars, strip]) assert.doesNotMatch(svg, /https?:\/\//);
  });
});

describe('runEval end to end on phantoms in the Decathlon layout (baseline encoder)', () => {
  let data: PhantomDataset;
  let results: EvalResults;
  let files: EvalReportFiles;
  const out = join(tmp, 'eval');

  before(async () => {
    data = await writePhantomDecathlon(join(tmp, 'phantoms'));
    ({ results, files } = await evaluateAndReport({
      dataset: { kind: 'decathlon', root: data.root, labelsDir: data.csvDir, organ: 'liver', protocol: '3dmir' },
      outDir: out,
      encoders: ['baseline'],
      examplesPerTask: 2,
    }));
  });

  test('queries and database: sizes, the query never in the database, ids mapped back to cases', () => {
    const tumour = results.tasks.find((t) => t.kind === 'tumour')!;
    assert.equal(tumour.name, '3dmir-liver');
    assert.deepEqual([tumour.databaseSize, tumour.queryCount], [data.train.length, data.test.length]);
    assert.deepEqual(tumour.databaseIds.sort(), [...data.train].sort());
    const region = results.tasks.find((t) => t.kind === 'region')!;
    const withLiver = (names: string[]): string[] => names.filter((n) => data.liverSlices.get(n) !== undefined);
    assert.equal(region.databaseSize, data.train.length, 'every database mask labels the liver, so all are judged');
    assert.deepEqual(region.queryKeys.sort(), withLiver(data.test).map((n) => `${n}#liver`).sort());
    assert.equal(results.encoders[0].index.volumes, data.train.length);
    assert.equal(results.encoders[0].index.added, data.train.length);
    for (const ranking of results.rankings) {
      const task = results.tasks.find((t) => t.name === ranking.task)!;
      assert.equal(ranking.queries.length, task.queryCount, `${ranking.task} ${ranking.method}`);
      for (const q of ranking.queries) {
        const queryCase = q.queryKey.split('#')[0];
        assert.ok(q.results.length > 0 && q.results.length <= 10);
        for (const r of q.results) {
          assert.ok(task.databaseIds.includes(r.caseId), `${r.caseId} retrieved for ${q.queryKey} is not a database volume`);
          assert.notEqual(r.caseId, queryCase);
        }
      }
    }
    // Region queries' localized regions exist for every method (volume methods get one by alignment).
    for (const ranking of results.rankings.filter((r) => r.task === region.name)) {
      assert.ok(ranking.queries.every((q) => q.results.every((r) => r.region !== undefined)), ranking.method);
    }
  });

  test('every metric lies in [0, 1], and the reported P@k equals P@k recomputed from the stored rankings', () => {
    assert.equal(results.scores.length, results.tasks.length * DEFAULT_EVAL_METHODS.length);
    for (const score of results.scores) {
      for (const { path, value } of numbersIn({ tumour: score.tumour?.overall, random: score.tumour?.random, region: score.region, loc: score.localization?.overall.meanIoU })) {
        assert.ok(value >= 0 && value <= 1 + 1e-12, `${score.method}${path} = ${value}`);
      }
    }
    const labelOf = new Map(data.rows.map((r) => [r.name, r]));
    for (const ranking of results.rankings.filter((r) => r.task === '3dmir-liver')) {
      const score = results.scores.find((s) => s.task === ranking.task && s.method === ranking.method)!;
      for (const k of [3, 5, 10]) {
        let flag = 0;
        let group = 0;
        for (const q of ranking.queries) {
          const query = labelOf.get(q.queryKey)!;
          const top = q.results.slice(0, k).map((r) => labelOf.get(r.caseId)!);
          flag += top.filter((r) => r.cancerFlag === query.cancerFlag).length / k;
          group += top.filter((r) => r.lesionGroup === query.lesionGroup).length / k;
        }
        close(score.tumour!.overall.flag.precisionAtK[k], flag / ranking.queries.length, `${ranking.method} flag P@${k}`);
        close(score.tumour!.overall.group.precisionAtK[k], group / ranking.queries.length, `${ranking.method} group P@${k}`);
      }
    }
  });

  test('random rows equal the closed forms m/N · min(k, N)/k', () => {
    const score = results.scores.find((s) => s.task === '3dmir-liver')!;
    const train = data.rows.filter((r) => data.train.includes(r.name));
    const N = train.length;
    for (const k of [3, 5, 10]) {
      let flag = 0;
      let group = 0;
      for (const name of data.test) {
        const q = data.rows.find((r) => r.name === name)!;
        flag += (train.filter((r) => r.cancerFlag === q.cancerFlag).length / N) * (Math.min(k, N) / k);
        group += (train.filter((r) => r.lesionGroup === q.lesionGroup).length / N) * (Math.min(k, N) / k);
      }
      close(score.tumour!.random.overall.flag.precisionAtK[k], flag / data.test.length, `random flag P@${k}`);
      close(score.tumour!.random.overall.group.precisionAtK[k], group / data.test.length, `random group P@${k}`);
    }
    // Region recall at random: every database phantom holds liver, so any top k does.
    const region = results.scores.find((s) => s.region)!;
    assert.equal(region.region!.random.overall.recallAtK[1], 1);
  });

  test('report.md, report.html (inline SVG, pictures, no URL) and results.json', () => {
    for (const path of [files.markdown, files.html, files.json, ...files.sheets]) assert.ok(existsSync(path), path);
    assert.ok(files.sheets.length >= 2);
    const html = readFileSync(files.html, 'utf8');
    assert.ok((html.match(/<svg /g) ?? []).length >= 4, 'bar charts and the IoU plot');
    assert.match(html, /class="random"/);
    assert.match(html, /src="data:image\/png;base64,/);
    assert.doesNotMatch(html, /https?:\/\//);
    assert.doesNotMatch(html, /<script|<link /);
    const md = readFileSync(files.markdown, 'utf8');
    assert.match(md, /## Reading the results/);
    assert.match(md, /\| \*random\* \|/);
    assert.match(md, /rerank/);
    const json = JSON.parse(readFileSync(files.json, 'utf8')) as EvalResults;
    assert.equal(json.schema, 'mir3d-eval/1');
    assert.equal(json.scores.length, results.scores.length);
    assert.ok(readingOf(results).length >= 3);
  });

  test('a second run reuses the index (nothing embedded again) and gives the same numbers', async () => {
    const again = await runEval({
      dataset: { kind: 'decathlon', root: data.root, labelsDir: data.csvDir, organ: 'liver' },
      outDir: out,
      encoders: ['baseline'],
      methods: ['slice-count', 'volume-mean'],
    });
    assert.deepEqual([again.results.encoders[0].index.added, again.results.encoders[0].index.unchanged], [0, data.train.length]);
    for (const s of again.results.scores) {
      const first = results.scores.find((x) => x.task === s.task && x.method === s.method)!;
      assert.deepEqual(s.tumour?.overall ?? s.region?.overall, first.tumour?.overall ?? first.region?.overall, `${s.task} ${s.method}`);
    }
  });

  test('CLI: mir3d eval on the same folder', () => {
    const cliOut = join(tmp, 'cli');
    const run = runCli(['eval', data.root, '--labels-dir', data.csvDir, '--organ', 'liver', '--encoders', 'baseline', '--methods', 'slice-count,rerank,rrf:rerank+volume-mean', '--examples', '1', '--out', cliOut, '--no-progress', '--json'], 60_000);
    assert.equal(run.status, 0, run.stderr);
    const summary = JSON.parse(run.stdout) as { files: EvalReportFiles; scores: { task: string; method: string; groupP10?: number; meanIoU?: number }[] };
    assert.ok(existsSync(summary.files.html) && existsSync(summary.files.markdown) && existsSync(summary.files.json));
    assert.deepEqual([...new Set(summary.scores.map((s) => s.method))], ['slice-count', 'rerank', 'rrf:rerank+volume-mean']);
    assert.ok(summary.scores.some((s) => s.groupP10 !== undefined) && summary.scores.some((s) => s.meanIoU !== undefined));
    const bad = runCli(['eval', data.root, '--methods', 'nope', '--out', join(tmp, 'bad')]);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /unknown method/);
    const badRule = runCli(['eval', data.root, '--group-rule', 'paper', '--out', join(tmp, 'bad-rule')]);
    assert.notEqual(badRule.status, 0);
    assert.match(badRule.stderr, /--group-rule: design or 3dmir-csv/);
  });
});

describe('runEval on a TotalSegmentator-layout folder (region queries)', () => {
  test('coarse regions: one query per (query subject, region), recall and IoU against their chance levels', async () => {
    const root = join(tmp, 'totalseg');
    await writePhantomTotalSeg(root);
    const { results } = await runEval({ dataset: { kind: 'totalseg', root, level: 'coarse' }, outDir: join(tmp, 'eval-ts'), encoders: ['baseline'], methods: ['slice-count', 'rerank', 'volume-mean'] });
    assert.equal(results.tasks.length, 1);
    const task = results.tasks[0];
    assert.equal(task.kind, 'region');
    assert.deepEqual([task.databaseSize, new Set(task.queryKeys.map((k) => k.split('#')[0])).size], [4, 2]);
    // The thorax query holds lungs and heart, the abdomen one kidneys; both hold spine and aorta.
    for (const key of ['s0006#lungs', 's0006#heart', 's0005#kidneys', 's0005#spine', 's0006#spine']) assert.ok(task.queryKeys.includes(key), key);
    assert.ok(task.strata.includes('lungs') && task.strata.includes('kidneys'));
    for (const score of results.scores) {
      for (const { path, value } of numbersIn({ region: score.region, loc: [score.localization?.overall.meanIoU, score.localization?.overall.randomMeanIoU] })) {
        assert.ok(Number.isNaN(value) || (value >= 0 && value <= 1 + 1e-12), `${score.method}${path} = ${value}`);
      }
      // Lungs: the thorax and thorax-abdomen scans hold them, and the bottom of the lungs reaches into
      // some abdomen scans; the chance of a hit at 1 is the share of the database that holds them.
      const lungs = score.region!.random.byRegion.lungs.recallAtK[1];
      assert.ok(lungs > 0 && lungs <= 1);
      assert.ok(score.localization!.overall.scoredCount > 0);
    }
  });
});

// The dataset loader the eval uses sees the phantoms as the test expects (guards the helper itself).
test('phantom helper: 3D-MIR labels read back as written', async () => {
  const data = await writePhantomDecathlon(join(tmp, 'phantoms-check'));
  const dataset = await threeDMirDataset('liver', { root: data.root, csvDir: data.csvDir });
  assert.deepEqual(dataset.database.map((c) => c.caseId), data.train);
  assert.deepEqual(dataset.queries.map((c) => [c.caseId, c.labels.lesionGroup]), data.test.map((n) => [n, data.rows.find((r) => r.name === n)!.lesionGroup]));
  assert.deepEqual(new Set(data.rows.map((r) => r.lesionGroup)), new Set([-1, 1, 2, 3]));
});
