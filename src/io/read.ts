import { stat } from 'node:fs/promises';
import { isMir3dError } from '../errors.js';
import { VolumeReadError } from './errors.js';
import { readDicomSeries, type DicomReadOptions } from './dicom.js';
import { openRegularFile } from './files.js';
import { keyImageFormat, readKeyImage, type KeyImageReadOptions } from './key-image.js';
import { readNifti, type NiftiReadOptions } from './nifti.js';
import type { Volume } from './volume.js';

export type ReadOptions = NiftiReadOptions & DicomReadOptions & KeyImageReadOptions;

/**
 * Reads a volume from a NIfTI file, a DICOM series directory or a PNG/JPEG key image (a one-slice volume).
 * Files are told apart by their bytes (gzip, NIfTI, PNG or JPEG magic), never by extension alone; a
 * directory is taken as a DICOM series.
 */
export async function readVolume(path: string, options: ReadOptions = {}): Promise<Volume> {
  let info;
  try {
    info = await stat(path);
  } catch {
    throw new VolumeReadError('NOT_FOUND', path, 'no such file or directory');
  }
  try {
    if (info.isDirectory()) return await readDicomSeries(path, options);
    if (keyImageFormat(await readHead(path)) !== undefined) return await readKeyImage(path, options);
    return await readNifti(path, options);
  } catch (error) {
    // The bytes are untrusted: a parser tripping over them (a RangeError deep in a header library) is a
    // bad file, not a reason to stop a batch or answer 500. The original error stays as the cause.
    if (isMir3dError(error)) throw error;
    const what = error instanceof Error ? `${error.name}: ${error.message.split('\n')[0]}` : String(error);
    throw new VolumeReadError('MALFORMED', path, `cannot be read as a volume (${what})`, { cause: error });
  }
}

// Through openRegularFile, so a FIFO or device is refused before a read could block on it.
async function readHead(path: string): Promise<Uint8Array> {
  const { handle } = await openRegularFile(path, Number.MAX_SAFE_INTEGER);
  try {
    const head = new Uint8Array(8);
    const { bytesRead } = await handle.read(head, 0, 8, 0);
    return head.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
