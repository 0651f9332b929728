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
import type { TfjsArtifacts } from './tfjs-artifacts.js';
import { EncoderError } from './errors.js';
import { NchwEmitter } from './tfjs-nchw-emitter.js';
import { convertLayersModel } from './tfjs-layers-model.js';
import { convertGraphModel } from './tfjs-graph-model.js';

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

