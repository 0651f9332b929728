import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { analyzeText, hashTextFeatures, namedTextFeatures } from '../src/encode/text-features.js';
import { writeNifti } from '../src/io/nifti-writer.js';
import { openLearnedTextEncoder } from '../src/space/learned-text.js';
import { openStore } from '../src/store/index.js';
import { runCli } from './helpers/cli.js';
import { writeTinyClipFolder } from './helpers/tiny-clip.js';
import { uniformVolume } from './helpers/text-archive.js';

describe('text features', () => {
  test('negation scope: "no tumour" is not "tumour", and the scope ends at the clause', () => {
    const a = analyzeText('No tumour in the liver, but a cyst in the kidney.');
    assert.deepEqual(a.negated, ['tumor', 'liver']);
    assert.ok(namedTextFeatures('no tumour').has('w:NOT_tumor'));
    assert.ok(!namedTextFeatures('no tumour').has('w:tumor'));
    assert.ok(namedTextFeatures('no tumour but a cyst').has('w:cyst'));
    assert.ok(namedTextFeatures('liver without metastases').has('w:NOT_metastasis'));
  });

  test('sizes with units become thresholds, so "larger than 5 cm" meets "6 cm" and not "1 cm"', () => {
    assert.deepEqual(analyzeText('larger than 5 cm').sizesCm, [{ valueCm: 5, bound: 'min' }]);
    assert.deepEqual(analyzeText('measures 2.44 centimeters').sizesCm, [{ valueCm: 2.44, bound: 'exact' }]);
    assert.deepEqual(analyzeText('an 18mm nodule').sizesCm, [{ valueCm: 1.8, bound: 'exact' }]);
    assert.deepEqual(analyzeText('< 2cm').sizesCm, [{ valueCm: 2, bound: 'max' }]);
    const has = (text: string, feature: string): boolean => namedTextFeatures(text).has(feature);
    assert.ok(has('larger than 5 cm', 'size>=5cm') && has('a 6 cm tumour', 'size>=5cm'));
    assert.ok(!has('a 1 cm tumour', 'size>=5cm') && !has('larger than 5 cm', 'size>=6cm'));
    assert.ok(has('smaller than 2 cm', 'size<=2cm') && !has('smaller than 2 cm', 'size>=1cm'));
    const cos = (x: string, y: string): number => {
      const [a, b] = [hashTextFeatures(x), hashTextFeatures(y)];
      const map = new Map(Array.from(a.indices, (i, n) => [i, a.values[n]]));
      return Array.from(b.indices).reduce((s, i, n) => s + (map.get(i) ?? 0) * b.values[n], 0);
    };
    assert.ok(cos('liver tumour larger than 5 cm', 'liver with a 6 cm tumor') > cos('liver tumour larger than 5 cm', 'liver with a 1 cm tumor'));
  });

  test('counts and spellings: "7 tumors", "multiple", British and American forms', () => {
    assert.deepEqual(analyzeText('This 3D volume depicts a liver with 7 tumors').counts, [{ value: 7, bound: 'exact' }]);
    assert.ok(namedTextFeatures('multiple lesions').has('count>=2'));
    assert.ok(namedTextFeatures('oedema and tumours').has('w:edema') && namedTextFeatures('oedema and tumours').has('w:tumor'));
  });
});

