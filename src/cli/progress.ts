import { SingleBar } from 'cli-progress';

/**
 * One progress display for long work: a bar with rate and ETA on a terminal; on a pipe or in CI a
 * plain line every few seconds instead, so logs show progress without control characters.
 */
export interface Progress {
  update(done: number, detail?: string): void;
  /** Grows the total (work discovered as it goes, e.g. slices of the next volume). */
  setTotal(total: number): void;
  stop(): void;
}

const PLAIN_INTERVAL_MS = 5000;

export function startProgress(label: string, total: number, unit: string, enabled = true): Progress {
  if (!enabled) return { update: () => undefined, setTotal: () => undefined, stop: () => undefined };
  if (process.stderr.isTTY) {
    const bar = new SingleBar({
      format: `${label} [{bar}] {value}/{total} ${unit} | {rate} ${unit}/s | ETA {eta_formatted} | {detail}`,
      hideCursor: true,
      etaBuffer: 50,
      fps: 5,
      stream: process.stderr,
    });
    const started = performance.now();
    bar.start(total, 0, { rate: '0.0', detail: '' });
    const rate = (done: number): string => (done / Math.max((performance.now() - started) / 1000, 1e-3)).toFixed(1);
    return {
      update: (done, detail = '') => bar.update(done, { rate: rate(done), detail }),
      setTotal: (value) => bar.setTotal(value),
      stop: () => bar.stop(),
    };
  }
  const started = performance.now();
  let last = started;
  let currentTotal = total;
  return {
    update(done, detail = '') {
      const now = performance.now();
      if (now - last < PLAIN_INTERVAL_MS && done < currentTotal) return;
      last = now;
      const rate = done / Math.max((now - started) / 1000, 1e-3);
      const etaS = rate > 0 ? (currentTotal - done) / rate : Infinity;
      process.stderr.write(`${label}: ${done}/${currentTotal} ${unit}, ${rate.toFixed(1)} ${unit}/s, ETA ${Number.isFinite(etaS) ? `${etaS.toFixed(0)} s` : '?'}${detail ? `, ${detail}` : ''}\n`);
    },
    setTotal(value) {
      currentTotal = value;
    },
    stop: () => undefined,
  };
}
