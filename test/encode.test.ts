import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { BaselineEncoder } from '../src/encode/baseline.js';
import { EncoderError, type EncoderErrorCode } from '../src/encode/errors.js';
import { l2NormalizeRows, packModelInput } from '../src/encode/model-io.js';
import { gpuPresent, OnnxEncoder, type OnnxEncoderOptions } from '../src/encode/onnx-encoder.js';
import { DEFAULT_ENCODER, listEncoders, openEncoder } from '../src/encode/registry.js';
import type { SliceTensor } from '../src/preprocess/slice-tensor.js';
import { conv1x1Gap, flatInput, nhwcChannelMeans, tokenSequence, twoChannelInput, twoOutputs } from './helpers/tiny-onnx.js';

const dir = mkdtempSync(join(tmpdir(), 'mir3d-encode-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function writeModel(name: string, bytes: Uint8Array): string {
  const path = join(dir, name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, bytes);
  return path;
}

/** One thread: the tiny models need no more, and the test runner runs files side by side. */
const cpu: OnnxEncoderOptions = { intraOpThreads: 1, executionProvider: 'cpu' };

function slices(count: number, channels: number, sizePx: number, value: (n: number, c: number, y: number, x: number) => number): SliceTensor {
  const data = new Float32Array(count * channels * sizePx * sizePx);
  for (let n = 0; n < count; n++)
    for (let c = 0; c < channels; c++)
      for (let y = 0; y < sizePx; y++) for (let x = 0; x < sizePx; x++) data[((n * channels + c) * sizePx + y) * sizePx + x] = value(n, c, y, x);
  return { data, count, channels, height: sizePx, width: sizePx, sliceIndices: [...Array(count).keys()], zMm: [...Array(count).keys()] };
}

/** Constant per channel, with a ± checkerboard that averages out (so pooling, not one pixel, is tested). */
function checkered(perSlice: number[][], sizePx: number, swing = 0.1): SliceTensor {
  return slices(perSlice.length, perSlice[0].length, sizePx, (n, c, y, x) => perSlice[n][c] + ((x + y) % 2 === 0 ? swing : -swing));
}

function unit(values: number[]): number[] {
  const norm = Math.hypot(...values);
  return values.map((v) => v / norm);
}

function assertRow(rows: Float32Array, row: number, expectedRaw: number[], tolerance = 1e-5): void {
  const expected = unit(expectedRaw);
  const actual = Array.from(rows.subarray(row * expected.length, (row + 1) * expected.length));
  actual.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < tolerance, `row ${row}: got [${actual.map((a) => a.toFixed(6))}], expected [${expected.map((e) => e.toFixed(6))}]`));
  assert.ok(Math.abs(Math.hypot(...actual) - 1) < 1e-6, 'row has unit length');
}

