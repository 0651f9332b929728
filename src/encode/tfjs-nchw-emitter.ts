/** TF-semantics operations (NHWC shapes, SAME padding, Keras activations) written as NCHW ONNX nodes: the
 * one place that knows both layouts; tfjs-layers-model.ts and tfjs-graph-model.ts only walk topologies. */
import type { DecodedWeight } from './tfjs-artifacts.js';
import { EncoderError } from './errors.js';
import { OnnxGraphBuilder, type AttributeValue } from '../compute/onnx-graph.js';

/** A tensor as TF sees it: rank-4 shapes are NHWC; -1 is the batch. In ONNX rank-4 tensors are NCHW. */
export interface Tensor {
  name: string;
  shape: number[];
}

export type Padding = 'same' | 'valid' | { top: number; bottom: number; left: number; right: number };
export type Activation = 'linear' | 'relu' | 'relu6' | 'sigmoid' | 'tanh' | 'softmax' | { leakyRelu: number };

export interface ConvOptions {
  strides: [number, number];
  dilations: [number, number];
  padding: Padding;
}

// ---------------------------------------------------------------------------------------------------------
// Emitter: TF-semantics operations written as NCHW ONNX nodes.

export class NchwEmitter {
  readonly builder = new OnnxGraphBuilder();
  /** Outputs of Pad nodes and their spatial pads [top, left, bottom, right]. */
  private readonly padded = new Map<string, number[]>();
  constructor(private readonly source: string) {}

  unsupported(what: string): never {
    throw new EncoderError('UNSUPPORTED_OP', this.source, what);
  }

  input(name: string, shapeNhwc: number[]): Tensor {
    if (shapeNhwc.length !== 4) this.unsupported(`input of rank ${shapeNhwc.length}; only image inputs [N,H,W,C] are converted`);
    const [, h, w, c] = shapeNhwc;
    if (!(h > 0 && w > 0 && c > 0)) this.unsupported(`input shape [${shapeNhwc.join(',')}] has no fixed size`);
    return { name: this.builder.reserve(name), shape: [-1, h, w, c] };
  }

  conv2d(x: Tensor, kernelHwio: DecodedWeight, bias: Float32Array | undefined, opts: ConvOptions, base: string): Tensor {
    this.expectRank(x, 4, base);
    const [kh, kw, ci, co] = kernelHwio.shape;
    if (kernelHwio.shape.length !== 4 || ci !== x.shape[3]) {
      this.unsupported(`${base}: kernel [${kernelHwio.shape.join(',')}] does not fit input channels ${x.shape[3]}`);
    }
    const oihw = new Float32Array(co * ci * kh * kw);
    const k = kernelHwio.values;
    for (let y = 0; y < kh; y++)
      for (let xx = 0; xx < kw; xx++)
        for (let i = 0; i < ci; i++)
          for (let o = 0; o < co; o++) oihw[((o * ci + i) * kh + y) * kw + xx] = k[((y * kw + xx) * ci + i) * co + o];
    const weight = this.builder.floatInitializer(`${base}.weight`, [co, ci, kh, kw], oihw);
    return this.convNode(x, weight, bias, [kh, kw], co, 1, opts, base);
  }

  depthwiseConv2d(x: Tensor, kernelHwcm: DecodedWeight, bias: Float32Array | undefined, opts: ConvOptions, base: string): Tensor {
    this.expectRank(x, 4, base);
    const [kh, kw, c, m] = kernelHwcm.shape;
    if (kernelHwcm.shape.length !== 4 || c !== x.shape[3]) {
      this.unsupported(`${base}: depthwise kernel [${kernelHwcm.shape.join(',')}] does not fit input channels ${x.shape[3]}`);
    }
    // TF's depthwise output channel c·M + j is ONNX group c's j-th output: the same order.
    const weightValues = new Float32Array(c * m * kh * kw);
    const k = kernelHwcm.values;
    for (let y = 0; y < kh; y++)
      for (let xx = 0; xx < kw; xx++)
        for (let ch = 0; ch < c; ch++)
          for (let j = 0; j < m; j++) weightValues[((ch * m + j) * kh + y) * kw + xx] = k[((y * kw + xx) * c + ch) * m + j];
    const weight = this.builder.floatInitializer(`${base}.weight`, [c * m, 1, kh, kw], weightValues);
    return this.convNode(x, weight, bias, [kh, kw], c * m, c, opts, base);
  }

