import { promisify } from 'node:util';
import { constants as zlibConstants, gunzip, gunzipSync } from 'node:zlib';
import { NIFTI1, NIFTI2, readHeader } from 'nifti-reader-js';
import { VolumeReadError } from './errors.js';
import { defaultMaxVolumeBytes, readRegularFile, tooLargeError } from './files.js';
import { obliquityDeg, orientationCode, spacingFromAffine, toCanonical } from './orientation.js';
import type { Correction, Mat4, Vec3, Volume, VoxelArray } from './volume.js';
import { valueRange } from './volume-stats.js';

/**
 * NIfTI-1 / NIfTI-2 reader (.nii and .nii.gz, told apart by their bytes) → one canonical Volume.
 *
 * nifti-reader-js parses the header fields; decompression uses Node's native zlib (several times faster
 * than the pure-JS inflate the library bundles) and the voxel conversion is a single typed-array pass.
 * The affine follows nibabel's choice: sform when its code is set, else qform, else the Analyze default,
 * so orientation agrees with what nibabel, ITK-SNAP and dcm2niix users see.
 */

const gunzipAsync = promisify(gunzip);

export interface NiftiReadOptions {
  /** NIfTI has no modality field; say 'CT' when the caller knows (default 'unknown'). */
  modality?: string;
  /** NaN or ±Inf voxels: 'error' (default) refuses the file; 'replace' sets them to the volume's
   * minimum finite value and records a correction. */
  nonFiniteVoxels?: 'error' | 'replace';
  /** Most bytes read from the file or inflated from it (default defaultMaxVolumeBytes()). */
  maxBytes?: number;
}

/** Above this a header is corrupt or the volume is no CT this tool should hold in memory. */
const MAX_DIM = 65_535;
const MAX_VOXELS = 2 ** 31 - 1;
/** Obliquity below this is scanner-table noise, not worth a correction note. */
const OBLIQUE_NOTE_DEG = 1;

interface DataTypeInfo {
  name: string;
  bytes: number;
  integral: boolean;
  read: (view: DataView, offset: number, littleEndian: boolean) => number;
}

// NIfTI datatype codes (nifti1.h). Complex and RGB codes are not scalar intensities and are refused.
const DATA_TYPES: Record<number, DataTypeInfo> = {
  2: { name: 'uint8', bytes: 1, integral: true, read: (v, o) => v.getUint8(o) },
  4: { name: 'int16', bytes: 2, integral: true, read: (v, o, le) => v.getInt16(o, le) },
  8: { name: 'int32', bytes: 4, integral: true, read: (v, o, le) => v.getInt32(o, le) },
  16: { name: 'float32', bytes: 4, integral: false, read: (v, o, le) => v.getFloat32(o, le) },
  64: { name: 'float64', bytes: 8, integral: false, read: (v, o, le) => v.getFloat64(o, le) },
  256: { name: 'int8', bytes: 1, integral: true, read: (v, o) => v.getInt8(o) },
  512: { name: 'uint16', bytes: 2, integral: true, read: (v, o, le) => v.getUint16(o, le) },
  768: { name: 'uint32', bytes: 4, integral: true, read: (v, o, le) => v.getUint32(o, le) },
  1024: { name: 'int64', bytes: 8, integral: true, read: (v, o, le) => Number(v.getBigInt64(o, le)) },
  1280: { name: 'uint64', bytes: 8, integral: true, read: (v, o, le) => Number(v.getBigUint64(o, le)) },
};

const littleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** 1 or 2 for a NIfTI single-file header (either byte order), 0 for anything else. */
function niftiVersion(bytes: Uint8Array): 0 | 1 | 2 {
  if (bytes.length < 348) return 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const sizeLe = view.getInt32(0, true);
  const sizeBe = view.getInt32(0, false);
  const text = (from: number, length: number): string => String.fromCharCode(...bytes.subarray(from, from + length));
  if ((sizeLe === 348 || sizeBe === 348) && text(344, 4) === 'n+1\0') return 1;
  if ((sizeLe === 540 || sizeBe === 540) && bytes.length >= 540 && text(4, 4) === 'n+2\0') return 2;
  return 0;
}

