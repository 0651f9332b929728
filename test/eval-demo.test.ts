import assert from 'node:assert/strict';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { runEval } from '../src/eval/run.js';
import { lesionLabels } from '../src/synth/index.js';
import type { PhantomBenchManifest } from '../src/synth/phantom-bench.js';

/** `mir3d eval demo`: the evaluation on generated phantoms, with no data outside the checkout. */
describe('eval on the phantom benchmark', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  test('generates labelled phantoms, splits them by phantom, and scores every task', async () => {
    const outDir = await mkdtemp(join(tmpdir(), 'mir3d-eval-demo-'));
    dirs.push(outDir);
    const { results } = await runEval({ dataset: { kind: 'demo', count: 8, matrix: 64 }, outDir, encoders: ['baseline'], methods: ['slice-count', 'rerank'] });
    const manifest = JSON.parse(await readFile(join(outDir, 'phantoms', 'manifest.json'), 'utf8')) as PhantomBenchManifest;
    assert.equal(manifest.cases.length, 8);
    assert.deepEqual(manifest.cases.filter((c) => c.split === 'test').map((c) => c.phantom), ['phantom-04', 'phantom-08']);
    for (const c of manifest.cases) {
      // The group measured on the written mask is the one the generator meant (one table for both).
      assert.equal(c.labels.lesionGroup, lesionLabels(c.lesionDiametersMm).lesionGroup, `${c.name}: ${c.measuredDiametersMm.join(', ')} mm measured`);
      assert.equal(c.measuredDiametersMm.length, c.lesionDiametersMm.length, `${c.name}: every lesion is one component`);
    }
    assert.deepEqual(results.tasks.map((t) => [t.name, t.kind, t.databaseSize, t.queryCount]), [
      ['phantom-liver', 'tumour', 6, 2],
      ['phantom-liver-region', 'region', 6, 2],
    ]);
    assert.equal(results.dataset.kind, 'demo');
    assert.equal(results.scores.length, 4);
    for (const score of results.scores) {
      assert.ok(score.meanResults > 0, `${score.task} ${score.method} returned results`);
      if (score.task === 'phantom-liver') assert.equal(score.tumour?.perQuery.length, 2, 'both queries scored');
    }
    const region = results.scores.find((s) => s.task === 'phantom-liver-region' && s.method === 'rerank')!;
    assert.ok(region.localization, 'localization is scored against the known liver extents');
    // Reused on a second run: nothing generated or embedded again.
    const again = await runEval({ dataset: { kind: 'demo', count: 8, matrix: 64 }, outDir, encoders: ['baseline'], methods: ['slice-count'] });
    assert.equal(again.results.timings.buildSeconds, undefined);
    assert.equal(again.results.encoders[0].index.added, 0);
  });
});
