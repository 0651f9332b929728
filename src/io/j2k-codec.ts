/**
 * JPEG 2000 frame decoding with the OpenJPEG WebAssembly build, in this thread or spread over a small
 * pool of worker threads. The build is single-threaded, 1.5–2× slower per frame than native OpenJPEG (which
 * pydicom reaches through Pillow), so on machines with cores to spare a series' frames are decoded side
 * by side.
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

interface J2KFrameInfo {
  width: number;
  height: number;
  bitsPerSample: number;
  componentCount: number;
  isSigned: boolean;
}
interface J2KDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getFrameInfo(): J2KFrameInfo;
  getDecodedBuffer(): Uint8Array;
  delete(): void;
}
interface OpenJpegModule {
  J2KDecoder: new () => J2KDecoder;
}

/** One decoded frame: its size and the samples' bytes (little-endian, 1 or 2 bytes a sample). */
export interface DecodedFrame {
  width: number;
  height: number;
  componentCount: number;
  bytes: Uint8Array;
}

export type J2kRequest = { id: number; encoded: Uint8Array };
export type J2kResponse = { id: number; frame: DecodedFrame } | { id: number; error: string };

// The OpenJPEG build is UMD/CommonJS; require() is the import form that works under Node's ESM loader.
const require = createRequire(import.meta.url);
let openJpeg: Promise<OpenJpegModule> | undefined;

/** Loaded on first use only: most series are uncompressed, and the WASM module costs ~10 ms to start.
 * Its print hooks are silenced because OpenJPEG writes progress lines to stdout for every frame. */
function loadOpenJpeg(): Promise<OpenJpegModule> {
  if (!openJpeg) {
    const factory = require('@cornerstonejs/codec-openjpeg/decodewasmjs') as (moduleArg: Record<string, unknown>) => Promise<OpenJpegModule>;
    openJpeg = factory({ print: () => undefined, printErr: () => undefined });
  }
  return openJpeg;
}

/** Decodes one codestream in this thread. Throws what OpenJPEG throws on a broken stream. */
export async function decodeJ2kHere(encoded: Uint8Array): Promise<DecodedFrame> {
  const codec = await loadOpenJpeg();
  const decoder = new codec.J2KDecoder();
  try {
    decoder.getEncodedBuffer(encoded.length).set(encoded);
    decoder.decode();
    const info = decoder.getFrameInfo();
    // Copy out of the WASM heap: the decoder's buffer dies with it.
    return { width: info.width, height: info.height, componentCount: info.componentCount, bytes: decoder.getDecodedBuffer().slice() };
  } finally {
    decoder.delete();
  }
}

/** Frames a worker holds at once: one decoding, one waiting, so it never idles between messages. */
const IN_FLIGHT_PER_WORKER = 2;

interface Pending {
  resolve: (frame: DecodedFrame) => void;
  reject: (error: Error) => void;
}

class J2kPool {
  private readonly workers: Worker[] = [];
  private readonly load: number[] = [];
  private readonly pending = new Map<number, Pending & { worker: number }>();
  private readonly queue: { id: number; encoded: Uint8Array; pending: Pending }[] = [];
  private nextId = 1;

  constructor(private readonly size: number) {}

  decode(encoded: Uint8Array): Promise<DecodedFrame> {
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, encoded, pending: { resolve, reject } });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      const index = this.leastLoaded();
      if (index < 0) return;
      const job = this.queue.shift()!;
      const worker = this.worker(index);
      this.load[index]++;
      this.pending.set(job.id, { ...job.pending, worker: index });
      // Referenced while it has work: an awaited frame is all that may keep the process alive.
      worker.ref();
      // A compact copy, moved rather than cloned: the codestream is usually a view into the whole file.
      const encoded = job.encoded.slice();
      worker.postMessage({ id: job.id, encoded } satisfies J2kRequest, [encoded.buffer]);
    }
  }

  private leastLoaded(): number {
    let best = -1;
    for (let n = 0; n < this.size; n++) {
      const load = this.load[n] ?? 0;
      if (load < IN_FLIGHT_PER_WORKER && (best < 0 || load < this.load[best])) best = n;
    }
    return best;
  }

  private worker(index: number): Worker {
    if (this.workers[index]) return this.workers[index];
    const worker = new Worker(new URL('./j2k-worker.js', import.meta.url));
    worker.unref();
    worker.on('message', (message: J2kResponse) => this.settle(index, message));
    worker.on('error', (error: Error) => this.fail(index, error));
    this.workers[index] = worker;
    this.load[index] = 0;
    return worker;
  }

  private settle(index: number, message: J2kResponse): void {
    const pending = this.pending.get(message.id);
    if (!pending) return;
    this.pending.delete(message.id);
    this.release(index);
    if ('error' in message) pending.reject(new Error(message.error));
    else pending.resolve(message.frame);
    this.dispatch();
  }

  private release(index: number): void {
    this.load[index]--;
    if (this.load[index] === 0) this.workers[index]?.unref();
  }

  /** A worker that died fails its frames; a new one takes its place for the rest. */
  private fail(index: number, error: Error): void {
    for (const [id, pending] of this.pending) {
      if (pending.worker !== index) continue;
      this.pending.delete(id);
      pending.reject(error);
    }
    this.workers[index]?.unref();
    delete this.workers[index];
    this.load[index] = 0;
    this.dispatch();
  }
}

let pool: J2kPool | undefined;

/** Worker threads used for a series of `frameCount` frames: none for one frame or on one core, else one
 * per core. bench:io on the idle 2-core machine: 1.01–1.13× pydicom on the pool against 0.59–0.79× in one
 * thread (three runs); while other jobs held both cores the pool lost (0.55× against 0.74×), the workers
 * only competing for them. MIR3D_DECODE_THREADS=N sets it (1: decode in this thread). */
export function j2kThreadsFor(frameCount: number, cores = availableParallelism(), env: NodeJS.ProcessEnv = process.env): number {
  const fallback = cores >= 2 ? cores : 1;
  const wanted = Number(env.MIR3D_DECODE_THREADS ?? fallback);
  const threads = Math.max(1, Math.floor(Number.isFinite(wanted) ? wanted : fallback));
  return frameCount < 2 || threads < 2 ? 0 : threads;
}

/**
 * Decodes one frame of a series of `frameCount` frames: on the pool when that pays (see j2kThreadsFor),
 * else here. The pool lives for the process; its idle workers never keep it alive.
 */
export function decodeJ2k(encoded: Uint8Array, frameCount: number, cores = availableParallelism()): Promise<DecodedFrame> {
  const threads = j2kThreadsFor(frameCount, cores);
  if (threads === 0) return decodeJ2kHere(encoded);
  pool ??= new J2kPool(threads);
  return pool.decode(encoded);
}
