import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { axisMapping, orientationCode } from './orientation.js';
import type { Mat4, Vec3, VoxelArray } from './volume.js';

/**
 * NIfTI-1 single-file writer (.nii, or gzip when the path ends in .gz).
 *
 * The sform carries the exact voxel → RAS+ affine (float32, as NIfTI-1 stores it) and the qform its
 * closest rigid equivalent, both with code 1 (scanner), so nibabel, ITK-SNAP and our own reader (which
 * prefer the sform) agree, while qform-only tools still get the right orientation. Files are written
 * beside the target and renamed into place: a crash or a full disk never leaves a half file under the
 * final name, which matters because the indexer takes any file it finds as a scan.
 */

/** Voxel arrays the writer accepts: the canonical image types and uint8 label maps. */
export type WritableVoxels = VoxelArray | Uint8Array;

/** Anything with voxels on a grid and an affine; a `Volume` is one. */
export interface WritableVolume {
  data: WritableVoxels;
  dims: Vec3;
  /** Voxel (i, j, k) → RAS+ mm, row-major 4×4. Spacing is taken from its column lengths. */
  affineRas: Mat4;
}

export type NiftiStoredType = 'uint8' | 'int16' | 'float32';

export interface NiftiWriteOptions {
  /** Stored data type; default follows the array (Uint8Array → uint8, Int16Array → int16, Float32Array →
   * float32). A narrower type is allowed only when every value fits exactly (labels as uint8). */
  dataType?: NiftiStoredType;
  /** Axis codes of the stored voxel order, e.g. 'LAS' (what dcm2niix writes) or 'RAS'. Only axis flips
   * are done, so the target must keep each axis on its world axis. Default: the grid as given. */
  storedOrientation?: string;
  /** Free text for the header's descrip field (ASCII, cut to 79 characters). */
  description?: string;
  /** 'label' sets intent_code NIFTI_INTENT_LABEL (1002), which viewers use to show a label map. */
  intent?: 'none' | 'label';
  /** gzip level 1–9 for .gz paths (default 6, zlib's own default). */
  gzipLevel?: number;
}

const HEADER_BYTES = 348;
/** Header plus the 4-byte extension flag (all zero: no extensions). */
const VOX_OFFSET = 352;
const NIFTI1_MAX_DIM = 32_767;
const INTENT_LABEL = 1002;
const XFORM_SCANNER = 1;
const UNITS_MM = 2;

const TYPE_CODES: Record<NiftiStoredType, { code: number; bits: number }> = {
  uint8: { code: 2, bits: 8 },
  int16: { code: 4, bits: 16 },
  float32: { code: 16, bits: 32 },
};

const littleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Writes `volume` as NIfTI-1 to `path` (gzip when it ends in .gz) and returns `path`. */
export async function writeNifti(path: string, volume: WritableVolume, options: NiftiWriteOptions = {}): Promise<string> {
  const { header, data } = encodeNifti(volume, options);
  const gzip = path.toLowerCase().endsWith('.gz');
  await writeAtomically(path, async (tmpPath) => {
    // flush: fsync before close, so the rename never publishes a file whose bytes are still in the cache.
    const sink = createWriteStream(tmpPath, { flush: true });
    const source = Readable.from([header, data]);
    if (gzip) await pipeline(source, createGzip({ level: options.gzipLevel ?? 6 }), sink);
    else await pipeline(source, sink);
  });
  return path;
}

/** The file's bytes before any gzip: the 352-byte header (with extension flag) and the voxel bytes. */
export function encodeNifti(volume: WritableVolume, options: NiftiWriteOptions = {}): { header: Buffer; data: Buffer } {
  checkGrid(volume);
  const dataType = options.dataType ?? defaultType(volume.data);
  const stored = options.storedOrientation ? flipTo(volume, options.storedOrientation) : { data: volume.data, affineRas: volume.affineRas };
  const header = niftiHeader(volume.dims, stored.affineRas, dataType, options);
  return { header, data: voxelBytes(stored.data, dataType) };
}

/** Writes a small file (JSON, PNG) the same crash-safe way as the volumes. */
export async function writeFileAtomic(path: string, bytes: Uint8Array | string): Promise<void> {
  await writeAtomically(path, async (tmpPath) => {
    const sink = createWriteStream(tmpPath, { flush: true });
    await pipeline(Readable.from([typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes]), sink);
  });
}

async function writeAtomically(path: string, write: (tmpPath: string) => Promise<void>): Promise<void> {
  // Same folder as the target so the rename stays on one file system (and so is atomic); a dot name so
  // directory scans that skip hidden files never pick up a file being written.
  const tmpPath = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await write(tmpPath);
    await rename(tmpPath, path);
  } catch (error) {
    await unlink(tmpPath).catch(() => undefined);
    throw error;
  }
}

