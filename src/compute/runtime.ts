/**
 * ONNX Runtime sessions for the compute kernels: created once per process and execution-provider choice,
 * then shared by every store and every search (a session is safe to run concurrently).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { similarityModel, topKModel } from './graphs.js';

export type ComputeProviderChoice = 'auto' | 'cpu' | 'cuda';
export type ComputeProvider = 'cpu' | 'cuda';

export interface ComputeOptions {
  /** 'auto' (default) uses CUDA when a GPU, the CUDA backend and its provider library are all present. */
  provider?: ComputeProviderChoice;
  /** ONNX Runtime intra-op threads; default os.availableParallelism(). */
  threads?: number;
}

export class ComputeError extends Error {
  override readonly name = 'ComputeError';
  constructor(
    readonly code: 'PROVIDER_UNAVAILABLE' | 'BAD_INPUT',
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(detail, options);
  }
}

export interface ComputeSessions {
  readonly provider: ComputeProvider;
  /** Why CUDA is not used, when a GPU looked available or CUDA was asked for. */
  readonly providerNote: string | undefined;
  readonly threads: number;
  readonly topK: ort.InferenceSession;
  readonly similarity: ort.InferenceSession;
}

const cache = new Map<string, Promise<ComputeSessions>>();

/** Sessions for the given options, created on first use and reused for the life of the process. */
export function computeSessions(options: ComputeOptions = {}): Promise<ComputeSessions> {
  const threads = Math.max(1, Math.floor(options.threads ?? availableParallelism()));
  const choice = options.provider ?? 'auto';
  const key = `${choice}:${threads}`;
  let sessions = cache.get(key);
  if (!sessions) {
    sessions = createSessions(choice, threads);
    // A failed creation must not poison the cache (e.g. CUDA asked for before the driver came up).
    sessions.catch(() => cache.delete(key));
    cache.set(key, sessions);
  }
  return sessions;
}

function gpuPresent(): boolean {
  if (existsSync('/dev/nvidia0')) return true;
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, 'nvidia-smi')));
}

/** The CUDA provider is a separate shared library beside the binding; this project installs
 * onnxruntime-node without downloading it (onnxruntime-node-install=skip), so it is usually absent. */
function cudaProviderLibraryPresent(): boolean {
  try {
    const entry = createRequire(import.meta.url).resolve('onnxruntime-node');
    const dir = join(dirname(entry), '..', 'bin', 'napi-v6', process.platform, process.arch);
    return existsSync(join(dir, process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so'));
  } catch {
    return false;
  }
}

async function createSessions(choice: ComputeProviderChoice, threads: number): Promise<ComputeSessions> {
  const base: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  };
  let providerNote: string | undefined;
  if (choice !== 'cpu') {
    const gpu = gpuPresent();
    const cudaListed = ort.listSupportedBackends().some((backend) => backend.name === 'cuda');
    const library = cudaProviderLibraryPresent();
    if (gpu && cudaListed && library) {
      try {
        const options = { ...base, executionProviders: ['cuda', 'cpu'] };
        const [topK, similarity] = await Promise.all([
          ort.InferenceSession.create(topKModel(), options),
          ort.InferenceSession.create(similarityModel(), options),
        ]);
        return { provider: 'cuda', providerNote: undefined, threads, topK, similarity };
      } catch (cause) {
        providerNote = `CUDA execution provider failed to start (${cause instanceof Error ? cause.message.split('\n')[0] : String(cause)}); running on CPU`;
        if (choice === 'cuda') throw new ComputeError('PROVIDER_UNAVAILABLE', providerNote, { cause });
      }
    } else {
      const why = !gpu ? 'no NVIDIA GPU found' : !cudaListed ? 'this onnxruntime-node build has no CUDA backend' : 'onnxruntime-node was installed without its CUDA provider library';
      if (choice === 'cuda') throw new ComputeError('PROVIDER_UNAVAILABLE', `CUDA requested but ${why}`);
      providerNote = gpu ? `CUDA not used: ${why}; running on CPU` : undefined;
    }
  }
  const options = { ...base, executionProviders: ['cpu'] };
  const [topK, similarity] = await Promise.all([
    ort.InferenceSession.create(topKModel(), options),
    ort.InferenceSession.create(similarityModel(), options),
  ]);
  return { provider: 'cpu', providerNote, threads, topK, similarity };
}
