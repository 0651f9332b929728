import { Mir3dError } from '../errors.js';

/** Failures of the ONNX Runtime layer: sessions, providers and the numeric kernels. */
export type ComputeErrorCode = 'PROVIDER_UNAVAILABLE' | 'BAD_MODEL' | 'BAD_INPUT' | 'KERNEL_OUTPUT';

/**
 * An unavailable provider or an unreadable model is the setup's problem (expected, persistent: every
 * later call fails alike); bad kernel input or output is a defect of the caller or the kernel.
 */
export class ComputeError extends Mir3dError<ComputeErrorCode> {
  override readonly name = 'ComputeError';
  constructor(
    code: ComputeErrorCode,
    readonly detail: string,
    options: { cause?: unknown } = {},
  ) {
    const setup = code === 'PROVIDER_UNAVAILABLE' || code === 'BAD_MODEL';
    super(code, detail, { ...options, expected: setup, persistent: setup });
  }
}
