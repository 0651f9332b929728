/**
 * Runs a space's ONNX graph on rows of backbone vectors. The database (when an index is opened in the
 * space) and every query go through this one function, so a query scan lands exactly where the same scan
 * in the archive does.
 */
import { availableParallelism } from 'node:os';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { SPACE_INPUT, SPACE_OUTPUT } from './graph.js';
import { SpaceError } from './errors.js';

/** Rows per run: large enough that the matrix product dominates, small enough to bound memory. */
const ROWS_PER_RUN = 8192;

export class SpaceKernel {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly inputDim: number,
    readonly outputDim: number,
  ) {}

  /** Opens the graph; `where` names the file or index in errors. */
  static async open(model: Uint8Array, where: string): Promise<SpaceKernel> {
    let session: ort.InferenceSession;
    try {
      // TODO(perf): move to compute's one session factory once it lands.
      session = await ort.InferenceSession.create(model, { intraOpNumThreads: availableParallelism(), interOpNumThreads: 1, graphOptimizationLevel: 'all', executionProviders: ['cpu'] });
    } catch (cause) {
      throw new SpaceError('CORRUPT_SPACE', where, `the space's ONNX graph cannot be loaded (${cause instanceof Error ? cause.message.split('\n')[0] : String(cause)})`, { cause });
    }
    if (!session.inputNames.includes(SPACE_INPUT) || !session.outputNames.includes(SPACE_OUTPUT)) {
      throw new SpaceError('CORRUPT_SPACE', where, `the graph has no "${SPACE_INPUT}" input or "${SPACE_OUTPUT}" output`);
    }
    // Dimensions come from a one-row probe, so a graph whose shapes are symbolic still reports them.
    const inputDim = inputDimOf(model, where);
    const probe = await session.run({ [SPACE_INPUT]: new ort.Tensor('float32', new Float32Array(inputDim), [1, inputDim]) });
    const outputDim = (probe[SPACE_OUTPUT].dims as readonly number[])[1];
    return new SpaceKernel(session, inputDim, outputDim);
  }

  /** rows × inputDim → rows × outputDim, unit rows. */
  async apply(vectors: Float32Array): Promise<Float32Array> {
    if (vectors.length % this.inputDim !== 0) throw new RangeError(`vectors hold ${vectors.length} floats, not a multiple of ${this.inputDim}`);
    const rows = vectors.length / this.inputDim;
    const out = new Float32Array(rows * this.outputDim);
    for (let r0 = 0; r0 < rows; r0 += ROWS_PER_RUN) {
      const n = Math.min(ROWS_PER_RUN, rows - r0);
      const input = new ort.Tensor('float32', vectors.subarray(r0 * this.inputDim, (r0 + n) * this.inputDim), [n, this.inputDim]);
      const result = await this.session.run({ [SPACE_INPUT]: input });
      out.set(result[SPACE_OUTPUT].data as Float32Array, r0 * this.outputDim);
    }
    return out;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/** The fixed input width declared by the graph (mir3d writes it; a foreign graph must declare it too). */
function inputDimOf(model: Uint8Array, where: string): number {
  // Reading the declared shape needs the protobuf, not a session: ONNX Runtime does not expose it.
  return declaredInputDim(model) ?? (() => {
    throw new SpaceError('CORRUPT_SPACE', where, `the graph's "${SPACE_INPUT}" input has no fixed width`);
  })();
}

function declaredInputDim(model: Uint8Array): number | undefined {
  try {
    const decoded = onnxProto.onnx.ModelProto.decode(model);
    const input = decoded.graph?.input?.find((i) => i.name === SPACE_INPUT);
    const dim = input?.type?.tensorType?.shape?.dim?.[1]?.dimValue;
    const value = dim === undefined || dim === null ? undefined : Number(dim);
    return value !== undefined && Number.isInteger(value) && value > 0 ? value : undefined;
  } catch {
    return undefined;
  }
}