  private convNode(
    x: Tensor,
    weight: string,
    bias: Float32Array | undefined,
    kernel: [number, number],
    outChannels: number,
    group: number,
    opts: ConvOptions,
    base: string,
  ): Tensor {
    if (bias && bias.length !== outChannels) this.unsupported(`${base}: bias of ${bias.length} for ${outChannels} channels`);
    const [, h, w] = x.shape;
    const rows = windowGeometry(h, kernel[0], opts.strides[0], opts.dilations[0], opts.padding, 'rows');
    const cols = windowGeometry(w, kernel[1], opts.strides[1], opts.dilations[1], opts.padding, 'cols');
    const inputs = [x.name, weight];
    if (bias) inputs.push(this.builder.floatInitializer(`${base}.bias`, [outChannels], bias));
    const name = this.builder.node('Conv', inputs, base, {
      kernel_shape: kernel,
      strides: opts.strides,
      dilations: opts.dilations,
      pads: [rows.begin, cols.begin, rows.end, cols.end],
      group,
    });
    return { name, shape: [-1, rows.out, cols.out, outChannels] };
  }

  batchNorm(x: Tensor, gamma: Float32Array, beta: Float32Array, mean: Float32Array, variance: Float32Array, epsilon: number, base: string): Tensor {
    const c = x.shape[x.shape.length - 1];
    for (const v of [gamma, beta, mean, variance]) if (v.length !== c) this.unsupported(`${base}: batch-norm parameters do not match ${c} channels`);
    if (x.shape.length !== 4 && x.shape.length !== 2) this.unsupported(`${base}: batch norm on rank ${x.shape.length}`);
    const name = this.builder.node(
      'BatchNormalization',
      [
        x.name,
        this.builder.floatInitializer(`${base}.scale`, [c], gamma),
        this.builder.floatInitializer(`${base}.bias`, [c], beta),
        this.builder.floatInitializer(`${base}.mean`, [c], mean),
        this.builder.floatInitializer(`${base}.var`, [c], variance),
      ],
      base,
      { epsilon: { float: epsilon } },
    );
    return { name, shape: x.shape.slice() };
  }

  activation(x: Tensor, kind: Activation, base: string): Tensor {
    if (kind === 'linear') return x;
    const node = (op: string, attrs: Record<string, AttributeValue> = {}, extra: string[] = []): Tensor => ({
      name: this.builder.node(op, [x.name, ...extra], `${base}.${op.toLowerCase()}`, attrs),
      shape: x.shape.slice(),
    });
    if (kind === 'relu') return node('Relu');
    if (kind === 'relu6') return node('Clip', {}, [this.builder.scalarInitializer(`${base}.min`, 0), this.builder.scalarInitializer(`${base}.max`, 6)]);
    if (kind === 'sigmoid') return node('Sigmoid');
    if (kind === 'tanh') return node('Tanh');
    if (kind === 'softmax') {
      if (x.shape.length !== 2) this.unsupported(`${base}: softmax on rank ${x.shape.length}`);
      return node('Softmax', { axis: -1 });
    }
    return node('LeakyRelu', { alpha: { float: kind.leakyRelu } });
  }