function isEncoderError(code: EncoderErrorCode, path: string | RegExp, message: RegExp): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof EncoderError, `expected an EncoderError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (typeof path === 'string') assert.equal(error.path, path);
    else assert.match(error.path, path);
    assert.match(error.message, message);
    return true;
  };
}

describe('OnnxEncoder: preprocessing spec, worked out by hand on tiny models', () => {
  const convPath = writeModel('conv.onnx', conv1x1Gap(8));

  test('NCHW 1×1 conv + global average pool: mean/std per channel, 0–1 range, rows L2-normalized', async () => {
    const encoder = await OnnxEncoder.open(convPath, { ...cpu, mean: [0.5, 0.25, 0], std: [0.5, 0.25, 2] });
    try {
      assert.equal(encoder.dim, 4);
      assert.equal(encoder.inputSpec.layout, 'NCHW');
      assert.deepEqual([encoder.preprocessing.heightPx, encoder.preprocessing.widthPx], [8, 8]);
      assert.equal(encoder.preprocessing.windows.map((w) => w.name).join(','), 'abdomen,lung,bone');
      assert.equal(encoder.provider, 'cpu');
      const rows = await encoder.embed(checkered([[0.2, 0.4, 0.6], [0.9, 0.1, 0.5]], 8));
      // Slice 0: x = [(0.2−0.5)/0.5, (0.4−0.25)/0.25, 0.6/2] = [−0.6, 0.6, 0.3]; out = W·x + b.
      assertRow(rows, 0, [-0.5, 1.0, 1.2, -1.05]);
      // Slice 1: x = [0.8, −0.6, 0.25].
      assertRow(rows, 1, [0.9, -1.4, 1.05, 1.525]);
    } finally {
      await encoder.close();
    }
  });

  test('0–255 value range scales before mean/std; one mean/std value applies to every channel', async () => {
    const encoder = await OnnxEncoder.open(convPath, { ...cpu, valueRange: '0-255', mean: [127.5], std: [127.5] });
    try {
      // x = (255·a − 127.5)/127.5 = 2a − 1 = [−0.6, −0.2, 0.2].
      assertRow(await encoder.embed(checkered([[0.2, 0.4, 0.6]], 8)), 0, [-0.5, -0.6, 0.9, -0.3]);
    } finally {
      await encoder.close();
    }
  });

  test('a 1-window slice is replicated to the 3 channels the model takes', async () => {
    const encoder = await OnnxEncoder.open(convPath, { ...cpu, windows: 'abdomen' });
    try {
      assert.equal(encoder.preprocessing.windows.length, 1);
      // x = [0.3, 0.3, 0.3] → [0.3 + 0.1, 0.6 − 0.2, 0.9 + 0.3, 0.3 − 0.3 + 0.15].
      assertRow(await encoder.embed(checkered([[0.3]], 8)), 0, [0.4, 0.4, 1.2, 0.15]);
      await assert.rejects(encoder.embed(checkered([[0.3, 0.3, 0.3]], 8)), isEncoderError('BAD_BATCH', convPath, /3 channels.*1 windows/));
    } finally {
      await encoder.close();
    }
  });

  test('NHWC model: layout detected from the input shape [batch,8,8,3] and channels interleaved', async () => {
    const encoder = await OnnxEncoder.open(writeModel('nhwc.onnx', nhwcChannelMeans(8)), { ...cpu, mean: [0.2, 0.3, 0.4], std: [0.1, 0.2, 0.5] });
    try {
      assert.equal(encoder.inputSpec.layout, 'NHWC');
      // Channel means [0.1, 0.5, 0.9] → [(0.1−0.2)/0.1, (0.5−0.3)/0.2, (0.9−0.4)/0.5] = [−1, 1, 1]. Fed in the wrong
      // layout, the model's per-channel means would mix the three planes.
      assertRow(await encoder.embed(checkered([[0.1, 0.5, 0.9]], 8, 0.05)), 0, [-1, 1, 1]);
    } finally {
      await encoder.close();
    }
  });

  // Pixel t (row-major in 4×4) of channel c holds (c + 1)·0.1 + t·0.01: pixel 0 is [0.1, 0.2, 0.3] ∝ [1, 2, 3];
  // the channel means (t averages 7.5) are [0.175, 0.275, 0.375] ∝ [7, 11, 15].
  const ramp = slices(1, 3, 4, (_n, c, y, x) => (c + 1) * 0.1 + (y * 4 + x) * 0.01);

  test('token sequence [N,T,D]: cls takes token 0 (the default), mean averages the tokens', async () => {
    const path = writeModel('tokens.onnx', tokenSequence());
    const cls = await OnnxEncoder.open(path, cpu);
    const mean = await OnnxEncoder.open(path, { ...cpu, pooling: 'mean' });
    try {
      assert.equal(cls.pooling, 'cls');
      assert.equal(cls.dim, 3);
      assertRow(await cls.embed(ramp), 0, [1, 2, 3]);
      assertRow(await mean.embed(ramp), 0, [7, 11, 15]);
      assert.notEqual(cls.id, mean.id);
    } finally {
      await Promise.all([cls.close(), mean.close()]);
    }
    // Output declared without a shape: one blank slice is run at open to learn rank and width.
    const undeclared = await OnnxEncoder.open(writeModel('tokens-noshape.onnx', tokenSequence(false)), cpu);
    try {
      assert.equal(undeclared.pooling, 'cls');
      assert.equal(undeclared.dim, 3);
      assertRow(await undeclared.embed(ramp), 0, [1, 2, 3]);
    } finally {
      await undeclared.close();
    }
  });

  test('two outputs: picked by name or index; a [N,C,H,W] feature map is globally average-pooled', async () => {
    const path = writeModel('two.onnx', twoOutputs());
    const byDefault = await OnnxEncoder.open(path, cpu);
    const byName = await OnnxEncoder.open(path, { ...cpu, output: 'first_pixel' });
    const byIndex = await OnnxEncoder.open(path, { ...cpu, output: 1 });
    try {
      assert.equal(byDefault.outputName, 'feature_map');
      assert.equal(byDefault.pooling, 'gap');
      assertRow(await byDefault.embed(ramp), 0, [7, 11, 15]);
      assert.equal(byName.outputName, 'first_pixel');
      assertRow(await byName.embed(ramp), 0, [1, 2, 3]);
      assert.equal(byIndex.outputName, 'first_pixel');
      assert.equal(byIndex.id, byName.id);
      await assert.rejects(OnnxEncoder.open(path, { ...cpu, output: 'pooler_output' }), isEncoderError('BAD_OUTPUT', path, /no output named "pooler_output".*feature_map, first_pixel/));
      await assert.rejects(OnnxEncoder.open(path, { ...cpu, output: 2 }), isEncoderError('BAD_OUTPUT', path, /index 2 out of range.*2 output/));
      await assert.rejects(OnnxEncoder.open(path, { ...cpu, output: 'first_pixel', pooling: 'cls' }), isEncoderError('BAD_OUTPUT', path, /output first_pixel of rank 2 cannot be pooled with 'cls'/));
    } finally {
      await Promise.all([byDefault.close(), byName.close(), byIndex.close()]);
    }
  });

  test('a model with a fixed batch of 1 embeds larger batches in chunks, same rows as a dynamic one', async () => {
    const fixed = await OnnxEncoder.open(writeModel('fixed1.onnx', conv1x1Gap(8, 1)), cpu);
    const dynamic = await OnnxEncoder.open(convPath, cpu);
    try {
      assert.equal(fixed.fixedBatch, 1);
      const batch = checkered([[0.2, 0.4, 0.6], [0.9, 0.1, 0.5], [0.3, 0.3, 0.7]], 8);
      const a = await fixed.embed(batch);
      const b = await dynamic.embed(batch);
      assert.equal(a.length, 12);
      a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) < 1e-6));
    } finally {
      await Promise.all([fixed.close(), dynamic.close()]);
    }
  });

  test('packing is a pure function of the batch and the spec (the part a worker thread runs)', () => {
    const batch = slices(1, 1, 2, (_n, _c, y, x) => (y * 2 + x) / 4); // [0, .25, .5, .75]
    const packed = packModelInput(batch, { heightPx: 2, widthPx: 2, channels: 3, mean: [0, 0.5, 0], std: [1, 0.5, 0.25], valueRange: '0-1', layout: 'NHWC' });
    // NHWC: per pixel the three channels (v, (v − 0.5)/0.5, v/0.25).
    assert.deepEqual(Array.from(packed), [0, -1, 0, 0.25, -0.5, 1, 0.5, 0, 2, 0.75, 0.5, 3]);
  });

  test('l2 normalization: unit rows, and a zero row becomes the uniform unit vector', () => {
    const rows = Float32Array.from([3, 4, 0, 0, 0, 0, 0, 0]);
    l2NormalizeRows(rows, 4);
    assert.deepEqual(Array.from(rows.subarray(0, 4)), [0.6, 0.8, 0, 0].map(Math.fround));
    assert.deepEqual(Array.from(rows.subarray(4)), [0.5, 0.5, 0.5, 0.5]);
  });

  test('batches that do not match the declared preprocessing are refused', async () => {
    const encoder = await OnnxEncoder.open(convPath, cpu);
    try {
      await assert.rejects(encoder.embed(checkered([[0.2, 0.4, 0.6]], 16)), isEncoderError('BAD_BATCH', 'batch', /16×16 px.*8×8 px/));
      await encoder.close();
      await assert.rejects(encoder.embed(checkered([[0.2, 0.4, 0.6]], 8)), isEncoderError('CLOSED', convPath, /closed/));
    } finally {
      await encoder.close();
    }
  });
});

describe('OnnxEncoder: errors name the file and the problem', () => {
  test('missing file', async () => {
    const path = join(dir, 'nope.onnx');
    await assert.rejects(OnnxEncoder.open(path), isEncoderError('NOT_FOUND', path, /no such model file/));
    await assert.rejects(openEncoder(path), isEncoderError('NOT_FOUND', path, /no such model file/));
  });

  test('corrupt file: random bytes, and a valid model cut short', async () => {
    const garbage = writeModel('garbage.onnx', Buffer.from('this is not a protobuf model at all'));
    await assert.rejects(OnnxEncoder.open(garbage, cpu), isEncoderError('CORRUPT_MODEL', garbage, /ONNX Runtime cannot load the model/));
    const whole = conv1x1Gap(8);
    const truncated = writeModel('truncated.onnx', whole.subarray(0, Math.floor(whole.length * 0.6)));
    await assert.rejects(OnnxEncoder.open(truncated, cpu), isEncoderError('CORRUPT_MODEL', truncated, /cannot load/));
  });

  test('input shapes that cannot take CT slices', async () => {
    const two = writeModel('two-channels.onnx', twoChannelInput());
    await assert.rejects(OnnxEncoder.open(two, cpu), isEncoderError('INCOMPATIBLE_INPUT', two, /\[batch,2,8,8\] has no 1- or 3-channel axis/));
    const flat = writeModel('flat.onnx', flatInput());
    await assert.rejects(OnnxEncoder.open(flat, cpu), isEncoderError('INCOMPATIBLE_INPUT', flat, /shape \[batch,64\].*\[N,C,H,W\]/));
    const gray = writeModel('gray.onnx', conv1x1Gap(8, 'batch', 1));
    await assert.rejects(OnnxEncoder.open(gray, { ...cpu, channels: 3 }), isEncoderError('INCOMPATIBLE_INPUT', gray, /takes 1 channel\(s\) but the preprocessing asks for 3/));
    await assert.rejects(OnnxEncoder.open(gray, { ...cpu, windows: 'abdomen,lung,bone' }), isEncoderError('INCOMPATIBLE_INPUT', gray, /3 HU windows for a 1-channel model/));
    const conv = writeModel('conv8.onnx', conv1x1Gap(8));
    await assert.rejects(OnnxEncoder.open(conv, { ...cpu, heightPx: 16 }), isEncoderError('INCOMPATIBLE_INPUT', conv, /height 8 px but the preprocessing asks for 16 px/));
    await assert.rejects(OnnxEncoder.open(conv, { ...cpu, mean: [0, 0] }), isEncoderError('INCOMPATIBLE_INPUT', conv, /mean has 2 values for a 3-channel input/));
    // A 1-channel model takes 1 window and works.
    const ok = await OnnxEncoder.open(gray, cpu);
    assert.equal(ok.preprocessing.windows.map((w) => w.name).join(','), 'abdomen');
    await ok.close();
  });
});

describe('execution provider', () => {
  test("'auto' runs on CPU without a GPU; 'cuda' either runs on CUDA or says why it cannot", async () => {
    const path = writeModel('provider/conv.onnx', conv1x1Gap(8));
    const auto = await OnnxEncoder.open(path, { intraOpThreads: 1 });
    if (!gpuPresent()) {
      assert.equal(auto.provider, 'cpu');
      assert.equal(auto.providerNote, undefined);
    } else if (auto.provider === 'cpu') {
      assert.match(auto.providerNote ?? '', /CUDA .*running on CPU/);
    }
    await auto.close();
    try {
      const cuda = await OnnxEncoder.open(path, { intraOpThreads: 1, executionProvider: 'cuda' });
      assert.equal(cuda.provider, 'cuda');
      assertRow(await cuda.embed(checkered([[0.3, 0.3, 0.3]], 8)), 0, [0.4, 0.4, 1.2, 0.15]);
      await cuda.close();
    } catch (error) {
      isEncoderError('PROVIDER_UNAVAILABLE', path, /no NVIDIA GPU found|no CUDA backend|without its CUDA provider library|failed to start/)(error);
    }
  });
});

describe('encoder id: model bytes + preprocessing + version', () => {
  test('same file and spec → same id, wherever the file lies; any change → another id', async () => {
    const a = writeModel('id/a/model.onnx', conv1x1Gap(8));
    const b = join(dir, 'id/b/model.onnx');
    mkdirSync(join(b, '..'), { recursive: true });
    copyFileSync(a, b);
    const changedWeights = writeModel('id/c/model.onnx', conv1x1Gap(8, 'batch', 3, [0, 0, 0, 0]));
    const ids = async (path: string, options: OnnxEncoderOptions = {}): Promise<string> => {
      const encoder = await OnnxEncoder.open(path, { ...cpu, ...options });
      await encoder.close();
      return encoder.id;
    };
    const base = await ids(a);
    const sha = createHash('sha256').update(readFileSync(a)).digest('hex');
    assert.ok(base.startsWith(`model@sha256:${sha.slice(0, 16)}|abdomen,lung,bone|8x8|body-crop|`), base);
    assert.match(base, /\|v1$/);
    assert.equal(await ids(a), base);
    assert.equal(await ids(b), base);
    assert.equal(await ids(a, { sliceStepMm: 5, intraOpThreads: 2 }), base, 'slice step and threads do not change vectors');
    const others = [
      await ids(changedWeights),
      await ids(a, { windows: 'abdomen' }),
      await ids(a, { windows: 'liver,lung,bone' }),
      await ids(a, { bodyCrop: false }),
      await ids(a, { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }),
      await ids(a, { valueRange: '0-255' }),
      await ids(a, { name: 'other' }),
    ];
    assert.equal(new Set([base, ...others]).size, others.length + 1, [base, ...others].join('\n'));
  });
});

describe('Hugging Face style model folder', () => {
  const imagenet = { image_mean: [0.485, 0.456, 0.406], image_std: [0.229, 0.224, 0.225] };

  function hfFolder(name: string, preprocessor: Record<string, unknown> | undefined, config: Record<string, unknown> = { model_type: 'test', num_channels: 3 }): string {
    const folder = join(dir, 'hf', name);
    mkdirSync(join(folder, 'onnx'), { recursive: true });
    writeFileSync(join(folder, 'onnx', 'model.onnx'), conv1x1Gap(8));
    writeFileSync(join(folder, 'config.json'), JSON.stringify(config));
    if (preprocessor) writeFileSync(join(folder, 'preprocessor_config.json'), JSON.stringify(preprocessor));
    return folder;
  }

  test('onnx/model.onnx with ImageNet mean/std and 1/255 rescale: spec read from the configs, embedding by hand', async () => {
    const folder = hfFolder('vit-tiny', { do_normalize: true, do_rescale: true, rescale_factor: 1 / 255, size: { height: 8, width: 8 }, ...imagenet });
    const encoder = await openEncoder(folder, cpu);
    try {
      assert.ok(encoder instanceof OnnxEncoder);
      assert.equal(encoder.name, 'vit-tiny');
      assert.deepEqual(encoder.inputSpec, { heightPx: 8, widthPx: 8, channels: 3, mean: imagenet.image_mean, std: imagenet.image_std, valueRange: '0-1', layout: 'NCHW' });
      const x = [(0.2 - 0.485) / 0.229, (0.4 - 0.456) / 0.224, (0.6 - 0.406) / 0.225];
      assertRow(await encoder.embed(checkered([[0.2, 0.4, 0.6]], 8)), 0, [x[0] + 0.1, 2 * x[1] - 0.2, 3 * x[2] + 0.3, x[0] - x[1] + 0.5 * x[2]]);
    } finally {
      await encoder.close();
    }
  });

  test('do_rescale false → 0–255 input; do_center_crop → crop_size is the input size', async () => {
    const folder = hfFolder('raw-pixels', { do_rescale: false, do_normalize: true, image_mean: 127.5, image_std: 127.5, do_center_crop: true, size: { shortest_edge: 10 }, crop_size: { height: 8, width: 8 } });
    const encoder = await OnnxEncoder.open(folder, cpu);
    try {
      assert.equal(encoder.inputSpec.valueRange, '0-255');
      assert.deepEqual(encoder.inputSpec.mean, [127.5, 127.5, 127.5]);
      assertRow(await encoder.embed(checkered([[0.2, 0.4, 0.6]], 8)), 0, [-0.5, -0.6, 0.9, -0.3]);
    } finally {
      await encoder.close();
    }
  });

  test('configs that are missing or contradict the model are errors naming the folder or file', async () => {
    const noPre = hfFolder('no-preprocessor', undefined);
    await assert.rejects(OnnxEncoder.open(noPre, cpu), isEncoderError('BAD_CONFIG', noPre, /onnx\/model\.onnx but no preprocessor_config\.json/));
    const wrongSize = hfFolder('wrong-size', { size: { height: 224, width: 224 }, ...imagenet });
    await assert.rejects(OnnxEncoder.open(wrongSize, cpu), isEncoderError('INCOMPATIBLE_INPUT', join(wrongSize, 'onnx', 'model.onnx'), /height 8 px but the preprocessing asks for 224 px/));
    const gray = hfFolder('gray-config', { size: 8, ...imagenet }, { num_channels: 1 });
    await assert.rejects(OnnxEncoder.open(gray, cpu), isEncoderError('INCOMPATIBLE_INPUT', /gray-config/, /takes 3 channel\(s\) but the preprocessing asks for 1/));
    const badJson = hfFolder('bad-json', { size: 8 });
    writeFileSync(join(badJson, 'preprocessor_config.json'), '{ "size": 8,');
    await assert.rejects(OnnxEncoder.open(badJson, cpu), isEncoderError('BAD_CONFIG', join(badJson, 'preprocessor_config.json'), /not valid JSON/));
    const empty = join(dir, 'hf', 'empty');
    mkdirSync(empty, { recursive: true });
    await assert.rejects(OnnxEncoder.open(empty, cpu), isEncoderError('NOT_FOUND', empty, /expected model\.onnx or onnx\/model\.onnx, with config\.json and preprocessor_config\.json/));
  });

  test('a hub id is never downloaded: the error says which files go in which folder, and that folder is then used', async () => {
    const cacheDir = join(dir, 'cache');
    const expectedFolder = join(cacheDir, 'hf', 'microsoft', 'rad-dino');
    await assert.rejects(openEncoder('hf:microsoft/rad-dino', { ...cpu, cacheDir }), (error: unknown) => {
      isEncoderError('OFFLINE_HUB_MODEL', 'hf:microsoft/rad-dino', /never downloads/)(error);
      const message = (error as Error).message;
      for (const part of ['model.onnx or onnx/model.onnx', 'config.json', 'preprocessor_config.json', expectedFolder, 'https://huggingface.co/microsoft/rad-dino']) {
        assert.ok(message.includes(part), `message names ${part}: ${message}`);
      }
      return true;
    });
    mkdirSync(expectedFolder, { recursive: true });
    writeFileSync(join(expectedFolder, 'model.onnx'), conv1x1Gap(8));
    writeFileSync(join(expectedFolder, 'config.json'), '{}');
    writeFileSync(join(expectedFolder, 'preprocessor_config.json'), JSON.stringify({ size: 8, ...imagenet }));
    const encoder = await openEncoder('hf:microsoft/rad-dino', { ...cpu, cacheDir });
    assert.match(encoder.id, /^microsoft--rad-dino@sha256:/);
    await encoder.close();
  });
});

describe('baseline encoder', () => {
  test('768-d, own id, deterministic, unit rows', async () => {
    const encoder = new BaselineEncoder();
    assert.equal(encoder.dim, 768);
    assert.equal(encoder.id, 'baseline@thumb16-area-centred|abdomen,lung,bone|64x64|body-crop|v1');
    const batch = slices(2, 3, 64, (n, c, y, x) => Math.abs(Math.sin((n + 1) * (c + 1) * 0.1 * x + 0.05 * y)));
    const a = await encoder.embed(batch);
    const b = await new BaselineEncoder().embed(batch);
    assert.deepEqual(a, b);
    for (let n = 0; n < 2; n++) assert.ok(Math.abs(Math.hypot(...a.subarray(n * 768, (n + 1) * 768)) - 1) < 1e-6);
  });

  test('area averaging with fractional cells and mean-centring, by hand (3×3 → 2×2)', async () => {
    const encoder = new BaselineEncoder({ windows: 'abdomen', gridPx: 2, inputPx: 3 });
    // Values 1..9 row-major. Each output cell covers 1.5×1.5 source pixels: cell (0,0) =
    // (1 + 0.5·2 + 0.5·4 + 0.25·5) / 2.25 = 2.333…; by symmetry the cells are 7/3, 11/3, 19/3, 23/3, mean 5.
    const rows = await encoder.embed(slices(1, 1, 3, (_n, _c, y, x) => y * 3 + x + 1));
    assertRow(rows, 0, [7 / 3 - 5, 11 / 3 - 5, 19 / 3 - 5, 23 / 3 - 5]);
  });

  test('a blank slice is the uniform vector, orthogonal to every slice with contrast', async () => {
    const encoder = new BaselineEncoder({ windows: 'abdomen', gridPx: 4, inputPx: 8 });
    const rows = await encoder.embed(slices(2, 1, 8, (n, _c, y) => (n === 0 ? 0.5 : y / 8)));
    assertRow(rows, 0, new Array<number>(16).fill(1));
    let dot = 0;
    for (let d = 0; d < 16; d++) dot += rows[d] * rows[16 + d];
    assert.ok(Math.abs(dot) < 1e-6);
    await assert.rejects(encoder.embed(slices(1, 1, 16, () => 0)), isEncoderError('BAD_BATCH', 'baseline', /1×8×8/));
  });
});

describe('registry', () => {
  test('names, paths and unknown names', async () => {
    assert.equal(DEFAULT_ENCODER, 'mobilenet_v2');
    assert.deepEqual(
      listEncoders().map((e) => [e.name, e.dim]),
      [
        ['mobilenet_v2', 1280],
        ['mobilenet_v2_mid', 1792],
        ['baseline', 768],
      ],
    );
    const baseline = await openEncoder('baseline');
    assert.ok(baseline instanceof BaselineEncoder);
    const fromPath = await openEncoder(writeModel('reg/conv.onnx', conv1x1Gap(8)), cpu);
    assert.ok(fromPath instanceof OnnxEncoder);
    assert.equal(fromPath.name, 'conv');
    await fromPath.close();
    await assert.rejects(openEncoder('resnet9000'), isEncoderError('UNKNOWN_ENCODER', 'resnet9000', /built-in: mobilenet_v2, mobilenet_v2_mid, baseline/));
  });
});
