import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from './nifti-writer.js';

/**
 * NumPy .npy (format version 1.0) for float32 matrices: the one vector layout every analysis tool reads
 * (`numpy.load`), so embeddings written by `mir3d embed` need no custom parser. Little-endian, C order.
 */

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);

export function encodeNpyFloat32(values: Float32Array, shape: number[]): Buffer {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== values.length) throw new RangeError(`npy: ${values.length} values for shape [${shape.join(', ')}]`);
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // Magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of 64 and
  // ended by a newline, as the format requires for aligned data.
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const prefix = Buffer.alloc(10);
  MAGIC.copy(prefix, 0);
  prefix[6] = 1;
  prefix[7] = 0;
  prefix.writeUInt16LE(header.length, 8);
  const data = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  return Buffer.concat([prefix, Buffer.from(header, 'latin1'), littleEndian(data)]);
}

function littleEndian(data: Buffer): Buffer {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] === 1) return data;
  const out = Buffer.from(data);
  out.swap32();
  return out;
}

export async function writeNpyFloat32(path: string, values: Float32Array, shape: number[]): Promise<void> {
  await writeFileAtomic(path, encodeNpyFloat32(values, shape));
}

/** Reads a float32 little-endian C-order .npy (what writeNpyFloat32 and numpy.save of float32 write). */
export async function readNpyFloat32(path: string): Promise<{ values: Float32Array; shape: number[] }> {
  const bytes = await readFile(path);
  if (bytes.length < 10 || !bytes.subarray(0, 6).equals(MAGIC)) throw new Error(`${path}: not a .npy file`);
  const major = bytes[6];
  const headerLength = major === 1 ? bytes.readUInt16LE(8) : bytes.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = bytes.toString('latin1', start, start + headerLength);
  if (!/'descr':\s*'<f4'/.test(header) || /'fortran_order':\s*True/.test(header)) throw new Error(`${path}: only little-endian float32 C-order arrays are read`);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? '';
  const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const offset = start + headerLength;
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes.length < offset + count * 4) throw new Error(`${path}: data shorter than shape [${shape.join(', ')}]`);
  const values = new Float32Array(count);
  new Uint8Array(values.buffer).set(bytes.subarray(offset, offset + count * 4));
  return { values, shape };
}
