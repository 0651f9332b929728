import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { blendArena, blendInt16Scalar, blendKernelAvailable } from '../src/io/blend-int16.js';
import { geometryOf } from '../src/io/dicom-geometry.js';
import { stackSlices } from '../src/io/dicom-pixels.js';
import { resampleStack } from '../src/io/dicom-resample.js';
import { pickSeries, scanDirectory } from '../src/io/dicom-scan.js';
import { readVolume } from '../src/io/read.js';
import { canonicalInt16Sha256 } from '../src/io/volume-stats.js';
import { seededRng } from './helpers/seeded-random.js';
import { sharedPath, skipWithoutSharedData } from './helpers/shared-data.js';

/** The GE head's canonical voxels as the resampling gave them before its loops were fused and moved to
 * the SIMD kernel. A deliberate change of the resampling's arithmetic updates this value. */
const GE_HEAD_SHA256 = '2a674ffc341efcae40543fd8d54cc0773574b31713b53f7c02b57c8de3d27d9c';

describe('int16 blend kernel', () => {
  test('WebAssembly SIMD is available on this Node, so reads use the kernel', () => {
    assert.equal(blendKernelAvailable(), true);
  });

  test('the SIMD kernel gives the scalar loop bit for bit: extremes, ties at .5, odd offsets and tails', () => {
    const rng = seededRng(16);
    const count = 4099; // not a multiple of 8: the tail runs too
    const arena = blendArena(3, count + 16);
    const [a, b, out] = arena.slots;
    for (let p = 0; p < a.length; p++) {
      a[p] = Math.floor(rng() * 65536) - 32768;
      b[p] = Math.floor(rng() * 65536) - 32768;
    }
    a.set([-32768, 32767, -1024, 3071, 1, -1], 0);
    b.set([32767, -32768, 3071, -1024, 2, 0], 0);
    const expected = new Int16Array(a.length);
    for (const w of [0.5, 0.25, 1e-7, 1 - 1e-7, 0.1234567891, 0.75, 0.999]) {
      for (const [aAt, bAt, outAt, n] of [[0, 0, 0, count], [3, 7, 1, count], [5, 2, 9, 7], [1, 1, 1, 0]]) {
        out.fill(7);
        expected.fill(7);
        arena.blend(0, aAt, 1, bAt, 2, outAt, n, w);
        blendInt16Scalar(a, aAt, b, bAt, expected, outAt, n, w);
        assert.deepEqual(out, expected, `w ${w}, offsets ${aAt}/${bAt}/${outAt}, count ${n}`);
      }
    }
  });
});

describe('GE head resampling (tilt + uneven gaps)', { skip: skipWithoutSharedData }, () => {
  test('voxels are those of the unfused resampling; the kernel, the scalar loop and float32 agree', async () => {
    const dir = sharedPath('ge-head-ct-dicom');
    assert.equal(canonicalInt16Sha256(await readVolume(dir)), GE_HEAD_SHA256);

    const geometry = geometryOf(pickSeries(await scanDirectory(dir), dir, undefined), dir);
    const stack = await stackSlices(geometry, dir);
    assert.ok(stack instanceof Int16Array);
    const kernel = resampleStack(stack, geometry);
    const scalar = resampleStack(stack, geometry, { scalarBlend: true });
    assert.deepEqual(kernel.corrections.map((c) => c.kind), ['gantry-tilt', 'uneven-spacing']);
    assert.equal(kernel.data.length, scalar.data.length);
    assert.ok(Buffer.from(kernel.data.buffer).equals(Buffer.from(scalar.data.buffer)), 'kernel and scalar loop differ');

    // The float32 path (non-integer rescale) does the same interpolation without rounding in between.
    const asFloat = resampleStack(Float32Array.from(stack), geometry);
    assert.equal(asFloat.data.length, kernel.data.length);
    let worst = 0;
    for (let p = 0; p < asFloat.data.length; p++) worst = Math.max(worst, Math.abs(asFloat.data[p] - kernel.data[p]));
    assert.ok(worst <= 1, `float32 and int16 resampling differ by up to ${worst} HU`);
  });
});
