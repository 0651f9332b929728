import { spawnSync } from 'node:child_process';
import { symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { constants, gzipSync } from 'node:zlib';
import { rawNifti } from './nifti-bytes.js';

/**
 * Malformed inputs a user (or an attacker) can hand to mir3d, each with the error code it must be
 * refused with. Built byte by byte so that each one breaks exactly one thing in an otherwise valid file.
 */
export interface BadInput {
  name: string;
  /** File name inside the corpus folder. */
  file: string;
  /** The typed error the readers must answer with. */
  code: RegExp;
  write(path: string): void;
}

/** A small valid int16 volume's bytes, the base every header defect is made from. */
export function goodNiftiBytes(): Buffer {
  const dims = [8, 8, 6];
  const values = Array.from({ length: dims[0] * dims[1] * dims[2] }, (_, n) => (n % 97) - 40);
  return rawNifti({ dims, datatype: 4, values, pixdim: [1, 1, 2] });
}

function withVoxOffset(value: number): Buffer {
  const bytes = goodNiftiBytes();
  bytes.writeFloatLE(value, 108);
  return bytes;
}

export const HEADER_DEFECTS: BadInput[] = [
  { name: 'negative vox_offset', file: 'negative-offset.nii.gz', code: /BAD_HEADER/, write: (p) => writeFileSync(p, gzipSync(withVoxOffset(-1000))) },
  { name: 'NaN vox_offset', file: 'nan-offset.nii', code: /BAD_HEADER/, write: (p) => writeFileSync(p, withVoxOffset(Number.NaN)) },
  {
    name: 'float64 voxels beyond the float32 range',
    file: 'float64-overflow.nii.gz',
    code: /VOXEL_OVERFLOW/,
    write: (p) => writeFileSync(p, gzipSync(rawNifti({ dims: [8, 8, 6], datatype: 64, values: Array.from({ length: 384 }, (_, n) => (n === 7 ? 1e308 : n - 100)), pixdim: [1, 1, 2] }))),
  },
  { name: 'empty file', file: 'empty.nii.gz', code: /TRUNCATED/, write: (p) => writeFileSync(p, Buffer.alloc(0)) },
  { name: 'truncated gzip', file: 'truncated.nii.gz', code: /TRUNCATED|CORRUPT_GZIP/, write: (p) => writeFileSync(p, gzipSync(goodNiftiBytes()).subarray(0, 60)) },
  { name: 'wrong magic', file: 'wrong-magic.nii', code: /BAD_MAGIC/, write: (p) => writeFileSync(p, Buffer.concat([Buffer.from('not a nifti'), Buffer.alloc(400)])) },
  {
    // Files are told apart by their bytes, so this is read as the (broken) JPEG it claims to be.
    name: 'a broken JPEG named .nii.gz',
    file: 'photo.nii.gz',
    code: /BAD_HEADER/,
    write: (p) => writeFileSync(p, Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10]), Buffer.from('JFIF\0'), Buffer.alloc(600, 7)])),
  },
];

const MiB = 1024 * 1024;

/**
 * A valid small NIfTI followed by `inflatedMiB` of zeros, as concatenated gzip members (gunzip reads
 * them as one stream): about 1 MB on disk, cheap to build, and a real bomb for any reader that inflates
 * without a bound.
 */
export function gzipBomb(inflatedMiB: number): Buffer {
  const zeros = gzipSync(Buffer.alloc(64 * MiB), { level: constants.Z_BEST_COMPRESSION });
  return Buffer.concat([gzipSync(goodNiftiBytes()), ...Array.from({ length: Math.ceil(inflatedMiB / 64) }, () => zeros)]);
}

/** Inputs that cost time or memory without bounds in a careless reader; tests measure the child. */
export const RESOURCE_DEFECTS: BadInput[] = [
  { name: 'gzip bomb (1.5 GiB of zeros after a small header)', file: 'bomb.nii.gz', code: /TOO_LARGE/, write: (p) => writeFileSync(p, gzipBomb(1536)) },
  {
    name: 'a FIFO named .nii.gz',
    file: 'fifo.nii.gz',
    code: /NOT_REGULAR_FILE/,
    write: (p) => {
      const made = spawnSync('mkfifo', [p]);
      if (made.status !== 0) throw new Error(`test setup: mkfifo failed: ${made.stderr}`);
    },
  },
  { name: 'a link to /dev/zero named .nii', file: 'zero.nii', code: /NOT_REGULAR_FILE/, write: (p) => symlinkSync('/dev/zero', p) },
];

export function writeCorpus(dir: string, inputs: BadInput[]): string[] {
  return inputs.map((input) => {
    const path = join(dir, input.file);
    input.write(path);
    return path;
  });
}
