import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { embedVolume } from '../src/encode/embed-volume.js';
import type { Encoder } from '../src/encode/encoder.js';
import { openEncoder } from '../src/encode/registry.js';
import { readNpyFloat32 } from '../src/io/npy.js';
import { readVolume } from '../src/io/read.js';
import { generatePhantom } from '../src/index.js';
import { PINNED_CASES, PINNED_MIN_COSINE } from './helpers/pinned-embeddings.js';
import { hasSharedData, projectRoot, sharedPath, skipWithoutSharedData } from './helpers/shared-data.js';

const encoders = new Map<string, Promise<Encoder>>();
const encoderFor = (name: string): Promise<Encoder> => {
  let encoder = encoders.get(name);
  if (!encoder) encoders.set(name, (encoder = openEncoder(name)));
  return encoder;
};
after(async () => {
  for (const encoder of encoders.values()) await (await encoder).close?.();
});

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}

describe('embeddings pinned before the speed work (cosine ≥ 0.9999 per slice)', () => {
  for (const pinned of PINNED_CASES) {
    const real = pinned.source !== 'phantom';
    test(`${pinned.name}: ${pinned.source} slices ${pinned.sliceIndices.join(', ')} with ${pinned.encoder}`, { skip: real && !hasSharedData ? skipWithoutSharedData : false }, async () => {
      const { values, shape } = await readNpyFloat32(`${projectRoot}/test/fixtures/pinned-embeddings/${pinned.name}.npy`);
      const volume = real ? await readVolume(sharedPath(pinned.source)) : generatePhantom({ seed: 1 }).image;
      const encoder = await encoderFor(pinned.encoder);
      const embedded = await embedVolume(volume, encoder, { sliceIndices: pinned.sliceIndices });
      assert.deepEqual(shape, [pinned.sliceIndices.length, embedded.dim]);
      const dim = embedded.dim;
      const row = (m: Float32Array, r: number): Float32Array => m.subarray(r * dim, (r + 1) * dim);
      for (let r = 0; r < shape[0]; r++) {
        const c = cosine(row(embedded.vectors, r), row(values, r));
        assert.ok(c >= PINNED_MIN_COSINE, `slice ${pinned.sliceIndices[r]}: cosine ${c.toFixed(7)} to the pinned vector, below ${PINNED_MIN_COSINE}`);
      }
      // The threshold means something only if other slices of the same scan fall below it.
      const apart = cosine(row(embedded.vectors, 0), row(values, shape[0] - 1));
      assert.ok(apart < PINNED_MIN_COSINE, `first and last pinned slices are ${apart.toFixed(6)} alike; the pin cannot tell slices apart`);
    });
  }
});