function describeMagic(bytes: Uint8Array): string {
  if (bytes.length >= 348 && String.fromCharCode(...bytes.subarray(344, 348)) === 'ni1\0') {
    return 'this is the header of a .hdr/.img pair; only single-file NIfTI (.nii, .nii.gz) is read';
  }
  if (bytes.length >= 132 && String.fromCharCode(...bytes.subarray(128, 132)) === 'DICM') {
    return 'this is a single DICOM file; point mir3d at the directory holding the whole series';
  }
  return 'not a NIfTI-1/NIfTI-2 file (no NIfTI magic) nor gzip-compressed data';
}

/** gzip's footer holds the uncompressed size (mod 2³²); handing zlib one output chunk of that size
 * avoids growing and concatenating 16 KiB chunks, which otherwise costs more than the inflation itself.
 * The footer is not trusted beyond `limit`. */
function outputChunkBytes(bytes: Buffer, limit: number): number {
  const hint = bytes.length >= 18 ? bytes.readUInt32LE(bytes.length - 4) + 1 : 0;
  return Math.min(Math.max(hint, 64 * 1024), 1 << 30, limit + 1);
}

/** Trailing bytes tolerated after the voxels (padding some writers add). */
const TRAILING_SLACK_BYTES = 1024 * 1024;

/**
 * The most bytes this gzip stream may inflate to: what its own NIfTI header can justify (offset plus
 * voxels × bytes per voxel, plus a little slack), never more than `maxBytes`. The header comes from
 * inflating only the stream's first 4 KiB (at most ~4 MiB out, deflate's ratio being below 1032:1). When no sane header can be read, `maxBytes` bounds it and the
 * reader's own checks name the problem afterwards.
 */
function justifiedInflatedBytes(compressed: Buffer, maxBytes: number): number {
  let head: Buffer;
  try {
    head = gunzipSync(compressed.subarray(0, 4096), { finishFlush: zlibConstants.Z_SYNC_FLUSH });
  } catch {
    return maxBytes;
  }
  const version = niftiVersion(head);
  if (version === 0) return maxBytes;
  try {
    const header = readHeader(head.buffer.slice(head.byteOffset, head.byteOffset + head.length) as ArrayBuffer);
    const [rank, ...sizes] = header.dims;
    const voxels = sizes.slice(0, rank).reduce((product, n) => product * n, 1);
    const offset = header.vox_offset === 0 ? (version === 1 ? 352 : 544) : header.vox_offset;
    const needed = offset + voxels * (header.numBitsPerVoxel / 8) + TRAILING_SLACK_BYTES;
    return Number.isFinite(needed) && needed > 0 ? Math.min(Math.ceil(needed), maxBytes) : maxBytes;
  } catch {
    return maxBytes;
  }
}

async function decompress(bytes: Buffer, path: string, maxBytes: number): Promise<Buffer> {
  const limit = justifiedInflatedBytes(bytes, maxBytes);
  try {
    // zlib stops as soon as the output passes the limit, so a gzip bomb costs at most `limit` bytes.
    return await gunzipAsync(bytes, { chunkSize: outputChunkBytes(bytes, limit), maxOutputLength: limit });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw limit < maxBytes
        ? new VolumeReadError('TOO_LARGE', path, `the gzip stream inflates to more than the ${limit} bytes its NIfTI header accounts for`)
        : tooLargeError(path, 'the gzip stream inflates to', maxBytes);
    }
    const message = error instanceof Error ? error.message : String(error);
    const truncated = /unexpected end/i.test(message);
    throw new VolumeReadError(
      truncated ? 'TRUNCATED' : 'CORRUPT_GZIP',
      path,
      truncated ? `gzip stream ends early (file truncated?): ${message}` : `gzip data is corrupt: ${message}`,
    );
  }
}

/** The file's bytes with any gzip layer removed. */
async function niftiBytes(path: string, maxBytes: number): Promise<Buffer> {
  const raw = await readRegularFile(path, maxBytes);
  if (raw.length === 0) throw new VolumeReadError('TRUNCATED', path, 'the file is empty');
  return isGzip(raw) ? decompress(raw, path, maxBytes) : raw;
}

type Header = NIFTI1 | NIFTI2;

