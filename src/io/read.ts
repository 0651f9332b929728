import { stat } from 'node:fs/promises';
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
  if (info.isDirectory()) return readDicomSeries(path, options);
  return readNifti(path, options);
}
