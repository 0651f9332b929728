/**
 * The TF.js → ONNX converter on small Keras models built and saved by TF.js itself (random weights), covering
 * the layer types and paddings the nsfwjs models do not use: odd sizes with SAME padding at stride 2,
 * depthwise multipliers, max and SAME average pooling, rescaling, flatten of a feature map, dense heads.
 * Each converted model must give TF.js's own output.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { EncoderError } from '../src/encode/errors.js';
import { loadTfjsArtifacts } from '../src/encode/tfjs-artifacts.js';
import { convertTfjsToOnnx } from '../src/encode/tfjs-to-onnx.js';

const dir = mkdtempSync(join(tmpdir(), 'mir3d-convert-'));
after(() => process.env.KEEP ? undefined : rmSync(dir, { recursive: true, force: true }));

/** Saves a TF.js model as model.json + weights.bin (the plain TF.js folder layout) and returns the folder. */
async function saveModel(model: tf.LayersModel, name: string): Promise<string> {
  const folder = join(dir, name);
  mkdirSync(folder, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      writeFileSync(join(folder, 'weights.bin'), new Uint8Array(artifacts.weightData as ArrayBuffer));
      writeFileSync(
        join(folder, 'model.json'),
        JSON.stringify({ format: 'layers-model', modelTopology: artifacts.modelTopology, weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }] }),
      );
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return folder;
}

/** Deterministic pseudo-random numbers (a test must not change between runs). */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

function randomizeWeights(model: tf.LayersModel, seed: number): void {
  const random = seeded(seed);
  for (const layer of model.layers) {
    const weights = layer.getWeights();
    if (weights.length === 0) continue;
    layer.setWeights(
      weights.map((w, i) => {
        // Batch-norm variances (4th weight of a BN layer) must stay positive.
        const positive = layer.getClassName() === 'BatchNormalization' && i === 3;
        return tf.tensor(Float32Array.from({ length: w.size }, () => (positive ? 0.5 + random() : random() * 2 - 1)), w.shape);
      }),
    );
  }
}

/** Converts (cut at `outputNode`, or by default) and checks ONNX against TF.js's output of `referenceLayer`. */
async function compare(folder: string, model: tf.LayersModel, inputShape: [number, number, number], outputNode: string | undefined, referenceLayer: string, expectedDim: number): Promise<number> {
  const artifacts = await loadTfjsArtifacts(folder);
  const converted = convertTfjsToOnnx(artifacts, { outputNode });
  assert.equal(converted.featureDim, expectedDim);
  assert.equal(converted.outputNode, referenceLayer);
  const [h, w, c] = inputShape;
  const batch = 3;
  const random = seeded(7);
  const nhwc = Float32Array.from({ length: batch * h * w * c }, () => random());
  const nchw = new Float32Array(nhwc.length);
  for (let n = 0; n < batch; n++)
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let ch = 0; ch < c; ch++) nchw[((n * c + ch) * h + y) * w + x] = nhwc[((n * h + y) * w + x) * c + ch];
  const session = await ort.InferenceSession.create(converted.bytes, { intraOpNumThreads: 1 });
  const result = await session.run({ [converted.inputName]: new ort.Tensor('float32', nchw, [batch, c, h, w]) });
  const actual = result[converted.outputName].data as Float32Array;
  await session.release();
  const truncated = tf.model({ inputs: model.inputs, outputs: model.getLayer(referenceLayer).output as tf.SymbolicTensor });
  const reference = tf.tidy(() => (truncated.predict(tf.tensor4d(nhwc, [batch, h, w, c])) as tf.Tensor).reshape([batch, -1]).dataSync());
  assert.equal(actual.length, reference.length);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < actual.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(actual[i] - reference[i]));
    maxRef = Math.max(maxRef, Math.abs(reference[i]));
  }
  assert.ok(maxRef > 1e-3, 'reference output is not trivially zero');
  assert.ok(maxDiff <= 1e-4 * Math.max(1, maxRef), `max |ONNX − TF.js| = ${maxDiff} (max |TF.js| ${maxRef})`);
  return maxDiff;
}

