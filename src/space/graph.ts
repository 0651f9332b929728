/**
 * A space as an ONNX graph: backbone vectors X [n, d] → a chain of affine layers (ReLU between them) →
 * L2-normalized rows Y [n, m]. One graph serves the database and the query alike, so both sides pass
 * through exactly the same arithmetic; it is stored in the index as bytes and read back by any ONNX tool.
 */
import { createHash } from 'node:crypto';
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const ATTR = onnx.AttributeProto.AttributeType;

/** One affine map y = x·W + b, W stored row-major as inDim × outDim; `weight: null` is the identity
 * (mean-centring alone needs no matrix product). */
export interface AffineLayer {
  inDim: number;
  outDim: number;
  weight: Float32Array | null;
  bias: Float32Array;
}

export const SPACE_INPUT = 'backbone';
export const SPACE_OUTPUT = 'space';

function tensor(name: string, dims: number[], values: Float32Array): OnnxTypes.ITensorProto {
  return { name, dims, dataType: FLOAT, rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

function checkLayers(layers: readonly AffineLayer[]): void {
  if (layers.length === 0) throw new RangeError('a space needs at least one layer');
  layers.forEach((layer, n) => {
    if (layer.weight === null ? layer.inDim !== layer.outDim : layer.weight.length !== layer.inDim * layer.outDim) throw new RangeError(`layer ${n}: weight holds ${layer.weight?.length ?? "an identity"} values, not ${layer.inDim}×${layer.outDim}`);
    if (layer.bias.length !== layer.outDim) throw new RangeError(`layer ${n}: bias holds ${layer.bias.length} values, not ${layer.outDim}`);
    if (n > 0 && layers[n - 1].outDim !== layer.inDim) throw new RangeError(`layer ${n} takes ${layer.inDim} values, layer ${n - 1} gives ${layers[n - 1].outDim}`);
  });
}

/** The ONNX bytes of the space (opset 13: MatMul, Add, Relu, LpNormalization). */
export function spaceModel(layers: readonly AffineLayer[], doc: string): Uint8Array {
  checkLayers(layers);
  const nodes: OnnxTypes.INodeProto[] = [];
  const initializer: OnnxTypes.ITensorProto[] = [];
  let current = SPACE_INPUT;
  layers.forEach((layer, n) => {
    initializer.push(tensor(`b${n}`, [layer.outDim], layer.bias));
    let product = current;
    if (layer.weight !== null) {
      initializer.push(tensor(`W${n}`, [layer.inDim, layer.outDim], layer.weight));
      nodes.push({ opType: 'MatMul', name: `matmul${n}`, input: [current, `W${n}`], output: [`xw${n}`] });
      product = `xw${n}`;
    }
    nodes.push({ opType: 'Add', name: `add${n}`, input: [product, `b${n}`], output: [`h${n}`] });
    current = `h${n}`;
    if (n < layers.length - 1) {
      nodes.push({ opType: 'Relu', name: `relu${n}`, input: [current], output: [`r${n}`] });
      current = `r${n}`;
    }
  });
  nodes.push({ opType: 'LpNormalization', name: 'unit_rows', input: [current], output: [SPACE_OUTPUT], attribute: [{ name: 'axis', type: ATTR.INT, i: 1 }, { name: 'p', type: ATTR.INT, i: 2 }] });
  const dims = (d: Array<number | string>): OnnxTypes.ITypeProto => ({ tensorType: { elemType: FLOAT, shape: { dim: d.map((v) => (typeof v === 'number' ? { dimValue: v } : { dimParam: v })) } } });
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 7,
      producerName: 'mir3d-space',
      producerVersion: '1',
      docString: doc,
      opsetImport: [{ domain: '', version: 13 }],
      graph: {
        name: 'mir3d_space',
        node: nodes,
        initializer,
        input: [{ name: SPACE_INPUT, type: dims(['n', layers[0].inDim]) }],
        output: [{ name: SPACE_OUTPUT, type: dims(['n', layers[layers.length - 1].outDim]) }],
      },
    }),
  ).finish();
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
