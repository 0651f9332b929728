/**
 * The blend at the heart of DICOM resampling, out[p] = floor(a[p]·w0 + b[p]·w + 0.5) over int16 voxels,
 * as a small WebAssembly SIMD kernel. Written by hand (the bytes below, with their text form beside
 * them) because it must be fast: on the 2-core machine V8's scalar loop costs 3–4 ns a voxel, and the
 * tilted, unevenly spaced GE head blends 17 million voxels a read (each slice sheared, then the slices
 * interpolated), which kept it below half of pydicom's speed. The kernel does the same float64 arithmetic
 * in the same order, two lanes at a time, so its output is bit-identical to the scalar loop
 * (`blendInt16Scalar`, the fallback where WebAssembly SIMD is missing, and the reference in the tests).
 */
import { F64, I16_MEMARG, I32, I32_TRUNC_SAT_F64_S, V128, V128_MEMARG, ensureMemory, f64, get, i32, instantiate, moduleBytes, op, set, simd, v, whileLoop, type WasmMemory } from './wasm-module.js';

/** A scratch area in the kernel's memory: `slots` int16 slices of `perSlice` voxels each. */
export interface BlendArena {
  /** Views of the kernel's memory, one per slot; valid until the next `blendArena` call. */
  slots: Int16Array[];
  /** Blends `count` voxels of slots[a] from `aAt` and slots[b] from `bAt` into slots[out] from `outAt`. */
  blend(a: number, aAt: number, b: number, bAt: number, out: number, outAt: number, count: number, w: number): void;
}

export function blendInt16Scalar(a: Int16Array, aAt: number, b: Int16Array, bAt: number, out: Int16Array, outAt: number, count: number, w: number): void {
  const w0 = 1 - w;
  for (let p = 0; p < count; p++) out[outAt + p] = Math.floor(a[aAt + p] * w0 + b[bAt + p] * w + 0.5);
}

// --- The module, encoded by hand -----------------------------------------------------------------------
// (func (export "blend") (param $a i32) (param $b i32) (param $out i32) (param $count i32) (param $w0 f64)
//       (param $w f64)  ;; byte addresses, voxel count
//   8 voxels an iteration: two i16x8 loads, each half widened to i32x4, each pair of lanes converted to
//   f64x2; (a·w0 + b·w) + 0.5, f64x2.floor, i32x4.trunc_sat_f64x2_s_zero; the pairs joined by shuffles and
//   narrowed back to i16x8 (the values are inside int16, so saturation never applies). Then a scalar
//   tail for count mod 8, same arithmetic.)
// (export "memory" (memory 1))  ;; grown by blendArena

const A = 0, B = 1, OUT = 2, COUNT = 3, W0 = 4, W = 5, I = 6, END = 7;
const VW0 = 8, VW = 9, HALF = 10, VA = 11, VB = 12, X = 13, Y = 14, LOW = 15;
/** i8x16.shuffle picking int32 lanes 2–3 of the (duplicated) operand into lanes 0–1. */
const upperPair = [...v(simd.shuffle), 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];
/** i8x16.shuffle joining int32 lanes 0–1 of the first operand and 0–1 of the second. */
const joinPairs = [...v(simd.shuffle), 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];

/** Two voxels from int32 lanes 0–1 (or 2–3 when `upper`) of X and Y → int32 lanes 0–1 on the stack:
 * (f64(x)·w0 + f64(y)·w) + 0.5, floored, truncated. */
function pair(upper: boolean): number[] {
  const lanes = (local: number, weight: number): number[] => [
    ...get(local), ...(upper ? [...get(local), ...upperPair] : []), ...v(simd.convertLowI32x4S), ...get(weight), ...v(simd.f64x2Mul),
  ];
  return [...lanes(X, VW0), ...lanes(Y, VW), ...v(simd.f64x2Add), ...get(HALF), ...v(simd.f64x2Add), ...v(simd.f64x2Floor), ...v(simd.truncSatF64x2SZero)];
}

/** Four voxels: X, Y ← one half of VA, VB widened to int32; → int32x4 on the stack. */
function quad(extend: readonly number[]): number[] {
  return [...get(VA), ...v(extend), ...set(X), ...get(VB), ...v(extend), ...set(Y), ...pair(false), ...pair(true), ...joinPairs];
}

