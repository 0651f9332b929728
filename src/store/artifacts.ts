/**
 * Artifacts and index state in the SQLite catalogue (see ArtifactStore and IndexState in types.ts), and the
 * checks on their names and values that every Store implementation applies the same way.
 */
import type Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { StoreError } from './errors.js';
import type { Artifact, ArtifactInfo, ArtifactStore, IndexState, JsonObject, JsonValue, StateEntry } from './types.js';

/** 16 MiB chunks: large enough that a 500 MB text tower is 32 rows, small enough to stream. */
const CHUNK_BYTES = 16 * 1024 * 1024;
const KIND_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const MAX_NAME_LENGTH = 200;

/** What the catalogue must let these tables do: refuse calls after close, and writes when read-only. */
export interface CatalogueGuard {
  readonly dir: string;
  checkReadable(): void;
  checkWritable(): void;
}

export function checkArtifactKey(dir: string, kind: string, name: string): void {
  if (typeof kind !== 'string' || !KIND_PATTERN.test(kind)) {
    throw new StoreError('BAD_ARGUMENT', dir, `artifact kind '${String(kind)}': use lower-case letters, digits, '.', '_' or '-' (at most 64)`);
  }
  checkName(dir, 'artifact name', name);
}

export function checkStateKey(dir: string, namespace: string, key: string): void {
  checkName(dir, 'state namespace', namespace);
  checkName(dir, 'state key', key);
}

function checkName(dir: string, what: string, name: string): void {
  // Control characters would make names unprintable in listings and logs.
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_LENGTH || /[\u0000-\u001f\u007f]/.test(name)) {
    throw new StoreError('BAD_ARGUMENT', dir, `${what} must be 1–${MAX_NAME_LENGTH} printable characters`);
  }
}

/** Throws unless `value` is plain JSON that survives a round trip unchanged (no NaN, undefined, classes). */
export function checkJson(dir: string, what: string, value: unknown): asserts value is JsonValue {
  const bad = (detail: string): never => {
    throw new StoreError('BAD_ARGUMENT', dir, `${what}: ${detail}`);
  };
  const walk = (v: unknown, depth: number): void => {
    if (depth > 64) bad('nested too deeply');
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) bad(`${v} is not a JSON number`);
      return;
    }
    if (Array.isArray(v)) {
      for (const item of v) walk(item, depth + 1);
      return;
    }
    if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
      for (const item of Object.values(v as Record<string, unknown>)) walk(item, depth + 1);
      return;
    }
    bad(`${typeof v === 'object' ? 'a class instance' : typeof v} is not JSON`);
  };
  walk(value, 0);
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

interface ArtifactRow {
  id: number;
  kind: string;
  name: string;
  metadata: string;
  byte_length: number;
  sha256: string;
  updated_at: string;
}

function infoOf(row: ArtifactRow): ArtifactInfo {
  return { kind: row.kind, name: row.name, metadata: JSON.parse(row.metadata) as JsonObject, byteLength: row.byte_length, sha256: row.sha256, updatedAt: row.updated_at };
}

/** Whether the catalogue has the tables (an index written before they existed, opened read-only, has not). */
function hasTable(db: Database.Database, name: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
}

export class SqliteArtifacts implements ArtifactStore {
  private readonly present: boolean;

  constructor(
    private readonly db: Database.Database,
    private readonly guard: CatalogueGuard,
  ) {
    this.present = hasTable(db, 'artifacts');
  }

