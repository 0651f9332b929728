import { ApiError } from './errors.js';

/**
 * Runs at most `concurrency` tasks at once and queues at most `maxQueued` more; past that a request is
 * refused with 503 at once rather than piling up memory (each queued search or volume load holds a
 * request, and a decoded volume can be hundreds of MB).
 */
export class Limiter {
  private running = 0;
  private readonly queue: (() => void)[] = [];

  constructor(
    readonly name: string,
    readonly concurrency: number,
    readonly maxQueued: number,
  ) {}

  get active(): number {
    return this.running;
  }

  get queued(): number {
    return this.queue.length;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.concurrency) {
      if (this.queue.length >= this.maxQueued) {
        throw new ApiError(503, 'BUSY', `too many ${this.name} requests in progress; retry shortly`, 1);
      }
      await new Promise<void>((resolve) => this.queue.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await task();
    } finally {
      // Hand the slot straight to the next waiter (running stays the same), else free it.
      const next = this.queue.shift();
      if (next) next();
      else this.running--;
    }
  }
}