  /** Keras ReLU(max_value, negative_slope, threshold) in the combinations that have one ONNX op. */
  kerasRelu(x: Tensor, maxValue: number | null, negativeSlope: number, threshold: number, base: string): Tensor {
    if (threshold !== 0) this.unsupported(`${base}: ReLU with threshold ${threshold}`);
    if (negativeSlope !== 0) {
      if (maxValue !== null) this.unsupported(`${base}: ReLU with both negative_slope and max_value`);
      return this.activation(x, { leakyRelu: negativeSlope }, base);
    }
    if (maxValue === null) return this.activation(x, 'relu', base);
    const name = this.builder.node('Clip', [x.name, this.builder.scalarInitializer(`${base}.min`, 0), this.builder.scalarInitializer(`${base}.max`, maxValue)], base);
    return { name, shape: x.shape.slice() };
  }

  binary(op: 'Add' | 'Sub' | 'Mul' | 'Div' | 'Max' | 'Min', a: Tensor, b: Tensor, base: string): Tensor {
    if (a.shape.length !== b.shape.length) this.unsupported(`${base}: ${op} of tensors with ranks ${a.shape.length} and ${b.shape.length}`);
    const shape = a.shape.map((d, i) => (d === 1 ? b.shape[i] : d));
    return { name: this.builder.node(op, [a.name, b.name], base), shape };
  }

  /** x op constant (or constant op x when `constantFirst`), with the constant laid out like x in ONNX. */
  binaryConst(op: 'Add' | 'Sub' | 'Mul' | 'Div' | 'Max' | 'Min', x: Tensor, constant: DecodedWeight, constantFirst: boolean, base: string): Tensor {
    const c = this.constantFor(x, constant, base);
    const inputs = constantFirst ? [c, x.name] : [x.name, c];
    return { name: this.builder.node(op, inputs, base), shape: x.shape.slice() };
  }

  private constantFor(x: Tensor, constant: DecodedWeight, base: string): string {
    const rank = constant.shape.length;
    if (rank > x.shape.length) this.unsupported(`${base}: constant of rank ${rank} on a tensor of rank ${x.shape.length}`);
    if (x.shape.length !== 4 || rank === 0) return this.builder.floatInitializer(`${base}.const`, constant.shape, constant.values);
    // NHWC-broadcast constant → NCHW: pad to rank 4 with leading ones, then permute values and shape.
    const [n, h, w, c] = [...new Array<number>(4 - rank).fill(1), ...constant.shape];
    const out = new Float32Array(constant.values.length);
    const v = constant.values;
    for (let a = 0; a < n; a++)
      for (let y = 0; y < h; y++)
        for (let xx = 0; xx < w; xx++) for (let ch = 0; ch < c; ch++) out[((a * c + ch) * h + y) * w + xx] = v[((a * h + y) * w + xx) * c + ch];
    return this.builder.floatInitializer(`${base}.const`, [n, c, h, w], out);
  }

  pad(x: Tensor, top: number, bottom: number, left: number, right: number, base: string): Tensor {
    this.expectRank(x, 4, base);
    if (Math.min(top, bottom, left, right) < 0) this.unsupported(`${base}: negative padding`);
    const pads = this.builder.int64Initializer(`${base}.pads`, [0, 0, top, left, 0, 0, bottom, right]);
    const name = this.builder.node('Pad', [x.name, pads], base, { mode: 'constant' });
    this.padded.set(name, [top, left, bottom, right]);
    const [, h, w, c] = x.shape;
    return { name, shape: [-1, h + top + bottom, w + left + right, c] };
  }

