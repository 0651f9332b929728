/**
 * Runs a space's ONNX graph on rows of backbone vectors. The database (when an index is opened in the
 * space) and every query go through this one function, so a query scan lands exactly where the same scan
 * in the archive does. Sessions come from compute's one factory (same provider choice as the encoders).
 */
import { ComputeError } from '../compute/errors.js';
import { createSession, runSession, type InferenceSession, type SessionOptions } from '../compute/session.js';
import { SPACE_INPUT, SPACE_OUTPUT } from './graph.js';
import { SpaceError } from './errors.js';

/** Rows per run: large enough that the matrix product dominates, small enough to bound memory. */
const ROWS_PER_RUN = 8192;

export class SpaceKernel {
  private constructor(
    private readonly session: InferenceSession,
    readonly inputDim: number,
    readonly outputDim: number,
  ) {}

  /** Opens the graph; `where` names the space or index in errors. */
  static async open(model: Uint8Array, where: string, options: SessionOptions = {}): Promise<SpaceKernel> {
    let session: InferenceSession;
    try {
      session = (await createSession(model, options)).session;
    } catch (cause) {
      if (cause instanceof ComputeError && cause.code === 'PROVIDER_UNAVAILABLE') throw cause;
      throw new SpaceError('CORRUPT_SPACE', where, `its ONNX graph cannot be loaded (${cause instanceof Error ? cause.message.split('\n')[0] : String(cause)}); retrain it with mir3d train`, { cause });
    }
    if (!session.inputNames.includes(SPACE_INPUT) || !session.outputNames.includes(SPACE_OUTPUT)) {
      await session.release();
      throw new SpaceError('CORRUPT_SPACE', where, `the graph has no "${SPACE_INPUT}" input or "${SPACE_OUTPUT}" output`);
    }
    const meta = session.inputMetadata[session.inputNames.indexOf(SPACE_INPUT)];
    const width = meta?.isTensor ? meta.shape[1] : undefined;
    if (typeof width !== 'number' || !Number.isInteger(width) || width <= 0) {
      await session.release();
      throw new SpaceError('CORRUPT_SPACE', where, `the graph's "${SPACE_INPUT}" input has no fixed width`);
    }
    // The output width from a one-row probe, so a graph whose output shape is symbolic still reports it.
    const probe = await runSession(session, { [SPACE_INPUT]: { type: 'float32', data: new Float32Array(width), dims: [1, width] } }, [SPACE_OUTPUT]);
    return new SpaceKernel(session, width, probe[SPACE_OUTPUT].dims[1]);
  }

  /** rows × inputDim → rows × outputDim, unit rows. */
  async apply(vectors: Float32Array): Promise<Float32Array> {
    if (vectors.length % this.inputDim !== 0) throw new RangeError(`vectors hold ${vectors.length} floats, not a multiple of ${this.inputDim}`);
    const rows = vectors.length / this.inputDim;
    const out = new Float32Array(rows * this.outputDim);
    for (let r0 = 0; r0 < rows; r0 += ROWS_PER_RUN) {
      const n = Math.min(ROWS_PER_RUN, rows - r0);
      const result = await runSession(this.session, { [SPACE_INPUT]: { type: 'float32', data: vectors.subarray(r0 * this.inputDim, (r0 + n) * this.inputDim), dims: [n, this.inputDim] } }, [SPACE_OUTPUT]);
      out.set(result[SPACE_OUTPUT].data as Float32Array, r0 * this.outputDim);
    }
    return out;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
