/**
 * A space as an ONNX graph: backbone vectors X [n, d] → a chain of affine layers (ReLU between them) →
 * L2-normalized rows Y [n, m]. One graph serves the database and the query alike, so both sides pass
 * through exactly the same arithmetic; it is stored in the index as bytes and read back by any ONNX tool.
 * Written with compute's one graph builder (deterministic bytes: the same weights give the same hash).
 */
import { createHash } from 'node:crypto';
import { OnnxGraphBuilder } from '../compute/onnx-graph.js';

/** One affine map y = x·W + b, W stored row-major as inDim × outDim; `weight: null` is the identity
 * (mean-centring alone needs no matrix product). */
export interface AffineLayer {
  inDim: number;
  outDim: number;
  weight: Float32Array | null;
  bias: Float32Array;
}

/**
 * How backbone values enter the first layer: as they are, or power-normalized, sign(x)·√|x|. Pooled CNN
 * activations are heavy-tailed (a few channels fire hard on photo-specific textures); the root evens them
 * out before the statistics are taken, the usual "power normalization" of image retrieval. A head chooses
 * it by validation like its other settings.
 */
export type SpaceInput = 'identity' | 'signed-root';
export const SPACE_INPUTS: readonly SpaceInput[] = ['identity', 'signed-root'];

/** sign(x)·√|x| of every value, in a new array: what the graph's signed-root input computes. */
export function signedRootOf(values: Float32Array): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    out[i] = v < 0 ? -Math.sqrt(-v) : Math.sqrt(v);
  }
  return out;
}

export const SPACE_INPUT = 'backbone';
export const SPACE_OUTPUT = 'space';

function checkLayers(layers: readonly AffineLayer[]): void {
  if (layers.length === 0) throw new RangeError('a space needs at least one layer');
  layers.forEach((layer, n) => {
    if (layer.weight === null ? layer.inDim !== layer.outDim : layer.weight.length !== layer.inDim * layer.outDim) throw new RangeError(`layer ${n}: weight holds ${layer.weight?.length ?? 'an identity'} values, not ${layer.inDim}×${layer.outDim}`);
    if (layer.bias.length !== layer.outDim) throw new RangeError(`layer ${n}: bias holds ${layer.bias.length} values, not ${layer.outDim}`);
    if (n > 0 && layers[n - 1].outDim !== layer.inDim) throw new RangeError(`layer ${n} takes ${layer.inDim} values, layer ${n - 1} gives ${layers[n - 1].outDim}`);
  });
}

/** The ONNX bytes of the space (Sign/Abs/Sqrt/Mul for a signed-root input, MatMul, Add, Relu,
 * LpNormalization). */
export function spaceModel(layers: readonly AffineLayer[], doc: string, input: SpaceInput = 'identity'): Uint8Array {
  checkLayers(layers);
  const g = new OnnxGraphBuilder();
  g.reserve(SPACE_INPUT);
  let current = SPACE_INPUT;
  if (input === 'signed-root') current = g.node('Mul', [g.node('Sign', [current], 'sign'), g.node('Sqrt', [g.node('Abs', [current], 'abs')], 'root')], 'rooted');
  layers.forEach((layer, n) => {
    const bias = g.floatInitializer(`b${n}`, [layer.outDim], layer.bias);
    let product = current;
    if (layer.weight !== null) product = g.node('MatMul', [current, g.floatInitializer(`W${n}`, [layer.inDim, layer.outDim], layer.weight)], `xw${n}`);
    current = g.node('Add', [product, bias], `h${n}`);
    if (n < layers.length - 1) current = g.node('Relu', [current], `r${n}`);
  });
  g.namedNode({ opType: 'LpNormalization', inputs: [current], outputs: [SPACE_OUTPUT], attributes: { axis: 1, p: 2 } });
  return g.toModelBytes({
    graphName: 'mir3d_space',
    producerName: 'mir3d-space',
    docString: doc,
    input: { name: SPACE_INPUT, dims: ['n', layers[0].inDim] },
    output: { name: SPACE_OUTPUT, dims: ['n', layers[layers.length - 1].outDim] },
  });
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
