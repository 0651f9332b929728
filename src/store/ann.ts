/**
 * The approximate (HNSW) index: derived data beside the SQLite file, never the source of truth.
 *
 * On disk: `<dir>/ann-<token>.usearch` plus the sidecar `<dir>/ann.json`, which names the file, its byte
 * length and CRC-32, the HNSW parameters, and which volumes (store keys and slice counts) it holds.
 * Saving writes a new token file (temp, fsync, rename), then replaces the sidecar (temp, fsync, rename),
 * then deletes the old file: after a crash at any point the sidecar names a complete file that matches
 * its description. Files no sidecar names are leftovers and are deleted on the next writable open.
 *
 * The CRC is checked before usearch reads the file because usearch's loader aborts the whole process
 * (heap corruption, not an exception) on a truncated file (seen with a file cut to 10 bytes).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import type { ApproximateIndexCalibration as AnnCalibration } from './types.js';
import { HnswIndex, type HnswConfig, type HnswResult } from './usearch.js';

export const SIDECAR_NAME = 'ann.json';
const FORMAT_VERSION = 2;
/** Relative change in graph size after which a calibration is measured again. */
export const CALIBRATION_DRIFT = 0.1;

/** A sanity bound on one volume's slice count (the store refuses more). */
export const MAX_SLICES_PER_VOLUME = 1 << 20;

/**
 * usearch keys: each volume gets a contiguous range [base, base + slices), bases handed out from a counter
 * that only grows (a removed volume's range is never reused). Dense, sequential keys matter: usearch hashes
 * keys with the identity into a power-of-two table, and the earlier `volume × 2^20 + slice` keys shared
 * their low bits across volumes, which made building 1M slices 4× slower than with dense keys (measured).
 */
function rangeKeys(base: number, rows: number): BigUint64Array {
  const keys = new BigUint64Array(rows);
  const words = new Uint32Array(keys.buffer);
  for (let i = 0; i < rows; i++) {
    const key = base + i;
    words[2 * i] = key % 4294967296;
    words[2 * i + 1] = Math.floor(key / 4294967296);
  }
  return keys;
}

interface Sidecar {
  formatVersion: number;
  file: string;
  fileBytes: number;
  crc32: number;
  encoderId: string;
  dim: number;
  metric: 'ip';
  quantization: 'f16';
  connectivity: number;
  expansionAdd: number;
  /** [volume key, slice count, first usearch key] of every volume the file holds. */
  volumes: Array<[number, number, number]>;
  /** The next volume's first usearch key. */
  nextKey: number;
  /** Slices removed since the last full build (usearch keeps them as tombstones in the graph). */
  removedSlices: number;
  savedAt: string;
  calibration?: AnnCalibration;
}

export class AnnIndex {
  /** Volume key → slice count and first usearch key of every volume in the graph. */
  readonly contents = new Map<number, { rows: number; base: number }>();
  private nextKey = 0;
  /** Bases in ascending order with their volume keys, for resolving search results; rebuilt after changes. */
  private lookup: { bases: Float64Array; volumeKeys: Float64Array } | undefined;
  removedSlices = 0;
  /** The graph differs from the file the sidecar names. */
  dirty = true;
  private savedFile: string | undefined;
  private savedFileBytes = 0;
  private savedCrc32 = 0;
  private calibrationValue: AnnCalibration | undefined;
  /** The calibration changed since the sidecar was written (the graph file need not be rewritten). */
  private calibrationDirty = false;
  /** Memory-mapped from its file (shared with every other reader of it), so it cannot change: callers
   * replace a viewed index by a loaded one before adding or removing. */
  viewed = false;

  constructor(
    readonly hnsw: HnswIndex,
    readonly encoderId: string,
  ) {}

  get liveSlices(): number {
    return this.hnsw.size;
  }

  /** Adds volumes in one usearch call (its threads parallelize over the rows). */
  addVolumes(volumes: ReadonlyArray<{ key: number; vectors: Float32Array }>, threads: number): void {
    const dim = this.hnsw.config.dim;
    const fresh = volumes.filter((v) => !this.contents.has(v.key));
    if (fresh.length === 0) return;
    if (this.viewed) throw new Error('a memory-mapped HNSW graph cannot change');
    let rows = 0;
    for (const v of fresh) rows += v.vectors.length / dim;
    const keys = rangeKeys(this.nextKey, rows);
    const matrix = fresh.length === 1 ? fresh[0].vectors : new Float32Array(rows * dim);
    let row = 0;
    for (const v of fresh) {
      const n = v.vectors.length / dim;
      if (matrix !== v.vectors) matrix.set(v.vectors, row * dim);
      this.contents.set(v.key, { rows: n, base: this.nextKey + row });
      row += n;
    }
    this.hnsw.add(keys, matrix, threads);
    this.nextKey += rows;
    this.lookup = undefined;
    this.dirty = true;
  }

  removeVolume(key: number): boolean {
    const volume = this.contents.get(key);
    if (volume === undefined) return false;
    const { rows, base } = volume;
    if (this.viewed) throw new Error('a memory-mapped HNSW graph cannot change');
    this.hnsw.remove(rangeKeys(base, rows));
    this.contents.delete(key);
    this.lookup = undefined;
    this.removedSlices += rows;
    this.dirty = true;
    return true;
  }

