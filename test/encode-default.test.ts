/**
 * The built-in encoders with their real nsfwjs weights: conversion and cache behaviour, equality with the
 * TF.js models nsfwjs itself loads (on real CT slices), and retrieval sanity on real CT.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync, mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { load as loadNsfwjs } from 'nsfwjs/core';
import { MobileNetV2Model } from 'nsfwjs/models/mobilenet_v2';
import { MobileNetV2MidModel } from 'nsfwjs/models/mobilenet_v2_mid';
import type { Encoder } from '../src/encode/encoder.js';
import { EncoderError } from '../src/encode/errors.js';
import { modelCacheDir } from '../src/encode/model-cache.js';
import { OnnxEncoder } from '../src/encode/onnx-encoder.js';
import { openEncoder, type OpenEncoderOptions } from '../src/encode/registry.js';
import { readVolume } from '../src/io/read.js';
import type { Volume } from '../src/io/volume.js';
import { sliceBatches } from '../src/preprocess/batches.js';
import type { SliceTensor } from '../src/preprocess/slice-tensor.js';
import { sharedPath, skipWithoutSharedData } from './helpers/shared-data.js';

const cacheDir = mkdtempSync(join(tmpdir(), 'mir3d-models-'));
after(() => rmSync(cacheDir, { recursive: true, force: true }));
const options: OpenEncoderOptions = { cacheDir, intraOpThreads: 2, executionProvider: 'cpu' };

const require = createRequire(import.meta.url);
const nsfwjsModels = join(dirname(require.resolve('nsfwjs')), '..', 'models');

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

describe('built-in model conversion and cache', () => {
  test('first use converts into the cache under a name with the source hash; later uses reuse the file', async (t) => {
    const fresh = mkdtempSync(join(tmpdir(), 'mir3d-models-'));
    try {
      const sourceHash = sha256(Buffer.concat(['model.min.js', 'group1-shard1of1.min.js'].map((f) => readFileSync(join(nsfwjsModels, 'mobilenet_v2', f)))));
      const expectedFile = join(fresh, `mobilenet_v2-${sourceHash.slice(0, 16)}-c1.onnx`);
      const status: string[] = [];
      const started = performance.now();
      const first = await openEncoder('mobilenet_v2', { ...options, cacheDir: fresh, onStatus: (m) => status.push(m) });
      const openMs = performance.now() - started;
      assert.ok(first instanceof OnnxEncoder);
      assert.equal(first.modelPath, expectedFile);
      assert.equal(first.dim, 1280);
      assert.equal(status.length, 1);
      assert.match(status[0], /^converted mobilenet_v2 from TF\.js to ONNX in \d+ ms/);
      assert.deepEqual(readdirSync(fresh), [expectedFile.slice(fresh.length + 1)], 'no temporary files left behind');
      const mtimeMs = statSync(expectedFile).mtimeMs;
      await first.close();

      const second = await openEncoder('mobilenet_v2', { ...options, cacheDir: fresh, onStatus: (m) => status.push(m) });
      assert.equal(status.length, 1, 'no second conversion');
      assert.equal(statSync(expectedFile).mtimeMs, mtimeMs);
      assert.equal(second.id, first.id);
      assert.match(second.id, /^mobilenet_v2@sha256:[0-9a-f]{16}\|abdomen,lung,bone\|224x224\|body-crop\|c3\|mean=0,0,0\|std=1,1,1\|0-1\|NCHW\|out=features:none\|v1$/);
      await second.close();

      // Conversion is deterministic, so the id (which hashes the ONNX bytes) is the same on every machine.
      const elsewhere = (await openEncoder('mobilenet_v2', options)) as OnnxEncoder;
      assert.equal(elsewhere.id, first.id);
      assert.equal(sha256(readFileSync(elsewhere.modelPath)), sha256(readFileSync(expectedFile)));
      await elsewhere.close();

      // A damaged cache file is converted again instead of failing forever.
      const good = readFileSync(expectedFile);
      writeFileSync(expectedFile, good.subarray(0, 1000));
      const repaired = await openEncoder('mobilenet_v2', { ...options, cacheDir: fresh });
      assert.equal(repaired.id, first.id);
      assert.ok(readFileSync(expectedFile).equals(good));
      await repaired.close();
      t.diagnostic(`mobilenet_v2: first open with conversion ${openMs.toFixed(0)} ms (${status[0]})`);
    } finally {
      rmSync(fresh, { recursive: true, force: true });
    }
  });

  test('the ×1.4 model: 224 px input, 1792-d feature', async () => {
    const encoder = await openEncoder('mobilenet_v2_mid', options);
    assert.equal(encoder.dim, 1792);
    assert.deepEqual([encoder.preprocessing.heightPx, encoder.preprocessing.widthPx], [224, 224]);
    assert.match(encoder.id, /^mobilenet_v2_mid@sha256:/);
    await encoder.close();
  });

  test('a cache folder that cannot be written is a clear error', async () => {
    const blocker = join(cacheDir, 'not-a-folder');
    writeFileSync(blocker, 'a file where the cache folder should be');
    await assert.rejects(openEncoder('mobilenet_v2', { ...options, cacheDir: join(blocker, 'models') }), (error: unknown) => {
      assert.ok(error instanceof EncoderError);
      assert.equal(error.code, 'CACHE_UNWRITABLE');
      assert.equal(error.path, join(blocker, 'models'));
      assert.match(error.message, /set MIR3D_CACHE_DIR to a writable folder/);
      return true;
    });
  });

  test('cache folder: MIR3D_CACHE_DIR, else ~/.cache/mir3d/models', () => {
    const saved = process.env.MIR3D_CACHE_DIR;
    try {
      process.env.MIR3D_CACHE_DIR = '/somewhere/models';
      assert.equal(modelCacheDir(), '/somewhere/models');
      delete process.env.MIR3D_CACHE_DIR;
      assert.match(modelCacheDir(), /\.cache\/mir3d\/models$/);
      assert.equal(modelCacheDir('/explicit'), '/explicit');
    } finally {
      if (saved === undefined) delete process.env.MIR3D_CACHE_DIR;
      else process.env.MIR3D_CACHE_DIR = saved;
    }
  });
});

// ---------------------------------------------------------------------------------------------------------

const volumes = new Map<string, Promise<Volume>>();
function volume(path: string): Promise<Volume> {
  let pending = volumes.get(path);
  if (!pending) volumes.set(path, (pending = readVolume(sharedPath(path))));
  return pending;
}
const IRCAD = 'ircad17/ct.nii.gz';
const TOTALSEG = 'totalseg/example_ct_sm.nii.gz';
const HEAD = 'ge-head-ct-dicom';

/** Unit-length rows of the given slices, preprocessed with the encoder's own spec. */
async function embedSlices(encoder: Encoder, path: string, sliceIndices: number[]): Promise<Float32Array[]> {
  const rows: Float32Array[] = [];
  for (const batch of sliceBatches(await volume(path), encoder.preprocessing, 8, { sliceIndices })) {
    const out = await encoder.embed(batch);
    for (let n = 0; n < batch.count; n++) rows.push(out.slice(n * encoder.dim, (n + 1) * encoder.dim));
  }
  return rows;
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb);
}