  put(kind: string, name: string, bytes: Uint8Array, metadata: JsonObject = {}): ArtifactInfo {
    this.guard.checkWritable();
    const dir = this.guard.dir;
    checkArtifactKey(dir, kind, name);
    if (!(bytes instanceof Uint8Array)) throw new StoreError('BAD_ARGUMENT', dir, `artifact ${kind}/${name}: bytes must be a Uint8Array`);
    checkJson(dir, `artifact ${kind}/${name} metadata`, metadata);
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
      throw new StoreError('BAD_ARGUMENT', dir, `artifact ${kind}/${name} metadata must be a JSON object`);
    }
    const info: ArtifactInfo = { kind, name, metadata: structuredClone(metadata), byteLength: bytes.byteLength, sha256: sha256Hex(bytes), updatedAt: new Date().toISOString() };
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM artifacts WHERE kind = ? AND name = ?').run(kind, name);
      const id = Number(
        this.db
          .prepare('INSERT INTO artifacts (kind, name, metadata, byte_length, sha256, updated_at) VALUES (?, ?, ?, ?, ?, ?)')
          .run(kind, name, JSON.stringify(metadata), info.byteLength, info.sha256, info.updatedAt).lastInsertRowid,
      );
      const insert = this.db.prepare('INSERT INTO artifact_chunks (artifact_id, seq, data) VALUES (?, ?, ?)');
      const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let seq = 0, at = 0; at < buffer.length || seq === 0; seq++, at += CHUNK_BYTES) insert.run(id, seq, buffer.subarray(at, at + CHUNK_BYTES));
    }).immediate();
    return info;
  }

  get(kind: string, name: string): Artifact | undefined {
    const row = this.row(kind, name);
    if (!row) return undefined;
    const chunks = this.db.prepare('SELECT data FROM artifact_chunks WHERE artifact_id = ? ORDER BY seq').all(row.id) as Array<{ data: Buffer }>;
    const bytes = new Uint8Array(row.byte_length);
    let at = 0;
    for (const { data } of chunks) {
      bytes.set(data, at);
      at += data.length;
    }
    if (at !== row.byte_length) throw new StoreError('CORRUPT', this.guard.dir, `artifact ${kind}/${name} holds ${at} bytes, its record says ${row.byte_length}`);
    return { ...infoOf(row), bytes };
  }

  info(kind: string, name: string): ArtifactInfo | undefined {
    const row = this.row(kind, name);
    return row ? infoOf(row) : undefined;
  }

  list(kind?: string): ArtifactInfo[] {
    this.guard.checkReadable();
    if (!this.present) return [];
    const rows = (kind === undefined
      ? this.db.prepare('SELECT * FROM artifacts ORDER BY kind, name').all()
      : this.db.prepare('SELECT * FROM artifacts WHERE kind = ? ORDER BY name').all(kind)) as ArtifactRow[];
    return rows.map(infoOf);
  }

  delete(kind: string, name: string): boolean {
    this.guard.checkWritable();
    checkArtifactKey(this.guard.dir, kind, name);
    // Chunks go with their artifact (ON DELETE CASCADE, foreign keys are on).
    return this.db.prepare('DELETE FROM artifacts WHERE kind = ? AND name = ?').run(kind, name).changes > 0;
  }

  private row(kind: string, name: string): ArtifactRow | undefined {
    this.guard.checkReadable();
    checkArtifactKey(this.guard.dir, kind, name);
    if (!this.present) return undefined;
    return this.db.prepare('SELECT * FROM artifacts WHERE kind = ? AND name = ?').get(kind, name) as ArtifactRow | undefined;
  }
}

export class SqliteState implements IndexState {
  private readonly present: boolean;

  constructor(
    private readonly db: Database.Database,
    private readonly guard: CatalogueGuard,
  ) {
    this.present = hasTable(db, 'state');
  }

  get(namespace: string, key: string): JsonValue | undefined {
    this.guard.checkReadable();
    checkStateKey(this.guard.dir, namespace, key);
    if (!this.present) return undefined;
    const row = this.db.prepare('SELECT value FROM state WHERE namespace = ? AND key = ?').get(namespace, key) as { value: string } | undefined;
    return row ? (JSON.parse(row.value) as JsonValue) : undefined;
  }

  set(namespace: string, key: string, value: JsonValue): void {
    this.setMany(namespace, [[key, value]]);
  }

  setMany(namespace: string, entries: Iterable<readonly [string, JsonValue]>): void {
    this.guard.checkWritable();
    const list = [...entries].map(([key, value]) => ({ namespace, key, value }));
    this.db.transaction(() => this.write(list)).immediate();
  }

  /** Checks and writes entries inside the caller's transaction (addVolume uses this). */
  write(entries: readonly StateEntry[]): void {
    const put = this.db.prepare('INSERT INTO state (namespace, key, value) VALUES (?, ?, ?) ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value');
    for (const { namespace, key, value } of entries) {
      checkStateKey(this.guard.dir, namespace, key);
      checkJson(this.guard.dir, `state ${namespace}/${key}`, value);
      put.run(namespace, key, JSON.stringify(value));
    }
  }

  /** Checks entries before a transaction starts, so that a bad one cannot abort a volume's write. */
  check(entries: readonly StateEntry[]): void {
    for (const { namespace, key, value } of entries) {
      checkStateKey(this.guard.dir, namespace, key);
      checkJson(this.guard.dir, `state ${namespace}/${key}`, value);
    }
  }

  delete(namespace: string, key: string): boolean {
    this.guard.checkWritable();
    checkStateKey(this.guard.dir, namespace, key);
    return this.db.prepare('DELETE FROM state WHERE namespace = ? AND key = ?').run(namespace, key).changes > 0;
  }

  list(namespace: string, prefix?: string): Array<{ key: string; value: JsonValue }> {
    this.guard.checkReadable();
    checkName(this.guard.dir, 'state namespace', namespace);
    if (!this.present) return [];
    // substr, not LIKE/GLOB, which would need the caller's characters escaped.
    const rows = (prefix === undefined
      ? this.db.prepare('SELECT key, value FROM state WHERE namespace = ? ORDER BY key').all(namespace)
      : this.db.prepare('SELECT key, value FROM state WHERE namespace = @namespace AND substr(key, 1, length(@prefix)) = @prefix ORDER BY key').all({ namespace, prefix })) as Array<{ key: string; value: string }>;
    return rows.map((r) => ({ key: r.key, value: JSON.parse(r.value) as JsonValue }));
  }

  clear(namespace: string): number {
    this.guard.checkWritable();
    checkName(this.guard.dir, 'state namespace', namespace);
    return this.db.prepare('DELETE FROM state WHERE namespace = ?').run(namespace).changes;
  }
}