function blendBody(): number[] {
  const addressOf = (base: number): number[] => [...get(base), ...get(I), op.i32Add];
  const stepping = (inner: number[], stepBytes: number): number[] =>
    whileLoop([...get(I), ...get(END), op.i32GeU], [...inner, ...get(I), ...i32(stepBytes), op.i32Add, ...set(I)]);
  const vector = [
    ...addressOf(A), ...v(simd.load), ...V128_MEMARG, ...set(VA),
    ...addressOf(B), ...v(simd.load), ...V128_MEMARG, ...set(VB),
    ...quad(simd.extendLowI16x8S), ...set(LOW),
    ...addressOf(OUT), ...get(LOW), ...quad(simd.extendHighI16x8S), ...v(simd.narrowI32x4S), ...v(simd.store), ...V128_MEMARG,
  ];
  const scalar = [
    ...addressOf(OUT),
    ...addressOf(A), op.i32Load16S, ...I16_MEMARG, op.f64ConvertI32S, ...get(W0), op.f64Mul,
    ...addressOf(B), op.i32Load16S, ...I16_MEMARG, op.f64ConvertI32S, ...get(W), op.f64Mul,
    op.f64Add, ...f64(0.5), op.f64Add, op.f64Floor, ...I32_TRUNC_SAT_F64_S,
    op.i32Store16, ...I16_MEMARG,
  ];
  return [
    ...get(W0), ...v(simd.f64x2Splat), ...set(VW0),
    ...get(W), ...v(simd.f64x2Splat), ...set(VW),
    ...f64(0.5), ...v(simd.f64x2Splat), ...set(HALF),
    // END = (count & ~7) · 2 bytes: the vector loop; then END = count · 2 for the tail.
    ...get(COUNT), ...i32(-8), op.i32And, ...i32(1), op.i32Shl, ...set(END),
    ...stepping(vector, 16),
    ...get(COUNT), ...i32(1), op.i32Shl, ...set(END),
    ...stepping(scalar, 2),
  ];
}

const BLEND = {
  name: 'blend',
  params: [I32, I32, I32, I32, F64, F64],
  locals: [I32, I32, V128, V128, V128, V128, V128, V128, V128, V128],
  body: blendBody(),
};

interface Kernel {
  memory: WasmMemory;
  blend: (a: number, b: number, out: number, count: number, w0: number, w: number) => void;
}

let kernel: Kernel | null | undefined;

/** The kernel, or null where this runtime has no WebAssembly SIMD (the scalar loop is used then). */
function loadKernel(): Kernel | null {
  if (kernel !== undefined) return kernel;
  const instance = instantiate(moduleBytes([BLEND]));
  kernel = instance && { memory: instance.memory, blend: instance.exports.blend as Kernel['blend'] };
  return kernel;
}

/** Exposed for the tests: whether blends run in the SIMD kernel here. */
export function blendKernelAvailable(): boolean {
  return loadKernel() !== null;
}

/**
 * `slots` slices of `perSlice` int16 voxels in the kernel's memory (grown once to the largest series
 * read, a few MB), or plain arrays with the scalar blend where the kernel is unavailable or `scalar`.
 */
export function blendArena(slots: number, perSlice: number, scalar = false): BlendArena {
  const k = scalar ? null : loadKernel();
  if (!k) {
    const arrays = Array.from({ length: slots }, () => new Int16Array(perSlice));
    return {
      slots: arrays,
      blend: (a, aAt, b, bAt, out, outAt, count, w) => blendInt16Scalar(arrays[a], aAt, arrays[b], bAt, arrays[out], outAt, count, w),
    };
  }
  const slotBytes = Math.ceil((perSlice * 2) / 16) * 16;
  const buffer = ensureMemory(k.memory, slots * slotBytes);
  const views = Array.from({ length: slots }, (_, s) => new Int16Array(buffer, s * slotBytes, perSlice));
  return {
    slots: views,
    blend: (a, aAt, b, bAt, out, outAt, count, w) => k.blend(a * slotBytes + aAt * 2, b * slotBytes + bAt * 2, out * slotBytes + outAt * 2, count, 1 - w, w),
  };
}
