/** Failures of the ONNX Runtime layer: sessions, providers and the numeric kernels. */
export type ComputeErrorCode = 'PROVIDER_UNAVAILABLE' | 'BAD_MODEL' | 'BAD_INPUT' | 'KERNEL_OUTPUT';

export class ComputeError extends Error {
  override readonly name = 'ComputeError';
  constructor(
    readonly code: ComputeErrorCode,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(detail, options);
  }
}
