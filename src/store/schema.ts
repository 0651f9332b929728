/**
 * The SQLite layout of an index. Vectors are BLOBs of little-endian numbers, one row per volume, so that
 * adding or removing a volume is one small transaction and a volume is wholly present or absent.
 *
 * Big BLOBs live in their own tables: SQLite reads a row's columns front to back through its overflow
 * pages, so slice metadata next to a 1.5 MB vector BLOB would cost a walk over that BLOB at every open.
 */

/** Tables added later (artifacts, state) are created on the next writable open; older indexes keep
 * version 1 and a read-only open of one without them sees no artifacts and no state. */
export const SCHEMA_VERSION = 1;

/** 16 KiB pages: writing a 300 × 1280 float32 BLOB took 3.5 ms at 16 KiB vs 6.6 ms at the 4 KiB default
 * (reads 0.35 vs 0.84 ms); 64 KiB gained little more (2.3 ms) and inflates small-row updates. */
export const PAGE_SIZE_BYTES = 16384;

export const CREATE_TABLES = `
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

-- AUTOINCREMENT so a key is never reused: HNSW slice keys derive from it, and a stale HNSW file must
-- never mistake a deleted volume's slices for a new volume's.
CREATE TABLE IF NOT EXISTS volumes (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  volume_id      TEXT NOT NULL UNIQUE,
  content_sha256 TEXT NOT NULL UNIQUE,
  slice_count    INTEGER NOT NULL,
  record         TEXT NOT NULL
);

-- slice_indices: int32 × slice_count; z_mm: float64 × slice_count.
CREATE TABLE IF NOT EXISTS slices (
  volume_key    INTEGER PRIMARY KEY REFERENCES volumes(id) ON DELETE CASCADE,
  slice_indices BLOB NOT NULL,
  z_mm          BLOB NOT NULL
);

-- data: float32 × slice_count × dim, row-major.
CREATE TABLE IF NOT EXISTS vectors (
  volume_key INTEGER PRIMARY KEY REFERENCES volumes(id) ON DELETE CASCADE,
  row_count  INTEGER NOT NULL,
  data       BLOB NOT NULL
);

-- vector: float32 × dim, L2-normalized.
CREATE TABLE IF NOT EXISTS pooled (
  volume_key INTEGER NOT NULL REFERENCES volumes(id) ON DELETE CASCADE,
  pooling    TEXT NOT NULL,
  vector     BLOB NOT NULL,
  PRIMARY KEY (volume_key, pooling)
) WITHOUT ROWID;

-- Named artifacts (learned spaces, heads, text towers …): metadata here, bytes in chunks, so that one
-- artifact is not bound by SQLite's 1 GB BLOB limit and a put never holds two copies of a huge BLOB.
CREATE TABLE IF NOT EXISTS artifacts (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  kind        TEXT NOT NULL,
  name        TEXT NOT NULL,
  metadata    TEXT NOT NULL,
  byte_length INTEGER NOT NULL,
  sha256      TEXT NOT NULL,
  updated_at  TEXT NOT NULL,
  UNIQUE (kind, name)
);

CREATE TABLE IF NOT EXISTS artifact_chunks (
  artifact_id INTEGER NOT NULL REFERENCES artifacts(id) ON DELETE CASCADE,
  seq         INTEGER NOT NULL,
  data        BLOB NOT NULL,
  PRIMARY KEY (artifact_id, seq)
);

-- Small key/value state per namespace; value is JSON.
CREATE TABLE IF NOT EXISTS state (
  namespace TEXT NOT NULL,
  key       TEXT NOT NULL,
  value     TEXT NOT NULL,
  PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
`;

export function assertLittleEndian(): void {
  if (new Uint8Array(Uint16Array.of(1).buffer)[0] !== 1) {
    throw new Error('the index stores little-endian BLOBs; big-endian hosts are not supported');
  }
}

/** A BLOB as bytes that alias the typed array (no copy). */
export function blobOf(values: Float32Array | Float64Array | Int32Array): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

function aligned(blob: Buffer, bytesPerElement: number): ArrayBuffer {
  if (blob.byteOffset % bytesPerElement === 0) return blob.buffer as ArrayBuffer;
  const copy = new Uint8Array(blob.byteLength);
  copy.set(blob);
  return copy.buffer;
}

export function float32Of(blob: Buffer): Float32Array {
  if (blob.byteLength % 4 !== 0) throw new Error(`float32 BLOB of ${blob.byteLength} bytes`);
  const offset = blob.byteOffset % 4 === 0 ? blob.byteOffset : 0;
  return new Float32Array(aligned(blob, 4), offset, blob.byteLength / 4);
}

export function float64Of(blob: Buffer): Float64Array {
  if (blob.byteLength % 8 !== 0) throw new Error(`float64 BLOB of ${blob.byteLength} bytes`);
  const offset = blob.byteOffset % 8 === 0 ? blob.byteOffset : 0;
  return new Float64Array(aligned(blob, 8), offset, blob.byteLength / 8);
}

export function int32Of(blob: Buffer): Int32Array {
  if (blob.byteLength % 4 !== 0) throw new Error(`int32 BLOB of ${blob.byteLength} bytes`);
  const offset = blob.byteOffset % 4 === 0 ? blob.byteOffset : 0;
  return new Int32Array(aligned(blob, 4), offset, blob.byteLength / 4);
}
