/**
 * The one place that creates ONNX Runtime sessions (encoders, heads, text towers, the compute kernels) and
 * chooses their execution provider, so every model in a process runs where the others do and says why
 * when that is not the GPU.
 */
import { existsSync, readdirSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { ComputeError } from './errors.js';

/** What a caller asks for: 'auto' uses CUDA when a GPU, the CUDA backend and its provider library are all
 * present, else CPU. */
export type ExecutionProviderChoice = 'auto' | 'cpu' | 'cuda';
/** What a session runs on. */
export type ExecutionProvider = 'cpu' | 'cuda';

export interface SessionOptions {
  /** Default 'auto'. */
  provider?: ExecutionProviderChoice;
  /** ONNX Runtime intra-op threads; default os.availableParallelism(). */
  threads?: number;
  /** Let idle intra-op threads spin-wait for work (ONNX Runtime's default). Default false, or true when
   * $MIR3D_ORT_SPIN is 1: spinning threads hold their cores between operators, which on shared or few cores
   * starves the thread that prepares the next batch (bench:embed measures both). 'during-run': spin
   * between the operators of a run and stop when it returns (ONNX Runtime's session.force_spinning_stop):
   * no core is held after a run, so sessions with thread pools of their own never spin over each other. */
  spinning?: boolean | 'during-run';
}

export interface OpenedSession {
  session: ort.InferenceSession;
  provider: ExecutionProvider;
  /** Why CUDA is not used, when a GPU looked available or CUDA was asked for; else undefined. */
  providerNote: string | undefined;
}

/** A GPU is there when the driver's device node or nvidia-smi exists (no process is spawned). */
export function gpuPresent(): boolean {
  if (existsSync('/dev/nvidia0')) return true;
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, 'nvidia-smi')));
}

const CUDA_PROVIDER_FILE = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';

/** Where onnxruntime-node's native binding lies: bin/napi-vN/<platform>/<arch>/ (N depends on the release). */
export function ortBindingDirs(): string[] {
  try {
    const bin = join(dirname(createRequire(import.meta.url).resolve('onnxruntime-node')), '..', 'bin');
    return readdirSync(bin)
      .map((napi) => join(bin, napi, process.platform, process.arch))
      .filter((dir) => existsSync(dir));
  } catch {
    return [];
  }
}

/** The provider libraries onnxruntime-node's CUDA backend needs beside its binding (its install script
 * takes them from the NuGet package Microsoft.ML.OnnxRuntime.Gpu.Linux of the same version). */
export const CUDA_PROVIDER_FILES: readonly string[] =
  process.platform === 'win32' ? [CUDA_PROVIDER_FILE, 'onnxruntime_providers_shared.dll'] : [CUDA_PROVIDER_FILE, 'libonnxruntime_providers_shared.so'];

/** Environment variable naming a folder that holds the CUDA provider libraries (see the README). */
export const CUDA_PROVIDER_DIR_ENV = 'MIR3D_ORT_CUDA_DIR';

/**
 * The CUDA provider library ONNX Runtime would load, or undefined. ONNX Runtime loads it from the folder of
 * its own shared library (the binding's folder), never from LD_LIBRARY_PATH, and this project installs
 * onnxruntime-node without the download that puts it there (onnxruntime-node-install=skip). When
 * $MIR3D_ORT_CUDA_DIR holds the libraries and the binding's folder does not, they are linked into it
 * (symbolic links, once), which is the only place ONNX Runtime looks.
 */
export function cudaProviderLibrary(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dirs = ortBindingDirs();
  for (const dir of dirs) {
    const library = join(dir, CUDA_PROVIDER_FILE);
    if (existsSync(library)) return library;
  }
  const from = env[CUDA_PROVIDER_DIR_ENV];
  if (!from || dirs.length === 0) return undefined;
  if (!CUDA_PROVIDER_FILES.every((file) => existsSync(join(from, file)))) return undefined;
  return linkCudaProviders(from, dirs[0]);
}

/** Links the provider libraries of `fromDir` into the binding folder `bindingDir`; undefined when it cannot. */
export function linkCudaProviders(fromDir: string, bindingDir: string): string | undefined {
  try {
    for (const file of CUDA_PROVIDER_FILES) {
      const target = join(bindingDir, file);
      if (!existsSync(target)) symlinkSync(resolve(fromDir, file), target);
    }
    return join(bindingDir, CUDA_PROVIDER_FILE);
  } catch {
    return undefined;
  }
}

export function resolveThreads(threads: number | undefined): number {
  return Math.max(1, Math.floor(threads ?? availableParallelism()));
}

