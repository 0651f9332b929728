/**
 * Converts a TensorFlow.js model (Keras "layers" topology or converted TF "graph" topology) to ONNX, cut at
 * a chosen tensor: by default the pooled feature vector that feeds the first dense (classification) layer.
 *
 * TF.js models are channels-last (NHWC); ONNX Runtime's convolutions are channels-first. The converted
 * graph takes NCHW input and keeps every 4-D tensor in NCHW, so no transposes run at inference: weights
 * are transposed once here (HWIO → OIHW), per-channel constants are reshaped to [C,1,1], and axis
 * arguments are remapped. Shapes are tracked in TF's NHWC terms so TF's SAME padding (asymmetric: the odd
 * pixel goes at the end) is written out as explicit ONNX pads for the model's fixed input size.
 */
import type { DecodedWeight, TfjsArtifacts } from './tfjs-artifacts.js';
import { EncoderError } from './errors.js';
import { OnnxGraphBuilder, type AttributeValue } from '../compute/onnx-graph.js';

/** Bumped whenever the converter's output changes for the same weights: part of the cache file name. */
export const CONVERTER_VERSION = 1;

export interface TfjsToOnnxOptions {
  /** Layer name (layers model) or node name (graph model) whose output becomes the ONNX output.
   * Default: the input of the first dense/MatMul layer, i.e. the pooled feature before the head. */
  outputNode?: string;
  /** Name of the ONNX input (NCHW, float32). */
  inputName?: string;
  /** Name of the ONNX output ([N, D] float32). */
  outputName?: string;
  /** Written into the model's metadata. */
  modelName?: string;
}

export interface ConvertedModel {
  bytes: Uint8Array;
  inputName: string;
  outputName: string;
  /** NCHW input shape with the batch dimension as 'batch'. */
  inputShape: ['batch', number, number, number];
  /** Length of the output vector. */
  featureDim: number;
  /** The TF.js layer or node the graph was cut at. */
  outputNode: string;
}

/** A tensor as TF sees it: rank-4 shapes are NHWC; -1 is the batch. In ONNX rank-4 tensors are NCHW. */
interface Tensor {
  name: string;
  shape: number[];
}

type Padding = 'same' | 'valid' | { top: number; bottom: number; left: number; right: number };
type Activation = 'linear' | 'relu' | 'relu6' | 'sigmoid' | 'tanh' | 'softmax' | { leakyRelu: number };

interface ConvOptions {
  strides: [number, number];
  dilations: [number, number];
  padding: Padding;
}

export function convertTfjsToOnnx(artifacts: TfjsArtifacts, options: TfjsToOnnxOptions = {}): ConvertedModel {
  const inputName = options.inputName ?? 'pixel_values';
  const outputName = options.outputName ?? 'features';
  const emitter = new NchwEmitter(artifacts.dir);
  const isGraph = artifacts.modelJson.format === 'graph-model' || Array.isArray((artifacts.modelJson.modelTopology as { node?: unknown }).node);
  const { output, outputNode, inputShapeNhwc } = isGraph
    ? convertGraphModel(artifacts, emitter, inputName, options.outputNode)
    : convertLayersModel(artifacts, emitter, inputName, options.outputNode);
  const flat = output.shape.length === 4 ? emitter.flatten(output) : output;
  if (flat.shape.length !== 2 || flat.shape[1] <= 0) {
    throw new EncoderError('UNSUPPORTED_OP', artifacts.dir, `output ${outputNode} has shape [${output.shape.join(',')}], not a feature vector`);
  }
  emitter.builder.identity(flat.name, outputName);
  const [, heightPx, widthPx, channels] = inputShapeNhwc;
  const inputShape: ['batch', number, number, number] = ['batch', channels, heightPx, widthPx];
  const bytes = emitter.builder.toModelBytes({
    graphName: options.modelName ?? 'tfjs_model',
    input: { name: inputName, dims: inputShape },
    output: { name: outputName, dims: ['batch', flat.shape[1]] },
    docString: `Converted by mir3d from TensorFlow.js weights (sha256 ${artifacts.sourceSha256}); cut at ${outputNode}.`,
    metadata: {
      'mir3d.source_sha256': artifacts.sourceSha256,
      'mir3d.converter_version': String(CONVERTER_VERSION),
      'mir3d.output_node': outputNode,
      'mir3d.input_layout': 'NCHW',
    },
  });
  return { bytes, inputName, outputName, inputShape, featureDim: flat.shape[1], outputNode };
}