function checkedDims(header: Header, path: string): Vec3 {
  const [rank, ...sizes] = header.dims;
  if (!Number.isInteger(rank) || rank < 1 || rank > 7) {
    throw new VolumeReadError('BAD_DIMENSIONS', path, `dim[0] is ${rank}, must be 1..7`);
  }
  const used = sizes.slice(0, rank);
  if (used.some((n) => !Number.isInteger(n) || n < 1 || n > MAX_DIM)) {
    throw new VolumeReadError('BAD_DIMENSIONS', path, `dimensions ${used.join('×')} are zero, negative or absurd (max ${MAX_DIM})`);
  }
  const beyond = used.slice(3).filter((n) => n > 1);
  if (beyond.length > 0) {
    throw new VolumeReadError('NOT_3D', path, `the image is ${rank}D (${used.join('×')}); a 3D volume is expected (extract one volume first)`);
  }
  const dims: Vec3 = [used[0] ?? 1, used[1] ?? 1, used[2] ?? 1];
  if (dims[0] * dims[1] * dims[2] > MAX_VOXELS) {
    throw new VolumeReadError('BAD_DIMENSIONS', path, `dimensions ${dims.join('×')} exceed ${MAX_VOXELS} voxels`);
  }
  return dims;
}

function checkedSpacing(header: Header, path: string): Vec3 {
  const spacing = [1, 2, 3].map((n) => Math.abs(header.pixDims[n] ?? 0));
  if (spacing.some((s) => !Number.isFinite(s) || s <= 0 || s > 1e4)) {
    throw new VolumeReadError('BAD_HEADER', path, `voxel size ${header.pixDims.slice(1, 4).join('×')} is not a positive size in mm`);
  }
  // xyzt_units: 1 metre, 2 mm, 3 µm; 0 (unknown) is read as mm, as every tool does.
  const unit = header.xyzt_units & 0x07;
  const toMm = unit === 1 ? 1000 : unit === 3 ? 0.001 : 1;
  return spacing.map((s) => s * toMm) as Vec3;
}

/** srow_x/y/z straight from the header bytes: float32 at 280 in NIfTI-1, float64 at 400 in NIfTI-2. */
function sformOf(bytes: Buffer, version: 1 | 2, littleEndian: boolean): Mat4 {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const base = version === 1 ? 280 : 400;
  const size = version === 1 ? 4 : 8;
  const values: number[] = [];
  for (let n = 0; n < 12; n++) {
    const at = base + n * size;
    values.push(version === 1 ? view.getFloat32(at, littleEndian) : view.getFloat64(at, littleEndian));
  }
  return [...values, 0, 0, 0, 1];
}

function qformOf(header: Header, spacing: Vec3): Mat4 {
  const offsets = [header.qoffset_x, header.qoffset_y, header.qoffset_z];
  const qfac = header.pixDims[0] < 0 ? -1 : 1;
  const m = header.convertNiftiQFormToNiftiSForm(
    header.quatern_b,
    header.quatern_c,
    header.quatern_d,
    offsets[0],
    offsets[1],
    offsets[2],
    spacing[0],
    spacing[1],
    spacing[2],
    qfac,
  );
  return [...m[0].slice(0, 4), ...m[1].slice(0, 4), ...m[2].slice(0, 4), 0, 0, 0, 1];
}

/** Analyze-style default used by nibabel when neither transform is set: x flipped, centred on the grid. */
function defaultAffine(dims: Vec3, spacing: Vec3): Mat4 {
  const [dx, dy, dz] = spacing;
  return [
    -dx, 0, 0, ((dims[0] - 1) / 2) * dx,
    0, dy, 0, (-(dims[1] - 1) / 2) * dy,
    0, 0, dz, (-(dims[2] - 1) / 2) * dz,
    0, 0, 0, 1,
  ];
}

function affineOf(header: Header, bytes: Buffer, version: 1 | 2, dims: Vec3, spacing: Vec3, path: string): Mat4 {
  let affine: Mat4;
  if (header.sform_code > 0) affine = sformOf(bytes, version, header.littleEndian);
  else if (header.qform_code > 0) affine = qformOf(header, spacing);
  else affine = defaultAffine(dims, spacing);
  const linear = [0, 1, 2, 4, 5, 6, 8, 9, 10].map((n) => affine[n]);
  const det =
    linear[0] * (linear[4] * linear[8] - linear[5] * linear[7]) -
    linear[1] * (linear[3] * linear[8] - linear[5] * linear[6]) +
    linear[2] * (linear[3] * linear[7] - linear[4] * linear[6]);
  if (!affine.every(Number.isFinite) || Math.abs(det) < 1e-12) {
    throw new VolumeReadError('BAD_HEADER', path, `the ${header.sform_code > 0 ? 'sform' : 'qform'} transform is singular or not finite`);
  }
  return affine;
}

