/**
 * The embedded Store: SQLite (metadata + vectors, the source of truth) + in-memory blocks for exact search
 * on ONNX Runtime + a usearch HNSW file for approximate search.
 *
 * SQLite settings: WAL, so readers (a search server) never block the indexer and a commit is one
 * sequential append; synchronous=FULL, so a volume reported as indexed survives power loss, not only a
 * killed process. FULL cost nothing measurable here (300 × 1280 BLOB commit: 3.3 ms FULL vs 3.5 ms
 * NORMAL) and is noise next to encoding a volume (seconds). Atomicity per volume comes from one
 * transaction per add/remove either way.
 *
 * Other processes may write the same index: every read checks PRAGMA data_version (one cheap call) and,
 * when another connection committed, reconciles the in-memory state with the database.
 */
import Database from 'better-sqlite3';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { exactTopK, type RowBlock } from '../compute/topk.js';
import { computeSessions, type ComputeOptions, type ExecutionProvider } from '../compute/index.js';
import { AnnIndex, MAX_SLICES_PER_VOLUME } from './ann.js';
import { SqliteArtifacts, SqliteState } from './artifacts.js';
import { StoreError } from './errors.js';
import { compileFilter, isEmptyFilter, type VolumePredicate } from './filter.js';
import { poolAll } from './pooling.js';
import { assertLittleEndian, blobOf, CREATE_TABLES, float32Of, float64Of, int32Of, PAGE_SIZE_BYTES, SCHEMA_VERSION } from './schema.js';
import { DEFAULT_BLOCK_BYTES, SliceMatrix } from './slice-matrix.js';
import {
  POOLINGS,
  type AddVolumeOptions,
  type ApproximateIndexCalibration,
  type ApproximateIndexReport,
  type Pooling,
  type SliceHit,
  type SliceSearchOptions,
  type Store,
  type StoreInfo,
  type VolumeFilter,
  type VolumeHit,
  type VolumeRecord,
  type VolumeVectors,
} from './types.js';
import { HnswIndex, type HnswConfig } from './usearch.js';

export const SQLITE_NAME = 'index.sqlite';

/** Whether `dir` holds an index (without opening it). */
export function indexExists(dir: string): boolean {
  return existsSync(join(dir, SQLITE_NAME));
}

export interface HnswOptions {
  /** M. Default 16. */
  connectivity?: number;
  /** ef_construction. Default 128. */
  expansionAdd?: number;
  /** A fixed ef_search. Default: the calibrated one (see targetRecall), or 256 before the first
   * calibration. How much recall a given ef buys depends on the data and the archive's size (slice-like
   * rows, bench:search: ef 32 gives 0.95 at 100k × 1280 but ef 256 is needed for 0.99 at 1M × 512). */
  expansionSearch?: number;
  /** recall@20 the calibration aims for when it picks ef_search (buildApproximateIndex). Default 0.95. */
  targetRecall?: number;
}

export interface OpenStoreOptions {
  /** The encoder whose vectors the index holds. Needed to create an index; when opening an existing one
   * it must match the pinned id (leave it out, e.g. with readOnly, to inspect any index). */
  encoderId?: string;
  /** Vector dimension; needed to create an index, checked when given for an existing one. */
  dim?: number;
  readOnly?: boolean;
  hnsw?: HnswOptions;
  compute?: ComputeOptions;
  /** Size of one in-memory block of slice vectors. Default 256 MiB. */
  blockBytes?: number;
  /** Threads for HNSW build and search. Default os.availableParallelism(). */
  threads?: number;
  /** Approximate searches of an index with fewer slices than this run exact: it is faster there (10k ×
   * 512: exact 9 ms vs HNSW 98 ms per 100 queries, measured) and has perfect recall. Default 32768;
   * 0 always uses the HNSW index. */
  exactBelowSlices?: number;
}

export const DEFAULT_EXACT_BELOW_SLICES = 32768;
/** Filtered approximate search over-fetches this many times k, then post-filters. */
const ANN_OVERFETCH = 4;
/** Below this share of allowed slices, post-filtering HNSW results rarely finds k: go exact at once. */
const ANN_MIN_ALLOWED_FRACTION = 0.05;
/** Rebuild the HNSW graph once this share of its nodes are deletion tombstones. */
const ANN_REBUILD_REMOVED_FRACTION = 0.3;
/** Rows per usearch add call when (re)building: large enough for its threads, small enough for memory. */
const ANN_ADD_BATCH_ROWS = 65536;
/** ef_search of a graph that has not been calibrated yet: wide enough for recall ≥ 0.99 on every
 * slice-like case of bench:search. */
const UNCALIBRATED_EF = 256;
const DEFAULT_TARGET_RECALL = 0.95;
/** Calibration widths, narrowest first; steps of about 1.25× so that the chosen ef overshoots the target little. */
const EF_LADDER = [16, 24, 32, 40, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 512, 768, 1024];
const CALIBRATION_K = 20;
/** Calibration sample: this many volumes spread over the index, this many slices spread over each. */
const CALIBRATION_VOLUMES = 25;
const CALIBRATION_SLICES_PER_VOLUME = 8;
/** Slice vectors must be unit length (similarity = inner product); float32 rounding stays far below this. */
const UNIT_NORM_TOLERANCE = 1e-3;

interface Entry {
  key: number;
  record: VolumeRecord;
  sliceIndices: Int32Array;
  zMm: Float64Array;
}

interface Hit {
  key: number;
  ordinal: number;
  similarity: number;
}

interface VolumeRow {
  id: number;
  volume_id: string;
  content_sha256: string;
  slice_count: number;
  record: string;
}