/**
 * A session for `model` (a file path or the model's bytes). ComputeError 'PROVIDER_UNAVAILABLE' when CUDA was
 * asked for and cannot run; 'BAD_MODEL' when ONNX Runtime cannot load the model.
 */
export async function createSession(model: string | Uint8Array, options: SessionOptions = {}): Promise<OpenedSession> {
  const base: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: resolveThreads(options.threads),
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    extra: {
      session: {
        intra_op: { allow_spinning: spinningOf(options.spinning) ? '1' : '0' },
        ...(options.spinning === 'during-run' ? { force_spinning_stop: '1' } : {}),
      },
    },
  };
  const choice = options.provider ?? 'auto';
  let providerNote: string | undefined;
  if (choice !== 'cpu') {
    const gpu = gpuPresent();
    const cudaListed = ort.listSupportedBackends().some((backend) => backend.name === 'cuda');
    const library = cudaProviderLibrary();
    if (gpu && cudaListed && library) {
      try {
        const session = await createWith(model, { ...base, executionProviders: ['cuda', 'cpu'] });
        return { session, provider: 'cuda', providerNote: undefined };
      } catch (cause) {
        providerNote = `CUDA execution provider failed to start (${firstLine(cause)}); running on CPU`;
        if (choice === 'cuda') throw new ComputeError('PROVIDER_UNAVAILABLE', providerNote, { cause });
      }
    } else {
      const why = !gpu
        ? 'no NVIDIA GPU found'
        : !cudaListed
          ? 'this onnxruntime-node build has no CUDA backend'
          : `onnxruntime-node was installed without its CUDA provider library (set ${CUDA_PROVIDER_DIR_ENV} to a folder holding ${CUDA_PROVIDER_FILES.join(' and ')}; see the README)`;
      if (choice === 'cuda') throw new ComputeError('PROVIDER_UNAVAILABLE', `CUDA requested but ${why}`);
      providerNote = gpu ? `CUDA not used: ${why}; running on CPU` : undefined;
    }
  }
  try {
    const session = await createWith(model, { ...base, executionProviders: ['cpu'] });
    return { session, provider: 'cpu', providerNote };
  } catch (cause) {
    throw new ComputeError('BAD_MODEL', `ONNX Runtime cannot load the model: ${firstLine(cause)}`, { cause });
  }
}

export function spinningOf(spinning: SessionOptions['spinning'], env: NodeJS.ProcessEnv = process.env): boolean {
  return spinning === undefined ? env.MIR3D_ORT_SPIN === '1' : spinning !== false;
}

function createWith(model: string | Uint8Array, options: ort.InferenceSession.SessionOptions): Promise<ort.InferenceSession> {
  return typeof model === 'string' ? ort.InferenceSession.create(model, options) : ort.InferenceSession.create(model, options);
}

function firstLine(cause: unknown): string {
  const text = cause instanceof Error ? cause.message : String(cause);
  return text.split('\n')[0].replace(/\u001b\[[0-9;]*m/g, '').trim();
}

/** A session as the rest of the project sees it (the ONNX Runtime type, named here so no stage imports it). */
export type InferenceSession = ort.InferenceSession;
export type ValueMetadata = ort.InferenceSession.ValueMetadata;

/** A plain tensor going into or coming out of a session run. */
export type TensorData =
  | { type: 'float32'; data: Float32Array; dims: readonly number[] }
  | { type: 'int64'; data: BigInt64Array; dims: readonly number[] }
  | { type: 'int32'; data: Int32Array; dims: readonly number[] };

export interface RunOutput {
  type: string;
  data: unknown;
  dims: number[];
}

/** Runs `session` on plain tensors (no copy of the inputs) and returns the named outputs as plain data. */
export async function runSession(
  session: InferenceSession,
  feeds: Record<string, TensorData>,
  outputNames?: readonly string[],
  options: { quiet?: boolean } = {},
): Promise<Record<string, RunOutput>> {
  const tensors: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(feeds)) tensors[name] = new ort.Tensor(t.type, t.data, t.dims);
  // quiet: ONNX Runtime would also print its own multi-line log of a failed run to stderr, where the
  // caller says it in one line.
  const runOptions: ort.InferenceSession.RunOptions = options.quiet ? { logSeverityLevel: 4 } : {};
  const results = outputNames ? await session.run(tensors, [...outputNames], runOptions) : await session.run(tensors, runOptions);
  const out: Record<string, RunOutput> = {};
  for (const [name, tensor] of Object.entries(results)) {
    out[name] = { type: tensor.type, data: tensor.data, dims: tensor.dims.slice() };
    tensor.dispose();
  }
  return out;
}
