import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fitHead, validationSplits, type LabelledRows } from '../src/space/fit.js';
import { signedRootOf, spaceModel, type AffineLayer } from '../src/space/graph.js';
import { SpaceKernel } from '../src/space/kernel.js';
import { seededRng } from './helpers/seeded-random.js';

/** rows × dim vectors, two classes apart along the first axes, `perGroup` rows per group. */
function labelledRows(rows: number, dim: number, perGroup: number, seed: number): LabelledRows {
  const random = seededRng(seed);
  const vectors = new Float32Array(rows * dim);
  const labels: string[] = [];
  const groups: string[] = [];
  for (let r = 0; r < rows; r++) {
    const group = Math.floor(r / perGroup);
    const label = group % 2;
    for (let j = 0; j < dim; j++) vectors[r * dim + j] = (random() - 0.5) + (j < 4 && label === 1 ? 0.6 : 0);
    labels.push(String(label));
    groups.push(`patient-${group}`);
  }
  return { vectors, dim, targets: [labels], groups };
}

test('a signed-root space computes sign(x)·√|x| before its layer, negative values included', async () => {
  const dim = 3;
  const layer: AffineLayer = { inDim: dim, outDim: 2, weight: Float32Array.from([1, 0, 0, 1, 2, -1]), bias: Float32Array.from([0.5, -0.25]) };
  const input = Float32Array.from([4, -9, 0.25, -1, 0, 16]);
  const kernel = await SpaceKernel.open(spaceModel([layer], 'test', 'signed-root'), 'test');
  const plain = await SpaceKernel.open(spaceModel([layer], 'test'), 'test');
  try {
    const rooted = await kernel.apply(input);
    // The same layer on the rooted values by hand, then unit rows.
    const root = signedRootOf(input);
    assert.deepEqual([...root], [2, -3, 0.5, -1, 0, 4]);
    for (let r = 0; r < 2; r++) {
      const y = [0, 1].map((k) => layer.bias[k] + [0, 1, 2].reduce((s, i) => s + root[r * dim + i] * layer.weight![i * 2 + k], 0));
      const norm = Math.hypot(...y);
      for (let k = 0; k < 2; k++) assert.ok(Math.abs(rooted[r * 2 + k] - y[k] / norm) < 1e-6, `row ${r} dim ${k}: ${rooted[r * 2 + k]} vs ${y[k] / norm}`);
    }
    // The identity input is a different space on the same layer.
    const unrooted = await plain.apply(input);
    assert.ok(Math.abs(unrooted[0] - rooted[0]) > 1e-3);
  } finally {
    await kernel.close();
    await plain.close();
  }
});

test('validation rotates the held-out groups on a small archive and never validates a group it learned from', () => {
  const small = labelledRows(300, 8, 3, 1);
  const splits = validationSplits(small, { seed: 4 });
  // 100 groups, a fifth held out: ~60 queries each, so every fifth takes a turn (2000 wanted).
  assert.equal(splits.length, 5);
  const heldOut = new Set<string>();
  for (const split of splits) {
    const learned = new Set(split.inner.map((r) => small.groups[r]));
    for (const r of split.validation) assert.ok(!learned.has(small.groups[r]), `group ${small.groups[r]} is on both sides`);
    for (const r of split.database) assert.ok(learned.has(small.groups[r]));
    const groups = new Set(split.validation.map((r) => small.groups[r]));
    for (const g of groups) assert.ok(!heldOut.has(g), `group ${g} held out twice`);
    for (const g of groups) heldOut.add(g);
  }
  assert.equal(heldOut.size, 100, 'every group is held out once over the rotations');
  // Enough validation queries in one fifth: one split, as before.
  assert.equal(validationSplits(small, { seed: 4, maxValidationQueries: 50 }).length, 1);
});

test('the LDA head tries both inputs on every rotation and keeps the best pooled candidate', async () => {
  const data = labelledRows(400, 16, 4, 2);
  const fit = await fitHead(data, { seed: 3, pcaDims: [8], floors: [0.3] });
  assert.equal(fit.validation.rounds, 5);
  assert.equal(fit.validation.queries, 400, 'each row validated once over the rotations');
  assert.deepEqual(fit.tried.map((t) => t.input), ['identity', 'signed-root']);
  const best = Math.max(...fit.tried.map((t) => t.validationP5));
  assert.equal(fit.validation.p5, best);
  assert.equal(fit.tried.find((t) => t.validationP5 === best)!.input, fit.chosen.input);
  assert.ok(fit.validation.p5 > fit.validation.randomP5 + 0.2, `a separable label: P@5 ${fit.validation.p5} vs random ${fit.validation.randomP5}`);
});
