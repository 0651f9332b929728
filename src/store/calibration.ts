/**
 * How wide an HNSW search this index needs (see ApproximateIndexCalibration): recall@20 of the graph
 * against exact search for a widening ladder of ef, until the target is reached.
 *
 * Queries are slices of held-out volumes, which the graph has not seen (they are added afterwards), like a
 * new patient's; without any (nothing new to add), slices of indexed volumes, each excluding its own
 * volume, whose near-duplicate slices would otherwise make the task easy (this side errs towards a wider
 * ef). The exact side runs on the flat engine, so calibrating loads the exact matrix: it runs at index time.
 */
import type { FlatIndex } from './flat-index.js';
import type { GraphIndex } from './hnsw-index.js';
import type { ApproximateIndexCalibration } from './types.js';
import { selectorOf } from './vector-index.js';

/** Calibration widths, narrowest first; steps of about 1.25× so that the chosen ef overshoots the target little. */
const EF_LADDER = [16, 24, 32, 40, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 512, 768, 1024];
const CALIBRATION_K = 20;
/** Calibration sample: this many volumes spread over the index, this many slices spread over each. */
const CALIBRATION_VOLUMES = 25;
const CALIBRATION_SLICES_PER_VOLUME = 8;

/** Up to CALIBRATION_VOLUMES keys spread evenly over `keys`. */
export function spreadSample(keys: readonly number[]): number[] {
  const step = Math.max(1, keys.length / CALIBRATION_VOLUMES);
  const out: number[] = [];
  for (let i = 0; i < CALIBRATION_VOLUMES && Math.floor(i * step) < keys.length; i++) out.push(keys[Math.floor(i * step)]);
  return out;
}

/**
 * Volumes to keep out of the graph while it is calibrated, so that their slices are queries the graph has
 * never seen: spread over the ones being added, at most a tenth of their slices.
 */
export function chooseHeldOut(missing: readonly number[], volumeCount: number, sliceCountOf: (key: number) => number): number[] {
  if (missing.length < 2 || volumeCount < 2) return [];
  const budget = 0.1 * missing.reduce((n, key) => n + sliceCountOf(key), 0);
  const held: number[] = [];
  let slices = 0;
  for (const key of spreadSample(missing)) {
    const count = sliceCountOf(key);
    if (held.length > 0 && slices + count > budget) break;
    held.push(key);
    slices += count;
  }
  // Never hold out everything the graph would hold.
  return held.length < missing.length ? held : held.slice(0, -1);
}

/** Measures the ladder on `graph` (synced, held-out volumes not yet in it), then adds the held-out volumes. */
export async function calibrate(graph: GraphIndex, flat: FlatIndex, targetRecall: number, heldOut: readonly number[]): Promise<ApproximateIndexCalibration> {
  const dim = graph.dim;
  const inGraph = [...graph.contents().keys()].sort((a, b) => a - b);
  const sampleFrom = heldOut.length > 0 ? [...heldOut] : spreadSample(inGraph);
  const excludeOwn = heldOut.length === 0 && inGraph.length > 1;
  const perVolume = Math.max(1, Math.ceil((CALIBRATION_VOLUMES * CALIBRATION_SLICES_PER_VOLUME) / sampleFrom.length));
  const sampled: Array<{ key: number; queries: Float32Array }> = [];
  for (const key of sampleFrom) {
    const rows = flat.view(key);
    if (!rows) continue;
    const count = rows.length / dim;
    const take = Math.min(perVolume, count);
    const queries = new Float32Array(take * dim);
    for (let i = 0; i < take; i++) {
      const row = Math.floor(((i + 0.5) * count) / take);
      queries.set(rows.subarray(row * dim, (row + 1) * dim), i * dim);
    }
    sampled.push({ key, queries });
  }
  const k = CALIBRATION_K;
  const truth: Array<Set<string>> = [];
  const owner: number[] = [];
  const graphKeys = new Set(inGraph);
  const tExact = performance.now();
  for (const { key, queries } of sampled) {
    const allowed = excludeOwn ? new Set(inGraph.filter((other) => other !== key)) : graphKeys;
    for (const list of await flat.search(queries, k, { selector: selectorOf(allowed, 0) })) {
      truth.push(new Set(list.map((h) => `${h.key}:${h.ordinal}`)));
      owner.push(key);
    }
  }
  const exactMs = performance.now() - tExact;
  const queries = new Float32Array(owner.length * dim);
  let offset = 0;
  for (const s of sampled) {
    queries.set(s.queries, offset);
    offset += s.queries.length;
  }
  const ladder: ApproximateIndexCalibration['ladder'] = [];
  for (const ef of EF_LADDER) {
    // ef results, not k: the own volume's slices, skipped below, must not shrink the search.
    const t = performance.now();
    const { found, volumeKeys, ordinals } = graph.searchRaw(queries, excludeOwn ? Math.max(ef, k) : k, ef);
    const ms = performance.now() - t;
    let hitCount = 0;
    let wanted = 0;
    for (let q = 0; q < owner.length; q++) {
      wanted += truth[q].size;
      let taken = 0;
      for (let i = 0; i < found.counts[q] && taken < truth[q].size; i++) {
        const volumeKey = volumeKeys[q * found.k + i];
        const ordinal = ordinals[q * found.k + i];
        if (excludeOwn && volumeKey === owner[q]) continue;
        taken++;
        if (truth[q].has(`${volumeKey}:${ordinal}`)) hitCount++;
      }
    }
    ladder.push({ ef, recall: wanted === 0 ? 1 : hitCount / wanted, msPerQuery: ms / Math.max(1, owner.length) });
    if (ladder[ladder.length - 1].recall >= targetRecall || ef >= graph.rows) break;
  }
  if (heldOut.length > 0) {
    graph.add(heldOut.flatMap((key) => {
      const vectors = flat.view(key);
      return vectors ? [{ key, vectors }] : [];
    }));
  }
  const chosen = ladder[ladder.length - 1];
  return {
    ef: chosen.ef,
    recall: chosen.recall,
    targetRecall,
    reached: chosen.recall >= targetRecall,
    k,
    queries: owner.length,
    sample: heldOut.length > 0 ? 'held-out volumes' : excludeOwn ? 'indexed slices, own volume excluded' : 'indexed slices',
    slices: graph.rows,
    exactMsPerQuery: exactMs / Math.max(1, owner.length),
    approximateMsPerQuery: chosen.msPerQuery,
    ladder,
  };
}