// ---------------------------------------------------------------------------------------------------------
// Emitter: TF-semantics operations written as NCHW ONNX nodes.

class NchwEmitter {
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

// ---------------------------------------------------------------------------------------------------------
// Keras layers models.

interface KerasLayer {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  inbound_nodes: unknown[];
}

function convertLayersModel(artifacts: TfjsArtifacts, emitter: NchwEmitter, inputName: string, requestedOutput: string | undefined): { output: Tensor; outputNode: string; inputShapeNhwc: number[] } {
  // Keras-converted models wrap the model in model_config; models saved by TF.js itself do not.
  type ModelConfig = { class_name?: string; config?: { layers?: unknown } | unknown[] };
  const topology = artifacts.modelJson.modelTopology as ModelConfig & { model_config?: ModelConfig };
  const modelConfig = topology.model_config ?? topology;
  const rawLayers = Array.isArray(modelConfig.config) ? modelConfig.config : modelConfig.config?.layers;
  if (!Array.isArray(rawLayers)) emitter.unsupported('layers model without model_config.config.layers');
  // Sequential layers saved by TF.js carry their name only inside config.
  const layers = (rawLayers as KerasLayer[]).map((layer) => ({ ...layer, name: layer.name ?? (layer.config?.name as string), inbound_nodes: layer.inbound_nodes ?? [] }));
  const sequential = modelConfig.class_name === 'Sequential';
  const byName = new Map(layers.map((layer) => [layer.name, layer]));

  const inboundOf = (layer: KerasLayer, index: number): string[] => {
    if (sequential) return index === 0 ? [] : [layers[index - 1].name];
    if (layer.inbound_nodes.length === 0) return [];
    if (layer.inbound_nodes.length > 1) emitter.unsupported(`layer ${layer.name} is shared (called ${layer.inbound_nodes.length} times)`);
    const call = layer.inbound_nodes[0] as unknown[];
    return call.map((entry) => {
      const [source, , tensorIndex] = entry as [string, number, number];
      if (tensorIndex !== 0) emitter.unsupported(`layer ${layer.name} reads output ${tensorIndex} of ${source}`);
      return source;
    });
  };

  const outputLayer = requestedOutput ?? defaultKerasFeatureLayer(layers, inboundOf, emitter);
  if (!byName.has(outputLayer)) throw new EncoderError('BAD_OUTPUT', artifacts.dir, `no layer named ${outputLayer}`);

  // Only the layers the output depends on are converted; the classification head is never emitted.
  const needed = new Set<string>();
  const indexOf = new Map(layers.map((layer, i) => [layer.name, i]));
  const stack = [outputLayer];
  while (stack.length > 0) {
    const name = stack.pop() as string;
    if (needed.has(name)) continue;
    needed.add(name);
    const layer = byName.get(name);
    if (!layer) emitter.unsupported(`layer ${name} referenced but not defined`);
    stack.push(...inboundOf(layer, indexOf.get(name) as number));
  }

  const weight = (layer: string, suffix: string, required = true): DecodedWeight | undefined => {
    const exact = artifacts.weights.get(`${layer}/${suffix}`);
    if (exact) return exact;
    for (const [key, value] of artifacts.weights) if (key.endsWith(`/${layer}/${suffix}`)) return value;
    if (required) emitter.unsupported(`weight ${layer}/${suffix} not in the manifest`);
    return undefined;
  };

  const outputs = new Map<string, Tensor>();
  let inputShapeNhwc: number[] | undefined;
  layers.forEach((layer, index) => {
    if (!needed.has(layer.name)) return;
    const cfg = layer.config;
    let inputs = inboundOf(layer, index).map((name) => outputs.get(name) as Tensor);
    if (sequential && index === 0 && layer.class_name !== 'InputLayer') {
      // A Sequential model's first layer carries the input shape itself.
      const shape = (cfg.batch_input_shape as (number | null)[] | undefined) ?? emitter.unsupported(`first layer ${layer.name} has no batch_input_shape`);
      inputShapeNhwc = shape.map((d) => d ?? -1);
      inputs = [emitter.input(inputName, inputShapeNhwc)];
    }
    const x = inputs[0];
    const base = layer.name;
    let out: Tensor;
    switch (layer.class_name) {
      case 'InputLayer': {
        const shape = (cfg.batch_input_shape as (number | null)[] | undefined) ?? emitter.unsupported(`input ${layer.name} has no batch_input_shape`);
        inputShapeNhwc = shape.map((d) => d ?? -1);
        out = emitter.input(inputName, inputShapeNhwc);
        break;
      }
      case 'ZeroPadding2D': {
        const [[top, bottom], [left, right]] = normalizePadding2d(cfg.padding, emitter, base);
        out = emitter.pad(x, top, bottom, left, right, base);
        break;
      }
      case 'Conv2D':
      case 'DepthwiseConv2D': {
        checkChannelsLast(cfg, emitter, base);
        const opts: ConvOptions = {
          strides: pair(cfg.strides, 1),
          dilations: pair(cfg.dilation_rate, 1),
          padding: kerasPadding(cfg.padding, emitter, base),
        };
        const useBias = cfg.use_bias !== false;
        const bias = useBias ? weight(base, 'bias')?.values : undefined;
        out =
          layer.class_name === 'Conv2D'
            ? emitter.conv2d(x, weight(base, 'kernel') as DecodedWeight, bias, opts, base)
            : emitter.depthwiseConv2d(x, weight(base, 'depthwise_kernel') as DecodedWeight, bias, opts, base);
        out = emitter.activation(out, kerasActivation(cfg.activation, emitter, base), base);
        break;
      }
      case 'BatchNormalization': {
        const axis = cfg.axis as number | number[];
        const channelAxis = Array.isArray(axis) ? axis[0] : axis;
        if (channelAxis !== -1 && channelAxis !== x.shape.length - 1) emitter.unsupported(`${base}: batch norm over axis ${String(axis)}`);
        const c = x.shape[x.shape.length - 1];
        const gamma = cfg.scale === false ? new Float32Array(c).fill(1) : (weight(base, 'gamma') as DecodedWeight).values;
        const beta = cfg.center === false ? new Float32Array(c) : (weight(base, 'beta') as DecodedWeight).values;
        const mean = (weight(base, 'moving_mean') as DecodedWeight).values;
        const variance = (weight(base, 'moving_variance') as DecodedWeight).values;
        out = emitter.batchNorm(x, gamma, beta, mean, variance, numberOr(cfg.epsilon, 1e-3), base);
        break;
      }
      case 'ReLU':
        out = emitter.kerasRelu(x, (cfg.max_value as number | null | undefined) ?? null, numberOr(cfg.negative_slope, 0), numberOr(cfg.threshold, 0), base);
        break;
      case 'Activation':
        out = emitter.activation(x, kerasActivation(cfg.activation, emitter, base), base);
        break;
      case 'Add':
        out = inputs.slice(1).reduce((acc, t, i) => emitter.binary('Add', acc, t, `${base}${i ? `_${i}` : ''}`), x);
        break;
      case 'Rescaling': {
        // Keras Rescaling: x · scale + offset, the usual way a model carries its input normalization.
        const scale = cfg.scale as number;
        const offset = numberOr(cfg.offset, 0);
        out = emitter.binaryConst('Mul', x, { shape: [], values: Float32Array.of(scale) }, false, `${base}.scale`);
        if (offset !== 0) out = emitter.binaryConst('Add', out, { shape: [], values: Float32Array.of(offset) }, false, `${base}.offset`);
        break;
      }
      case 'AveragePooling2D':
      case 'MaxPooling2D': {
        checkChannelsLast(cfg, emitter, base);
        const kernel = pair(cfg.pool_size, 2);
        out = emitter.pool(layer.class_name === 'AveragePooling2D' ? 'avg' : 'max', x, kernel, pair(cfg.strides ?? cfg.pool_size, 2), kerasPadding(cfg.padding, emitter, base), base);
        break;
      }
      case 'GlobalAveragePooling2D':
        checkChannelsLast(cfg, emitter, base);
        out = emitter.globalAveragePool(x, cfg.keepdims === true, base);
        break;
      case 'Flatten':
        out = emitter.flatten(x);
        break;
      case 'Dense': {
        const bias = cfg.use_bias !== false ? weight(base, 'bias')?.values : undefined;
        out = emitter.dense(x, weight(base, 'kernel') as DecodedWeight, bias, base);
        out = emitter.activation(out, kerasActivation(cfg.activation, emitter, base), base);
        break;
      }
      case 'Dropout':
      case 'SpatialDropout2D':
      case 'GaussianNoise':
        out = x; // inference: identity
        break;
      default:
        emitter.unsupported(`layer ${base} of class ${layer.class_name} is not supported by the converter`);
    }
    outputs.set(layer.name, out);
  });
  if (!inputShapeNhwc) emitter.unsupported('model has no input layer');
  return { output: outputs.get(outputLayer) as Tensor, outputNode: outputLayer, inputShapeNhwc };
}

/** The input of the first Dense layer, walking back over Dropout: the pooled feature before the head. */
function defaultKerasFeatureLayer(layers: KerasLayer[], inboundOf: (layer: KerasLayer, index: number) => string[], emitter: NchwEmitter): string {
  const firstDense = layers.findIndex((layer) => layer.class_name === 'Dense');
  if (firstDense < 0) return layers[layers.length - 1].name;
  let name = inboundOf(layers[firstDense], firstDense)[0];
  const indexOf = new Map(layers.map((layer, i) => [layer.name, i]));
  for (;;) {
    const index = indexOf.get(name);
    if (index === undefined) emitter.unsupported(`layer ${name} referenced but not defined`);
    if (layers[index].class_name !== 'Dropout') return name;
    name = inboundOf(layers[index], index)[0];
  }
}

function checkChannelsLast(cfg: Record<string, unknown>, emitter: NchwEmitter, base: string): void {
  if (cfg.data_format !== undefined && cfg.data_format !== 'channels_last') emitter.unsupported(`${base}: data_format ${String(cfg.data_format)}`);
}

function normalizePadding2d(padding: unknown, emitter: NchwEmitter, base: string): [[number, number], [number, number]] {
  if (typeof padding === 'number') return [[padding, padding], [padding, padding]];
  if (Array.isArray(padding) && padding.length === 2) {
    const [rows, cols] = padding as unknown[];
    const asPair = (p: unknown): [number, number] => (typeof p === 'number' ? [p, p] : (p as [number, number]));
    return [asPair(rows), asPair(cols)];
  }
  return emitter.unsupported(`${base}: padding ${JSON.stringify(padding)}`);
}

function kerasPadding(padding: unknown, emitter: NchwEmitter, base: string): Padding {
  if (padding === 'same' || padding === 'valid') return padding;
  return emitter.unsupported(`${base}: padding ${String(padding)}`);
}

function kerasActivation(name: unknown, emitter: NchwEmitter, base: string): Activation {
  if (name === undefined || name === null || name === 'linear') return 'linear';
  if (name === 'relu' || name === 'relu6' || name === 'sigmoid' || name === 'tanh' || name === 'softmax') return name;
  return emitter.unsupported(`${base}: activation ${String(name)}`);
}

function pair(value: unknown, fallback: number): [number, number] {
  if (typeof value === 'number') return [value, value];
  if (Array.isArray(value) && value.length === 2) return [Number(value[0]), Number(value[1])];
  return [fallback, fallback];
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === 'number' ? value : fallback;
}

// ---------------------------------------------------------------------------------------------------------
// Graph models (TF GraphDef as JSON, produced by tensorflowjs_converter).

interface GraphNode {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, GraphAttr>;
}

interface GraphAttr {
  s?: string;
  i?: string | number;
  f?: number;
  b?: boolean;
  list?: { i?: (string | number)[]; s?: string[]; f?: number[] };
  shape?: { dim?: { size?: string | number }[] };
  tensor?: { dtype?: string; tensorShape?: { dim?: { size?: string | number }[] }; floatVal?: number[]; intVal?: number[] };
}

type GraphValue = { kind: 'tensor'; tensor: Tensor } | { kind: 'const'; value: DecodedWeight };

const ELEMENTWISE: Record<string, 'Add' | 'Sub' | 'Mul' | 'Div' | 'Max' | 'Min'> = {
  Add: 'Add',
  AddV2: 'Add',
  Sub: 'Sub',
  Mul: 'Mul',
  RealDiv: 'Div',
  Maximum: 'Max',
  Minimum: 'Min',
};

function convertGraphModel(artifacts: TfjsArtifacts, emitter: NchwEmitter, inputName: string, requestedOutput: string | undefined): { output: Tensor; outputNode: string; inputShapeNhwc: number[] } {
  const topology = artifacts.modelJson.modelTopology as { node?: unknown };
  if (!Array.isArray(topology.node)) emitter.unsupported('graph model without nodes');
  const nodes = topology.node as GraphNode[];
  const byName = new Map(nodes.map((node) => [node.name, node]));
  const dataInputs = (node: GraphNode): string[] => (node.input ?? []).filter((name) => !name.startsWith('^')).map((name) => name.replace(/:0$/, ''));

  const outputNode = requestedOutput ?? defaultGraphFeatureNode(nodes, dataInputs, emitter);
  if (!byName.has(outputNode)) throw new EncoderError('BAD_OUTPUT', artifacts.dir, `no node named ${outputNode}`);

  // Post-order DFS from the output gives a topological order of exactly the nodes it needs.
  const order: GraphNode[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string): void => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') emitter.unsupported(`graph has a cycle through ${name}`);
    if (/:\d+$/.test(name)) emitter.unsupported(`node input ${name} reads a secondary output`);
    const node = byName.get(name);
    if (!node) return emitter.unsupported(`node ${name} referenced but not defined`);
    state.set(name, 'visiting');
    for (const input of dataInputs(node)) visit(input);
    state.set(name, 'done');
    order.push(node);
  };
  visit(outputNode);