  pool(kind: 'avg' | 'max', x: Tensor, kernel: [number, number], strides: [number, number], padding: Padding, base: string): Tensor {
    this.expectRank(x, 4, base);
    const [, h, w, c] = x.shape;
    const rows = windowGeometry(h, kernel[0], strides[0], 1, padding, 'rows');
    const cols = windowGeometry(w, kernel[1], strides[1], 1, padding, 'cols');
    const pads = [rows.begin, cols.begin, rows.end, cols.end];
    // ONNX Runtime fuses a zero Pad into the pool that follows it (pad_fusion) and then rejects pads that
    // reach the kernel size; say so here rather than fail when a session is created.
    const before = this.padded.get(x.name);
    if (before && before.some((p, i) => p + pads[i] >= kernel[i % 2])) {
      this.unsupported(`${base}: zero padding followed by ${kind} pooling with its own padding reaches the ${kernel.join('×')} kernel, which ONNX Runtime rejects`);
    }
    const attrs: Record<string, AttributeValue> = { kernel_shape: kernel, strides, pads };
    // TF's SAME average pooling divides by the number of real pixels under the window: count_include_pad = 0.
    if (kind === 'avg') attrs.count_include_pad = 0;
    const name = this.builder.node(kind === 'avg' ? 'AveragePool' : 'MaxPool', [x.name], base, attrs);
    return { name, shape: [-1, rows.out, cols.out, c] };
  }

  /** Mean over H and W: [N,H,W,C] → [N,1,1,C] (keepDims) or [N,C]. */
  globalAveragePool(x: Tensor, keepDims: boolean, base: string): Tensor {
    this.expectRank(x, 4, base);
    const name = this.builder.node('GlobalAveragePool', [x.name], base);
    const pooled: Tensor = { name, shape: [-1, 1, 1, x.shape[3]] };
    return keepDims ? pooled : this.flatten(pooled);
  }

  /** Keras/TF flatten of [N,H,W,C] runs H, W, C (channels fastest): transpose back to NHWC unless H=W=1. */
  flatten(x: Tensor): Tensor {
    if (x.shape.length === 2) return x;
    this.expectRank(x, 4, 'flatten');
    const [, h, w, c] = x.shape;
    let source = x.name;
    if (h !== 1 || w !== 1) source = this.builder.node('Transpose', [x.name], `${x.name}.nhwc`, { perm: [0, 2, 3, 1] });
    return { name: this.builder.node('Flatten', [source], `${x.name}.flat`, { axis: 1 }), shape: [-1, h * w * c] };
  }

  dense(x: Tensor, kernel: DecodedWeight, bias: Float32Array | undefined, base: string): Tensor {
    const flat = x.shape.length === 4 ? this.flatten(x) : x;
    const [inDim, outDim] = kernel.shape;
    if (kernel.shape.length !== 2 || inDim !== flat.shape[1]) this.unsupported(`${base}: dense kernel [${kernel.shape.join(',')}] on [${flat.shape.join(',')}]`);
    const inputs = [flat.name, this.builder.floatInitializer(`${base}.weight`, [inDim, outDim], kernel.values)];
    if (bias) inputs.push(this.builder.floatInitializer(`${base}.bias`, [outDim], bias));
    return { name: this.builder.node('Gemm', inputs, base), shape: [-1, outDim] };
  }

  private expectRank(x: Tensor, rank: number, base: string): void {
    if (x.shape.length !== rank) this.unsupported(`${base}: expects a rank-${rank} input, got [${x.shape.join(',')}]`);
  }
}

/** TF output size and padding along one axis (SAME: out = ceil(in/stride), extra padding at the end). */
function windowGeometry(size: number, kernel: number, stride: number, dilation: number, padding: Padding, axis: 'rows' | 'cols'): { out: number; begin: number; end: number } {
  const effective = (kernel - 1) * dilation + 1;
  if (padding === 'valid') return { out: Math.floor((size - effective) / stride) + 1, begin: 0, end: 0 };
  if (padding === 'same') {
    const out = Math.ceil(size / stride);
    const total = Math.max((out - 1) * stride + effective - size, 0);
    const begin = Math.floor(total / 2);
    return { out, begin, end: total - begin };
  }
  const [begin, end] = axis === 'rows' ? [padding.top, padding.bottom] : [padding.left, padding.right];
  return { out: Math.floor((size + begin + end - effective) / stride) + 1, begin, end };
}