const mean = (values: number[]): number => values.reduce((s, v) => s + v, 0) / values.length;

describe('built-in encoders equal the TF.js models nsfwjs loads, on real CT slices', { skip: skipWithoutSharedData }, () => {
  before(async () => {
    setWasmPaths(`${dirname(require.resolve('@tensorflow/tfjs-backend-wasm'))}/`);
    await tf.setBackend('wasm');
    await tf.ready();
  });

  const cases = [
    { name: 'mobilenet_v2', definition: MobileNetV2Model, feature: 'flatten_1' },
    {
      name: 'mobilenet_v2_mid',
      definition: MobileNetV2MidModel,
      feature: 'StatefulPartitionedCall/sequential/keras_layer/StatefulPartitionedCall/StatefulPartitionedCall/StatefulPartitionedCall/predict/feature_vector/SpatialSqueeze',
    },
  ] as const;

  for (const { name, definition, feature } of cases) {
    test(`${name}: cosine ≥ 0.999 per slice against nsfwjs's TF.js model cut at ${feature.split('/').pop()}`, async (t) => {
      const encoder = await openEncoder(name, options);
      const info = console.info;
      console.info = () => undefined; // nsfwjs announces which model it loads
      const nsfw = await loadNsfwjs(definition.name, { modelDefinitions: [definition] }).finally(() => (console.info = info));
      try {
        // Abdomen (four levels), the other patient's liver region, and a head.
        const batches: SliceTensor[] = [
          ...sliceBatches(await volume(IRCAD), encoder.preprocessing, 8, { sliceIndices: [10, 45, 80, 110] }),
          ...sliceBatches(await volume(TOTALSEG), encoder.preprocessing, 8, { sliceIndices: [15] }),
          ...sliceBatches(await volume(HEAD), encoder.preprocessing, 8, { sliceIndices: [20] }),
        ];
        const cosines: number[] = [];
        for (const batch of batches) {
          const onnxRows = await encoder.embed(batch);
          const { count, height, width } = batch;
          const nhwc = new Float32Array(count * height * width * 3);
          for (let n = 0; n < count; n++)
            for (let c = 0; c < 3; c++)
              for (let p = 0; p < height * width; p++) nhwc[(n * height * width + p) * 3 + c] = batch.data[(n * 3 + c) * height * width + p];
          const input = tf.tensor4d(nhwc, [count, height, width, 3]);
          const model = nsfw.model;
          const output =
            'layers' in model
              ? (tf.model({ inputs: model.inputs, outputs: model.getLayer(feature).output as tf.SymbolicTensor }).predict(input) as tf.Tensor)
              : (model.execute(input, feature) as tf.Tensor);
          assert.deepEqual(output.shape, [count, encoder.dim]);
          const reference = await output.data();
          tf.dispose([input, output]);
          for (let n = 0; n < count; n++) {
            cosines.push(cosine(onnxRows.subarray(n * encoder.dim, (n + 1) * encoder.dim), reference.subarray(n * encoder.dim, (n + 1) * encoder.dim)));
          }
        }
        assert.equal(cosines.length, 6);
        const worst = Math.min(...cosines);
        t.diagnostic(`${name} vs TF.js over ${cosines.length} slices: 1 − cosine at most ${(1 - worst).toExponential(2)}, mean ${(1 - mean(cosines)).toExponential(2)}`);
        assert.ok(worst >= 0.999, `cosines ${cosines.map((c) => c.toFixed(6)).join(', ')}`);
      } finally {
        nsfw.dispose();
        await encoder.close();
      }
    });
  }
});

