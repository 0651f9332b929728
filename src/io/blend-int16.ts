/**
 * The blend at the heart of DICOM resampling, out[p] = floor(a[p]·w0 + b[p]·w + 0.5) over int16 voxels,
 * as a small WebAssembly SIMD kernel. Written by hand (the bytes below, with their text form beside
 * them) because it must be fast: on the 2-core machine V8's scalar loop costs 3–4 ns a voxel, and the
 * tilted, unevenly spaced GE head blends 17 million voxels a read (each slice sheared, then the slices
 * interpolated), which kept it below half of pydicom's speed. The kernel does the same float64 arithmetic
 * in the same order, two lanes at a time, so its output is bit-identical to the scalar loop
 * (`blendInt16Scalar`, the fallback where WebAssembly SIMD is missing, and the reference in the tests).
 */

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

const SIMD = 0xfd;
const op = {
  block: 0x02, loop: 0x03, end: 0x0b, br: 0x0c, brIf: 0x0d,
  localGet: 0x20, localSet: 0x21, localTee: 0x22,
  i32Load16S: 0x2e, i32Store16: 0x3b, i32Const: 0x41, f64Const: 0x44,
  i32GeU: 0x4f, i32Add: 0x6a, i32And: 0x71, i32Shl: 0x74,
  f64Floor: 0x9c, f64Add: 0xa0, f64Mul: 0xa2, f64ConvertI32S: 0xb7,
} as const;
const simd = {
  load: [0x00], store: [0x0b], shuffle: [0x0d], f64x2Splat: [0x14], f64x2Floor: [0x75],
  narrowI32x4S: [0x85, 0x01], extendLowI16x8S: [0xa7, 0x01], extendHighI16x8S: [0xa8, 0x01],
  f64x2Add: [0xf0, 0x01], f64x2Mul: [0xf2, 0x01], truncSatF64x2SZero: [0xfc, 0x01], convertLowI32x4S: [0xfe, 0x01],
} as const;

const A = 0, B = 1, OUT = 2, COUNT = 3, W0 = 4, W = 5, I = 6, END = 7;
const VW0 = 8, VW = 9, HALF = 10, VA = 11, VB = 12, X = 13, Y = 14, LOW = 15;
const V128_LOCALS = 8;

function leb(value: number): number[] {
  const bytes: number[] = [];
  let rest = value >>> 0;
  do {
    const byte = rest & 0x7f;
    rest >>>= 7;
    bytes.push(rest !== 0 ? byte | 0x80 : byte);
  } while (rest !== 0);
  return bytes;
}

const get = (local: number): number[] => [op.localGet, local];
const set = (local: number): number[] => [op.localSet, local];
const v = (code: readonly number[]): number[] => [SIMD, ...code];
const f64 = (value: number): number[] => [op.f64Const, ...new Uint8Array(new Float64Array([value]).buffer)];
/** v128 memarg: alignment hint 16 bytes (unaligned addresses still work), offset 0. */
const V128_MEMARG = [0x04, 0x00];
const I16_MEMARG = [0x01, 0x00];
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
  const loopWhileBelowEnd = (inner: number[], stepBytes: number): number[] => [
    op.block, 0x40, op.loop, 0x40,
    ...get(I), ...get(END), op.i32GeU, op.brIf, 1,
    ...inner,
    ...get(I), op.i32Const, stepBytes, op.i32Add, ...set(I),
    op.br, 0, op.end, op.end,
  ];
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
    op.f64Add, ...f64(0.5), op.f64Add, op.f64Floor, 0xfc, 0x02, // i32.trunc_sat_f64_s
    op.i32Store16, ...I16_MEMARG,
  ];
  return [
    ...get(W0), ...v(simd.f64x2Splat), ...set(VW0),
    ...get(W), ...v(simd.f64x2Splat), ...set(VW),
    ...f64(0.5), ...v(simd.f64x2Splat), ...set(HALF),
    // END = (count & ~7) · 2 bytes: the vector loop; then END = count · 2 for the tail.
    ...get(COUNT), op.i32Const, 0x78, op.i32And, op.i32Const, 1, op.i32Shl, ...set(END),
    ...loopWhileBelowEnd(vector, 16),
    ...get(COUNT), op.i32Const, 1, op.i32Shl, ...set(END),
    ...loopWhileBelowEnd(scalar, 2),
    op.end,
  ];
}

function section(id: number, contents: number[]): number[] {
  return [id, ...leb(contents.length), ...contents];
}

const name = (text: string): number[] => [...leb(text.length), ...new TextEncoder().encode(text)];

function moduleBytes(): Uint8Array {
  const I32T = 0x7f, F64T = 0x7c, V128T = 0x7b;
  const body = [...leb(2), 2, I32T, V128_LOCALS, V128T, ...blendBody()];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 6, I32T, I32T, I32T, I32T, F64T, F64T, 0]),
    ...section(3, [1, 0]),
    ...section(5, [1, 0x00, 1]), // one memory, 1 page to start, growable
    ...section(7, [2, ...name('blend'), 0x00, 0, ...name('memory'), 0x02, 0]),
    ...section(10, [1, ...leb(body.length), ...body]),
  ]);
}

/** The few WebAssembly globals used here (the project's TypeScript lib has no DOM types to name them). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmGlobals {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
}

interface Kernel {
  memory: WasmMemory;
  blend: (a: number, b: number, out: number, count: number, w0: number, w: number) => void;
}

let kernel: Kernel | null | undefined;

/** The kernel, or null where this runtime has no WebAssembly SIMD (the scalar loop is used then). */
function loadKernel(): Kernel | null {
  if (kernel !== undefined) return kernel;
  try {
    const wasm = (globalThis as unknown as { WebAssembly?: WasmGlobals }).WebAssembly;
    if (!wasm) return (kernel = null);
    const instance = new wasm.Instance(new wasm.Module(moduleBytes()));
    kernel = { memory: instance.exports.memory as WasmMemory, blend: instance.exports.blend as Kernel['blend'] };
  } catch {
    kernel = null;
  }
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
  const needed = slots * slotBytes;
  const have = k.memory.buffer.byteLength;
  if (needed > have) k.memory.grow(Math.ceil((needed - have) / 65536));
  const buffer = k.memory.buffer;
  const views = Array.from({ length: slots }, (_, s) => new Int16Array(buffer, s * slotBytes, perSlice));
  return {
    slots: views,
    blend: (a, aAt, b, bAt, out, outAt, count, w) => k.blend(a * slotBytes + aAt * 2, b * slotBytes + bAt * 2, out * slotBytes + outAt * 2, count, 1 - w, w),
  };
}
