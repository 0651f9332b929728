import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { isClipFolder, openClipModel, openClipTextEncoder } from '../src/encode/clip-folder.js';
import { EncoderError, type EncoderErrorCode } from '../src/encode/errors.js';
import { openEncoder, openTextEncoder } from '../src/encode/registry.js';
import { textEncoderFits } from '../src/encode/text-encoder.js';
import { loadTokenizer } from '../src/encode/tokenizer.js';
import type { SliceTensor } from '../src/preprocess/slice-tensor.js';
import { CLIP_PROJECTION, writeTinyClipFolder, type TinyClipOptions } from './helpers/tiny-clip.js';

const root = mkdtempSync(join(tmpdir(), 'mir3d-clip-'));
after(() => rmSync(root, { recursive: true, force: true }));
const cpu = { intraOpThreads: 1, executionProvider: 'cpu' as const };
let folders = 0;
const folder = (options: TinyClipOptions = {}): string => writeTinyClipFolder(join(root, `clip-${folders++}`), options);

/** Three 8×8 "slices", each bright in one window: soft tissue (abdomen), lung, bone. */
function windowImages(sizePx = 8): SliceTensor {
  const count = 3;
  const data = new Float32Array(count * 3 * sizePx * sizePx);
  for (let n = 0; n < count; n++) for (let c = 0; c < 3; c++) data.fill(n === c ? 0.9 : 0.1, (n * 3 + c) * sizePx * sizePx, (n * 3 + c + 1) * sizePx * sizePx);
  return { data, count, channels: 3, height: sizePx, width: sizePx, sliceIndices: [0, 1, 2], zMm: [0, 1, 2] };
}

function ranking(textRow: Float32Array, imageRows: Float32Array, dim: number): number[] {
  const scores = Array.from({ length: imageRows.length / dim }, (_, i) => textRow.reduce((sum, v, d) => sum + v * imageRows[i * dim + d], 0));
  return scores.map((s, i) => [s, i]).sort((a, b) => b[0] - a[0]).map(([, i]) => i);
}