function checkGrid(volume: WritableVolume): void {
  const { dims, data, affineRas } = volume;
  if (dims.length !== 3 || dims.some((n) => !Number.isInteger(n) || n < 1 || n > NIFTI1_MAX_DIM)) {
    throw new RangeError(`dims ${dims.join('×')}: each must be an integer 1..${NIFTI1_MAX_DIM} for NIfTI-1`);
  }
  const voxels = dims[0] * dims[1] * dims[2];
  if (data.length !== voxels) throw new RangeError(`dims ${dims.join('×')} need ${voxels} voxels, the data has ${data.length}`);
  if (affineRas.length !== 16 || !affineRas.every(Number.isFinite)) throw new RangeError('affineRas must be 16 finite numbers');
  if (Math.abs(det3(linearPart(affineRas))) < 1e-12) throw new RangeError('affineRas is singular');
}

function defaultType(data: WritableVoxels): NiftiStoredType {
  if (data instanceof Uint8Array) return 'uint8';
  if (data instanceof Int16Array) return 'int16';
  return 'float32';
}

/** Voxel bytes, little-endian, in the stored type. The common case (same type, LE host) is a view, no copy. */
function voxelBytes(data: WritableVoxels, type: NiftiStoredType): Buffer {
  const sameType = defaultType(data) === type;
  if (sameType && (littleEndianHost || type === 'uint8')) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const bytesPerVoxel = TYPE_CODES[type].bits / 8;
  const out = Buffer.alloc(data.length * bytesPerVoxel);
  const [min, max] = type === 'uint8' ? [0, 255] : type === 'int16' ? [-32768, 32767] : [-Infinity, Infinity];
  for (let n = 0; n < data.length; n++) {
    const v = data[n];
    if (type !== 'float32' && (!Number.isInteger(v) || v < min || v > max)) {
      throw new RangeError(`voxel ${n} is ${v}, which ${type} cannot hold exactly`);
    }
    if (type === 'uint8') out[n] = v;
    else if (type === 'int16') out.writeInt16LE(v, 2 * n);
    else out.writeFloatLE(v, 4 * n);
  }
  return out;
}

/** Reverses the stored axes whose direction differs from `target` (e.g. canonical LPS → LAS flips j). */
function flipTo(volume: WritableVolume, target: string): { data: WritableVoxels; affineRas: Mat4 } {
  const from = orientationCode(volume.affineRas);
  const wanted = target.toUpperCase();
  const { worldAxis } = axisMapping(volume.affineRas);
  const pairs = ['LR', 'PA', 'IS'];
  const flip = [0, 1, 2].map((v) => {
    const pair = pairs[worldAxis[v]];
    if (!pair.includes(wanted[v] ?? '?')) {
      throw new RangeError(`cannot store ${from} data as ${target}: only axis flips are supported, axis ${v} runs along ${pair}`);
    }
    return wanted[v] !== from[v];
  });
  if (!flip.some(Boolean)) return { data: volume.data, affineRas: volume.affineRas };

  const [ni, nj, nk] = volume.dims;
  const affineRas = volume.affineRas.slice();
  for (let v = 0; v < 3; v++) {
    if (!flip[v]) continue;
    const n = volume.dims[v];
    for (let row = 0; row < 3; row++) {
      affineRas[4 * row + 3] += volume.affineRas[4 * row + v] * (n - 1);
      affineRas[4 * row + v] = -volume.affineRas[4 * row + v];
    }
  }
  const source = volume.data;
  const out = new (source.constructor as new (length: number) => WritableVoxels)(source.length);
  let o = 0;
  for (let k = 0; k < nk; k++) {
    const sk = flip[2] ? nk - 1 - k : k;
    for (let j = 0; j < nj; j++) {
      const sj = flip[1] ? nj - 1 - j : j;
      const base = ni * (sj + nj * sk);
      if (flip[0]) for (let i = ni - 1; i >= 0; i--) out[o++] = source[base + i];
      else {
        out.set(source.subarray(base, base + ni) as ArrayLike<number>, o);
        o += ni;
      }
    }
  }
  return { data: out, affineRas };
}

function niftiHeader(dims: Vec3, affineRas: Mat4, type: NiftiStoredType, options: NiftiWriteOptions): Buffer {
  const b = Buffer.alloc(VOX_OFFSET);
  b.writeInt32LE(HEADER_BYTES, 0);
  b.write('r', 38, 'latin1'); // "regular": required by some Analyze-era readers
  const dim = [3, dims[0], dims[1], dims[2], 1, 1, 1, 1];
  dim.forEach((n, at) => b.writeInt16LE(n, 40 + 2 * at));
  b.writeInt16LE(options.intent === 'label' ? INTENT_LABEL : 0, 68);
  b.writeInt16LE(TYPE_CODES[type].code, 70);
  b.writeInt16LE(TYPE_CODES[type].bits, 72);

  const quatern = quaternionOf(affineRas);
  const spacingMm = [0, 1, 2].map((c) => Math.hypot(affineRas[c], affineRas[4 + c], affineRas[8 + c]));
  const pixdim = [quatern.qfac, spacingMm[0], spacingMm[1], spacingMm[2], 0, 0, 0, 0];
  pixdim.forEach((v, at) => b.writeFloatLE(v, 76 + 4 * at));
  b.writeFloatLE(VOX_OFFSET, 108);
  b.writeFloatLE(1, 112); // scl_slope: explicit identity, voxels are the values
  b.writeFloatLE(0, 116);
  b.writeUInt8(UNITS_MM, 123);
  b.write(asciiField(options.description ?? 'mir3d', 79), 148, 'latin1');

  b.writeInt16LE(XFORM_SCANNER, 252);
  b.writeInt16LE(XFORM_SCANNER, 254);
  b.writeFloatLE(quatern.b, 256);
  b.writeFloatLE(quatern.c, 260);
  b.writeFloatLE(quatern.d, 264);
  b.writeFloatLE(affineRas[3], 268);
  b.writeFloatLE(affineRas[7], 272);
  b.writeFloatLE(affineRas[11], 276);
  for (let n = 0; n < 12; n++) b.writeFloatLE(affineRas[n], 280 + 4 * n);
  b.write('n+1\0', 344, 'latin1');
  // Bytes 348–351 stay zero: the extension flag says "no extensions".
  return b;
}

