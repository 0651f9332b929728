/**
 * The two tiny ONNX graphs behind exact search and late-interaction scoring, written with onnx-proto.
 * Every size (query rows, database rows, dimension, k) is symbolic, so one session per graph serves every
 * index and every k: nothing is re-created when the archive grows or a caller asks for another k.
 */
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;
const ATTR = onnx.AttributeProto.AttributeType;

/** Opset 13: TopK takes k as a tensor input (so k need not be baked into the model) and Gemm accepts a
 * broadcast 1-D C. Every ONNX Runtime since 1.7 runs it. */
const OPSET = 13;
const IR_VERSION = 7;

function valueInfo(name: string, dims: Array<number | string>, elemType: number = FLOAT): OnnxTypes.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function intAttribute(name: string, value: number): OnnxTypes.IAttributeProto {
  return { name, type: ATTR.INT, i: value };
}

function encode(graph: OnnxTypes.IGraphProto, doc: string): Uint8Array {
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: IR_VERSION,
      producerName: 'mir3d-compute',
      producerVersion: '1',
      docString: doc,
      opsetImport: [{ domain: '', version: OPSET }],
      graph,
    }),
  ).finish();
}

/**
 * scores = Q·Xᵀ + bias (Gemm, transB=1), then TopK(k) along the database axis.
 * The bias row is 0 for rows that may be returned and −∞ for rows excluded by a filter, deleted or unused,
 * so filtering rides on the Gemm's C input and costs nothing extra.
 *
 * Inputs: Q [q, d], X [n, d], bias [n], k [1] (int64). Outputs: values [q, k], indices [q, k] (int64).
 */
export function topKModel(): Uint8Array {
  return encode(
    {
      name: 'mir3d_exact_topk',
      node: [
        { opType: 'Gemm', name: 'scores', input: ['Q', 'X', 'bias'], output: ['scores'], attribute: [intAttribute('transB', 1)] },
        {
          opType: 'TopK',
          name: 'topk',
          input: ['scores', 'k'],
          output: ['values', 'indices'],
          attribute: [intAttribute('axis', 1), intAttribute('largest', 1), intAttribute('sorted', 1)],
        },
      ],
      input: [valueInfo('Q', ['q', 'd']), valueInfo('X', ['n', 'd']), valueInfo('bias', ['n']), valueInfo('k', [1], INT64)],
      output: [valueInfo('values', ['q', 'kk']), valueInfo('indices', ['q', 'kk'], INT64)],
    },
    'Exact inner-product top-k with an additive row mask.',
  );
}

/** similarities = Q·Xᵀ (Gemm, transB=1). Inputs: Q [q, d], X [n, d]. Output: similarities [q, n]. */
export function similarityModel(): Uint8Array {
  return encode(
    {
      name: 'mir3d_similarity',
      node: [{ opType: 'Gemm', name: 'similarities', input: ['Q', 'X'], output: ['similarities'], attribute: [intAttribute('transB', 1)] }],
      input: [valueInfo('Q', ['q', 'd']), valueInfo('X', ['n', 'd'])],
      output: [valueInfo('similarities', ['q', 'n'])],
    },
    'Inner products of every query row with every database row.',
  );
}
