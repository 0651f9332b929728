import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { readVolume } from '../src/io/read.js';
import { sliceZMm, type Vec3, type Volume, type VoxelArray } from '../src/io/volume.js';
import { axialSlice, bodyBoundingBox } from '../src/preprocess/body-crop.js';
import { int16RowRunScanner, int16Threshold } from '../src/preprocess/body-runs-simd.js';
import { planSlicePreprocessing, preprocessSliceInto, sliceBatches } from '../src/preprocess/batches.js';
import { planResize, resizeInto } from '../src/preprocess/resize.js';
import { selectSlices, sliceRangeIndices } from '../src/preprocess/slices.js';
import type { SliceTensor } from '../src/preprocess/slice-tensor.js';
import type { SlicePreprocessing } from '../src/preprocess/spec.js';
import {
  customWindow,
  formatWindows,
  parseWindows,
  WINDOW_PRESETS,
  windowHu,
  windowInto,
  windowPreset,
} from '../src/preprocess/windows.js';
import { sharedPath, skipWithoutSharedData } from './helpers/shared-data.js';

/** A canonical volume built in memory: voxel (i, j, k) = valueAt(i, j, k); affine in canonical LPS axes. */
function makeVolume(
  dims: Vec3,
  spacingMm: Vec3,
  valueAt: (i: number, j: number, k: number) => number,
  options: { zOriginMm?: number; float?: boolean } = {},
): Volume {
  const [nx, ny, nz] = dims;
  const data: VoxelArray = options.float ? new Float32Array(nx * ny * nz) : new Int16Array(nx * ny * nz);
  for (let k = 0, p = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++, p++) data[p] = valueAt(i, j, k);
  const [sx, sy, sz] = spacingMm;
  return {
    data,
    dims,
    spacingMm,
    affineRas: [-sx, 0, 0, 100, 0, -sy, 0, 80, 0, 0, sz, options.zOriginMm ?? 0, 0, 0, 0, 1],
    modality: 'CT',
    source: { path: 'memory', format: 'generated', orientation: 'LPS', storedDataType: options.float ? 'float32' : 'int16' },
    corrections: [],
  };
}

