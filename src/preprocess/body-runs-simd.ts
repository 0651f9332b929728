/**
 * The threshold scan of the body crop for int16 slices as a hand-encoded WebAssembly SIMD kernel: 32
 * voxels are compared with the threshold at a time and a row's runs are read off the comparisons' bitmask,
 * so the long stretches of air and of body cost a few instructions per 32 voxels. Hand-written because the
 * scan reads every voxel of up to 64 slices per volume and, as V8's scalar loop (body-crop.ts
 * `rowRunsInt16`, still the fallback and the tests' reference), took about 45 ms a 512 × 512 volume:
 * a third of a millisecond per embedded slice of a 119-slice CT, 4 % of the encoder's time (the whole
 * body crop now takes about 19 ms there). The runs are exactly the scalar loop's: the comparison is the
 * same integer one (see `int16Threshold`).
 */
import { I16_MEMARG, I32, I32_MEMARG, V128, V128_MEMARG, ensureMemory, get, i32, instantiate, moduleBytes, op, set, simd, v, whileLoop, type WasmMemory } from '../io/wasm-module.js';

// scan(src, widthPx, heightPx, threshold, starts, ends, rowEnds): byte addresses and sizes; then locals.
const S = { src: 0, width: 1, height: 2, thr: 3, starts: 4, ends: 5, rowEnds: 6, j: 7, i: 8, row: 9, count: 10, inRun: 11, mask: 12, b: 13, bit: 14, vecEnd: 15, vthr: 16 };

const add = (local: number, by: number[]): number[] => [...get(local), ...by, op.i32Add, ...set(local)];
const storeAt = (array: number, index: number[], value: number[]): number[] => [...get(array), ...index, ...i32(2), op.i32Shl, op.i32Add, ...value, op.i32Store, ...I32_MEMARG];
const ifThen = (condition: number[], then: number[], otherwise?: number[]): number[] => [
  ...condition, op.if, 0x40, ...then, ...(otherwise ? [op.else, ...otherwise] : []), op.end,
];

/** When `bit` (0/1) differs from inRun, the run starts or ends at column `at`. */
function transition(at: number[]): number[] {
  return ifThen(
    [...get(S.bit), ...get(S.inRun), op.i32Ne],
    [
      ...ifThen(get(S.bit), storeAt(S.starts, get(S.count), at), [...storeAt(S.ends, get(S.count), at), ...add(S.count, i32(1))]),
      ...get(S.bit), ...set(S.inRun),
    ],
  );
}

function scanBody(): number[] {
  const column = (offset: number[]): number[] => [...get(S.i), ...offset, op.i32Add];
  // 32 voxels: each comparison lane is all ones where voxel > threshold; two i16x8 results narrow to one
  // i8x16, whose bitmask gives 16 bits, so one i32 holds the 32 voxels' bits. A chunk that is all air
  // outside a run, or all body inside one, has no transition (mask = −inRun) and is skipped whole.
  const compare = (offsetBytes: number): number[] => [
    ...get(S.row), ...get(S.i), ...i32(1), op.i32Shl, op.i32Add, ...i32(offsetBytes), op.i32Add, ...v(simd.load), ...V128_MEMARG,
    ...get(S.vthr), ...v(simd.i16x8GtS),
  ];
  const sixteen = (offsetBytes: number): number[] => [...compare(offsetBytes), ...compare(offsetBytes + 16), ...v(simd.i8x16NarrowI16x8S), ...v(simd.i8x16Bitmask)];
  const chunk = [
    ...sixteen(0), ...sixteen(32), ...i32(16), op.i32Shl, op.i32Or, ...set(S.mask),
    ...ifThen([...get(S.mask), ...i32(0), ...get(S.inRun), op.i32Sub, op.i32Ne], [
      ...i32(0), ...set(S.b),
      ...whileLoop([...get(S.b), ...i32(32), op.i32GeU], [
        ...get(S.mask), ...get(S.b), op.i32ShrU, ...i32(1), op.i32And, ...set(S.bit),
        ...transition(column(get(S.b))),
        ...add(S.b, i32(1)),
      ]),
    ]),
    ...add(S.i, i32(32)),
  ];
  const tail = [
    ...get(S.row), ...get(S.i), ...i32(1), op.i32Shl, op.i32Add, op.i32Load16S, ...I16_MEMARG, ...get(S.thr), op.i32GtS, ...set(S.bit),
    ...transition(get(S.i)),
    ...add(S.i, i32(1)),
  ];
  const row = [
    ...i32(0), ...set(S.i), ...i32(0), ...set(S.inRun),
    ...whileLoop([...get(S.i), ...get(S.vecEnd), op.i32GeU], chunk),
    ...whileLoop([...get(S.i), ...get(S.width), op.i32GeU], tail),
    ...ifThen(get(S.inRun), [...storeAt(S.ends, get(S.count), get(S.width)), ...add(S.count, i32(1))]),
    ...storeAt(S.rowEnds, get(S.j), get(S.count)),
    ...add(S.row, [...get(S.width), ...i32(1), op.i32Shl]),
    ...add(S.j, i32(1)),
  ];
  return [
    ...get(S.thr), ...v(simd.i16x8Splat), ...set(S.vthr),
    ...get(S.width), ...i32(-32), op.i32And, ...set(S.vecEnd),
    ...get(S.src), ...set(S.row),
    ...whileLoop([...get(S.j), ...get(S.height), op.i32GeU], row),
  ];
}