export function openEmbeddedStore(dir: string, options: OpenStoreOptions = {}): EmbeddedStore {
  assertLittleEndian();
  const readOnly = options.readOnly ?? false;
  const file = join(dir, SQLITE_NAME);
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    throw new StoreError('NOT_FOUND', dir, 'is a file; an index is a directory (it holds index.sqlite and ann-*.usearch)');
  }
  const exists = existsSync(file);
  if (!exists) {
    if (readOnly) throw new StoreError('NOT_FOUND', dir, 'no index here (index.sqlite is missing)');
    if (options.encoderId === undefined || options.dim === undefined) {
      throw new StoreError('MISSING_ENCODER', dir, 'no index here yet; creating one needs the encoder id and the vector dimension');
    }
    if (!Number.isInteger(options.dim) || options.dim <= 0) throw new StoreError('DIM_MISMATCH', dir, `dimension must be a positive integer, got ${options.dim}`);
    mkdirSync(dir, { recursive: true });
  }
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: readOnly, fileMustExist: exists });
  } catch (cause) {
    throw new StoreError('CORRUPT', dir, `cannot open ${SQLITE_NAME}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
  try {
    db.pragma('busy_timeout = 10000');
    if (!readOnly) {
      if (!exists) db.pragma(`page_size = ${PAGE_SIZE_BYTES}`);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
    }
    db.pragma('foreign_keys = ON');
    const meta = readOrCreateMeta(db, dir, exists, readOnly, options);
    return new EmbeddedStore(dir, db, meta.encoderId, meta.dim, readOnly, options);
  } catch (error) {
    db.close();
    if (error instanceof StoreError) throw error;
    throw new StoreError('CORRUPT', dir, `${SQLITE_NAME} is not a mir3d index: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

function readOrCreateMeta(db: Database.Database, dir: string, exists: boolean, readOnly: boolean, options: OpenStoreOptions): { encoderId: string; dim: number } {
  if (!exists) {
    db.exec(CREATE_TABLES);
    const put = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
    db.transaction(() => {
      put.run('schema_version', String(SCHEMA_VERSION));
      put.run('encoder_id', options.encoderId as string);
      put.run('dim', String(options.dim));
      put.run('created_at', new Date().toISOString());
    })();
    return { encoderId: options.encoderId as string, dim: options.dim as number };
  }
  const rows = db.prepare('SELECT key, value FROM meta').all() as Array<{ key: string; value: string }>;
  const meta = new Map(rows.map((r) => [r.key, r.value]));
  const version = Number(meta.get('schema_version'));
  const encoderId = meta.get('encoder_id');
  const dim = Number(meta.get('dim'));
  if (!Number.isInteger(version) || encoderId === undefined || !Number.isInteger(dim)) {
    throw new StoreError('CORRUPT', dir, `${SQLITE_NAME} lacks its meta entries (schema_version, encoder_id, dim)`);
  }
  if (version > SCHEMA_VERSION) {
    throw new StoreError('SCHEMA_VERSION', dir, `index schema version ${version} is newer than this mir3d understands (${SCHEMA_VERSION}); upgrade mir3d`);
  }
  if (options.encoderId !== undefined && options.encoderId !== encoderId) {
    throw new StoreError(
      'ENCODER_MISMATCH',
      dir,
      `the index holds vectors of encoder '${encoderId}', not '${options.encoderId}'; use that encoder, another index directory, ` +
        'or open it read-only without an encoder id to inspect it',
    );
  }
  if (options.dim !== undefined && options.dim !== dim) {
    throw new StoreError('DIM_MISMATCH', dir, `the index holds ${dim}-d vectors, not ${options.dim}-d`);
  }
  if (!readOnly) db.exec(CREATE_TABLES);
  return { encoderId, dim };
}

export class EmbeddedStore implements Store {
  private readonly entries = new Map<number, Entry>();
  private readonly keyByVolumeId = new Map<string, number>();
  private readonly keyByContent = new Map<string, number>();
  /** sourceKey(path, series) → keys: the indexer asks per volume, so a scan would be quadratic. */
  private readonly keysBySource = new Map<string, Set<number>>();
  private sliceTotal = 0;
  private matrix: SliceMatrix | undefined;
  private readonly pooledMatrices = new Map<Pooling, SliceMatrix>();
  private ann: AnnIndex | undefined;
  private lastAnnReport: ApproximateIndexReport | undefined;
  private dataVersion: number;
  private closed = false;
  private provider: ExecutionProvider | undefined;
  private readonly hnswConfig: HnswConfig;
  private readonly threads: number;
  private readonly statements: ReturnType<typeof prepareStatements>;
  readonly artifacts: SqliteArtifacts;
  readonly state: SqliteState;

  constructor(
    readonly dir: string,
    private readonly db: Database.Database,
    readonly encoderId: string,
    readonly dim: number,
    readonly readOnly: boolean,
    private readonly options: OpenStoreOptions,
  ) {
    this.threads = Math.max(1, options.threads ?? availableParallelism());
    this.hnswConfig = {
      dim,
      connectivity: options.hnsw?.connectivity ?? 16,
      expansionAdd: options.hnsw?.expansionAdd ?? 128,
    };
    this.statements = prepareStatements(db);
    const guard = { dir, checkReadable: () => this.checkOpen(), checkWritable: () => this.checkWritable() };
    this.artifacts = new SqliteArtifacts(db, guard);
    this.state = new SqliteState(db, guard);
    this.dataVersion = this.readDataVersion();
    this.reconcile();
    if (!readOnly) AnnIndex.removeLeftovers(dir);
  }

  // -------------------------------------------------------------------------------------------------
  // Metadata.

  stats(): { volumes: number; slices: number } {
    this.refresh();
    return { volumes: this.entries.size, slices: this.sliceTotal };
  }

  findByContent(contentSha256: string): VolumeRecord | undefined {
    this.refresh();
    const key = this.keyByContent.get(contentSha256);
    return key === undefined ? undefined : copyRecord(this.entries.get(key)!.record);
  }

  findBySource(sourcePath: string, seriesKey?: string): VolumeRecord[] {
    this.refresh();
    const keys = this.keysBySource.get(sourceKey(sourcePath, seriesKey));
    return keys ? [...keys].sort((a, b) => a - b).map((key) => copyRecord(this.entries.get(key)!.record)) : [];
  }

  getVolume(volumeId: string): VolumeRecord | undefined {
    this.refresh();
    const key = this.keyByVolumeId.get(volumeId);
    return key === undefined ? undefined : copyRecord(this.entries.get(key)!.record);
  }

  listVolumes(filter?: VolumeFilter): VolumeRecord[] {
    this.refresh();
    const allowed = compileFilter(filter);
    const out: VolumeRecord[] = [];
    for (const entry of this.entries.values()) if (allowed(entry.record)) out.push(copyRecord(entry.record));
    return out;
  }

  info(): StoreInfo {
    this.refresh();
    const sqliteBytes = [SQLITE_NAME, `${SQLITE_NAME}-wal`].reduce((sum, name) => {
      const path = join(this.dir, name);
      return sum + (existsSync(path) ? statSync(path).size : 0);
    }, 0);
    return {
      dir: this.dir,
      encoderId: this.encoderId,
      dim: this.dim,
      schemaVersion: SCHEMA_VERSION,
      readOnly: this.readOnly,
      volumes: this.entries.size,
      slices: this.sliceTotal,
      sqliteBytes,
      approximateIndexBytes: AnnIndex.diskBytes(this.dir),
      approximateIndex: this.lastAnnReport,
      computeProvider: this.provider,
      memory: {
        exactMatrixLoaded: this.matrix !== undefined,
        exactMatrixBytes: this.matrix ? this.matrix.blocks.reduce((s, b) => s + b.vectors.byteLength, 0) : 0,
        approximateIndexLoaded: this.ann !== undefined,
        approximateIndexMapped: this.ann?.viewed ?? false,
      },
    };
  }

  // -------------------------------------------------------------------------------------------------
  // Writes.

  addVolume(record: VolumeRecord, vectors: VolumeVectors, encoderId: string, options: AddVolumeOptions = {}): void {
    this.checkWritable();
    if (encoderId !== this.encoderId) {
      throw new StoreError('ENCODER_MISMATCH', this.dir, `vectors of encoder '${encoderId}' cannot go into an index of encoder '${this.encoderId}'`);
    }
    this.validate(record, vectors);
    const stateEntries = options.state ?? [];
    this.state.check(stateEntries);
    const pooled = poolAll(vectors.vectors, this.dim);
    const s = this.statements;
    const write = this.db.transaction(() => {
      const sameContent = s.volumeByContent.get(record.contentSha256) as VolumeRow | undefined;
      if (sameContent && sameContent.volume_id !== record.volumeId) {
        throw new StoreError('DUPLICATE_CONTENT', this.dir, `volume ${record.volumeId} has the same voxels as the indexed volume ${sameContent.volume_id}`);
      }
      const old = s.volumeById.get(record.volumeId) as VolumeRow | undefined;
      if (old) deleteRows(s, old.id);
      const key = Number(s.insertVolume.run(record.volumeId, record.contentSha256, record.sliceCount, JSON.stringify(record)).lastInsertRowid);
      s.insertSlices.run(key, blobOf(vectors.sliceIndices), blobOf(vectors.zMm));
      s.insertVectors.run(key, record.sliceCount, blobOf(vectors.vectors));
      for (const pooling of POOLINGS) s.insertPooled.run(key, pooling, blobOf(pooled[pooling]));
      if (stateEntries.length > 0) this.state.write(stateEntries);
      return { key, oldKey: old?.id };
    });
    // IMMEDIATE takes the write lock up front, so two writing processes queue instead of deadlocking.
    const { key, oldKey } = write.immediate();
    if (oldKey !== undefined) this.forget(oldKey);
    // Copies: the caller may reuse its buffers.
    const entry: Entry = { key, record: copyRecord(record), sliceIndices: vectors.sliceIndices.slice(), zMm: vectors.zMm.slice() };
    this.remember(entry, vectors.vectors, pooled);
  }

  removeVolume(volumeId: string): boolean {
    this.checkWritable();
    const s = this.statements;
    const removed = this.db.transaction(() => {
      const row = s.volumeById.get(volumeId) as VolumeRow | undefined;
      if (!row) return undefined;
      deleteRows(s, row.id);
      return row.id;
    }).immediate();
    const known = this.keyByVolumeId.get(volumeId);
    if (known !== undefined) this.forget(known);
    if (removed !== undefined && removed !== known) this.forget(removed);
    return removed !== undefined;
  }

  // -------------------------------------------------------------------------------------------------
  // Vectors.

  getVectors(volumeIds: string[]): Map<string, VolumeVectors> {
    this.refresh();
    const out = new Map<string, VolumeVectors>();
    for (const volumeId of volumeIds) {
      const key = this.keyByVolumeId.get(volumeId);
      if (key === undefined || out.has(volumeId)) continue;
      const entry = this.entries.get(key)!;
      const vectors = this.matrix?.view(key) ?? this.readVectors(key);
      if (!vectors) continue;
      out.set(volumeId, { volumeId, dim: this.dim, sliceIndices: entry.sliceIndices, zMm: entry.zMm, vectors });
    }
    return out;
  }

  pooledVector(volumeId: string, pooling: Pooling): Float32Array | undefined {
    this.refresh();
    checkPooling(this.dir, pooling);
    const key = this.keyByVolumeId.get(volumeId);
    if (key === undefined) return undefined;
    const cached = this.pooledMatrices.get(pooling)?.view(key);
    if (cached) return cached.slice();
    const row = this.statements.pooledOf.get(key, pooling) as { vector: Buffer } | undefined;
    return row ? float32Of(row.vector).slice() : undefined;
  }

  // -------------------------------------------------------------------------------------------------
  // Search.

  async searchSlices(queries: Float32Array, options: SliceSearchOptions): Promise<SliceHit[][]> {
    this.refresh();
    this.checkQueries(queries, options.k);
    const allowed = compileFilter(options.filter);
    const filtered = !isEmptyFilter(options.filter);
    let hits: Hit[][];
    if (options.mode === 'approximate') {
      if (options.ef !== undefined && (!Number.isInteger(options.ef) || options.ef <= 0)) {
        throw new StoreError('BAD_QUERY', this.dir, `ef must be a positive integer, got ${options.ef}`);
      }
      hits = await this.approximateSearch(queries, options.k, allowed, filtered, options.ef);
    } else if (options.mode === 'exact') {
      hits = await this.exactSearch(this.ensureMatrix(), queries, options.k, allowed, filtered);
    } else {
      throw new StoreError('BAD_QUERY', this.dir, `unknown search mode '${String(options.mode)}'`);
    }
    return hits.map((list) => this.toSliceHits(list));
  }

  async searchVolumes(query: Float32Array, pooling: Pooling, k: number, filter?: VolumeFilter): Promise<VolumeHit[]> {
    this.refresh();
    checkPooling(this.dir, pooling);
    if (query.length !== this.dim) throw new StoreError('BAD_QUERY', this.dir, `a volume query is one ${this.dim}-d vector, got ${query.length} floats`);
    this.checkQueries(query, k);
    const hits = await this.exactSearch(this.ensurePooled(pooling), query, k, compileFilter(filter), !isEmptyFilter(filter));
    return hits[0].map((h) => ({ volumeId: this.entries.get(h.key)!.record.volumeId, similarity: h.similarity }));
  }

  /** Above `exactBelowSlices` approximate searches use the graph: bring it up to date now, not at the first search. */
  async prepareForSearch(options: { onWork?: (what: string) => void } = {}): Promise<ApproximateIndexReport | undefined> {
    this.refresh();
    if (!this.graphNeeded()) return undefined;
    options.onWork?.('updating the approximate (HNSW) index');
    return this.buildApproximateIndex();
  }

  private graphNeeded(): boolean {
    return this.sliceTotal >= (this.options.exactBelowSlices ?? DEFAULT_EXACT_BELOW_SLICES);
  }

  /**
   * Brings the HNSW index up to date with the volumes (adds missing ones, removes deleted ones, rebuilds
   * it when unreadable, built for other parameters or full of tombstones) and saves it when writable.
   */
  async buildApproximateIndex(): Promise<ApproximateIndexReport> {
    this.refresh();
    const target = this.options.hnsw?.targetRecall ?? DEFAULT_TARGET_RECALL;
    const needed = this.graphNeeded();
    let heldOut: number[] = [];
    const report = this.ensureAnn((missing, ann) => {
      if (!needed) return new Set();
      const slicesAfter = ann.liveSlices + this.sliceCountOf(missing);
      if (ann.calibrationFor(slicesAfter, target)) return new Set();
      heldOut = this.chooseHeldOut(missing);
      return new Set(heldOut);
    });
    const ann = this.ann!;
    if (needed && (heldOut.length > 0 || !ann.calibrationFor(ann.liveSlices, target))) {
      ann.calibration = await this.calibrateAnn(ann, target, heldOut);
    }
    if (ann.calibration) report.calibration = ann.calibration;
    report.slices = ann.liveSlices;
    if (!this.readOnly) ann.save(this.dir);
    this.lastAnnReport = report;
    return report;
  }

  /**
   * Volumes to keep out of the graph while it is calibrated, so that their slices are queries the graph has
   * never seen, like a new patient's: spread over the ones being added, at most a tenth of their slices.
   */
  private chooseHeldOut(missing: number[]): number[] {
    if (missing.length < 2 || this.entries.size < 2) return [];
    const budget = 0.1 * this.sliceCountOf(missing);
    const held: number[] = [];
    let slices = 0;
    for (const key of this.spreadSample(missing)) {
      const count = this.entries.get(key)!.record.sliceCount;
      if (held.length > 0 && slices + count > budget) break;
      held.push(key);
      slices += count;
    }
    // Never hold out everything the graph would hold.
    return held.length < missing.length ? held : held.slice(0, -1);
  }

  /** The ef searches use: the user's, else the calibrated one, else a wide default. */
  private efSearch(ann: AnnIndex): number {
    return this.options.hnsw?.expansionSearch ?? ann.calibration?.ef ?? UNCALIBRATED_EF;
  }

  /**
   * Measures recall@20 of the graph against exact search for widening ef until the target is reached.
   * Queries are slices of the held-out volumes, which the graph has not seen (they are added afterwards);
   * without any (nothing new to add), slices of indexed volumes, each excluding its own volume, whose
   * near-duplicate slices would otherwise make the task easy (this side errs towards a wider ef). Loads the
   * exact matrix: this runs at index time.
   */
  private async calibrateAnn(ann: AnnIndex, targetRecall: number, heldOut: number[]): Promise<ApproximateIndexCalibration> {
    const matrix = this.ensureMatrix();
    const sampleFrom = heldOut.length > 0 ? heldOut : this.spreadSample([...ann.contents.keys()].filter((key) => this.entries.has(key)).sort((a, b) => a - b));
    const excludeOwn = heldOut.length === 0 && ann.contents.size > 1;
    const perVolume = Math.max(1, Math.ceil((CALIBRATION_VOLUMES * CALIBRATION_SLICES_PER_VOLUME) / sampleFrom.length));
    const sampled: Array<{ key: number; queries: Float32Array }> = [];
    for (const key of sampleFrom) {
      const rows = matrix.view(key);
      if (!rows) continue;
      const count = rows.length / this.dim;
      const take = Math.min(perVolume, count);
      const queries = new Float32Array(take * this.dim);
      for (let i = 0; i < take; i++) {
        const row = Math.floor(((i + 0.5) * count) / take);
        queries.set(rows.subarray(row * this.dim, (row + 1) * this.dim), i * this.dim);
      }
      sampled.push({ key, queries });
    }
    const k = CALIBRATION_K;
    const truth: Array<Set<string>> = [];
    const owner: number[] = [];
    const inGraph = (record: VolumeRecord): boolean => ann.contents.has(this.keyByVolumeId.get(record.volumeId)!);
    const tExact = performance.now();
    for (const { key, queries } of sampled) {
      const allowed: VolumePredicate = excludeOwn ? (record) => inGraph(record) && this.keyByVolumeId.get(record.volumeId) !== key : inGraph;
      for (const list of await this.exactSearch(matrix, queries, k, allowed, true)) {
        truth.push(new Set(list.map((h) => `${h.key}:${h.ordinal}`)));
        owner.push(key);
      }
    }
    const exactMs = performance.now() - tExact;
    const queries = new Float32Array(owner.length * this.dim);
    let offset = 0;
    for (const s of sampled) {
      queries.set(s.queries, offset);
      offset += s.queries.length;
    }
    const ladder: ApproximateIndexCalibration['ladder'] = [];
    for (const ef of EF_LADDER) {
      // ef results, not k: the own volume's slices, skipped below, must not shrink the search.
      const t = performance.now();
      const found = ann.search(queries, excludeOwn ? Math.max(ef, k) : k, this.threads, ef);
      const ms = performance.now() - t;
      const { volumeKeys, ordinals } = ann.resolve(found.keys);
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
      if (ladder[ladder.length - 1].recall >= targetRecall || ef >= ann.liveSlices) break;
    }
    if (heldOut.length > 0) {
      ann.addVolumes(heldOut.flatMap((key) => {
        const vectors = matrix.view(key);
        return vectors ? [{ key, vectors }] : [];
      }), this.threads);
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
      slices: ann.liveSlices,
      exactMsPerQuery: exactMs / Math.max(1, owner.length),
      approximateMsPerQuery: chosen.msPerQuery,
      ladder,
    };
  }

  private sliceCountOf(keys: readonly number[]): number {
    return keys.reduce((n, key) => n + this.entries.get(key)!.record.sliceCount, 0);
  }

  /** Up to CALIBRATION_VOLUMES keys spread evenly over `keys`. */
  private spreadSample(keys: number[]): number[] {
    const step = Math.max(1, keys.length / CALIBRATION_VOLUMES);
    const out: number[] = [];
    for (let i = 0; i < CALIBRATION_VOLUMES && Math.floor(i * step) < keys.length; i++) out.push(keys[Math.floor(i * step)]);
    return out;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      // The HNSW file is derived data: failing to save it must not hide the close, the next open repairs it.
      if (!this.readOnly && this.ann?.dirty) this.ann.save(this.dir);
    } catch {
      // Ignored on purpose, see above.
    } finally {
      this.db.close();
      this.matrix = undefined;
      this.ann = undefined;
      this.pooledMatrices.clear();
    }
  }

  // -------------------------------------------------------------------------------------------------
  // Internals: search.

  private async exactSearch(matrix: SliceMatrix, queries: Float32Array, k: number, allowed: VolumePredicate, filtered: boolean): Promise<Hit[][]> {
    const queryCount = queries.length / this.dim;
    const blockIds: number[] = [];
    const blocks: RowBlock[] = [];
    if (!filtered) {
      matrix.blocks.forEach((b, i) => {
        if (b.liveRows === 0) return;
        blockIds.push(i);
        blocks.push({ vectors: b.vectors, rows: b.usedRows, bias: b.bias });
      });
    } else {
      // A per-search mask: −∞ everywhere, 0 on the runs of allowed volumes. Blocks with no allowed row are skipped.
      const masks = new Map<number, Float32Array>();
      for (const entry of this.entries.values()) {
        if (!allowed(entry.record)) continue;
        const p = matrix.placement(entry.key);
        if (!p) continue;
        let mask = masks.get(p.block);
        if (!mask) {
          mask = new Float32Array(matrix.blocks[p.block].usedRows).fill(-Infinity);
          masks.set(p.block, mask);
        }
        mask.fill(0, p.start, p.start + p.rows);
      }
      for (const [i, mask] of [...masks.entries()].sort((a, b) => a[0] - b[0])) {
        blockIds.push(i);
        blocks.push({ vectors: matrix.blocks[i].vectors, rows: mask.length, bias: mask });
      }
    }
    if (blocks.length === 0) return Array.from({ length: queryCount }, () => []);
    const owners = blockIds.map((i) => matrix.blocks[i].owner);
    matrix.beginRead();
    let result;
    try {
      const sessions = await computeSessions(this.options.compute);
      this.provider = sessions.provider;
      result = await exactTopK(queries, this.dim, blocks, k, this.options.compute);
    } finally {
      matrix.endRead();
    }
    const hits: Hit[][] = [];
    for (let q = 0; q < queryCount; q++) {
      const list: Hit[] = [];
      for (let i = 0; i < result.counts[q]; i++) {
        const slot = q * k + i;
        const block = result.blockIndices[slot];
        const row = result.rowIndices[slot];
        const key = owners[block][row];
        // Offsets come from the live placement: a volume never moves while it is placed.
        const p = matrix.placement(key);
        if (!p || !this.entries.has(key)) continue; // removed while the search ran
        list.push({ key, ordinal: row - p.start, similarity: result.similarities[slot] });
      }
      hits.push(list);
    }
    return hits;
  }

  private async approximateSearch(queries: Float32Array, k: number, allowed: VolumePredicate, filtered: boolean, ef: number | undefined): Promise<Hit[][]> {
    if (!this.graphNeeded()) return this.exactSearch(this.ensureMatrix(), queries, k, allowed, filtered);
    this.ensureAnn();
    const ann = this.ann!;
    const queryCount = queries.length / this.dim;
    let allowedSlices = this.sliceTotal;
    if (filtered) {
      allowedSlices = 0;
      for (const entry of this.entries.values()) if (allowed(entry.record)) allowedSlices += entry.record.sliceCount;
      if (allowedSlices === 0) return Array.from({ length: queryCount }, () => []);
      if (allowedSlices < ANN_MIN_ALLOWED_FRACTION * this.sliceTotal) {
        return this.exactSearch(this.ensureMatrix(), queries, k, allowed, filtered);
      }
    }
    const fetch = Math.min(Math.max(1, ann.liveSlices), filtered ? ANN_OVERFETCH * k : k);
    const found = ann.search(queries, fetch, this.threads, ef ?? this.efSearch(ann));
    const hits: Hit[][] = [];
    const short: number[] = [];
    const want = Math.min(k, allowedSlices);
    const { volumeKeys, ordinals } = ann.resolve(found.keys);
    for (let q = 0; q < queryCount; q++) {
      const list: Hit[] = [];
      for (let i = 0; i < found.counts[q] && list.length < k; i++) {
        const slot = q * found.k + i;
        const entry = this.entries.get(volumeKeys[slot]);
        if (!entry || !allowed(entry.record)) continue;
        list.push({ key: volumeKeys[slot], ordinal: ordinals[slot], similarity: 1 - found.distances[slot] });
      }
      if (list.length < want) short.push(q);
      hits.push(list);
    }
    if (short.length > 0) {
      // Too few survived the filter (or the graph returned fewer than k): answer those queries exactly.
      const subset = new Float32Array(short.length * this.dim);
      short.forEach((q, i) => subset.set(queries.subarray(q * this.dim, (q + 1) * this.dim), i * this.dim));
      const exact = await this.exactSearch(this.ensureMatrix(), subset, k, allowed, filtered);
      short.forEach((q, i) => (hits[q] = exact[i]));
    }
    return hits;
  }

  private toSliceHits(list: Hit[]): SliceHit[] {
    const out: SliceHit[] = [];
    for (const h of list) {
      const entry = this.entries.get(h.key);
      if (!entry) continue;
      out.push({ volumeId: entry.record.volumeId, sliceIndex: entry.sliceIndices[h.ordinal], zMm: entry.zMm[h.ordinal], similarity: h.similarity });
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------------
  // Internals: memory state.

  private ensureMatrix(): SliceMatrix {
    if (this.matrix) return this.matrix;
    const matrix = new SliceMatrix(this.dim, this.options.blockBytes ?? DEFAULT_BLOCK_BYTES);
    for (const row of this.statements.allVectors.iterate() as IterableIterator<{ volume_key: number; data: Buffer }>) {
      if (this.entries.has(row.volume_key)) matrix.add(row.volume_key, float32Of(row.data));
    }
    this.matrix = matrix;
    return matrix;
  }

  private ensurePooled(pooling: Pooling): SliceMatrix {
    let matrix = this.pooledMatrices.get(pooling);
    if (matrix) return matrix;
    // Small blocks: one row per volume, thousands of volumes.
    matrix = new SliceMatrix(this.dim, 16 * 1024 * 1024);
    for (const row of this.statements.allPooled.iterate(pooling) as IterableIterator<{ volume_key: number; vector: Buffer }>) {
      if (this.entries.has(row.volume_key)) matrix.add(row.volume_key, float32Of(row.vector));
    }
    this.pooledMatrices.set(pooling, matrix);
    return matrix;
  }

  /** Loads the HNSW index if needed and syncs it with the volumes; builds it when it cannot be used.
   * `holdOut` may keep some of the volumes about to be added out of the graph (the caller adds them). */
  private ensureAnn(holdOut?: (missing: number[], ann: AnnIndex) => Set<number>): ApproximateIndexReport {
    let rebuilt = false;
    let reason: string | undefined;
    if (this.ann?.viewed && !this.annMatchesEntries(this.ann)) this.ann = undefined;
    if (!this.ann) {
      // A read-only store memory-maps a graph that holds exactly its volumes: every reader of the file
      // (a pool of search workers) then shares one copy of its pages. Anything to repair needs a private copy.
      let loaded = AnnIndex.load(this.dir, this.encoderId, this.hnswConfig, { view: this.readOnly });
      if ('index' in loaded && loaded.index.viewed && !this.annMatchesEntries(loaded.index)) {
        loaded = AnnIndex.load(this.dir, this.encoderId, this.hnswConfig);
      }
      if ('index' in loaded) {
        this.ann = loaded.index;
      } else {
        this.ann = new AnnIndex(new HnswIndex(this.hnswConfig), this.encoderId);
        rebuilt = true;
        reason = loaded.problem;
      }
    }
    let ann = this.ann;
    let removed = 0;
    for (const key of [...ann.contents.keys()]) {
      if (!this.entries.has(key) && ann.removeVolume(key)) removed++;
    }
    // Deleted nodes stay in the graph as tombstones that searches still walk: past a share, start afresh.
    const total = ann.liveSlices + ann.removedSlices;
    if (!rebuilt && total > 0 && ann.removedSlices > ANN_REBUILD_REMOVED_FRACTION * total) {
      reason = `${ann.removedSlices} of its ${total} slices were deleted ones`;
      ann = this.ann = new AnnIndex(new HnswIndex(this.hnswConfig), this.encoderId);
      rebuilt = true;
    }
    const allMissing = [...this.entries.keys()].filter((key) => !ann.contents.has(key));
    const held = holdOut?.(allMissing, ann) ?? new Set<number>();
    const missing = allMissing.filter((key) => !held.has(key));
    let batch: Array<{ key: number; vectors: Float32Array }> = [];
    let batchRows = 0;
    const flush = (): void => {
      ann.addVolumes(batch, this.threads);
      batch = [];
      batchRows = 0;
    };
    for (const key of missing) {
      const vectors = this.matrix?.view(key) ?? this.readVectors(key);
      if (!vectors) continue;
      batch.push({ key, vectors });
      batchRows += vectors.length / this.dim;
      if (batchRows >= ANN_ADD_BATCH_ROWS) flush();
    }
    if (batch.length > 0) flush();
    const report: ApproximateIndexReport = {
      added: allMissing.length,
      removed,
      rebuilt,
      ...(reason !== undefined ? { reason } : {}),
      slices: ann.liveSlices,
      ...(ann.calibration ? { calibration: ann.calibration } : {}),
    };
    if (report.added > 0 || report.removed > 0 || rebuilt || !this.lastAnnReport) this.lastAnnReport = report;
    return report;
  }

  /** Whether the graph holds exactly the live volumes (nothing to add, nothing to remove). */
  private annMatchesEntries(ann: AnnIndex): boolean {
    if (ann.contents.size !== this.entries.size) return false;
    for (const key of ann.contents.keys()) if (!this.entries.has(key)) return false;
    return true;
  }

  private remember(entry: Entry, vectors: Float32Array | undefined, pooled: Record<Pooling, Float32Array> | undefined): void {
    this.entries.set(entry.key, entry);
    this.keyByVolumeId.set(entry.record.volumeId, entry.key);
    this.keyByContent.set(entry.record.contentSha256, entry.key);
    const source = sourceKey(entry.record.sourcePath, entry.record.seriesKey);
    let keys = this.keysBySource.get(source);
    if (!keys) this.keysBySource.set(source, (keys = new Set()));
    keys.add(entry.key);
    this.sliceTotal += entry.record.sliceCount;
    if (this.matrix) this.matrix.add(entry.key, vectors ?? this.readVectors(entry.key)!);
    for (const [pooling, matrix] of this.pooledMatrices) {
      const vector = pooled?.[pooling] ?? this.readPooled(entry.key, pooling);
      if (vector) matrix.add(entry.key, vector);
    }
    // A memory-mapped graph cannot change: the next approximate search loads one that can.
    if (this.ann?.viewed) this.ann = undefined;
    if (this.ann) this.ann.addVolumes([{ key: entry.key, vectors: vectors ?? this.readVectors(entry.key)! }], this.threads);
  }

  private forget(key: number): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    if (this.keyByVolumeId.get(entry.record.volumeId) === key) this.keyByVolumeId.delete(entry.record.volumeId);
    if (this.keyByContent.get(entry.record.contentSha256) === key) this.keyByContent.delete(entry.record.contentSha256);
    const source = sourceKey(entry.record.sourcePath, entry.record.seriesKey);
    const keys = this.keysBySource.get(source);
    keys?.delete(key);
    if (keys?.size === 0) this.keysBySource.delete(source);
    this.sliceTotal -= entry.record.sliceCount;
    this.matrix?.remove(key);
    for (const matrix of this.pooledMatrices.values()) matrix.remove(key);
    if (this.ann?.viewed) this.ann = undefined;
    this.ann?.removeVolume(key);
  }

  /** Aligns memory with the database: volumes other connections added or removed since we last looked. */
  private reconcile(): void {
    const rows = this.statements.allVolumes.all() as VolumeRow[];
    const present = new Set<number>();
    for (const row of rows) {
      present.add(row.id);
      if (this.entries.has(row.id)) continue;
      const slices = this.statements.slicesOf.get(row.id) as { slice_indices: Buffer; z_mm: Buffer } | undefined;
      if (!slices) continue; // cannot happen: volume and slices commit together
      const record = JSON.parse(row.record) as VolumeRecord;
      // Another process may have replaced this volume id under a new key.
      const stale = this.keyByVolumeId.get(record.volumeId);
      if (stale !== undefined) this.forget(stale);
      this.remember({ key: row.id, record, sliceIndices: int32Of(slices.slice_indices), zMm: float64Of(slices.z_mm) }, undefined, undefined);
    }
    for (const key of [...this.entries.keys()]) if (!present.has(key)) this.forget(key);
  }

  private checkOpen(): void {
    if (this.closed) throw new StoreError('CLOSED', this.dir, 'the index is closed');
  }

  private refresh(): void {
    this.checkOpen();
    const version = this.readDataVersion();
    if (version !== this.dataVersion) {
      this.dataVersion = version;
      this.reconcile();
    }
  }

  private readDataVersion(): number {
    return this.db.pragma('data_version', { simple: true }) as number;
  }

  private readVectors(key: number): Float32Array | undefined {
    const row = this.statements.vectorsOf.get(key) as { data: Buffer } | undefined;
    return row ? float32Of(row.data) : undefined;
  }

  private readPooled(key: number, pooling: Pooling): Float32Array | undefined {
    const row = this.statements.pooledOf.get(key, pooling) as { vector: Buffer } | undefined;
    return row ? float32Of(row.vector) : undefined;
  }

  // -------------------------------------------------------------------------------------------------
  // Internals: checks.

  private checkWritable(): void {
    if (this.closed) throw new StoreError('CLOSED', this.dir, 'the index is closed');
    if (this.readOnly) throw new StoreError('READ_ONLY', this.dir, 'the index was opened read-only');
    this.refresh();
  }

  private checkQueries(queries: Float32Array, k: number): void {
    if (!Number.isInteger(k) || k <= 0) throw new StoreError('BAD_QUERY', this.dir, `k must be a positive integer, got ${k}`);
    if (queries.length === 0 || queries.length % this.dim !== 0) {
      throw new StoreError('BAD_QUERY', this.dir, `queries hold ${queries.length} floats, not rows of ${this.dim}`);
    }
  }

  private validate(record: VolumeRecord, v: VolumeVectors): void {
    const bad = (detail: string): never => {
      throw new StoreError('BAD_VECTORS', this.dir, `volume ${record.volumeId}: ${detail}`);
    };
    if (typeof record.volumeId !== 'string' || record.volumeId === '') bad('empty volume id');
    if (!/^[0-9a-f]{64}$/i.test(record.contentSha256)) bad(`content hash '${record.contentSha256}' is not a SHA-256 hex digest`);
    if (v.volumeId !== record.volumeId) bad(`vectors are labelled ${v.volumeId}`);
    if (v.dim !== this.dim) throw new StoreError('DIM_MISMATCH', this.dir, `volume ${record.volumeId}: ${v.dim}-d vectors, the index holds ${this.dim}-d`);
    const rows = v.sliceIndices.length;
    if (rows === 0) bad('no slices');
    if (rows > MAX_SLICES_PER_VOLUME) bad(`${rows} slices, at most ${MAX_SLICES_PER_VOLUME} per volume`);
    if (record.sliceCount !== rows) bad(`record says ${record.sliceCount} slices, vectors have ${rows}`);
    if (v.zMm.length !== rows) bad(`${v.zMm.length} z positions for ${rows} slices`);
    if (v.vectors.length !== rows * this.dim) bad(`${v.vectors.length} floats for ${rows} × ${this.dim}`);
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      for (let j = r * this.dim; j < (r + 1) * this.dim; j++) sum += v.vectors[j] * v.vectors[j];
      if (!Number.isFinite(sum)) bad(`slice row ${r} has non-finite values`);
      if (Math.abs(Math.sqrt(sum) - 1) > UNIT_NORM_TOLERANCE) bad(`slice row ${r} has length ${Math.sqrt(sum).toFixed(4)}, not 1 (rows must be L2-normalized)`);
      if (!Number.isFinite(v.zMm[r])) bad(`slice row ${r} has a non-finite z`);
    }
  }
}

function prepareStatements(db: Database.Database) {
  return {
    allVolumes: db.prepare('SELECT id, volume_id, content_sha256, slice_count, record FROM volumes ORDER BY id'),
    volumeById: db.prepare('SELECT id, volume_id, content_sha256, slice_count, record FROM volumes WHERE volume_id = ?'),
    volumeByContent: db.prepare('SELECT id, volume_id, content_sha256, slice_count, record FROM volumes WHERE content_sha256 = ?'),
    slicesOf: db.prepare('SELECT slice_indices, z_mm FROM slices WHERE volume_key = ?'),
    vectorsOf: db.prepare('SELECT data FROM vectors WHERE volume_key = ?'),
    allVectors: db.prepare('SELECT volume_key, data FROM vectors ORDER BY volume_key'),
    pooledOf: db.prepare('SELECT vector FROM pooled WHERE volume_key = ? AND pooling = ?'),
    allPooled: db.prepare('SELECT volume_key, vector FROM pooled WHERE pooling = ? ORDER BY volume_key'),
    // Read-only connections never run these; preparing them is harmless.
    insertVolume: db.prepare('INSERT INTO volumes (volume_id, content_sha256, slice_count, record) VALUES (?, ?, ?, ?)'),
    insertSlices: db.prepare('INSERT INTO slices (volume_key, slice_indices, z_mm) VALUES (?, ?, ?)'),
    insertVectors: db.prepare('INSERT INTO vectors (volume_key, row_count, data) VALUES (?, ?, ?)'),
    insertPooled: db.prepare('INSERT INTO pooled (volume_key, pooling, vector) VALUES (?, ?, ?)'),
    deletePooled: db.prepare('DELETE FROM pooled WHERE volume_key = ?'),
    deleteVectors: db.prepare('DELETE FROM vectors WHERE volume_key = ?'),
    deleteSlices: db.prepare('DELETE FROM slices WHERE volume_key = ?'),
    deleteVolume: db.prepare('DELETE FROM volumes WHERE id = ?'),
  };
}

function deleteRows(s: ReturnType<typeof prepareStatements>, key: number): void {
  s.deletePooled.run(key);
  s.deleteVectors.run(key);
  s.deleteSlices.run(key);
  s.deleteVolume.run(key);
}

function checkPooling(dir: string, pooling: Pooling): void {
  if (!POOLINGS.includes(pooling)) throw new StoreError('BAD_QUERY', dir, `unknown pooling '${String(pooling)}' (${POOLINGS.join(', ')})`);
}

/** One map key per (file, series); NUL cannot occur in a path. */
function sourceKey(sourcePath: string, seriesKey: string | undefined): string {
  return `${sourcePath}\u0000${seriesKey ?? ''}`;
}

function copyRecord(record: VolumeRecord): VolumeRecord {
  return {
    ...record,
    dims: [...record.dims],
    spacingMm: [...record.spacingMm],
    affineRas: [...record.affineRas],
    labels: { ...record.labels },
  };
}