  /**
   * (volume key, slice ordinal) of every usearch key of a search result; volume key −1 for a key no volume
   * holds. Keys stay below 2^53, so their two little-endian 32-bit words give each one exactly as a double,
   * without BigInt arithmetic (which allocates per operation; the store refuses big-endian machines).
   */
  resolve(keys: BigUint64Array): { volumeKeys: Float64Array; ordinals: Int32Array } {
    if (!this.lookup) {
      const sorted = [...this.contents.entries()].sort((a, b) => a[1].base - b[1].base);
      this.lookup = { bases: Float64Array.from(sorted, (e) => e[1].base), volumeKeys: Float64Array.from(sorted, (e) => e[0]) };
    }
    const { bases, volumeKeys: owners } = this.lookup;
    const words = new Uint32Array(keys.buffer, keys.byteOffset, keys.length * 2);
    const volumeKeys = new Float64Array(keys.length);
    const ordinals = new Int32Array(keys.length);
    for (let i = 0; i < keys.length; i++) {
      const key = words[2 * i + 1] * 4294967296 + words[2 * i];
      // The last base ≤ key.
      let lo = 0;
      let hi = bases.length - 1;
      let at = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (bases[mid] <= key) {
          at = mid;
          lo = mid + 1;
        } else {
          hi = mid - 1;
        }
      }
      const volumeKey = at < 0 ? -1 : owners[at];
      const ordinal = at < 0 ? -1 : key - bases[at];
      const inside = volumeKey >= 0 && ordinal < this.contents.get(volumeKey)!.rows;
      volumeKeys[i] = inside ? volumeKey : -1;
      ordinals[i] = inside ? ordinal : -1;
    }
    return { volumeKeys, ordinals };
  }

  search(queries: Float32Array, k: number, threads: number, ef?: number): HnswResult {
    return this.hnsw.search(queries, k, threads, ef);
  }

  /** The last calibration, while it still describes this graph: measured on a graph within
   * CALIBRATION_DRIFT of today's size (a few volumes more or less do not change how wide a search must be). */
  get calibration(): AnnCalibration | undefined {
    return this.calibrationFor(this.liveSlices);
  }

  /** The calibration if it would still hold for a graph of `slices` slices (and was made for `targetRecall`). */
  calibrationFor(slices: number, targetRecall?: number): AnnCalibration | undefined {
    const c = this.calibrationValue;
    if (!c || (targetRecall !== undefined && c.targetRecall !== targetRecall)) return undefined;
    return Math.abs(slices - c.slices) <= CALIBRATION_DRIFT * c.slices ? c : undefined;
  }

  set calibration(value: AnnCalibration | undefined) {
    this.calibrationValue = value;
    this.calibrationDirty = true;
  }

  /** Writes the graph (when it changed) and its sidecar atomically (see the file comment); a no-op when
   * nothing changed. */
  save(dir: string): void {
    if (!this.dirty && !this.calibrationDirty) return;
    const token = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
    let file = this.savedFile;
    let fileBytes = this.savedFileBytes;
    let crc32 = this.savedCrc32;
    if (this.dirty || file === undefined) {
      file = `ann-${token}.usearch`;
      const temp = join(dir, `${file}.tmp`);
      this.hnsw.save(temp);
      fsyncPath(temp);
      fileBytes = statSync(temp).size;
      crc32 = fileCrc32(temp);
      renameSync(temp, join(dir, file));
    }
    const sidecar: Sidecar = {
      formatVersion: FORMAT_VERSION,
      file,
      fileBytes,
      crc32,
      encoderId: this.encoderId,
      dim: this.hnsw.config.dim,
      metric: 'ip',
      quantization: 'f16',
      connectivity: this.hnsw.config.connectivity,
      expansionAdd: this.hnsw.config.expansionAdd,
      volumes: [...this.contents.entries()].map(([key, { rows, base }]) => [key, rows, base]),
      nextKey: this.nextKey,
      removedSlices: this.removedSlices,
      savedAt: new Date().toISOString(),
      ...(this.calibrationValue ? { calibration: this.calibrationValue } : {}),
    };
    // The file the sidecar names now: ours from the last save, or one loaded or left by another run.
    const previous = this.savedFile ?? sidecarFile(dir);
    const sidecarTemp = join(dir, `${SIDECAR_NAME}.${token}.tmp`);
    writeFileSync(sidecarTemp, JSON.stringify(sidecar));
    fsyncPath(sidecarTemp);
    renameSync(sidecarTemp, join(dir, SIDECAR_NAME));
    fsyncPath(dir);
    this.savedFile = file;
    this.savedFileBytes = fileBytes;
    this.savedCrc32 = crc32;
    this.dirty = false;
    this.calibrationDirty = false;
    if (previous && previous !== file) tryUnlink(join(dir, previous));
  }

  /**
   * Loads the graph the sidecar names (`view`: memory-maps it read-only instead of reading it into private
   * memory). Returns a reason instead when it cannot be used as it is (missing, unreadable, another
   * encoder or HNSW shape): the caller then builds a new one.
   */
  static load(dir: string, encoderId: string, config: HnswConfig, options: { view?: boolean } = {}): { index: AnnIndex } | { problem: string } {
    const sidecarPath = join(dir, SIDECAR_NAME);
    if (!existsSync(sidecarPath)) return { problem: 'no approximate index yet' };
    let sidecar: Sidecar;
    try {
      sidecar = JSON.parse(readFileSync(sidecarPath, 'utf8')) as Sidecar;
    } catch (cause) {
      return { problem: `unreadable ${SIDECAR_NAME} (${cause instanceof Error ? cause.message : String(cause)})` };
    }
    if (sidecar.formatVersion !== FORMAT_VERSION || typeof sidecar.file !== 'string' || !Array.isArray(sidecar.volumes) || !Number.isSafeInteger(sidecar.nextKey)) {
      return { problem: `${SIDECAR_NAME} has an unknown format` };
    }
    if (sidecar.encoderId !== encoderId || sidecar.dim !== config.dim) return { problem: 'approximate index was built for another encoder' };
    if (sidecar.connectivity !== config.connectivity || sidecar.expansionAdd !== config.expansionAdd || sidecar.quantization !== 'f16') {
      return { problem: 'HNSW parameters changed' };
    }
    if (!/^ann-[A-Za-z0-9-]+\.usearch$/.test(sidecar.file)) return { problem: `${SIDECAR_NAME} names an unexpected file` };
    const file = join(dir, sidecar.file);
    if (!existsSync(file)) return { problem: `${sidecar.file} is missing` };
    if (statSync(file).size !== sidecar.fileBytes) return { problem: `${sidecar.file} has the wrong length (truncated?)` };
    if (fileCrc32(file) !== sidecar.crc32) return { problem: `${sidecar.file} fails its checksum` };
    const hnsw = new HnswIndex(config);
    try {
      if (options.view) hnsw.view(file);
      else hnsw.load(file);
    } catch (cause) {
      return { problem: `usearch cannot read ${sidecar.file} (${cause instanceof Error ? cause.message : String(cause)})` };
    }
    const index = new AnnIndex(hnsw, encoderId);
    let slices = 0;
    for (const [key, rows, base] of sidecar.volumes) {
      index.contents.set(key, { rows, base });
      slices += rows;
    }
    index.nextKey = sidecar.nextKey;
    if (hnsw.size !== slices) return { problem: `${sidecar.file} holds ${hnsw.size} vectors, its sidecar says ${slices}` };
    index.removedSlices = sidecar.removedSlices ?? 0;
    index.savedFile = sidecar.file;
    index.savedFileBytes = sidecar.fileBytes;
    index.savedCrc32 = sidecar.crc32;
    if (sidecar.calibration && Number.isInteger(sidecar.calibration.ef) && sidecar.calibration.ef > 0) index.calibrationValue = sidecar.calibration;
    index.dirty = false;
    index.viewed = options.view ?? false;
    return { index };
  }

  /** Deletes graph files and temporaries that the sidecar does not name (left by a crash mid-save). */
  static removeLeftovers(dir: string): void {
    const keep = sidecarFile(dir);
    for (const name of readdirSync(dir)) {
      const graph = /^ann-.*\.usearch(\.tmp)?$/.test(name) && name !== keep;
      const sidecarTemp = name.startsWith(`${SIDECAR_NAME}.`) && name.endsWith('.tmp');
      if (graph || sidecarTemp) tryUnlink(join(dir, name));
    }
  }

  /** Total bytes of the current graph file, 0 when none. */
  static diskBytes(dir: string): number {
    const file = sidecarFile(dir);
    try {
      return file ? statSync(join(dir, file)).size : 0;
    } catch {
      return 0;
    }
  }
}

/** The graph file the sidecar names, if there is a readable sidecar. */
function sidecarFile(dir: string): string | undefined {
  try {
    const file = (JSON.parse(readFileSync(join(dir, SIDECAR_NAME), 'utf8')) as Partial<Sidecar>).file;
    return typeof file === 'string' && /^ann-[A-Za-z0-9-]+\.usearch$/.test(file) ? file : undefined;
  } catch {
    return undefined;
  }
}

/** CRC-32 of a file, read in 64 MiB chunks (zlib.crc32 runs at ~3.4 GB/s here, SHA-256 at ~1.1 GB/s). */
function fileCrc32(path: string): number {
  const crc32 = (zlib as unknown as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
  if (!crc32) throw new Error('zlib.crc32 needs Node.js ≥ 20.15');
  const chunk = Buffer.allocUnsafe(64 * 1024 * 1024);
  const fd = openSync(path, 'r');
  try {
    let value = 0;
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) return value >>> 0;
      value = crc32(chunk.subarray(0, n), value);
    }
  } finally {
    closeSync(fd);
  }
}

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function tryUnlink(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone, or another process holds it open on a platform that forbids deletion: harmless.
  }
}
