/**
 * A minimal WebAssembly encoder for the project's few hand-written SIMD kernels (`io/blend-int16.ts`,
 * `preprocess/window-resize-simd.ts`, `preprocess/body-runs-simd.ts`): opcodes by name, LEB128, sections,
 * and instantiation that answers null where the runtime lacks WebAssembly SIMD, so callers keep their
 * scalar loop as fallback.
 * Hand-encoded because no registry package turns a few lines of WebAssembly text into bytes without
 * megabytes of toolchain at run time, and a checked-in .wasm blob could not be read in review.
 */

export const I32 = 0x7f;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;

export const op = {
  block: 0x02, loop: 0x03, if: 0x04, else: 0x05, end: 0x0b, br: 0x0c, brIf: 0x0d,
  localGet: 0x20, localSet: 0x21, localTee: 0x22,
  i32Load: 0x28, f32Load: 0x2a, i32Load16S: 0x2e, f32Store: 0x38, i32Store16: 0x3b,
  i32Const: 0x41, f64Const: 0x44,
  i32Store: 0x36,
  i32Eqz: 0x45, i32Eq: 0x46, i32Ne: 0x47, i32GtS: 0x4a, i32LtU: 0x49, i32GeU: 0x4f, i32Add: 0x6a, i32Sub: 0x6b, i32Mul: 0x6c, i32And: 0x71, i32Or: 0x72, i32Shl: 0x74, i32ShrU: 0x76,
  f64Floor: 0x9c, f64Add: 0xa0, f64Mul: 0xa2, f32ConvertI32S: 0xb2, f64ConvertI32S: 0xb7,
} as const;

/** SIMD opcodes (after the 0xfd prefix), LEB128-encoded. */
export const simd = {
  load: [0x00], store: [0x0b], const: [0x0c], shuffle: [0x0d], i16x8Splat: [0x10], f32x4Splat: [0x13], f64x2Splat: [0x14],
  i16x8GtS: [0x31], i8x16Bitmask: [0x64], i8x16NarrowI16x8S: [0x65],
  f32x4ExtractLane: [0x1f], f64x2Floor: [0x75],
  narrowI32x4S: [0x85, 0x01], extendLowI16x8S: [0xa7, 0x01], extendHighI16x8S: [0xa8, 0x01],
  f32x4Add: [0xe4, 0x01], f32x4Sub: [0xe5, 0x01], f32x4Mul: [0xe6, 0x01], f32x4Min: [0xe8, 0x01], f32x4Max: [0xe9, 0x01], f32x4Pmin: [0xea, 0x01], f32x4Pmax: [0xeb, 0x01],
  f64x2Add: [0xf0, 0x01], f64x2Mul: [0xf2, 0x01], truncSatF64x2SZero: [0xfc, 0x01], convertLowI32x4S: [0xfe, 0x01],
} as const;

/** i32.trunc_sat_f64_s (0xfc prefix). */
export const I32_TRUNC_SAT_F64_S = [0xfc, 0x02];
/** Memory immediates: alignment hint (log2 bytes; unaligned addresses still work) and offset 0. */
export const V128_MEMARG = [0x04, 0x00];
export const I32_MEMARG = [0x02, 0x00];
export const F32_MEMARG = [0x02, 0x00];
export const I16_MEMARG = [0x01, 0x00];

export function leb(value: number): number[] {
  const bytes: number[] = [];
  let rest = value >>> 0;
  do {
    const byte = rest & 0x7f;
    rest >>>= 7;
    bytes.push(rest !== 0 ? byte | 0x80 : byte);
  } while (rest !== 0);
  return bytes;
}

export function sleb(value: number): number[] {
  const bytes: number[] = [];
  let rest = value | 0;
  for (;;) {
    const byte = rest & 0x7f;
    rest >>= 7;
    if ((rest === 0 && (byte & 0x40) === 0) || (rest === -1 && (byte & 0x40) !== 0)) return [...bytes, byte];
    bytes.push(byte | 0x80);
  }
}

export const get = (local: number): number[] => [op.localGet, local];
export const set = (local: number): number[] => [op.localSet, local];
export const tee = (local: number): number[] => [op.localTee, local];
export const i32 = (value: number): number[] => [op.i32Const, ...sleb(value)];
export const v = (code: readonly number[]): number[] => [0xfd, ...code];
export const f64 = (value: number): number[] => [op.f64Const, ...new Uint8Array(new Float64Array([value]).buffer)];
export const f32x4 = (lanes: readonly [number, number, number, number]): number[] => [...v(simd.const), ...new Uint8Array(new Float32Array(lanes).buffer)];

/** `block { loop { if (!(condition)) break; …body; continue } }`: `exit` is the code that leaves
 * the loop when it leaves 1 on the stack. */
export function whileLoop(exit: number[], body: number[]): number[] {
  return [op.block, 0x40, op.loop, 0x40, ...exit, op.brIf, 1, ...body, op.br, 0, op.end, op.end];
}

export interface WasmFunction {
  name: string;
  params: number[];
  /** Locals after the parameters, in order, by type. */
  locals: number[];
  /** The body's instructions, without the final `end`. */
  body: number[];
}

function section(id: number, contents: number[]): number[] {
  return [id, ...leb(contents.length), ...contents];
}

const nameBytes = (text: string): number[] => [...leb(text.length), ...new TextEncoder().encode(text)];

/** A module with one growable memory (exported as "memory") and the given exported functions. */
export function moduleBytes(functions: readonly WasmFunction[]): Uint8Array {
  const types = functions.flatMap((f) => [0x60, ...leb(f.params.length), ...f.params, 0]);
  const exports = [
    ...leb(functions.length + 1),
    ...functions.flatMap((f, n) => [...nameBytes(f.name), 0x00, ...leb(n)]),
    ...nameBytes('memory'), 0x02, 0,
  ];
  const bodies = functions.map((f) => {
    const runs: number[][] = [];
    for (const type of f.locals) {
      const last = runs[runs.length - 1];
      if (last && last[1] === type) last[0]++;
      else runs.push([1, type]);
    }
    const body = [...leb(runs.length), ...runs.flatMap(([count, type]) => [...leb(count), type]), ...f.body, op.end];
    return [...leb(body.length), ...body];
  });
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [...leb(functions.length), ...types]),
    ...section(3, [...leb(functions.length), ...functions.flatMap((_, n) => leb(n))]),
    ...section(5, [1, 0x00, 1]), // one memory, 1 page to start, growable
    ...section(7, exports),
    ...section(10, [...leb(functions.length), ...bodies.flat()]),
  ]);
}

/** The few WebAssembly globals used here (the project's TypeScript lib has no DOM types to name them). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmGlobals {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
}

export interface WasmInstance {
  memory: WasmMemory;
  exports: Record<string, unknown>;
}

/** The instantiated module, or null where this runtime has no WebAssembly or rejects SIMD. */
export function instantiate(bytes: Uint8Array): WasmInstance | null {
  try {
    const wasm = (globalThis as unknown as { WebAssembly?: WasmGlobals }).WebAssembly;
    if (!wasm) return null;
    const instance = new wasm.Instance(new wasm.Module(bytes));
    return { memory: instance.exports.memory as WasmMemory, exports: instance.exports };
  } catch {
    return null;
  }
}

/** Grows `memory` to at least `bytes`; returns its buffer (a new one when it grew). */
export function ensureMemory(memory: WasmMemory, bytes: number): ArrayBuffer {
  const have = memory.buffer.byteLength;
  if (bytes > have) memory.grow(Math.ceil((bytes - have) / 65536));
  return memory.buffer;
}