type StoredArray = Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array;

const TYPED_CONSTRUCTORS: Record<number, new (buffer: ArrayBufferLike, byteOffset: number, length: number) => StoredArray> = {
  2: Uint8Array,
  4: Int16Array,
  8: Int32Array,
  16: Float32Array,
  64: Float64Array,
  256: Int8Array,
  512: Uint16Array,
  768: Uint32Array,
};

/** The stored values as a native-order typed array: a view on the bytes when byte order and alignment
 * allow (the usual case), else a converted copy (big-endian files, odd offsets, 64-bit integers). */
function storedValues(bytes: Buffer, offset: number, voxels: number, code: number, le: boolean): StoredArray {
  const type = DATA_TYPES[code];
  const start = bytes.byteOffset + offset;
  const Typed = TYPED_CONSTRUCTORS[code];
  if (Typed && le === littleEndianHost && start % type.bytes === 0) return new Typed(bytes.buffer, start, voxels);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = code === 64 || code === 1024 || code === 1280 ? new Float64Array(voxels) : new Float32Array(voxels);
  for (let n = 0; n < voxels; n++) out[n] = type.read(view, offset + n * type.bytes, le);
  return out;
}

/** Largest finite float32: voxels are held as float32 at most, so anything beyond would become ±Infinity. */
const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * Where the voxels start. NaN, infinite or negative offsets are corrupt headers (NaN would silently read
 * the header itself as voxels), and so is one inside the header; 0, which some writers leave, means
 * right after the header and its 4 extension bytes, as nibabel reads it.
 */
function voxelOffset(header: Header, path: string): number {
  const value = header.vox_offset;
  const headerBytes = header instanceof NIFTI2 ? 540 : 348;
  if (value === 0) return headerBytes + 4;
  if (!Number.isFinite(value) || value < headerBytes) {
    throw new VolumeReadError('BAD_HEADER', path, `vox_offset is ${value}, not a byte offset past the ${headerBytes}-byte header`);
  }
  return Math.floor(value);
}

function overflowError(path: string, what: string): VolumeReadError {
  return new VolumeReadError('VOXEL_OVERFLOW', path, `${what} beyond ±3.4e38, the float32 range voxels are held in (they would become ±Infinity)`);
}