function asciiField(text: string, maxChars: number): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, maxChars);
}

type Mat3 = [number, number, number, number, number, number, number, number, number];

function linearPart(a: Mat4): Mat3 {
  return [a[0], a[1], a[2], a[4], a[5], a[6], a[8], a[9], a[10]];
}

function det3(m: Mat3): number {
  return m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) + m[2] * (m[3] * m[7] - m[4] * m[6]);
}

/**
 * The qform quaternion of an affine, as nifti1_io's nifti_mat44_to_quatern: columns normalized, the
 * nearest rotation taken by polar decomposition (so a sheared sform still gets a sensible qform), a
 * left-handed grid expressed with qfac = −1.
 */
export function quaternionOf(affineRas: Mat4): { b: number; c: number; d: number; qfac: 1 | -1 } {
  const m = linearPart(affineRas);
  for (let c = 0; c < 3; c++) {
    const norm = Math.hypot(m[c], m[3 + c], m[6 + c]) || 1;
    for (let row = 0; row < 3; row++) m[3 * row + c] /= norm;
  }
  const r = polarRotation(m);
  let qfac: 1 | -1 = 1;
  if (det3(r) < 0) {
    qfac = -1;
    for (let row = 0; row < 3; row++) r[3 * row + 2] = -r[3 * row + 2];
  }
  const [r11, r12, r13, r21, r22, r23, r31, r32, r33] = r;
  let a = r11 + r22 + r33 + 1;
  let b: number;
  let c: number;
  let d: number;
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a);
    b = (0.25 * (r32 - r23)) / a;
    c = (0.25 * (r13 - r31)) / a;
    d = (0.25 * (r21 - r12)) / a;
  } else {
    const xd = 1 + r11 - (r22 + r33);
    const yd = 1 + r22 - (r11 + r33);
    const zd = 1 + r33 - (r11 + r22);
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd);
      c = (0.25 * (r12 + r21)) / b;
      d = (0.25 * (r13 + r31)) / b;
      a = (0.25 * (r32 - r23)) / b;
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd);
      b = (0.25 * (r12 + r21)) / c;
      d = (0.25 * (r23 + r32)) / c;
      a = (0.25 * (r13 - r31)) / c;
    } else {
      d = 0.5 * Math.sqrt(zd);
      b = (0.25 * (r13 + r31)) / d;
      c = (0.25 * (r23 + r32)) / d;
      a = (0.25 * (r21 - r12)) / d;
    }
    // The quaternion's sign is free; NIfTI stores a ≥ 0 implicitly (a is recomputed from b, c, d).
    if (a < 0) {
      b = -b;
      c = -c;
      d = -d;
    }
  }
  return { b, c, d, qfac };
}

/** Orthogonal polar factor of a 3×3 matrix by Higham's iteration X ← (X + X⁻ᵀ)/2, which converges in a
 * handful of steps for any non-singular input and leaves a rotation (or reflection) unchanged. */
function polarRotation(m: Mat3): Mat3 {
  let x = m.slice() as Mat3;
  for (let iteration = 0; iteration < 50; iteration++) {
    const inverseTranspose = inverseTransposeOf(x);
    const next = x.map((v, n) => 0.5 * (v + inverseTranspose[n])) as Mat3;
    const change = next.reduce((sum, v, n) => sum + Math.abs(v - x[n]), 0);
    x = next;
    if (change < 1e-12) break;
  }
  return x;
}

function inverseTransposeOf(m: Mat3): Mat3 {
  const det = det3(m);
  // Cofactor matrix / det is the inverse transpose.
  return [
    (m[4] * m[8] - m[5] * m[7]) / det,
    -(m[3] * m[8] - m[5] * m[6]) / det,
    (m[3] * m[7] - m[4] * m[6]) / det,
    -(m[1] * m[8] - m[2] * m[7]) / det,
    (m[0] * m[8] - m[2] * m[6]) / det,
    -(m[0] * m[7] - m[1] * m[6]) / det,
    (m[1] * m[5] - m[2] * m[4]) / det,
    -(m[0] * m[5] - m[2] * m[3]) / det,
    (m[0] * m[4] - m[1] * m[3]) / det,
  ];
}
