import { stat } from 'node:fs/promises';
import { isMir3dError } from '../errors.js';
import { VolumeReadError } from './errors.js';
import { readDicomSeries, type DicomReadOptions } from './dicom.js';
import { readNifti, type NiftiReadOptions } from './nifti.js';
import type { Volume } from './volume.js';

export type ReadOptions = NiftiReadOptions & DicomReadOptions;

/**
 * Reads a volume from a NIfTI file or a DICOM series directory. Files are told apart by their bytes
 * (gzip or NIfTI magic), never by extension alone; a directory is taken as a DICOM series.
 */
export async function readVolume(path: string, options: ReadOptions = {}): Promise<Volume> {
  let info;
  try {
    info = await stat(path);
  } catch {
    throw new VolumeReadError('NOT_FOUND', path, 'no such file or directory');
  }
  try {
    return await (info.isDirectory() ? readDicomSeries(path, options) : readNifti(path, options));
  } catch (error) {
    // The bytes are untrusted: a parser tripping over them (a RangeError deep in a header library) is a
    // bad file, not a reason to stop a batch or answer 500. The original error stays as the cause.
    if (isMir3dError(error)) throw error;
    const what = error instanceof Error ? `${error.name}: ${error.message.split('\n')[0]}` : String(error);
    throw new VolumeReadError('MALFORMED', path, `cannot be read as a volume (${what})`, { cause: error });
  }
}
