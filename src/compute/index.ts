/** Everything that touches ONNX Runtime: sessions and provider choice, the graph builder, the numeric
 * kernels. Imports nothing else from the project, so any stage may use it. */
export { ComputeError, type ComputeErrorCode } from './errors.js';
export {
  createSession,
  CUDA_PROVIDER_DIR_ENV,
  CUDA_PROVIDER_FILES,
  cudaProviderLibrary,
  linkCudaProviders,
  gpuPresent,
  ortBindingDirs,
  runSession,
  type ExecutionProvider,
  type ExecutionProviderChoice,
  type InferenceSession,
  type OpenedSession,
  type RunOutput,
  type SessionOptions,
  type TensorData,
  type ValueMetadata,
} from './session.js';
export { OnnxGraphBuilder, ONNX_IR_VERSION, ONNX_OPSET, type AttributeValue, type OnnxDim, type OnnxElementType, type OnnxNodeSpec, type OnnxValueInfo } from './onnx-graph.js';
export { computeSessions, type ComputeOptions, type ComputeSessions } from './runtime.js';
export { exactTopK, type RowBlock, type TopKOptions, type TopKResult } from './topk.js';
export {
  maxSimFromSimilarity,
  maxSimilarityPerSegment,
  type MaxSimBackend,
  type MaxSimKernel,
  type MaxSimOptions,
  type MaxSimResult,
} from './max-sim.js';
export { similarityMatrix, typescriptSimilarity, type SimilarityKernel } from './similarity-ts.js';