describe('TF.js layers models → ONNX, against TF.js', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  test('functional model: rescaling, SAME stride-2 conv on an odd size, depthwise ×2, BN, ReLU6, Add, padding, max/avg pooling, flatten, dense', async () => {
    const input = tf.input({ shape: [9, 11, 3], name: 'image' });
    const scaled = tf.layers.rescaling({ scale: 2, offset: -1, name: 'rescale' }).apply(input) as tf.SymbolicTensor;
    const conv = tf.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: 'conv' }).apply(scaled) as tf.SymbolicTensor;
    const depthwise = tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same', useBias: true, name: 'dw' }).apply(conv) as tf.SymbolicTensor;
    const bn = tf.layers.batchNormalization({ name: 'bn', epsilon: 0.01 }).apply(depthwise) as tf.SymbolicTensor;
    const relu6 = tf.layers.reLU({ maxValue: 6, name: 'relu6' }).apply(bn) as tf.SymbolicTensor;
    const project = tf.layers.conv2d({ filters: 8, kernelSize: 1, name: 'project', activation: 'sigmoid' }).apply(relu6) as tf.SymbolicTensor;
    const sum = tf.layers.add({ name: 'sum' }).apply([relu6, project]) as tf.SymbolicTensor;
    const padded = tf.layers.zeroPadding2d({ padding: [[1, 0], [0, 1]], name: 'pad' }).apply(sum) as tf.SymbolicTensor;
    // Zero padding then a VALID max pool, as ResNet's stem does (the inputs are ≥ 0 here, as after a ReLU).
    const maxPool = tf.layers.maxPooling2d({ poolSize: 2, strides: 2, padding: 'valid', name: 'maxpool' }).apply(padded) as tf.SymbolicTensor;
    const avgPool = tf.layers.averagePooling2d({ poolSize: 3, strides: 1, padding: 'same', name: 'avgpool' }).apply(maxPool) as tf.SymbolicTensor;
    const flat = tf.layers.flatten({ name: 'flat' }).apply(avgPool) as tf.SymbolicTensor;
    const dropout = tf.layers.dropout({ rate: 0.5, name: 'drop' }).apply(flat) as tf.SymbolicTensor;
    const dense = tf.layers.dense({ units: 5, activation: 'tanh', name: 'head' }).apply(dropout) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: dense });
    randomizeWeights(model, 1);
    const folder = await saveModel(model, 'functional');
    // 9×11 → conv SAME /2 → 5×6 → pad → 6×7 → max pool VALID /2 → 3×3 (× 8 channels) → avg pool SAME /1 → 3×3.
    // Default cut: the input of the first dense layer (through the dropout), the flattened 3×3×8 map.
    await compare(folder, model, [9, 11, 3], undefined, 'flat', 3 * 3 * 8);
    await compare(folder, model, [9, 11, 3], 'head', 'head', 5);
    await compare(folder, model, [9, 11, 3], 'avgpool', 'avgpool', 3 * 3 * 8);
  });

  test('sequential model: SAME max pooling, global average pooling before the head', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 6, kernelSize: 3, padding: 'valid', name: 'c1' }),
        tf.layers.activation({ activation: 'relu6', name: 'act' }),
        tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'pool' }),
        tf.layers.globalAveragePooling2d({ name: 'gap' }),
        tf.layers.dense({ units: 2, name: 'cls', activation: 'softmax' }),
      ],
    });
    randomizeWeights(model, 2);
    const folder = await saveModel(model, 'sequential');
    await compare(folder, model, [8, 8, 1], undefined, 'gap', 6);
    await compare(folder, model, [8, 8, 1], 'cls', 'cls', 2);
  });

  test('layers the converter does not know are refused by name', async () => {
    const model = tf.sequential({
      layers: [tf.layers.conv2d({ inputShape: [8, 8, 3], filters: 2, kernelSize: 3, name: 'c' }), tf.layers.upSampling2d({ size: [2, 2], name: 'up' }), tf.layers.flatten({ name: 'f' })],
    });
    const artifacts = await loadTfjsArtifacts(await saveModel(model, 'unsupported'));
    assert.throws(() => convertTfjsToOnnx(artifacts), (error: unknown) => error instanceof EncoderError && error.code === 'UNSUPPORTED_OP' && /layer up of class UpSampling2D/.test(error.message));
    assert.throws(() => convertTfjsToOnnx(artifacts, { outputNode: 'nope' }), (error: unknown) => error instanceof EncoderError && error.code === 'BAD_OUTPUT');
    // Cut before the unknown layer, the rest converts.
    assert.equal(convertTfjsToOnnx(artifacts, { outputNode: 'c' }).featureDim, 6 * 6 * 2);
  });

  test('zero padding into a SAME max pool that ONNX Runtime would reject is refused at conversion', async () => {
    // 6×6 padded right to 6×7; SAME 2/2 pooling pads one more column on the right: 2 columns ≥ kernel 2.
    const model = tf.sequential({
      layers: [tf.layers.zeroPadding2d({ inputShape: [6, 6, 3], padding: [[0, 0], [0, 1]], name: 'pad' }), tf.layers.maxPooling2d({ poolSize: 2, strides: 2, padding: 'same', name: 'pool' })],
    });
    const artifacts = await loadTfjsArtifacts(await saveModel(model, 'pad-pool'));
    assert.throws(
      () => convertTfjsToOnnx(artifacts),
      (error: unknown) => error instanceof EncoderError && error.code === 'UNSUPPORTED_OP' && /pool: zero padding followed by max pooling/.test(error.message),
    );
  });

  test('weight files shorter than the manifest are a corrupt model', async () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 3, name: 'd' })] });
    const folder = await saveModel(model, 'short');
    writeFileSync(join(folder, 'weights.bin'), new Uint8Array(10));
    await assert.rejects(loadTfjsArtifacts(folder), (error: unknown) => error instanceof EncoderError && error.code === 'CORRUPT_MODEL' && /ends before/.test(error.message));
  });
});
