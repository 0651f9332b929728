import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { VolumeReadError } from './errors.js';

/**
 * Every file a reader touches goes through here: only regular files (after resolving links) are read,
 * and only up to a size bound. Opening with O_NONBLOCK keeps a FIFO from blocking the open itself (a FIFO
 * named `x.nii.gz` would otherwise hang forever); the type and size are then checked on the open handle,
 * so a link swapped between a check and the read cannot slip a device such as /dev/zero past it.
 */

const MiB = 1024 * 1024;

/**
 * Most bytes mir3d holds for one volume's file or its inflated voxels: 2 GiB (a 512×512×4000 int16 CT)
 * unless MIR3D_MAX_VOLUME_MB says otherwise. A reader's own `maxBytes` option takes precedence.
 */
export function defaultMaxVolumeBytes(): number {
  const fromEnv = Number(process.env.MIR3D_MAX_VOLUME_MB);
  return Number.isFinite(fromEnv) && fromEnv > 0 ? Math.floor(fromEnv * MiB) : 2048 * MiB;
}

export function tooLargeError(path: string, what: string, maxBytes: number): VolumeReadError {
  return new VolumeReadError('TOO_LARGE', path, `${what} more than ${Math.round(maxBytes / MiB)} MiB, the most mir3d reads for one volume (MIR3D_MAX_VOLUME_MB raises it)`);
}

function kindOf(mode: number): string {
  switch (mode & constants.S_IFMT) {
    case constants.S_IFIFO:
      return 'a FIFO';
    case constants.S_IFCHR:
      return 'a character device';
    case constants.S_IFBLK:
      return 'a block device';
    case constants.S_IFSOCK:
      return 'a socket';
    case constants.S_IFDIR:
      return 'a directory';
    default:
      return 'not a regular file';
  }
}

/** An open handle on a regular file of at most `maxBytes`, and its size. The caller closes it. */
export async function openRegularFile(path: string, maxBytes: number): Promise<{ handle: FileHandle; sizeBytes: number }> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new VolumeReadError('NOT_FOUND', path, 'no such file or directory');
    throw new VolumeReadError('UNREADABLE', path, `cannot read file (${code ?? String(error)})`);
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new VolumeReadError('NOT_REGULAR_FILE', path, `${kindOf(info.mode)}, not a regular file: only regular files are read`);
    if (info.size > maxBytes) throw tooLargeError(path, `the file is ${Math.round(info.size / MiB)} MiB,`, maxBytes);
    return { handle, sizeBytes: info.size };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** The whole of a regular file of at most `maxBytes`. */
export async function readRegularFile(path: string, maxBytes: number): Promise<Buffer> {
  const { handle, sizeBytes } = await openRegularFile(path, maxBytes);
  try {
    // Read what fstat promised and no more: a file growing under us cannot push past the bound.
    const buffer = Buffer.allocUnsafe(sizeBytes);
    let filled = 0;
    while (filled < sizeBytes) {
      const { bytesRead } = await handle.read(buffer, filled, sizeBytes - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return filled === sizeBytes ? buffer : buffer.subarray(0, filled);
  } catch (error) {
    if (error instanceof VolumeReadError) throw error;
    throw new VolumeReadError('UNREADABLE', path, `cannot read file (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  } finally {
    await handle.close();
  }
}