describe('mir3d search --text', () => {
  const root = mkdtempSync(join(tmpdir(), 'mir3d-text-'));
  const archive = join(root, 'archive');
  const clipDb = join(root, 'idx-clip');
  const baseDb = join(root, 'idx-base');
  const kinds = { soft: 50, lung: -800, bone: 700, soft2: 40, lung2: -750, bone2: 650 };
  after(() => rmSync(root, { recursive: true, force: true }));
  before(async () => {
    mkdirSync(archive, { recursive: true });
    for (const [name, hu] of Object.entries(kinds)) await writeNifti(join(archive, `${name}.nii.gz`), uniformVolume(hu));
    const captions = { soft: 'soft tissue of the abdomen', lung: 'lung with air', bone: 'dense bone', soft2: 'abdomen soft tissue', lung2: 'air in the lungs', bone2: 'bone' };
    writeFileSync(join(root, 'labels.csv'), `name,caption,patient\n${Object.entries(captions).map(([n, c], i) => `${n}.nii.gz,${c},p${i % 3}`).join('\n')}\n`);
    writeFileSync(join(root, 'eval.csv'), `path,caption,patient,tissue\n${Object.entries(captions).map(([n, c], i) => `archive/${n}.nii.gz,${c},p${Math.floor(i / 2)},${n.replace('2', '')}`).join('\n')}\n`);
  });

  test('a CLIP-style folder: the described volume ranks first, with its matched region, through the CLI', () => {
    // Word vectors that match the three windows' responses to each tissue: the pair shares one space.
    const model = writeTinyClipFolder(join(root, 'clip'), { wordVectors: { soft: [0.5, 0.93, 0.31], tissue: [0.5, 0.93, 0.31], lung: [0, 0.37, 0], air: [0, 0.37, 0], bone: [1, 1, 0.67] } });
    const indexed = runCli(['index', archive, '--db', clipDb, '--encoder', model], 120_000);
    assert.equal(indexed.status, 0, indexed.stderr);
    for (const [text, expected] of [['bone', /bone2?\.nii\.gz/], ['lung', /lung2?\.nii\.gz/], ['soft tissue', /soft2?\.nii\.gz/]] as const) {
      const run = runCli(['search', '--text', text, '--db', clipDb, '--json', '--top', '2']);
      assert.equal(run.status, 0, run.stderr);
      const out = JSON.parse(run.stdout) as { method: string; results: Array<{ volumeId: string; region?: { firstSlice: number; lastSlice: number }; matches: unknown[] }> };
      assert.equal(out.method, 'slice-count');
      const store = openStore(clipDb, { readOnly: true });
      try {
        out.results.forEach((r) => assert.match(store.getVolume(r.volumeId)?.sourcePath ?? '', expected, `"${text}" → ${store.getVolume(r.volumeId)?.sourcePath}`));
      } finally {
        store.close();
      }
      assert.ok(out.results[0].region && out.results[0].matches.length > 0, 'localized from the matched slices');
    }
    const table = runCli(['search', '--text', 'bone', '--db', clipDb]);
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /text "bone": slice-count/);
    assert.match(table.stdout, /localized region/);
    // Multi-modal: a lung volume's query fused with the text "bone" by interleaving holds both kinds.
    const fused = runCli(['search', join(archive, 'lung.nii.gz'), '--text', 'bone', '--db', clipDb, '--fusion', 'interleave', '--method', 'slice-count', '--top', '2', '--json']);
    assert.equal(fused.status, 0, fused.stderr);
    const fusedOut = JSON.parse(fused.stdout) as { results: Array<{ source: string }> };
    assert.match(fusedOut.results[0].source, /lung2\.nii\.gz/);
    assert.match(fusedOut.results[1].source, /bone2?\.nii\.gz/);
  });

  test('bad text input and an index without a text space are one-line errors', () => {
    const empty = runCli(['search', '--text', '  ', '--db', clipDb]);
    assert.equal(empty.status, 2);
    assert.match(empty.stderr, /empty/);
    assert.equal(empty.stderr.trim().split('\n').length, 1, empty.stderr);
    const long = runCli(['search', '--text', Array(20).fill('bone').join(' '), '--db', clipDb]);
    assert.equal(long.status, 0, long.stderr);
    assert.match(long.stderr, /more than the model's context of 16/);
    const indexed = runCli(['index', archive, '--db', baseDb, '--encoder', 'baseline', '--labels', join(root, 'labels.csv')], 120_000);
    assert.equal(indexed.status, 0, indexed.stderr);
    const none = runCli(['search', '--text', 'lung', '--db', baseDb]);
    assert.equal(none.status, 2);
    assert.match(none.stderr, /no text space.*mir3d train --db DB --captions COLUMN.*CLIP-style model folder/);
  });

  test('mir3d train --captions learns a text space kept in the index; search --text then uses it', () => {
    const trained = runCli(['train', '--db', baseDb, '--captions', 'caption', '--group-by', 'patient', '--steps', '60'], 120_000);
    assert.equal(trained.status, 0, trained.stderr);
    assert.match(trained.stdout, /text space 'captions' learned from \d+ captions of 6 volumes/);
    const store = openStore(baseDb, { readOnly: true });
    try {
      const encoder = openLearnedTextEncoder(store);
      assert.ok(encoder && encoder.pairTag === store.encoderId);
    } finally {
      store.close();
    }
    const run = runCli(['search', '--text', 'dense bone', '--db', baseDb, '--json', '--top', '1']);
    assert.equal(run.status, 0, run.stderr);
    const out = JSON.parse(run.stdout) as { results: Array<{ labels: Record<string, string> }> };
    assert.match(out.results[0].labels.caption, /bone/);
    // The caption an indexed volume carries, fused with that volume's own query (3D-MIR's multi-modal ensemble).
    const lungId = (() => {
      const reader = openStore(baseDb, { readOnly: true });
      try {
        return reader.listVolumes().find((v) => v.labels.caption === 'lung with air')!.volumeId;
      } finally {
        reader.close();
      }
    })();
    const captioned = runCli(['search', lungId, '--caption-label', 'caption', '--db', baseDb, '--method', 'slice-count', '--json']);
    assert.equal(captioned.status, 0, captioned.stderr);
    assert.equal((JSON.parse(captioned.stdout) as { query: { fusedText: string } }).query.fusedText, 'lung with air');
    assert.match(captioned.stderr, /fused with the text "lung with air" \(slice-count\) by rrf/);
    const uncaptioned = runCli(['search', lungId, '--caption-label', 'nothing', '--db', baseDb]);
    assert.equal(uncaptioned.status, 2);
    assert.match(uncaptioned.stderr, /has no label 'nothing' to use as its caption/);
    const noCaptions = runCli(['train', '--db', baseDb, '--captions', 'nothing']);
    assert.equal(noCaptions.status, 2);
    assert.match(noCaptions.stderr, /only 0 volume\(s\) carry a caption in label 'nothing'/);
  });

  test('mir3d eval <labels.csv> --captions: patient-disjoint folds, every list beside its exact random level', async () => {
    const out = join(root, 'eval-out');
    const run = runCli(['eval', join(root, 'eval.csv'), '--captions', 'caption', '--target', 'tissue', '--group-by', 'patient', '--folds', '3', '--encoders', join(root, 'clip'), '--out', out, '--no-progress', '--json'], 180_000);
    assert.equal(run.status, 0, run.stderr);
    const report = JSON.parse(run.stdout) as import('../src/eval/text-eval.js').TextEvalReport;
    assert.equal(report.queries, 6);
    assert.equal(report.groups, 3);
    // Each fold learns only from the other groups' captions: 2 of the 3 patients, 4 of the 6 captions,
    // less the ones its early stopping holds out.
    for (const fold of report.perFold) assert.ok(fold.trainingCaptions <= 4, JSON.stringify(fold));
    // Each patient has two tissues; pools exclude the query's patient: 4 volumes remain, 1 of the query's
    // tissue → P@1 at random exactly 1/4.
    assert.ok(Math.abs(report.randomPrecision.pAtK['1'] - 0.25) < 1e-9);
    for (const list of ['text', 'control', 'image', 'interleave', 'rrf'] as const) assert.ok(report.precision[list].pAtK['1'].mean >= 0 && report.precision[list].pAtK['1'].mean <= 1);
    // The image query of uniform volumes finds the other volume of its tissue first.
    assert.equal(report.precision.image.pAtK['1'].mean, 1);
    const { readFileSync } = await import('node:fs');
    assert.match(readFileSync(join(out, 'report.md'), 'utf8'), /random retrieval \(exact, per query pool\)[\s\S]*## Reading/);
  });

  test('mir3d eval <labels.csv> --captions: files that all fail to index, or no captions, are one-line errors, not zeros', () => {
    // Files named like images whose bytes are not: every one fails to index.
    const broken = join(root, 'broken');
    mkdirSync(broken, { recursive: true });
    for (const n of [1, 2, 3]) writeFileSync(join(broken, `img${n}.png`), 'not a picture');
    writeFileSync(join(broken, 'labels.csv'), `path,caption,patient,covid\n${[1, 2, 3].map((n) => `img${n}.png,ground-glass opacity ${n},p${n},${n % 2}`).join('\n')}\n`);
    const run = runCli(['eval', join(broken, 'labels.csv'), '--captions', 'caption', '--group-by', 'patient', '--encoders', 'baseline', '--out', join(root, 'broken-out'), '--no-progress'], 120_000);
    assert.equal(run.status, 2, run.stderr + run.stdout);
    assert.match(run.stderr, /none of the 3 files it lists (could be indexed|is a readable volume)/);
    assert.equal(run.stderr.trim().split('\n').filter((l) => !/^target: /.test(l)).length, 1, run.stderr);
    assert.doesNotMatch(run.stdout, /0\.000/);
    // No --target: the one label with a few values (covid) is taken, and said.
    assert.match(run.stderr, /^target: covid \(the one label with a few values/m);
    const noCaptions = join(root, 'eval-empty.csv');
    writeFileSync(noCaptions, `path,caption,patient,tissue\narchive/soft.nii.gz,,p0,soft\narchive/lung.nii.gz,,p1,lung\n`);
    const empty = runCli(['eval', noCaptions, '--captions', 'caption', '--target', 'tissue', '--group-by', 'patient', '--encoders', 'baseline', '--out', join(root, 'empty-out'), '--no-progress']);
    assert.equal(empty.status, 2);
    assert.match(empty.stderr, /column "caption" holds no caption/);
  });

  test("mir3d eval <Decathlon root> --labels-dir --captions CaptionV1: 3D-MIR's splits, flag and group P@k beside their random levels; organs without images skipped with the reason", async () => {
    const { buildPhantomBenchmark } = await import('../src/synth/phantom-bench.js');
    const bench = join(root, 'phantom-bench');
    const manifest = await buildPhantomBenchmark(bench, { count: 12, matrix: 48 });
    const out = join(root, 'task-text-out');
    const run = runCli(['eval', bench, '--labels-dir', manifest.csvDir, '--captions', 'CaptionV1', '--encoders', 'baseline', '--out', out, '--no-progress', '--json'], 300_000);
    assert.equal(run.status, 0, run.stderr);
    const result = JSON.parse(run.stdout) as { organs: Record<string, { status: string; reason?: string; database?: number; queries?: number; reports?: Record<string, import('../src/eval/text-eval.js').TextEvalReport> }> };
    const liver = result.organs.liver;
    assert.equal(liver.status, 'done', JSON.stringify(liver));
    const queries = manifest.cases.filter((c) => c.split === 'test').length;
    assert.equal(liver.queries, queries);
    assert.equal(liver.database, manifest.cases.length - queries);
    for (const target of ['cancer_flag', 'lesion_group']) {
      const report = liver.reports![target];
      assert.equal(report.protocol, 'split');
      assert.equal(report.queries, queries, 'one caption query per query volume');
      // Random P@1 is the share of the query's label among the database volumes, exactly.
      const relevantShare = (c: (typeof manifest.cases)[number]): number => {
        const value = target === 'cancer_flag' ? c.labels.cancerFlag : c.labels.lesionGroup;
        const db = manifest.cases.filter((d) => d.split === 'train');
        return db.filter((d) => (target === 'cancer_flag' ? d.labels.cancerFlag : d.labels.lesionGroup) === value).length / db.length;
      };
      const expected = manifest.cases.filter((c) => c.split === 'test').reduce((sum, c) => sum + relevantShare(c), 0) / queries;
      assert.ok(Math.abs(report.randomPrecision.pAtK['1'] - expected) < 1e-9, `${target}: random P@1 ${report.randomPrecision.pAtK['1']} vs ${expected}`);
    }
    assert.match(result.organs.colon.reason ?? '', /no 3D-MIR files/);
    const { readFileSync } = await import('node:fs');
    assert.match(readFileSync(join(out, 'report.md'), 'utf8'), /## cancer_flag: [\s\S]*random retrieval \(exact, per query pool\)[\s\S]*skipped colon/);
  });
});
