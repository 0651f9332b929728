/** The volumes the crash writer adds, shared with the test that checks them after each kill. */
import { testVolume, SliceLikeGenerator, type TestVolume } from './vectors.js';

export const CRASH_ENCODER_ID = 'crash-test-encoder@v1';

const generators = new Map<string, SliceLikeGenerator>();

/** Volume i: slice-like vectors, a length that varies with i (so freed runs get reused unevenly). */
export function crashVolume(i: number, dim: number, rows: number): TestVolume {
  const key = `${dim}:${rows}`;
  let generator = generators.get(key);
  if (!generator) generators.set(key, (generator = new SliceLikeGenerator(dim, rows, 99)));
  const n = rows - (i % 5) * Math.floor(rows / 10);
  return testVolume(`crash-${i}`, generator.volume(i, n), dim, { labels: { index: i } });
}
