/**
 * The one writer of ONNX models in the project, on top of onnx-proto's protobuf classes: nodes, float/int64
 * initializers, typed graph inputs and outputs with fixed or symbolic dimensions. Used by the TF.js converter
 * and for the compute kernels' graphs. The output is byte-for-byte deterministic (no timestamps, names in
 * creation order), so the same weights always give the same file and therefore the same encoder id.
 */
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';

const { onnx } = onnxProto;

/** The ONNX opset every mir3d graph uses. 13 has Clip/Pad/Squeeze with tensor inputs, TopK with k as an
 * input (so k need not be baked into a model) and Gemm with a broadcast 1-D C; every ONNX Runtime since 1.7
 * runs it. */
export const ONNX_OPSET = 13;
/** IR version 8 is the newest the bundled onnx-proto (ONNX 1.10) defines; ONNX Runtime reads it. */
export const ONNX_IR_VERSION = 8;

/** Plain numbers are INT attributes (they must be integers); floats are spelled { float } so that a float
 * attribute that happens to be whole (alpha = 1) is never written as an INT. */
export type AttributeValue = number | { float: number } | string | number[] | { floats: number[] };

/** A dimension: a fixed size or a symbolic name (e.g. 'batch'). */
export type OnnxDim = number | string;

export type OnnxElementType = 'float32' | 'int64';

export interface OnnxValueInfo {
  name: string;
  dims: OnnxDim[];
  /** Default float32. */
  type?: OnnxElementType;
}

/** A node whose outputs are named by the caller (graph outputs, multi-output ops such as TopK). */
export interface OnnxNodeSpec {
  opType: string;
  inputs: string[];
  outputs: string[];
  attributes?: Record<string, AttributeValue>;
}

export class OnnxGraphBuilder {
  private readonly nodes: OnnxTypes.INodeProto[] = [];
  private readonly initializers: OnnxTypes.ITensorProto[] = [];
  private readonly usedNames = new Set<string>();

  /** A fresh tensor name derived from `base` (made unique with a numeric suffix). */
  name(base: string): string {
    const clean = base.replace(/[^A-Za-z0-9_./:-]/g, '_') || 't';
    let candidate = clean;
    for (let n = 1; this.usedNames.has(candidate); n++) candidate = `${clean}_${n}`;
    this.usedNames.add(candidate);
    return candidate;
  }

  /** Reserves a name chosen by the caller (graph inputs and outputs keep their exact names). */
  reserve(name: string): string {
    if (this.usedNames.has(name)) throw new Error(`ONNX tensor name ${name} used twice`);
    this.usedNames.add(name);
    return name;
  }

  floatInitializer(base: string, dims: number[], values: Float32Array): string {
    const expected = dims.reduce((a, b) => a * b, 1);
    if (values.length !== expected) {
      throw new Error(`initializer ${base}: ${values.length} values for shape [${dims.join(',')}]`);
    }
    const name = this.name(base);
    this.initializers.push({
      name,
      dims,
      dataType: onnx.TensorProto.DataType.FLOAT,
      rawData: littleEndianBytes(values),
    });
    return name;
  }

  int64Initializer(base: string, values: number[]): string {
    const name = this.name(base);
    this.initializers.push({
      name,
      dims: [values.length],
      dataType: onnx.TensorProto.DataType.INT64,
      rawData: littleEndianBytes(BigInt64Array.from(values, (v) => BigInt(v))),
    });
    return name;
  }

  /** A 0-d float constant (Clip bounds, Pad value). */
  scalarInitializer(base: string, value: number): string {
    const name = this.name(base);
    this.initializers.push({
      name,
      dims: [],
      dataType: onnx.TensorProto.DataType.FLOAT,
      rawData: littleEndianBytes(Float32Array.of(value)),
    });
    return name;
  }

  /** Adds a node; returns its first output name. `outputs` are bases unless already reserved names. */
  node(opType: string, inputs: string[], outputBase: string, attributes: Record<string, AttributeValue> = {}): string {
    const output = this.name(outputBase);
    this.nodes.push({
      opType,
      name: output,
      input: inputs,
      output: [output],
      attribute: Object.entries(attributes).map(([key, value]) => attribute(key, value)),
    });
    return output;
  }

  /** Adds a node with caller-chosen output names (reserved here), e.g. a graph's outputs. */
  namedNode(spec: OnnxNodeSpec): string[] {
    for (const output of spec.outputs) this.reserve(output);
    this.nodes.push({
      opType: spec.opType,
      name: spec.outputs[0],
      input: spec.inputs,
      output: spec.outputs,
      attribute: Object.entries(spec.attributes ?? {}).map(([key, value]) => attribute(key, value)),
    });
    return spec.outputs;
  }

  /** Renames a node output to the graph's final output name with an Identity (keeps names stable). */
  identity(input: string, outputName: string): void {
    this.reserve(outputName);
    this.nodes.push({ opType: 'Identity', name: outputName, input: [input], output: [outputName] });
  }

  toModelBytes(spec: {
    graphName: string;
    /** One input or several (in this order). */
    input: OnnxValueInfo | OnnxValueInfo[];
    output: OnnxValueInfo | OnnxValueInfo[];
    docString: string;
    metadata?: Record<string, string>;
    /** Default 'mir3d'. */
    producerName?: string;
  }): Uint8Array {
    const inputs = Array.isArray(spec.input) ? spec.input : [spec.input];
    const outputs = Array.isArray(spec.output) ? spec.output : [spec.output];
    const model = onnx.ModelProto.create({
      irVersion: ONNX_IR_VERSION,
      producerName: spec.producerName ?? 'mir3d',
      producerVersion: '1',
      docString: spec.docString,
      opsetImport: [{ domain: '', version: ONNX_OPSET }],
      metadataProps: Object.entries(spec.metadata ?? {}).map(([key, value]) => ({ key, value })),
      graph: {
        name: spec.graphName,
        node: this.nodes,
        initializer: this.initializers,
        input: inputs.map(valueInfo),
        output: outputs.map(valueInfo),
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

function valueInfo(info: OnnxValueInfo): OnnxTypes.IValueInfoProto {
  return {
    name: info.name,
    type: {
      tensorType: {
        elemType: info.type === 'int64' ? onnx.TensorProto.DataType.INT64 : onnx.TensorProto.DataType.FLOAT,
        shape: { dim: info.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, value: AttributeValue): OnnxTypes.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`attribute ${name}: ${value} is not an integer; use { float }`);
    return { name, type: T.INT, i: value };
  }
  if (typeof value === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: T.INTS, ints: value };
  if ('float' in value) return { name, type: T.FLOAT, f: value.float };
  return { name, type: T.FLOATS, floats: value.floats };
}

/** ONNX raw_data is little-endian; copy so the protobuf does not alias a larger buffer. */
function littleEndianBytes(values: Float32Array | BigInt64Array): Uint8Array {
  if (new Uint8Array(Uint16Array.of(1).buffer)[0] !== 1) {
    throw new Error('big-endian hosts are not supported by the ONNX writer');
  }
  return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
}