  const values = new Map<string, GraphValue>();
  let inputShapeNhwc: number[] | undefined;
  const tensorOf = (name: string, user: string): Tensor => {
    const value = values.get(name);
    if (!value || value.kind !== 'tensor') return emitter.unsupported(`${user}: input ${name} is not a computed tensor`);
    return value.tensor;
  };
  const constOf = (name: string, user: string): DecodedWeight => {
    const value = values.get(name);
    if (!value || value.kind !== 'const') return emitter.unsupported(`${user}: input ${name} is not a constant`);
    return value.value;
  };

  for (const node of order) {
    const inputs = dataInputs(node);
    const attr = node.attr ?? {};
    const base = shortNodeName(node.name);
    const set = (tensor: Tensor): void => void values.set(node.name, { kind: 'tensor', tensor });
    switch (node.op) {
      case 'Placeholder': {
        const dims = attr.shape?.shape?.dim ?? [];
        inputShapeNhwc = dims.map((d) => Number(d.size ?? -1));
        set(emitter.input(inputName, inputShapeNhwc));
        break;
      }
      case 'Const': {
        const fromManifest = artifacts.weights.get(node.name);
        const inline = attr.value?.tensor;
        if (fromManifest) values.set(node.name, { kind: 'const', value: fromManifest });
        else if (inline && (inline.floatVal || inline.intVal)) {
          const shape = (inline.tensorShape?.dim ?? []).map((d) => Number(d.size ?? 1));
          const count = shape.reduce((a, b) => a * b, 1);
          const scalars = inline.floatVal ?? inline.intVal ?? [];
          const data = Float32Array.from({ length: count }, (_, i) => Number(scalars[Math.min(i, scalars.length - 1)]));
          values.set(node.name, { kind: 'const', value: { shape, values: data } });
        } else emitter.unsupported(`constant ${node.name} has no value in the weights manifest`);
        break;
      }
      case 'Identity':
        values.set(node.name, values.get(inputs[0]) as GraphValue);
        break;
      case 'Conv2D':
      case '_FusedConv2D':
      case 'DepthwiseConv2dNative':
      case 'FusedDepthwiseConv2dNative': {
        if (graphString(attr.data_format) !== undefined && graphString(attr.data_format) !== 'NHWC') emitter.unsupported(`${base}: data_format ${graphString(attr.data_format)}`);
        const opts: ConvOptions = {
          strides: nhwcSpatial(attr.strides, 1),
          dilations: nhwcSpatial(attr.dilations, 1),
          padding: graphPadding(attr, emitter, base),
        };
        const x = tensorOf(inputs[0], base);
        const kernel = constOf(inputs[1], base);
        const fused = (attr.fused_ops?.list?.s ?? []).map(decodeBase64);
        let bias: Float32Array | undefined;
        let rest = fused;
        if (fused[0] === 'BiasAdd') {
          bias = constOf(inputs[2], base).values;
          rest = fused.slice(1);
        } else if (fused.length > 0) emitter.unsupported(`${base}: fused ops ${fused.join('+')}`);
        let out = node.op.includes('Depthwise') ? emitter.depthwiseConv2d(x, kernel, bias, opts, base) : emitter.conv2d(x, kernel, bias, opts, base);
        for (const op of rest) out = emitter.activation(out, graphActivation(op, attr, emitter, base), base);
        set(out);
        break;
      }
      case 'BiasAdd':
        set(emitter.binaryConst('Add', tensorOf(inputs[0], base), constOf(inputs[1], base), false, base));
        break;
      case 'Relu':
      case 'Relu6':
      case 'Sigmoid':
      case 'Tanh':
      case 'Softmax':
      case 'LeakyRelu':
        set(emitter.activation(tensorOf(inputs[0], base), graphActivation(node.op, attr, emitter, base), base));
        break;
      case 'FusedBatchNorm':
      case 'FusedBatchNormV3': {
        const [gamma, beta, mean, variance] = inputs.slice(1, 5).map((name) => constOf(name, base).values);
        set(emitter.batchNorm(tensorOf(inputs[0], base), gamma, beta, mean, variance, attr.epsilon?.f ?? 1e-3, base));
        break;
      }
      case 'AvgPool':
      case 'MaxPool':
        set(emitter.pool(node.op === 'AvgPool' ? 'avg' : 'max', tensorOf(inputs[0], base), nhwcSpatial(attr.ksize, 1), nhwcSpatial(attr.strides, 1), graphPadding(attr, emitter, base), base));
        break;
      case 'Mean': {
        const axes = Array.from(constOf(inputs[1], base).values).sort();
        if (axes.join(',') !== '1,2') emitter.unsupported(`${base}: Mean over axes ${axes.join(',')}`);
        set(emitter.globalAveragePool(tensorOf(inputs[0], base), attr.keep_dims?.b === true, base));
        break;
      }
      case 'Squeeze': {
        const x = tensorOf(inputs[0], base);
        const dims = (attr.squeeze_dims?.list?.i ?? []).map(Number).sort();
        if (x.shape.length === 4 && dims.join(',') === '1,2' && x.shape[1] === 1 && x.shape[2] === 1) set(emitter.flatten(x));
        else if (x.shape.length === 2 && dims.length === 0) set(x);
        else emitter.unsupported(`${base}: Squeeze of [${x.shape.join(',')}] over ${dims.join(',')}`);
        break;
      }
      case 'Pad':
      case 'PadV2': {
        const p = constOf(inputs[1], base).values; // [[0,0],[top,bottom],[left,right],[0,0]]
        if (p.length !== 8 || p[0] || p[1] || p[6] || p[7]) emitter.unsupported(`${base}: padding of batch or channels`);
        if (node.op === 'PadV2' && constOf(inputs[2], base).values[0] !== 0) emitter.unsupported(`${base}: non-zero pad value`);
        set(emitter.pad(tensorOf(inputs[0], base), p[2], p[3], p[4], p[5], base));
        break;
      }
      case 'MatMul':
      case '_FusedMatMul': {
        if (attr.transpose_a?.b || attr.transpose_b?.b) emitter.unsupported(`${base}: transposed MatMul`);
        const fused = (attr.fused_ops?.list?.s ?? []).map(decodeBase64);
        const bias = fused[0] === 'BiasAdd' ? constOf(inputs[2], base).values : undefined;
        let out = emitter.dense(tensorOf(inputs[0], base), constOf(inputs[1], base), bias, base);
        for (const op of bias ? fused.slice(1) : fused) out = emitter.activation(out, graphActivation(op, attr, emitter, base), base);
        set(out);
        break;
      }
      default: {
        const op = ELEMENTWISE[node.op];
        if (!op) emitter.unsupported(`node ${node.name}: op ${node.op} is not supported by the converter`);
        const [a, b] = inputs.map((name) => values.get(name) as GraphValue);
        if (a.kind === 'tensor' && b.kind === 'tensor') set(emitter.binary(op, a.tensor, b.tensor, base));
        else if (a.kind === 'tensor' && b.kind === 'const') set(emitter.binaryConst(op, a.tensor, b.value, false, base));
        else if (a.kind === 'const' && b.kind === 'tensor') set(emitter.binaryConst(op, b.tensor, a.value, true, base));
        else emitter.unsupported(`${base}: ${node.op} of two constants`);
      }
    }
  }
  if (!inputShapeNhwc) emitter.unsupported('graph has no Placeholder input on the path to the output');
  const result = values.get(outputNode);
  if (!result || result.kind !== 'tensor') return emitter.unsupported(`output ${outputNode} is not a computed tensor`);
  return { output: result.tensor, outputNode, inputShapeNhwc };
}