function rejects(code: EncoderErrorCode, message: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof EncoderError, `expected an EncoderError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
    return true;
  };
}

describe('CLIP-style two-tower folders', () => {
  for (const layout of ['hf-separate', 'hf-combined', 'open-clip'] as const) {
    test(`${layout}: a caption ranks the image it describes first`, async () => {
      const dir = folder({ layout });
      assert.ok(isClipFolder(dir));
      const { image, text } = await openClipModel(dir, cpu);
      try {
        assert.equal(image.dim, 4);
        assert.equal(text.dim, 4);
        assert.ok(textEncoderFits(text, image.id), `image id ${image.id} carries ${text.pairTag}`);
        const images = await image.embed(windowImages());
        const captions = ['Soft tissue of the abdomen', 'a slice of the LUNGS with air', 'bone'];
        const { rows, warnings } = await text.embedTexts(captions);
        assert.deepEqual(warnings, []);
        captions.forEach((caption, i) => assert.equal(ranking(rows.subarray(i * 4, (i + 1) * 4), images, 4)[0], i, `"${caption}" ranks image ${i} first`));
        // Each tower's projection is applied: the text vector of "lung" is the projected, normalized lung row.
        const lung = (await text.embedTexts(['lung'])).rows;
        const expected = CLIP_PROJECTION[1].map((v) => v / Math.hypot(...CLIP_PROJECTION[1]));
        expected.forEach((v, d) => assert.ok(Math.abs(lung[d] - v) < 1e-6, `lung[${d}] = ${lung[d]}, expected ${v}`));
      } finally {
        await image.close();
        await text.close();
      }
    });
  }

  test('a vocab.txt tokenizer works like tokenizer.json', async () => {
    const dir = folder({ tokenizerFile: 'vocab.txt' });
    const { image, text } = await openClipModel(dir, cpu);
    try {
      const images = await image.embed(windowImages());
      const { rows } = await text.embedTexts(['chest air', 'skeleton']);
      assert.equal(ranking(rows.subarray(0, 4), images, 4)[0], 1);
      assert.equal(ranking(rows.subarray(4, 8), images, 4)[0], 2);
    } finally {
      await image.close();
      await text.close();
    }
  });

  test('the registry opens the image tower with the pair pinned, and its text tower by the same name', async () => {
    const dir = folder();
    const image = await openEncoder(dir, cpu);
    const text = await openTextEncoder(dir, { ...cpu, imageDim: image.dim });
    try {
      assert.match(image.id, /\|pair=clip@sha256:[0-9a-f]{16}$/);
      assert.ok(textEncoderFits(text, image.id));
      // Another model's text tower (other weights, same layout) does not fit this index.
      const other = await openTextEncoder(folder({ textProjection: CLIP_PROJECTION.map((row) => row.map((v) => v * 2)) }), cpu);
      assert.ok(!textEncoderFits(other, image.id));
      await other.close();
    } finally {
      await image.close();
      await text.close();
    }
    await assert.rejects(openTextEncoder('mobilenet_v2'), rejects('NO_TEXT_SPACE', /no text tower.*mir3d train --db DB --captions/));
  });

  test('empty text is refused; text longer than the context is cut and said', async () => {
    const text = await openClipTextEncoder(folder({ contextLength: 6 }), cpu);
    try {
      await assert.rejects(text.embedTexts(['']), rejects('BAD_TEXT', /empty/));
      await assert.rejects(text.embedTexts(['lung', '   ']), rejects('BAD_TEXT', /text 2 is empty/));
      const long = 'bone and bone and bone and lung lung lung lung';
      const { rows, warnings } = await text.embedTexts([long]);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0], /has 12 tokens, more than the model's context of 6: only its first 6 were used/);
      // The kept tokens are [CLS] bone and bone and [SEP]: the cut-off lung words change nothing.
      const short = (await text.embedTexts(['bone bone'])).rows;
      short.forEach((v, d) => assert.ok(Math.abs(v - rows[d]) < 1e-6));
    } finally {
      await text.close();
    }
  });

  test('a tokenizer that does not match the model, and towers of different widths, are clear errors', async () => {
    // ids beyond the text tower's embedding table: found by the probe run (HF layout, no vocab_size in config)
    await assert.rejects(openClipTextEncoder(folder({ extraTokenizerWords: ['pneumothorax', 'effusion'] }), cpu), rejects('TOKENIZER_MISMATCH', /fails on token id 23.*does not belong to this model/));
    // … and by the config's vocab_size (open_clip layout)
    await assert.rejects(openClipTextEncoder(folder({ layout: 'open-clip', extraTokenizerWords: ['effusion'] }), cpu), rejects('TOKENIZER_MISMATCH', /23 token ids but the text model's vocabulary has 22/));
    const wide = CLIP_PROJECTION.map((row) => [...row, 1]);
    await assert.rejects(openClipModel(folder({ textProjection: wide }), cpu), rejects('DIM_MISMATCH', /text tower gives 5-d vectors but the image vectors are 4-d/));
    await assert.rejects(openClipTextEncoder(folder({ layout: 'open-clip', textProjection: wide }), cpu), rejects('DIM_MISMATCH', /5-d vectors but the config \(projection_dim \/ embed_dim\) are 4-d/));
  });

  test('the tokenizer reads tokenizer.json offline, lower-cases, and keeps [SEP] when cutting', () => {
    const dir = folder();
    const tokenizer = loadTokenizer(join(dir, 'tokenizer.json'));
    assert.equal(tokenizer.padId, 0);
    const encoded = tokenizer.encode('LUNG with Bone', 4);
    assert.deepEqual(encoded.ids, [2, tokenizer.tokenId('lung'), tokenizer.tokenId('with'), 3]);
    assert.equal(encoded.truncated, true);
    assert.equal(encoded.tokenCount, 5);
    assert.equal(tokenizer.encode('pneumothorax', 8).ids[1], 1, 'unknown words become [UNK]');
  });
});
