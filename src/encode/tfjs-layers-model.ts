/** Keras "layers" topologies (models saved by Keras or TF.js itself) walked into NCHW ONNX nodes. */
import type { DecodedWeight, TfjsArtifacts } from './tfjs-artifacts.js';
import { EncoderError } from './errors.js';
import { type Activation, type ConvOptions, type NchwEmitter, type Padding, type Tensor } from './tfjs-nchw-emitter.js';

interface KerasLayer {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  inbound_nodes: unknown[];
}

export function convertLayersModel(artifacts: TfjsArtifacts, emitter: NchwEmitter, inputName: string, requestedOutput: string | undefined): { output: Tensor; outputNode: string; inputShapeNhwc: number[] } {
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