describe('retrieval sanity on real CT (default encoder)', { skip: skipWithoutSharedData }, () => {
  let encoder: Encoder;
  before(async () => {
    encoder = await openEncoder('mobilenet_v2', options);
  });
  after(async () => {
    await encoder?.close();
  });

  test('IRCADb-17: each slice is closer to its neighbour than to the slice 40 above (64 mm)', async (t) => {
    const starts = [5, 15, 25, 35, 45, 55, 65, 75];
    const rows = await embedSlices(encoder, IRCAD, starts.flatMap((k) => [k, k + 1, k + 40]));
    const adjacent: number[] = [];
    const distant: number[] = [];
    starts.forEach((k, i) => {
      const [self, next, far] = rows.slice(3 * i, 3 * i + 3);
      adjacent.push(cosine(self, next));
      distant.push(cosine(self, far));
      assert.ok(adjacent[i] > distant[i], `slice ${k}: neighbour ${adjacent[i].toFixed(3)} vs 64 mm away ${distant[i].toFixed(3)}`);
    });
    t.diagnostic(`adjacent ${mean(adjacent).toFixed(3)} vs 64 mm apart ${mean(distant).toFixed(3)}`);
    assert.ok(mean(adjacent) - mean(distant) > 0.03);
  });

  test('liver slices of two patients are closer to each other than to a head', async (t) => {
    const liverSlices = [70, 75, 80, 85, 90]; // IRCADb-17 liver spans z 1–113; both tumours lie in 78–113
    const ircad = await embedSlices(encoder, IRCAD, liverSlices);
    const otherPatient = await embedSlices(encoder, TOTALSEG, [...Array(30).keys()]); // liver region, 30 × 3 mm
    const headVolume = await volume(HEAD);
    const head = await embedSlices(encoder, HEAD, [...Array(headVolume.dims[2]).keys()]);
    const margins: number[] = [];
    liverSlices.forEach((k, i) => {
      const toLiver = otherPatient.map((row) => cosine(ircad[i], row));
      const toHead = head.map((row) => cosine(ircad[i], row));
      // Nearest neighbour over both scans together is a liver slice, and liver is closer on average.
      assert.ok(Math.max(...toLiver) > Math.max(...toHead), `IRCADb slice ${k}: best liver ${Math.max(...toLiver).toFixed(3)} vs best head ${Math.max(...toHead).toFixed(3)}`);
      assert.ok(mean(toLiver) > mean(toHead), `IRCADb slice ${k}: mean liver ${mean(toLiver).toFixed(3)} vs head ${mean(toHead).toFixed(3)}`);
      margins.push(mean(toLiver) - mean(toHead));
    });
    t.diagnostic(`liver–liver minus liver–head mean cosine: ${margins.map((m) => m.toFixed(3)).join(', ')}`);
    assert.ok(mean(margins) > 0.02);
  });
});