/** Scaled voxels in stored order. Integral results that fit int16 (CT in HU, label maps) stay int16. */
function scaledVoxels(header: Header, bytes: Buffer, voxels: number, path: string, options: NiftiReadOptions): { data: VoxelArray; corrections: Correction[] } {
  const type = DATA_TYPES[header.datatypeCode];
  if (!type) {
    throw new VolumeReadError('UNSUPPORTED_DATATYPE', path, `NIfTI datatype ${header.datatypeCode} (${header.getDatatypeCodeString(header.datatypeCode)}) is not a scalar intensity type`);
  }
  const offset = voxelOffset(header, path);
  const needed = offset + voxels * type.bytes;
  if (bytes.length < needed) {
    throw new VolumeReadError('SIZE_MISMATCH', path, `header says ${voxels} voxels of ${type.name} from byte ${offset} (${needed} bytes), but the data has ${bytes.length} bytes`);
  }
  const slopeSet = Number.isFinite(header.scl_slope) && header.scl_slope !== 0;
  const slope = slopeSet ? header.scl_slope : 1;
  const inter = slopeSet && Number.isFinite(header.scl_inter) ? header.scl_inter : 0;
  const stored = storedValues(bytes, offset, voxels, header.datatypeCode, header.littleEndian);

  // Stored int16 without scaling (nearly every CT file) is already what a volume holds: it stays a view on
  // the decompressed bytes, with no pass over the values (a range scan alone took 90 ms a 62 MB CT in V8).
  if (stored instanceof Int16Array && slope === 1 && inter === 0) return { data: stored, corrections: [] };
  // Other integer storage with integer scaling: the range decides int16 without inspecting the values one
  // by one for fractions or NaN, which integers cannot hold.
  if (type.integral && Number.isInteger(slope) && Number.isInteger(inter)) {
    const [min, max] = valueRange(stored);
    const scaledMin = Math.min(min * slope + inter, max * slope + inter);
    const scaledMax = Math.max(min * slope + inter, max * slope + inter);
    if (!(scaledMin >= -FLOAT32_MAX && scaledMax <= FLOAT32_MAX)) throw overflowError(path, `scaled values reach ${scaledMin}…${scaledMax},`);
    const out = scaledMin >= -32768 && scaledMax <= 32767 ? new Int16Array(voxels) : new Float32Array(voxels);
    if (slope === 1 && inter === 0) {
      out.set(stored);
    } else {
      for (let n = 0; n < voxels; n++) out[n] = stored[n] * slope + inter;
    }
    return { data: out, corrections: [] };
  }

  const values = new Float32Array(voxels);
  let fractional = false;
  let min = Infinity;
  let max = -Infinity;
  let nonFinite = 0;
  let overflow = 0;
  for (let n = 0; n < voxels; n++) {
    const v = stored[n] * slope + inter;
    values[n] = v;
    if (!Number.isFinite(v)) {
      nonFinite++;
      continue;
    }
    // Finite in float64 but not once stored as float32 (1e308 → Infinity).
    if (!Number.isFinite(values[n])) {
      overflow++;
      continue;
    }
    if (v < min) min = v;
    if (v > max) max = v;
    if (!fractional && v !== Math.round(v)) fractional = true;
  }
  if (overflow > 0) throw overflowError(path, `${overflow} voxel(s) lie`);
  const corrections: Correction[] = [];
  if (nonFinite > 0) {
    if (options.nonFiniteVoxels !== 'replace' || min === Infinity) {
      throw new VolumeReadError('NON_FINITE_VOXELS', path, `${nonFinite} voxel(s) are NaN or infinite${options.nonFiniteVoxels === 'replace' ? ' and no voxel is finite' : ''}`);
    }
    for (let n = 0; n < voxels; n++) if (!Number.isFinite(values[n])) values[n] = min;
    corrections.push({
      kind: 'non-finite-voxels',
      message: `${nonFinite} NaN/infinite voxel(s) set to the volume minimum ${min}`,
      details: { count: nonFinite, replacement: min },
    });
  }
  if (!fractional && min >= -32768 && max <= 32767) return { data: new Int16Array(values), corrections };
  return { data: values, corrections };
}

/** Reads a .nii or .nii.gz file into a canonical Volume. */
export async function readNifti(path: string, options: NiftiReadOptions = {}): Promise<Volume> {
  const bytes = await niftiBytes(path, options.maxBytes ?? defaultMaxVolumeBytes());
  const version = niftiVersion(bytes);
  if (version === 0) throw new VolumeReadError('BAD_MAGIC', path, describeMagic(bytes));
  let header: Header;
  try {
    const arrayBuffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + Math.min(bytes.length, 4096)) as ArrayBuffer;
    header = readHeader(arrayBuffer);
  } catch (error) {
    throw new VolumeReadError('BAD_HEADER', path, `NIfTI header cannot be parsed (${error instanceof Error ? error.message : String(error)})`);
  }
  const dims = checkedDims(header, path);
  const spacing = checkedSpacing(header, path);
  const storedAffine = affineOf(header, bytes, version, dims, spacing, path);
  const { data: stored, corrections } = scaledVoxels(header, bytes, dims[0] * dims[1] * dims[2], path, options);
  // The voxels are this read's own (decompressed bytes or a fresh array), so canonical flips go in place.
  const canonical = toCanonical(stored, dims, storedAffine, { inPlace: true });
  const oblique = obliquityDeg(storedAffine);
  if (oblique > OBLIQUE_NOTE_DEG) {
    corrections.push({
      kind: 'oblique',
      message: `voxel axes are ${oblique.toFixed(1)}° off the patient axes: slices follow the nearest axes, the exact affine is kept`,
      details: { obliquityDeg: oblique },
    });
  }
  return {
    data: canonical.data,
    dims: canonical.dims,
    spacingMm: spacingFromAffine(canonical.affineRas),
    affineRas: canonical.affineRas,
    modality: options.modality ?? 'unknown',
    source: {
      path,
      format: version === 1 ? 'nifti-1' : 'nifti-2',
      orientation: orientationCode(storedAffine),
      storedDataType: DATA_TYPES[header.datatypeCode].name,
    },
    corrections,
  };
}
