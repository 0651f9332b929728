/**
 * Windowing and resizing of int16 slices in a hand-encoded WebAssembly SIMD kernel: the four channels of a
 * voxel (one per HU window, up to 4) ride in the four float32 lanes of one vector, so a voxel is windowed
 * and weighted for every channel at once. Hand-written because this loop runs for every voxel of every
 * embedded slice and, in V8's scalar form (`window-resize.ts`), cost more per slice than half of the
 * encoder's inference on 2 cores, which kept end-to-end embedding below 0.85 of inference only.
 *
 * Same filters as the scalar path (the plan's area/bilinear weight tables, windowing before resampling),
 * computed in float32 instead of float64 sums: values differ from the scalar path by a few float32 ulps
 * (pinned embeddings stay within cosine 0.9999; the tests bound the difference). Sums are clamped to 1, as
 * the float64 path guarantees by construction.
 *
 * Pass 1, per crop row and output column: Σ_t w_t · clamp((hu_t − min) · perHu, 0, 1) as one f32x4, into
 * a row buffer [crop row][output column][4]; two crop rows at a time (hpass2, 11 % faster on IRCADb-17),
 * the last of an odd count alone. Pass 2, per output row and column: Σ_t w_t · rows[...] over
 * the crop rows the y weights name, each lane stored into its channel's plane (CHW).
 */
import { F32_MEMARG, I16_MEMARG, I32, I32_MEMARG, V128, V128_MEMARG, ensureMemory, f32x4, get, i32, instantiate, moduleBytes, op, set, simd, v, whileLoop, type WasmInstance } from '../io/wasm-module.js';
import type { ResampleAxis, ResizePlan } from './resize.js';
import type { HuWindow } from './spec.js';
import { windowMinHu } from './windows.js';

const increment = (local: number, by: number | number[]): number[] => [...get(local), ...(typeof by === 'number' ? i32(by) : by), op.i32Add, ...set(local)];
const below = (local: number, limit: number): number[] => [...get(local), ...get(limit), op.i32GeU];

// hpass(src, srcStride, rows, xs, xc, xw, tapBytes, dstX, window, out): params 0–9, then locals.
const H = { src: 0, srcStride: 1, rows: 2, xs: 3, xc: 4, xw: 5, tapBytes: 6, dstX: 7, window: 8, out: 9, r: 10, o: 11, t: 12, n: 13, from: 14, wp: 15, rowSrc: 16, acc: 17, vmin: 18, vper: 19, zero: 20, one: 21 };

function hpassBody(): number[] {
  const tap = [
    // acc += clamp((f32(hu) − min) · perHu, 0, 1) · w
    // (pmax/pmin, not max/min: they compile to one instruction each, and no NaN can occur here)
    ...get(H.acc),
    ...get(H.one), ...get(H.zero),
    ...get(H.from), op.i32Load16S, ...I16_MEMARG, op.f32ConvertI32S, ...v(simd.f32x4Splat),
    ...get(H.vmin), ...v(simd.f32x4Sub), ...get(H.vper), ...v(simd.f32x4Mul),
    ...v(simd.f32x4Pmax), ...v(simd.f32x4Pmin),
    ...get(H.wp), op.f32Load, ...F32_MEMARG, ...v(simd.f32x4Splat), ...v(simd.f32x4Mul),
    ...v(simd.f32x4Add), ...set(H.acc),
    ...increment(H.from, 2), ...increment(H.wp, 4), ...increment(H.t, 1),
  ];
  const column = [
    // from = rowSrc + 2·xs[o]; n = xc[o]; wp = xw + o·tapBytes
    ...get(H.rowSrc), ...get(H.xs), ...get(H.o), ...i32(2), op.i32Shl, op.i32Add, op.i32Load, ...I32_MEMARG, ...i32(1), op.i32Shl, op.i32Add, ...set(H.from),
    ...get(H.xc), ...get(H.o), ...i32(2), op.i32Shl, op.i32Add, op.i32Load, ...I32_MEMARG, ...set(H.n),
    ...get(H.xw), ...get(H.o), ...get(H.tapBytes), op.i32Mul, op.i32Add, ...set(H.wp),
    ...get(H.zero), ...set(H.acc), ...i32(0), ...set(H.t),
    ...whileLoop(below(H.t, H.n), tap),
    ...get(H.out), ...get(H.acc), ...v(simd.store), ...V128_MEMARG,
    ...increment(H.out, 16), ...increment(H.o, 1),
  ];
  const row = [
    ...i32(0), ...set(H.o),
    ...whileLoop(below(H.o, H.dstX), column),
    ...increment(H.rowSrc, get(H.srcStride)), ...increment(H.r, 1),
  ];
  return [
    ...get(H.window), ...v(simd.load), ...V128_MEMARG, ...set(H.vmin),
    ...get(H.window), ...v(simd.load), 0x04, 0x10, ...set(H.vper), // offset 16: the perHu lanes
    ...f32x4([0, 0, 0, 0]), ...set(H.zero), ...f32x4([1, 1, 1, 1]), ...set(H.one),
    ...get(H.src), ...set(H.rowSrc),
    ...whileLoop(below(H.r, H.rows), row),
  ];
}