/** The data input of the first MatMul (the dense head), i.e. the pooled feature vector. */
function defaultGraphFeatureNode(nodes: GraphNode[], dataInputs: (node: GraphNode) => string[], emitter: NchwEmitter): string {
  const head = nodes.find((node) => node.op === 'MatMul' || node.op === '_FusedMatMul');
  if (!head) return emitter.unsupported('graph model has no MatMul head; name the feature node explicitly');
  return dataInputs(head)[0];
}

function graphActivation(op: string, attr: Record<string, GraphAttr>, emitter: NchwEmitter, base: string): Activation {
  switch (op) {
    case 'Relu':
      return 'relu';
    case 'Relu6':
      return 'relu6';
    case 'Sigmoid':
      return 'sigmoid';
    case 'Tanh':
      return 'tanh';
    case 'Softmax':
      return 'softmax';
    case 'LeakyRelu':
      return { leakyRelu: attr.alpha?.f ?? attr.leakyrelu_alpha?.f ?? 0.2 };
    default:
      return emitter.unsupported(`${base}: fused activation ${op}`);
  }
}

function graphPadding(attr: Record<string, GraphAttr>, emitter: NchwEmitter, base: string): Padding {
  const padding = graphString(attr.padding);
  if (padding === 'SAME') return 'same';
  if (padding === 'VALID') return 'valid';
  if (padding === 'EXPLICIT') {
    const p = (attr.explicit_paddings?.list?.i ?? []).map(Number);
    if (p.length !== 8) emitter.unsupported(`${base}: explicit paddings ${p.join(',')}`);
    return { top: p[2], bottom: p[3], left: p[4], right: p[5] };
  }
  return emitter.unsupported(`${base}: padding ${String(padding)}`);
}

/** TF's [N, H, W, C]-ordered 4-lists (strides, ksize, dilations) → [H, W]. */
function nhwcSpatial(value: GraphAttr | undefined, fallback: number): [number, number] {
  const list = (value?.list?.i ?? []).map(Number);
  if (list.length === 4) return [list[1], list[2]];
  return [fallback, fallback];
}

function graphString(value: GraphAttr | undefined): string | undefined {
  return value?.s === undefined ? undefined : decodeBase64(value.s);
}

function decodeBase64(text: string): string {
  return Buffer.from(text, 'base64').toString('utf8');
}

/** TF node names carry long scopes ("StatefulPartitionedCall/.../MobilenetV2/Conv/Relu6"); ONNX names keep the tail. */
function shortNodeName(name: string): string {
  return name.split('/').slice(-3).join('/');
}