function assertClose(actual: number, expected: number, tolerance: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} is not within ${tolerance} of ${expected}`);
}

function minMax(values: Float32Array): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}

describe('HU windows', () => {
  test('presets carry the standard radiology level/width', () => {
    const table = Object.fromEntries(Object.values(WINDOW_PRESETS).map((w) => [w.name, [w.levelHu, w.widthHu]]));
    assert.deepEqual(table, {
      abdomen: [50, 400],
      liver: [30, 150],
      mediastinum: [50, 350],
      lung: [-600, 1500],
      bone: [400, 1800],
      brain: [40, 80],
      wide: [0, 2000],
    });
  });

  test('map the window edges to 0 and 1, the level to 0.5, and clamp outside', () => {
    const abdomen = windowPreset('abdomen'); // −150 … 250 HU
    assert.equal(windowHu(-150, abdomen), 0);
    assertClose(windowHu(50, abdomen), 0.5, 1e-12, 'abdomen level');
    assertClose(windowHu(250, abdomen), 1, 1e-12, 'abdomen top');
    assertClose(windowHu(150, abdomen), 0.75, 1e-12, 'abdomen 3/4');
    assert.equal(windowHu(-1000, abdomen), 0);
    assert.equal(windowHu(3000, abdomen), 1);
    const lung = windowPreset('lung'); // −1350 … 150 HU
    assert.equal(windowHu(-1350, lung), 0);
    assertClose(windowHu(-600, lung), 0.5, 1e-12, 'lung level');
    assertClose(windowHu(150, lung), 1, 1e-12, 'lung top');
    assertClose(windowHu(-1000, lung), 350 / 1500, 1e-12, 'air in the lung window');
    const wide = windowPreset('wide');
    assert.equal(windowHu(-1000, wide), 0);
    assertClose(windowHu(0, wide), 0.5, 1e-12, 'wide level');
    assertClose(windowHu(1000, wide), 1, 1e-12, 'wide top');
    assert.equal(windowHu(Number.NaN, wide), 0, 'NaN maps to the window minimum');
  });

  test('the bulk loop agrees with the scalar mapping for int16 and float32 voxels', () => {
    const hu = [-2048, -1000, -601, -600, -150, 0, 49.5, 50, 250, 251, 3071];
    const bone = windowPreset('bone');
    for (const src of [new Int16Array(hu.map(Math.round)), new Float32Array(hu)]) {
      const dst = new Float32Array(src.length + 2).fill(-1);
      windowInto(src, 0, src.length, bone, dst, 1);
      assert.equal(dst[0], -1, 'writes nothing before the offset');
      assert.equal(dst[src.length + 1], -1, 'writes nothing past the count');
      for (let n = 0; n < src.length; n++) assert.equal(dst[n + 1], Math.fround(windowHu(src[n], bone)), `HU ${src[n]}`);
    }
  });

  test('parse preset names (any case, spaces) and LEVEL:WIDTH pairs, and format them back', () => {
    const windows = parseWindows(' Abdomen, LUNG ,bone');
    assert.deepEqual(windows, [
      { name: 'abdomen', levelHu: 50, widthHu: 400 },
      { name: 'lung', levelHu: -600, widthHu: 1500 },
      { name: 'bone', levelHu: 400, widthHu: 1800 },
    ]);
    assert.deepEqual(parseWindows('40:400'), [{ name: '40:400', levelHu: 40, widthHu: 400 }]);
    const mixed = parseWindows('-600:1500,liver,+35.5:90');
    assert.deepEqual(mixed.map((w) => [w.levelHu, w.widthHu]), [[-600, 1500], [30, 150], [35.5, 90]]);
    assert.equal(formatWindows(mixed), '-600:1500,liver,35.5:90');
    assert.deepEqual(parseWindows(formatWindows(mixed)), mixed);
    assert.deepEqual(customWindow(-50, 350), { name: '-50:350', levelHu: -50, widthHu: 350 });
  });

  test('reject unknown names, empty entries, malformed pairs and non-positive widths with clear messages', () => {
    assert.throws(() => parseWindows('abdomen,softtissue'), (e: Error) => {
      assert.ok(e instanceof RangeError);
      assert.match(e.message, /unknown HU window "softtissue"/);
      assert.match(e.message, /known: abdomen, liver, mediastinum, lung, bone, brain, wide/);
      return true;
    });
    assert.throws(() => parseWindows(''), /no HU window given/);
    assert.throws(() => parseWindows(' , '), /no HU window given/);
    assert.throws(() => parseWindows('abdomen,,lung'), /empty HU window at position 2/);
    assert.throws(() => parseWindows('40:abc'), /"40:abc" is not LEVEL:WIDTH/);
    assert.throws(() => parseWindows('40:400:1'), /not LEVEL:WIDTH/);
    assert.throws(() => parseWindows('40:0'), /width must be a positive number of HU, got 0/);
    assert.throws(() => parseWindows('40:-400'), /width must be a positive/);
    assert.throws(() => customWindow(Number.NaN, 400), /level must be a finite number/);
  });
});

describe('slice selection', () => {
  // The IRCADb-17 geometry: 119 slices 1.6 mm apart.
  const volume = makeVolume([2, 2, 119], [0.743, 0.743, 1.6], () => 0, { zOriginMm: -95 });

  test('every slice without a step (undefined or 0)', () => {
    const all = Array.from({ length: 119 }, (_, k) => k);
    assert.deepEqual(selectSlices(volume), all);
    assert.deepEqual(selectSlices(volume, 0), all);
  });

  test('1.6 mm slices at a 5 mm step: the slice nearest each multiple of 5 mm, ties to the lower one', () => {
    // Target n·5 mm lies at slice n·3.125: 0, 3.125, 6.25, 9.375, 12.5 (tie → 12), 15.625, 18.75, …
    const selected = selectSlices(volume, 5);
    assert.deepEqual(selected.slice(0, 14), [0, 3, 6, 9, 12, 16, 19, 22, 25, 28, 31, 34, 37, 41]);
    // Last target 37·5 = 185 mm ≤ 118·1.6 = 188.8 mm → slice 115.625 → 116; 38 targets in all.
    assert.equal(selected.length, 38);
    assert.equal(selected[37], 116);
    selected.forEach((k, n) => assert.ok(Math.abs(k * 1.6 - n * 5) <= 0.8 + 1e-9, `slice ${k} for target ${n * 5} mm`));
  });

  test('a step finer than the spacing keeps every slice once; the first slice is always kept', () => {
    assert.deepEqual(selectSlices(volume, 1), Array.from({ length: 119 }, (_, k) => k));
    const coarse = selectSlices(volume, 100);
    assert.deepEqual(coarse, [0, 62]); // 100 mm is slice 62.5, halfway between 99.2 and 100.8 mm: the tie goes down
  });

  test('a step inside a slice range starts at the range', () => {
    assert.deepEqual(selectSlices(volume, 5, { firstSlice: 10, lastSlice: 30 }), [10, 13, 16, 19, 22, 26, 29]);
  });

  test('rejects negative and non-finite steps', () => {
    assert.throws(() => selectSlices(volume, -5), /positive number of mm/);
    assert.throws(() => selectSlices(volume, Number.NaN), /positive number of mm/);
  });

  test('slice ranges are inclusive, ordered, clamped, and refused when outside the volume', () => {
    assert.deepEqual(sliceRangeIndices(volume, { firstSlice: 5, lastSlice: 8 }), [5, 6, 7, 8]);
    assert.deepEqual(sliceRangeIndices(volume, { firstSlice: 8, lastSlice: 5 }), [5, 6, 7, 8]);
    assert.deepEqual(sliceRangeIndices(volume, { firstSlice: -5, lastSlice: 2 }), [0, 1, 2]);
    assert.deepEqual(sliceRangeIndices(volume, { firstSlice: 116, lastSlice: 500 }), [116, 117, 118]);
    assert.throws(() => sliceRangeIndices(volume, { firstSlice: 119, lastSlice: 200 }), /lies outside the volume's slices 0..118/);
    assert.throws(() => sliceRangeIndices(volume, { firstSlice: 1.5, lastSlice: 3 }), /integer indices/);
  });

  test('z ranges in mm select the slices whose slabs they overlap, in the z of sliceZMm', () => {
    // z of slice k is −95 + 1.6·k.
    assert.equal(sliceZMm(volume, 10), -95 + 16);
    assert.deepEqual(sliceRangeIndices(volume, { zStartMm: sliceZMm(volume, 10), zEndMm: sliceZMm(volume, 20) }), range(10, 20));
    assert.deepEqual(sliceRangeIndices(volume, { zStartMm: sliceZMm(volume, 20), zEndMm: sliceZMm(volume, 10) }), range(10, 20));
    // Thinner than a slice: the one slab it falls in.
    const z5 = sliceZMm(volume, 5);
    assert.deepEqual(sliceRangeIndices(volume, { zStartMm: z5 + 0.1, zEndMm: z5 + 0.3 }), [5]);
    // Slabs are ±0.8 mm: 0.5 mm above slice 5's centre stays in its slab, 0.9 mm below reaches slice 4's.
    assert.deepEqual(sliceRangeIndices(volume, { zStartMm: z5 - 0.9, zEndMm: z5 + 0.5 }), [4, 5]);
    // Zero width exactly on a slab boundary still gets a slice.
    assert.equal(sliceRangeIndices(volume, { zStartMm: z5 + 0.8, zEndMm: z5 + 0.8 }).length, 1);
    // Clamped to the scan, refused entirely outside it.
    assert.deepEqual(sliceRangeIndices(volume, { zStartMm: -500, zEndMm: sliceZMm(volume, 2) }), [0, 1, 2]);
    assert.throws(
      () => sliceRangeIndices(volume, { zStartMm: 200, zEndMm: 300 }),
      /z range 200.0..300.0 mm lies outside the volume \(-95.8..94.6 mm\)/,
    );
    assert.throws(() => sliceRangeIndices(volume, { zStartMm: Number.NaN, zEndMm: 3 }), /finite mm/);
  });
});

function range(first: number, last: number): number[] {
  return Array.from({ length: last - first + 1 }, (_, n) => first + n);
}

describe('in-plane resize', () => {
  test('a constant image stays constant (512 → 224, area averaging)', () => {
    const plan = planResize({ srcWidthPx: 512, srcHeightPx: 512, pixelSpacingMm: [0.743, 0.743], outWidthPx: 224, outHeightPx: 224 });
    assert.equal(plan.x.filter, 'area');
    const out = new Float32Array(224 * 224);
    resizeInto(plan, new Float32Array(512 * 512).fill(0.37), out);
    const { min, max } = minMax(out);
    assertClose(min, Math.fround(0.37), 1e-6, 'min');
    assertClose(max, Math.fround(0.37), 1e-6, 'max');
  });

  test('exact 2× reduction averages 2×2 blocks; 2× enlargement interpolates bilinearly', () => {
    const src = new Float32Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    const down = new Float32Array(4);
    resizeInto(planResize({ srcWidthPx: 4, srcHeightPx: 4, pixelSpacingMm: [1, 1], outWidthPx: 2, outHeightPx: 2 }), src, down);
    assert.deepEqual([...down], [(0 + 1 + 4 + 5) / 4, (2 + 3 + 6 + 7) / 4, (8 + 9 + 12 + 13) / 4, (10 + 11 + 14 + 15) / 4]);
    const up = new Float32Array(16);
    const upPlan = planResize({ srcWidthPx: 2, srcHeightPx: 2, pixelSpacingMm: [1, 1], outWidthPx: 4, outHeightPx: 4 });
    assert.equal(upPlan.x.filter, 'bilinear');
    resizeInto(upPlan, new Float32Array([0, 1, 0, 1]), up);
    // Half-pixel centres: output columns sample source x = −0.25 (clamped), 0.25, 0.75, 1.25 (clamped).
    for (let row = 0; row < 4; row++) assert.deepEqual([...up.subarray(row * 4, row * 4 + 4)], [0, 0.25, 0.75, 1]);
  });

  test('a one-pixel checkerboard downsampled 512 → 224 averages to ~0.5 everywhere (no aliasing)', () => {
    const src = new Float32Array(512 * 512);
    for (let j = 0; j < 512; j++) for (let i = 0; i < 512; i++) src[j * 512 + i] = (i + j) & 1;
    const out = new Float32Array(224 * 224);
    resizeInto(planResize({ srcWidthPx: 512, srcHeightPx: 512, pixelSpacingMm: [0.7, 0.7], outWidthPx: 224, outHeightPx: 224 }), src, out);
    const { min, max } = minMax(out);
    // Point sampling would give 0s and 1s (or a moiré of them); area averaging stays within a few percent.
    assert.ok(min > 0.48 && max < 0.52, `checkerboard → [${min}, ${max}]`);
    const mean = out.reduce((a, b) => a + b, 0) / out.length;
    assertClose(mean, 0.5, 1e-3, 'mean');
  });

  test('keeps the physical aspect ratio with anisotropic pixels; padding goes on the short side', () => {
    // 100 × 100 pixels of 1 mm (i) × 2 mm (j): 100 mm wide, 200 mm tall → 25 × 50 px centred in 50 × 50.
    const tall = planResize({ srcWidthPx: 100, srcHeightPx: 100, pixelSpacingMm: [1, 2], outWidthPx: 50, outHeightPx: 50 });
    assert.deepEqual([tall.x.dstOffset, tall.x.dstLength, tall.y.dstOffset, tall.y.dstLength], [12, 25, 0, 50]);
    const out = new Float32Array(50 * 50).fill(-1);
    resizeInto(tall, new Float32Array(100 * 100).fill(0.8), out);
    for (let row = 0; row < 50; row++) {
      for (let col = 0; col < 50; col++) {
        const expected = col >= 12 && col < 37 ? Math.fround(0.8) : 0;
        assertClose(out[row * 50 + col], expected, 1e-6, `pixel (${row}, ${col})`);
      }
    }
    // Transposed spacing: padding above and below.
    const wide = planResize({ srcWidthPx: 100, srcHeightPx: 100, pixelSpacingMm: [2, 1], outWidthPx: 50, outHeightPx: 50 });
    assert.deepEqual([wide.x.dstOffset, wide.x.dstLength, wide.y.dstOffset, wide.y.dstLength], [0, 50, 12, 25]);
    // 200 × 100 pixels of 0.5 × 1 mm are 100 mm square: no padding, although the pixel grid is 2:1.
    const square = planResize({ srcWidthPx: 200, srcHeightPx: 100, pixelSpacingMm: [0.5, 1], outWidthPx: 64, outHeightPx: 64 });
    assert.deepEqual([square.x.dstOffset, square.x.dstLength, square.y.dstOffset, square.y.dstLength], [0, 64, 0, 64]);
  });

  test('resizes only the crop box', () => {
    // 1 inside columns 10..29, rows 20..29, 0 elsewhere; cropping to that box gives all ones.
    const src = new Float32Array(64 * 64);
    for (let j = 20; j < 30; j++) for (let i = 10; i < 30; i++) src[j * 64 + i] = 1;
    const plan = planResize({
      srcWidthPx: 64,
      srcHeightPx: 64,
      pixelSpacingMm: [1, 1],
      crop: { iStart: 10, iEnd: 30, jStart: 20, jEnd: 30 },
      outWidthPx: 16,
      outHeightPx: 16,
    });
    assert.deepEqual([plan.y.dstOffset, plan.y.dstLength], [4, 8]); // 20 × 10 mm → 16 × 8 px
    const out = new Float32Array(16 * 16);
    resizeInto(plan, src, out);
    for (let row = 0; row < 16; row++) {
      for (let col = 0; col < 16; col++) assert.equal(out[row * 16 + col], row >= 4 && row < 12 ? 1 : 0, `(${row}, ${col})`);
    }
    assert.throws(
      () => planResize({ srcWidthPx: 64, srcHeightPx: 64, pixelSpacingMm: [1, 1], crop: { iStart: 10, iEnd: 70, jStart: 0, jEnd: 5 }, outWidthPx: 8, outHeightPx: 8 }),
      /not a non-empty pixel box inside 64×64/,
    );
  });
});

/** A CT-like slice: air, an elliptic body of soft tissue with a fat rim and lungs, a table under it, specks of noise. */
function phantomSlice(widthPx: number, heightPx: number, body: { ci: number; cj: number; ri: number; rj: number }, tableRow: number): Int16Array {
  const slice = new Int16Array(widthPx * heightPx).fill(-1000);
  for (let j = 0; j < heightPx; j++) {
    for (let i = 0; i < widthPx; i++) {
      const r = ((i - body.ci) / body.ri) ** 2 + ((j - body.cj) / body.rj) ** 2;
      if (r <= 1) slice[j * widthPx + i] = r > 0.8 ? -100 : 40;
      // Lungs: air inside the body must not split or shrink the outline.
      const lung = ((Math.abs(i - body.ci) - body.ri * 0.4) / (body.ri * 0.25)) ** 2 + ((j - body.cj) / (body.rj * 0.5)) ** 2;
      if (lung <= 1) slice[j * widthPx + i] = -850;
      // The table: a 3-pixel shell, wider than the body, across an air gap.
      if (j >= tableRow && j < tableRow + 3 && i >= 8 && i < widthPx - 8) slice[j * widthPx + i] = 300;
    }
  }
  for (const [i, j] of [[3, 3], [widthPx - 5, 10], [20, heightPx - 4]]) slice[j * widthPx + i] = 500; // noise, clothing
  return slice;
}

describe('body crop', () => {
  test('one phantom slice: the box is the body outline, not the table, the lungs or noise', () => {
    const body = { ci: 100, cj: 90, ri: 70, rj: 50 };
    const data = phantomSlice(200, 180, body, 150);
    const box = bodyBoundingBox({ data, widthPx: 200, heightPx: 180, pixelSpacingMm: [1, 1] });
    assert.deepEqual(box, { iStart: 30, iEnd: 171, jStart: 40, jEnd: 141, found: true });
    const withMargin = bodyBoundingBox({ data, widthPx: 200, heightPx: 180, pixelSpacingMm: [1, 1] }, { marginMm: 4 });
    assert.deepEqual(withMargin, { iStart: 26, iEnd: 175, jStart: 36, jEnd: 145, found: true });
  });

  test('two legs of equal size are both kept', () => {
    const data = new Int16Array(120 * 80).fill(-1000);
    for (let j = 0; j < 80; j++) {
      for (let i = 0; i < 120; i++) {
        if ((i - 35) ** 2 + (j - 40) ** 2 <= 400 || (i - 85) ** 2 + (j - 40) ** 2 <= 400) data[j * 120 + i] = 30;
      }
    }
    assert.deepEqual(bodyBoundingBox({ data, widthPx: 120, heightPx: 80 }, { minBodyAreaMm2: 100 }), {
      iStart: 15,
      iEnd: 106,
      jStart: 20,
      jEnd: 61,
      found: true,
    });
  });

  test('arms beside the trunk are kept; a table larger than an arm, under the trunk, is not', () => {
    const [nx, ny] = [240, 200];
    const data = new Int16Array(nx * ny).fill(-1000);
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        const trunk = ((i - 120) / 70) ** 2 + ((j - 90) / 50) ** 2 <= 1; // i 50..190, j 40..140
        const arm = (i - 30) ** 2 + (j - 100) ** 2 <= 144 || (i - 210) ** 2 + (j - 100) ** 2 <= 144; // 4 % of the trunk each
        const table = j >= 160 && j < 164 && i >= 10 && i < 230; // 880 px: 8 % of the trunk, 4 mm thick
        if (trunk || arm) data[j * nx + i] = 20;
        if (table) data[j * nx + i] = 250;
      }
    }
    assert.deepEqual(bodyBoundingBox({ data, widthPx: nx, heightPx: ny, pixelSpacingMm: [1, 1] }), {
      iStart: 18,
      iEnd: 223,
      jStart: 40,
      jEnd: 141,
      found: true,
    });
  });

  test('a volume gets the union of its slices; air-only slices are ignored; all air → whole slice, not found', () => {
    const [nx, ny] = [160, 140];
    const slices = [
      phantomSlice(nx, ny, { ci: 80, cj: 60, ri: 40, rj: 30 }, 120),
      new Int16Array(nx * ny).fill(-1000),
      phantomSlice(nx, ny, { ci: 70, cj: 70, ri: 50, rj: 35 }, 120),
    ];
    const volume = makeVolume([nx, ny, 3], [1, 1, 2], (i, j, k) => slices[k][j * nx + i]);
    assert.deepEqual(bodyBoundingBox(volume), { iStart: 20, iEnd: 121, jStart: 30, jEnd: 106, found: true });
    assert.deepEqual(bodyBoundingBox(axialSlice(volume, 1)), { iStart: 0, iEnd: nx, jStart: 0, jEnd: ny, found: false });
    const air = makeVolume([nx, ny, 2], [1, 1, 2], () => -1000);
    assert.deepEqual(bodyBoundingBox(air), { iStart: 0, iEnd: nx, jStart: 0, jEnd: ny, found: false });
  });

  test('the SIMD threshold scan finds exactly the runs of a plain loop: odd widths, noise, fractional and extreme thresholds', () => {
    let seed = 11;
    const random = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const reference = (data: Int16Array, widthPx: number, heightPx: number, thresholdHu: number): number[][] => {
      const runs: number[][] = [];
      for (let j = 0; j < heightPx; j++) {
        for (let i = 0; i < widthPx; i++) {
          if (!(data[j * widthPx + i] > thresholdHu)) continue;
          const start = i;
          while (i < widthPx && data[j * widthPx + i] > thresholdHu) i++;
          runs.push([j, start, i]);
        }
      }
      return runs;
    };
    assert.ok(int16RowRunScanner(8, 8), 'WebAssembly SIMD is missing: this test would compare the scalar loop with itself');
    const thresholds = [-500, -500.5, -32768, 32766.5, -32767.5, 0, 39.9];
    for (let trial = 0; trial < 210; trial++) {
      const widthPx = 1 + Math.floor(random() * 100);
      const heightPx = 1 + Math.floor(random() * 30);
      const data = new Int16Array(widthPx * heightPx);
      for (let p = 0; p < data.length; p++) {
        const i = p % widthPx;
        data[p] = trial % 3 === 0 ? Math.floor(random() * 65536) - 32768 // every voxel a transition
          : trial % 3 === 1 ? (random() < 0.5 ? -1000 : 40)
            : i > widthPx / 4 && i < (3 * widthPx) / 4 && random() < 0.95 ? 50 : -1000; // long runs, a few holes
      }
      const thresholdHu = thresholds[trial % thresholds.length];
      const runs = int16RowRunScanner(widthPx, heightPx)!(data, 0, int16Threshold(thresholdHu)!);
      const found: number[][] = [];
      for (let j = 0, r = 0; j < heightPx; j++) for (; r < runs.rowEnds[j]; r++) found.push([j, runs.starts[r], runs.ends[r]]);
      assert.deepEqual(found, reference(data, widthPx, heightPx, thresholdHu), `trial ${trial}: ${widthPx}×${heightPx} at ${thresholdHu} HU`);
      const options = { thresholdHu, minBodyAreaMm2: 1 };
      const slice = { data, widthPx, heightPx };
      assert.deepEqual(bodyBoundingBox(slice, options), bodyBoundingBox(slice, options, 'scalar'), `trial ${trial}`);
    }
    // No int16 threshold stands for these; the scalar loop takes them.
    for (const outside of [Number.NaN, -40000, 40000]) assert.equal(int16Threshold(outside), undefined);
  });

  describe('on real CT', { skip: skipWithoutSharedData }, () => {
    let ircad: Volume;
    before(async () => {
      ircad = await readVolume(sharedPath('ircad17/ct.nii.gz'));
    });

    test('IRCADb-17: the box holds the body and leaves out the table and the air around it', () => {
      const [nx, ny, nz] = ircad.dims;
      assert.deepEqual(ircad.dims, [512, 512, 119]);
      const box = bodyBoundingBox(ircad);
      assert.ok(box.found);
      const widthPx = box.iEnd - box.iStart;
      const heightPx = box.jEnd - box.jStart;
      // The body is ~330 mm across on a 380 mm field of view; the table and air at the sides are cut.
      assert.ok(widthPx < 0.92 * nx && widthPx > 0.7 * nx, `box width ${widthPx}`);
      assert.ok(heightPx < 0.88 * ny && heightPx > 0.6 * ny, `box height ${heightPx}`);
      assertClose((box.iStart + box.iEnd) / 2, nx / 2, 20, 'box centre left–right');
      const data = ircad.data;
      const at = (i: number, j: number, k: number): number => data[i + nx * (j + ny * k)];
      for (let k = 0; k < nz; k++) {
        // The table, found independently: the lowest tissue-dense pixel of the middle column, with air
        // (below −900 HU) in the 15 rows above it separating it from the patient's back.
        let tableRow = ny - 1;
        while (tableRow > 0 && !(at(256, tableRow, k) > -500)) tableRow--;
        let airAbove = false;
        for (let j = tableRow - 15; j < tableRow; j++) if (at(256, j, k) < -900) airAbove = true;
        assert.ok(airAbove, `slice ${k}: row ${tableRow} is not separated from the body by air`);
        assert.ok(box.jEnd <= tableRow, `slice ${k}: box reaches row ${box.jEnd - 1}, the table is at row ${tableRow}`);
        // The anterior skin on the middle column is inside the box.
        let skinRow = 0;
        while (skinRow < ny && !(at(256, skinRow, k) > -500)) skinRow++;
        assert.ok(skinRow >= box.jStart && skinRow < box.jEnd, `slice ${k}: skin row ${skinRow} outside the box`);
      }
    });

    test('TotalSegmentator example: a body filling the field keeps (nearly) the whole width; air above it is cut', async () => {
      const volume = await readVolume(sharedPath('totalseg/example_ct.nii.gz'));
      assert.deepEqual(volume.dims, [122, 101, 112]);
      const box = bodyBoundingBox(volume);
      assert.ok(box.found);
      assert.ok(box.iEnd - box.iStart >= 0.95 * 122, JSON.stringify(box));
      // Slice 10: rows 0–20 are air above the patient, the body starts at row 21.
      const slice10 = bodyBoundingBox(axialSlice(volume, 10));
      assert.ok(slice10.jStart >= 18 && slice10.jStart <= 22, JSON.stringify(slice10));
    });

    test('the SIMD scan gives the box of the scalar loop on every slice of IRCADb-17 and of the TotalSegmentator example', async () => {
      for (const volume of [ircad, await readVolume(sharedPath('totalseg/example_ct.nii.gz'))]) {
        assert.ok(volume.data instanceof Int16Array);
        assert.deepEqual(bodyBoundingBox(volume), bodyBoundingBox(volume, {}, 'scalar'));
        for (let k = 0; k < volume.dims[2]; k++) {
          assert.deepEqual(bodyBoundingBox(axialSlice(volume, k)), bodyBoundingBox(axialSlice(volume, k), {}, 'scalar'), `slice ${k}`);
        }
      }
    });
  });
});

describe('slice batches', () => {
  const spec: SlicePreprocessing = { windows: parseWindows('abdomen,lung'), heightPx: 32, widthPx: 32, bodyCrop: false, sliceStepMm: 5 };
  // 64 × 48 pixels of 1 mm: 64 × 48 mm → content 32 × 24 px, 4 rows of padding above and below.
  // Slice k is uniform at −200 + 10·k HU, so its expected value per channel is known exactly.
  const huOf = (k: number): number => -200 + 10 * k;
  const makeUniform = (): Volume => makeVolume([64, 48, 50], [1, 1, 1.6], (_i, _j, k) => huOf(k), { zOriginMm: 20 });

  function collect(batches: Iterable<SliceTensor>): SliceTensor[] {
    return [...batches];
  }

  test('count, shapes, slice order and zMm of the batches', () => {
    const volume = makeUniform();
    const expectedSlices = selectSlices(volume, 5); // 50 slices, 78.4 mm → 16 slices
    assert.equal(expectedSlices.length, 16);
    const batches = collect(sliceBatches(volume, spec, 5));
    assert.deepEqual(batches.map((b) => b.count), [5, 5, 5, 1]);
    for (const b of batches) {
      assert.equal(b.channels, 2);
      assert.equal(b.height, 32);
      assert.equal(b.width, 32);
      assert.equal(b.data.length, b.count * 2 * 32 * 32);
      assert.equal(b.sliceIndices.length, b.count);
      assert.equal(b.zMm.length, b.count);
    }
    assert.deepEqual(batches.flatMap((b) => b.sliceIndices), expectedSlices);
    const zMm = batches.flatMap((b) => b.zMm);
    zMm.forEach((z, n) => assert.equal(z, sliceZMm(volume, expectedSlices[n])));
    for (let n = 1; n < zMm.length; n++) {
      assert.ok(zMm[n] > zMm[n - 1], 'zMm ascending');
      assertClose(zMm[n] - zMm[n - 1], 5, 1.6, 'z step');
    }
    assert.equal(zMm[0], 20);
  });

  test('NCHW values: each channel is the windowed slice, padding is 0', () => {
    const volume = makeUniform();
    for (const b of sliceBatches(volume, spec, 4)) {
      for (let n = 0; n < b.count; n++) {
        spec.windows.forEach((window, c) => {
          const plane = b.data.subarray((n * 2 + c) * 32 * 32, (n * 2 + c + 1) * 32 * 32);
          const expected = Math.fround(windowHu(huOf(b.sliceIndices[n]), window));
          for (let row = 0; row < 32; row++) {
            const want = row >= 4 && row < 28 ? expected : 0;
            for (let col = 0; col < 32; col++) assertClose(plane[row * 32 + col], want, 1e-6, `slice ${b.sliceIndices[n]} ${window.name} (${row}, ${col})`);
          }
        });
      }
    }
  });

  test('windows are applied before resampling: a −1000/+1000 HU checkerboard is mid-grey in the abdomen window', () => {
    // Resampling HU first would give 0 HU → 0.375 in the abdomen window; what a reader sees is half 0, half 1.
    const volume = makeVolume([64, 64, 1], [1, 1, 1], (i, j) => ((i + j) & 1 ? 1000 : -1000));
    const [batch] = collect(sliceBatches(volume, { windows: parseWindows('abdomen'), heightPx: 28, widthPx: 28, bodyCrop: false }, 1));
    const { min, max } = minMax(batch.data);
    assert.ok(min > 0.47 && max < 0.53, `[${min}, ${max}]`);
  });

  test('preprocessSliceInto fills exactly its region of a larger buffer', () => {
    const volume = makeUniform();
    const plan = planSlicePreprocessing(volume, spec);
    assert.equal(plan.sliceValues, 2 * 32 * 32);
    const shared = new Float32Array(3 * plan.sliceValues).fill(-7);
    preprocessSliceInto(plan, volume, 30, shared, plan.sliceValues);
    assert.ok(shared.subarray(0, plan.sliceValues).every((v) => v === -7), 'before the region untouched');
    assert.ok(shared.subarray(2 * plan.sliceValues).every((v) => v === -7), 'after the region untouched');
    const [batch] = collect(sliceBatches(volume, spec, 1, { sliceIndices: [30] }));
    assert.deepEqual(shared.subarray(plan.sliceValues, 2 * plan.sliceValues), batch.data);
    assert.throws(() => preprocessSliceInto(plan, volume, 50, shared, 0), /slice 50 outside 0..49/);
    assert.throws(() => preprocessSliceInto(plan, volume, 0, shared, 2 * plan.sliceValues + 1), /does not fit/);
  });

  test('batches are made lazily, one buffer per batch (memory stays bounded by the batch size)', () => {
    const volume = makeUniform();
    const batches = sliceBatches(volume, { ...spec, sliceStepMm: 0 }, 8);
    const first = batches.next();
    assert.ok(!first.done);
    assert.equal(first.value.data.buffer.byteLength, 8 * 2 * 32 * 32 * 4, 'the buffer holds one batch, not the volume');
    // Change slices 8–15 after the first batch was made: a lazy generator sees the change.
    volume.data.fill(250, 8 * 64 * 48, 16 * 64 * 48);
    const second = batches.next();
    assert.ok(!second.done);
    assert.deepEqual(second.value.sliceIndices, range(8, 15));
    assert.equal(second.value.data[4 * 32 + 5], 1, 'abdomen window of 250 HU');
    assert.ok(first.value.data.buffer !== second.value.data.buffer, 'a kept batch is not overwritten by the next');
    let remaining = 0;
    for (const b of batches) remaining += b.count;
    assert.equal(remaining, 50 - 16);
  });

  test('bad arguments fail when sliceBatches is called', () => {
    const volume = makeUniform();
    assert.throws(() => sliceBatches(volume, spec, 0), /batch size must be a positive integer/);
    assert.throws(() => sliceBatches(volume, spec, 4, { sliceIndices: [3, 50] }), /slice 50 outside 0..49/);
    assert.throws(() => sliceBatches(volume, { ...spec, windows: [] }, 4), /at least one HU window/);
    assert.throws(() => sliceBatches(volume, { ...spec, widthPx: 0 }, 4), /widthPx must be a positive integer/);
  });

  test('int16 slices: the SIMD kernel gives the scalar loops within float32 rounding, for 1–4 windows, shrinking and growing axes, interleaved plans', () => {
    // HU from −1500 to 2500 in a pattern with edges, so every window clamps somewhere and the filters mix.
    const volume = makeVolume([97, 61, 4], [0.7, 0.9, 2], (i, j, k) => ((i * 37 + j * 53 + k * 11) % 4000) - 1500 + (i > 40 ? 900 : 0));
    const cases: SlicePreprocessing[] = [
      { windows: parseWindows('abdomen,lung,bone'), heightPx: 40, widthPx: 48, bodyCrop: false },
      { windows: parseWindows('lung'), heightPx: 150, widthPx: 130, bodyCrop: false },
      { windows: parseWindows('abdomen,bone'), heightPx: 33, widthPx: 200, bodyCrop: false },
      { windows: parseWindows('abdomen,lung,bone,brain'), heightPx: 224, widthPx: 224, bodyCrop: false },
    ];
    const plans = cases.map((spec) => planSlicePreprocessing(volume, spec));
    const scalarPlans = cases.map((spec) => ({ ...planSlicePreprocessing(volume, spec), int16Simd: null }));
    for (let round = 0; round < 2; round++) {
      for (let n = 0; n < cases.length; n++) {
        for (let k = 0; k < 4; k++) {
          const kernel = new Float32Array(plans[n].sliceValues).fill(NaN);
          const scalar = new Float32Array(plans[n].sliceValues);
          preprocessSliceInto(plans[n], volume, k, kernel, 0);
          preprocessSliceInto(scalarPlans[n], volume, k, scalar, 0);
          assert.ok(plans[n].int16Simd, 'the kernel served the int16 plan');
          let worst = 0;
          for (let p = 0; p < kernel.length; p++) worst = Math.max(worst, Math.abs(kernel[p] - scalar[p]));
          assert.ok(worst <= 1e-6, `case ${n}, slice ${k}: kernel and scalar differ by ${worst}`);
          const { min, max } = minMax(kernel);
          assert.ok(min >= 0 && max <= 1, `values in [0, 1]: ${min} … ${max}`);
        }
      }
    }
  });

  test('IRCADb-17, abdomen/lung/bone at 224 × 224 with body crop and a 5 mm step', { skip: skipWithoutSharedData }, async (t) => {
    const volume = await readVolume(sharedPath('ircad17/ct.nii.gz'));
    const realSpec: SlicePreprocessing = {
      windows: parseWindows('abdomen,lung,bone'),
      heightPx: 224,
      widthPx: 224,
      bodyCrop: true,
      sliceStepMm: 5,
    };
    const plan = planSlicePreprocessing(volume, realSpec);
    // The body box is wider than tall, so the letterbox pads rows, never columns.
    assert.equal(plan.resize.x.dstLength, 224);
    assert.ok(plan.resize.y.dstLength < 224 && plan.resize.y.dstOffset > 0);
    const started = performance.now();
    const batches = collect(sliceBatches(volume, realSpec, 16, { crop: plan.crop }));
    const msPerSlice = (performance.now() - started) / 38;
    t.diagnostic(`window ×3 + crop + resize 512 → 224: ${msPerSlice.toFixed(2)} ms per slice`);
    assert.deepEqual(batches.map((b) => b.count), [16, 16, 6]);
    const indices = batches.flatMap((b) => b.sliceIndices);
    assert.deepEqual(indices, selectSlices(volume, 5));
    assert.deepEqual(indices.slice(0, 6), [0, 3, 6, 9, 12, 16]);
    const zMm = batches.flatMap((b) => b.zMm);
    for (let n = 1; n < zMm.length; n++) assertClose(zMm[n] - zMm[n - 1], 5, 1.6, `z step at ${n}`);
    const planeValues = 224 * 224;
    for (const b of batches) {
      const { min, max } = minMax(b.data);
      assert.ok(min >= 0 && max <= 1, `values in [0, 1]: ${min} … ${max}`);
      for (let n = 0; n < b.count; n++) {
        // Padding rows are 0 in every channel; the body centre in the abdomen window is soft tissue (not 0, not 1).
        for (let c = 0; c < 3; c++) assert.equal(b.data[(n * 3 + c) * planeValues + 0 * 224 + 112], 0);
        const centre = b.data[n * 3 * planeValues + 112 * 224 + 112];
        assert.ok(centre > 0 && centre < 1, `slice ${b.sliceIndices[n]}: centre ${centre}`);
      }
    }
  });
});