// hpass2: hpass over two crop rows at a time (rows even), one weight load and one loop step serving both:
// the same arithmetic per voxel in the same order, so its rows are bit-identical to hpass's.
const H2 = { ...H, acc2: 22, weight: 23, rowBytes: 24 };

function hpass2Body(): number[] {
  const windowed = (address: number[]): number[] => [
    ...get(H.one), ...get(H.zero),
    ...address, op.i32Load16S, ...I16_MEMARG, op.f32ConvertI32S, ...v(simd.f32x4Splat),
    ...get(H.vmin), ...v(simd.f32x4Sub), ...get(H.vper), ...v(simd.f32x4Mul),
    ...v(simd.f32x4Pmax), ...v(simd.f32x4Pmin),
    ...get(H2.weight), ...v(simd.f32x4Mul),
  ];
  const tap = [
    ...get(H.wp), op.f32Load, ...F32_MEMARG, ...v(simd.f32x4Splat), ...set(H2.weight),
    ...get(H.acc), ...windowed(get(H.from)), ...v(simd.f32x4Add), ...set(H.acc),
    ...get(H2.acc2), ...windowed([...get(H.from), ...get(H.srcStride), op.i32Add]), ...v(simd.f32x4Add), ...set(H2.acc2),
    ...increment(H.from, 2), ...increment(H.wp, 4), ...increment(H.t, 1),
  ];
  const column = [
    ...get(H.rowSrc), ...get(H.xs), ...get(H.o), ...i32(2), op.i32Shl, op.i32Add, op.i32Load, ...I32_MEMARG, ...i32(1), op.i32Shl, op.i32Add, ...set(H.from),
    ...get(H.xc), ...get(H.o), ...i32(2), op.i32Shl, op.i32Add, op.i32Load, ...I32_MEMARG, ...set(H.n),
    ...get(H.xw), ...get(H.o), ...get(H.tapBytes), op.i32Mul, op.i32Add, ...set(H.wp),
    ...get(H.zero), ...set(H.acc), ...get(H.zero), ...set(H2.acc2), ...i32(0), ...set(H.t),
    ...whileLoop(below(H.t, H.n), tap),
    ...get(H.out), ...get(H.acc), ...v(simd.store), ...V128_MEMARG,
    ...get(H.out), ...get(H2.rowBytes), op.i32Add, ...get(H2.acc2), ...v(simd.store), ...V128_MEMARG,
    ...increment(H.out, 16), ...increment(H.o, 1),
  ];
  const rowPair = [
    ...i32(0), ...set(H.o),
    ...whileLoop(below(H.o, H.dstX), column),
    ...increment(H.out, get(H2.rowBytes)),
    ...increment(H.rowSrc, [...get(H.srcStride), ...i32(1), op.i32Shl]), ...increment(H.r, 2),
  ];
  return [
    ...get(H.window), ...v(simd.load), ...V128_MEMARG, ...set(H.vmin),
    ...get(H.window), ...v(simd.load), 0x04, 0x10, ...set(H.vper), // offset 16: the perHu lanes
    ...f32x4([0, 0, 0, 0]), ...set(H.zero), ...f32x4([1, 1, 1, 1]), ...set(H.one),
    ...get(H.dstX), ...i32(4), op.i32Shl, ...set(H2.rowBytes),
    ...get(H.src), ...set(H.rowSrc),
    ...whileLoop(below(H.r, H.rows), rowPair),
  ];
}

