/** TF GraphDef topologies (as JSON, produced by tensorflowjs_converter) walked into NCHW ONNX nodes. */
import type { DecodedWeight, TfjsArtifacts } from './tfjs-artifacts.js';
import { EncoderError } from './errors.js';
import { type Activation, type ConvOptions, type NchwEmitter, type Padding, type Tensor } from './tfjs-nchw-emitter.js';

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

export function convertGraphModel(artifacts: TfjsArtifacts, emitter: NchwEmitter, inputName: string, requestedOutput: string | undefined): { output: Tensor; outputNode: string; inputShapeNhwc: number[] } {
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

