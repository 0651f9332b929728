/** What the benchmarks share: the median, one timed call (wall and CPU of all threads), random unit rows. */

export const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** `run` once: its value, wall seconds, and CPU seconds of all the process's threads (user + system). */
export async function timed<T>(run: () => Promise<T>): Promise<{ value: T; seconds: number; cpuSeconds: number }> {
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const value = await run();
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  return { value, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

/** xorshift128+ → Box–Muller: random unit vectors fast enough for 1.28 G numbers. */
export function unitRows(rows: number, dim: number, seed: number): Float32Array {
  let s0 = (seed * 2654435761) >>> 0 || 1;
  let s1 = (seed * 40503 + 12345) >>> 0 || 2;
  const next = (): number => {
    let x = s0;
    const y = s1;
    s0 = y;
    x ^= x << 23;
    x ^= x >>> 17;
    x ^= y ^ (y >>> 26);
    s1 = x >>> 0;
    return ((s0 + s1) >>> 0) / 4294967296;
  };
  const out = new Float32Array(rows * dim);
  for (let i = 0; i < out.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(next() + 1e-12));
    const t = 2 * Math.PI * next();
    out[i] = r * Math.cos(t);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(t);
  }
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = r * dim; j < (r + 1) * dim; j++) s += out[j] * out[j];
    const inv = 1 / Math.sqrt(s);
    for (let j = r * dim; j < (r + 1) * dim; j++) out[j] *= inv;
  }
  return out;
}