// vpass(rows, dstX, ys, yc, yw, tapBytes, dstY, out, planeBytes, outRowBytes): params 0–9, then locals.
const P = { rows: 0, dstX: 1, ys: 2, yc: 3, yw: 4, tapBytes: 5, dstY: 6, out: 7, planeBytes: 8, outRowBytes: 9, oy: 10, ox: 11, t: 12, n: 13, base: 14, p: 15, wp: 16, orow: 17, rowBytes: 18, q: 19, acc: 20, one: 21 };

function vpassBody(channels: number): number[] {
  const tap = [
    ...get(P.acc), ...get(P.p), ...v(simd.load), ...V128_MEMARG,
    ...get(P.wp), op.f32Load, ...F32_MEMARG, ...v(simd.f32x4Splat), ...v(simd.f32x4Mul), ...v(simd.f32x4Add), ...set(P.acc),
    ...increment(P.p, get(P.rowBytes)), ...increment(P.wp, 4), ...increment(P.t, 1),
  ];
  const stores: number[] = [];
  for (let c = 0; c < channels; c++) {
    stores.push(...get(P.q), ...get(P.acc), ...v(simd.f32x4ExtractLane), c, op.f32Store, ...F32_MEMARG);
    if (c + 1 < channels) stores.push(...increment(P.q, get(P.planeBytes)));
  }
  const column = [
    ...get(P.base), ...get(P.ox), ...i32(4), op.i32Shl, op.i32Add, ...set(P.p),
    ...get(P.yw), ...get(P.oy), ...get(P.tapBytes), op.i32Mul, op.i32Add, ...set(P.wp),
    ...f32x4([0, 0, 0, 0]), ...set(P.acc), ...i32(0), ...set(P.t),
    ...whileLoop(below(P.t, P.n), tap),
    ...get(P.one), ...get(P.acc), ...v(simd.f32x4Pmin), ...set(P.acc),
    ...get(P.orow), ...get(P.ox), ...i32(2), op.i32Shl, op.i32Add, ...set(P.q),
    ...stores,
    ...increment(P.ox, 1),
  ];
  const row = [
    // base = rows + ys[oy] · rowBytes; n = yc[oy]
    ...get(P.rows), ...get(P.ys), ...get(P.oy), ...i32(2), op.i32Shl, op.i32Add, op.i32Load, ...I32_MEMARG, ...get(P.rowBytes), op.i32Mul, op.i32Add, ...set(P.base),
    ...get(P.yc), ...get(P.oy), ...i32(2), op.i32Shl, op.i32Add, op.i32Load, ...I32_MEMARG, ...set(P.n),
    ...i32(0), ...set(P.ox),
    ...whileLoop(below(P.ox, P.dstX), column),
    ...increment(P.orow, get(P.outRowBytes)), ...increment(P.oy, 1),
  ];
  return [
    ...get(P.dstX), ...i32(4), op.i32Shl, ...set(P.rowBytes), // bytes of one row-buffer row
    ...f32x4([1, 1, 1, 1]), ...set(P.one),
    ...get(P.out), ...set(P.orow),
    ...whileLoop(below(P.oy, P.dstY), row),
  ];
}

interface Kernel {
  instance: WasmInstance;
  hpass: (...args: number[]) => void;
  hpass2: (...args: number[]) => void;
  vpass: (...args: number[]) => void;
  /** The plan whose tables are in memory now. */
  active?: object;
}

const kernels = new Map<number, Kernel | null>();

function kernelFor(channels: number): Kernel | null {
  let kernel = kernels.get(channels);
  if (kernel === undefined) {
    const instance = instantiate(moduleBytes([
      { name: 'hpass', params: Array(10).fill(I32), locals: [...Array(7).fill(I32), ...Array(5).fill(V128)], body: hpassBody() },
      { name: 'vpass', params: Array(10).fill(I32), locals: [...Array(10).fill(I32), V128, V128], body: vpassBody(channels) },
      { name: 'hpass2', params: Array(10).fill(I32), locals: [...Array(7).fill(I32), ...Array(7).fill(V128), I32], body: hpass2Body() },
    ]));
    kernel = instance && {
      instance,
      hpass: instance.exports.hpass as Kernel['hpass'],
      hpass2: instance.exports.hpass2 as Kernel['hpass2'],
      vpass: instance.exports.vpass as Kernel['vpass'],
    };
    kernels.set(channels, kernel);
  }
  return kernel;
}

/** One slice: int16 volume data, slice k, into out[outOffset … + channels·outHeight·outWidth). */
export type WindowResizeRun = (data: Int16Array, k: number, out: Float32Array, outOffset: number) => void;