interface Kernel {
  memory: WasmMemory;
  scan: (src: number, widthPx: number, heightPx: number, threshold: number, starts: number, ends: number, rowEnds: number) => void;
}

let kernel: Kernel | null | undefined;

function loadKernel(): Kernel | null {
  if (kernel === undefined) {
    const instance = instantiate(moduleBytes([{ name: 'scan', params: Array(7).fill(I32), locals: [...Array(9).fill(I32), V128], body: scanBody() }]));
    kernel = instance && { memory: instance.memory, scan: instance.exports.scan as Kernel['scan'] };
  }
  return kernel;
}

/**
 * The integer t with (v > thresholdHu) ⟺ (v > t) for every int16 v: floor(thresholdHu). Undefined where
 * no int16 t does that (NaN, or a threshold outside the int16 range); the scalar loop serves those.
 */
export function int16Threshold(thresholdHu: number): number | undefined {
  const t = Math.floor(thresholdHu);
  return Number.isFinite(t) && t >= -32768 && t <= 32767 ? t : undefined;
}

/** Runs of one int16 slice above a threshold, row by row (what body-crop.ts joins into components). */
export interface RowRuns {
  /** Column of each run's first voxel, in raster order. */
  starts: Int32Array;
  /** Column after each run's last voxel. */
  ends: Int32Array;
  /** rowEnds[j]: runs in rows 0 … j; row j's runs are rowEnds[j − 1] … rowEnds[j] − 1. */
  rowEnds: Int32Array;
}

/**
 * A scanner for slices of widthPx × heightPx, or null where WebAssembly SIMD is missing. Its result views
 * the kernel's memory and is valid until the next scan by any scanner.
 */
export function int16RowRunScanner(widthPx: number, heightPx: number): ((data: Int16Array, start: number, threshold: number) => RowRuns) | null {
  const k = loadKernel();
  if (!k) return null;
  const capacity = heightPx * (Math.ceil(widthPx / 2) + 1);
  const align = (bytes: number): number => Math.ceil(bytes / 16) * 16;
  const srcAt = 0;
  const startsAt = align(2 * widthPx * heightPx);
  const endsAt = startsAt + align(4 * capacity);
  const rowEndsAt = endsAt + align(4 * capacity);
  const bytes = rowEndsAt + 4 * heightPx;
  return (data, start, threshold) => {
    // Views made per scan: another scanner may have grown (and so moved) the kernel's memory since.
    const buffer = ensureMemory(k.memory, bytes);
    new Int16Array(buffer, srcAt, widthPx * heightPx).set(data.subarray(start, start + widthPx * heightPx));
    k.scan(srcAt, widthPx, heightPx, threshold, startsAt, endsAt, rowEndsAt);
    return { starts: new Int32Array(buffer, startsAt, capacity), ends: new Int32Array(buffer, endsAt, capacity), rowEnds: new Int32Array(buffer, rowEndsAt, heightPx) };
  };
}