interface Layout {
  window: number; xs: number; xc: number; xw: number; ys: number; yc: number; yw: number;
  src: number; rows: number; out: number; end: number;
}

const align16 = (bytes: number): number => Math.ceil(bytes / 16) * 16;

function layoutOf(resize: ResizePlan, channels: number): Layout {
  const { x, y, crop, srcWidthPx } = resize;
  let at = 0;
  const take = (bytes: number): number => {
    const start = at;
    at += align16(bytes);
    return start;
  };
  const cropRows = crop.jEnd - crop.jStart;
  return {
    window: take(32),
    xs: take(4 * x.dstLength), xc: take(4 * x.dstLength), xw: take(4 * x.dstLength * x.maxTaps),
    ys: take(4 * y.dstLength), yc: take(4 * y.dstLength), yw: take(4 * y.dstLength * y.maxTaps),
    src: take(2 * cropRows * srcWidthPx),
    rows: take(16 * cropRows * x.dstLength),
    out: take(4 * channels * resize.outWidthPx * resize.outHeightPx),
    end: at,
  };
}

function writeAxis(buffer: ArrayBuffer, axis: ResampleAxis, starts: number, counts: number, weights: number): void {
  new Int32Array(buffer, starts, axis.dstLength).set(axis.starts);
  new Int32Array(buffer, counts, axis.dstLength).set(axis.counts);
  new Float32Array(buffer, weights, axis.weights.length).set(axis.weights);
}

/**
 * The kernel's run for one resize plan and window set, or null where it cannot serve (more than 4
 * windows, or no WebAssembly SIMD): the caller then keeps the scalar path.
 */
export function simdWindowResize(resize: ResizePlan, windows: readonly HuWindow[]): WindowResizeRun | null {
  const channels = windows.length;
  if (channels < 1 || channels > 4) return null;
  const kernel = kernelFor(channels);
  if (!kernel) return null;
  const layout = layoutOf(resize, channels);
  const { x, y, crop, srcWidthPx, srcHeightPx, outWidthPx, outHeightPx } = resize;
  const cropRows = crop.jEnd - crop.jStart;
  const outValues = channels * outWidthPx * outHeightPx;
  const identity = {};
  const load = (): ArrayBuffer => {
    const buffer = ensureMemory(kernel.instance.memory, layout.end);
    if (kernel.active === identity) return buffer;
    const lanes = new Float32Array(buffer, layout.window, 8);
    lanes.fill(0);
    windows.forEach((w, c) => {
      lanes[c] = windowMinHu(w);
      lanes[4 + c] = 1 / w.widthHu;
    });
    writeAxis(buffer, x, layout.xs, layout.xc, layout.xw);
    writeAxis(buffer, y, layout.ys, layout.yc, layout.yw);
    // The letterbox is never written by the passes, so zero once per plan keeps it 0 for every slice.
    new Float32Array(buffer, layout.out, outValues).fill(0);
    kernel.active = identity;
    return buffer;
  };
  return (data, k, out, outOffset) => {
    const buffer = load();
    const first = (k * srcHeightPx + crop.jStart) * srcWidthPx;
    new Int16Array(buffer, layout.src, cropRows * srcWidthPx).set(data.subarray(first, first + cropRows * srcWidthPx));
    const paired = cropRows & ~1;
    kernel.hpass2(layout.src + 2 * crop.iStart, 2 * srcWidthPx, paired, layout.xs, layout.xc, layout.xw, 4 * x.maxTaps, x.dstLength, layout.window, layout.rows);
    if (paired < cropRows) {
      const rowBytes = 16 * x.dstLength;
      kernel.hpass(layout.src + 2 * (paired * srcWidthPx + crop.iStart), 2 * srcWidthPx, 1, layout.xs, layout.xc, layout.xw, 4 * x.maxTaps, x.dstLength, layout.window, layout.rows + paired * rowBytes);
    }
    const contentStart = layout.out + 4 * (y.dstOffset * outWidthPx + x.dstOffset);
    kernel.vpass(layout.rows, x.dstLength, layout.ys, layout.yc, layout.yw, 4 * y.maxTaps, y.dstLength, contentStart, 4 * outWidthPx * outHeightPx, 4 * outWidthPx);
    out.set(new Float32Array(buffer, layout.out, outValues), outOffset);
  };
}
