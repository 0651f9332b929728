import { VolumeReadError } from './errors.js';
import { resampleStack } from './dicom-resample.js';
import { checkConsistent, geometryOf, lpsToRas, sliceStepOf, storedAffineLps } from './dicom-geometry.js';
import { stackSlices, storedTypeName } from './dicom-pixels.js';
import { groupBySeries, headerOf, parseFile, pickSeries, requireImages, scanDirectory, scanOf, summariesOf, type DicomSeriesSummary, type DirectoryScan } from './dicom-scan.js';
import { orientationCode, spacingFromAffine, toCanonical } from './orientation.js';
import type { Correction, Vec3, Volume } from './volume.js';

/**
 * DICOM series reader: a directory of single-frame slices → one canonical Volume.
 *
 * Slices are ordered by their position along the slice normal (never by file name or InstanceNumber,
 * which real exports get wrong), rescaled to modality units (HU for CT), and placed on a regular grid.
 * Where the acquisition is not a regular grid (gantry tilt, uneven slice gaps) the reader resamples and
 * says so in `corrections`. Nothing identifying (names, IDs, dates, raw UIDs) leaves this module: series
 * are named by a hash, and file names that look like UIDs are redacted from messages.
 */

export { seriesKeyOf, type DicomSeriesSummary } from './dicom-scan.js';

export interface DicomReadOptions {
  /** Which series to read when the directory holds several (a key from listDicomSeries). */
  seriesKey?: string;
}

/** Lists the image series in a directory without decoding any pixels. */
export async function listDicomSeries(dir: string): Promise<DicomSeriesSummary[]> {
  const scan = await scanDirectory(dir);
  requireImages(scan, dir);
  return summariesOf(scan);
}

/** Reads one DICOM series from a directory into a canonical Volume. */
export async function readDicomSeries(dir: string, options: DicomReadOptions = {}): Promise<Volume> {
  return volumeOf(await scanDirectory(dir), dir, options);
}

/**
 * Reads one DICOM series from files held in memory (a PACS download), exactly as from a directory, so
 * the two copies of a series give the same canonical volume. `label` stands in for the directory in
 * messages and `source.path`; it must not carry identifiers.
 */
export async function readDicomSeriesFromBytes(label: string, files: Uint8Array[], options: DicomReadOptions = {}): Promise<Volume> {
  if (files.length === 0) throw new VolumeReadError('EMPTY_DIRECTORY', label, 'the series holds no instances');
  const parsed = files.map((bytes, n) => {
    const dataSet = parseFile(bytes, label, `instance ${n + 1}`);
    return dataSet ? headerOf(dataSet, `instance ${n + 1}`) : undefined;
  });
  return volumeOf(scanOf(parsed), label, options);
}

async function volumeOf(scan: DirectoryScan, dir: string, options: DicomReadOptions): Promise<Volume> {
  requireImages(scan, dir);
  const seriesCount = groupBySeries(scan.slices).size;
  const series = pickSeries(scan, dir, options.seriesKey);
  checkConsistent(series, dir);
  const geometry = geometryOf(series, dir);

  const even = resampleStack(await stackSlices(geometry, dir), geometry);
  const corrections: Correction[] = even.corrections;
  const tilted = corrections.some((c) => c.kind === 'gantry-tilt');
  const resampled = corrections.some((c) => c.kind === 'uneven-spacing');

  const first = geometry.slices[0];
  const storedDims: Vec3 = [first.cols, first.rows, even.sliceCount];
  const step = sliceStepOf(geometry, resampled, tilted, even.spacingMm);
  const storedAffineRas = lpsToRas(storedAffineLps(geometry, step));
  const canonical = toCanonical(even.data, storedDims, storedAffineRas);
  const spacingMm = spacingFromAffine(canonical.affineRas);

  return {
    data: canonical.data,
    dims: canonical.dims,
    spacingMm,
    affineRas: canonical.affineRas,
    modality: first.modality,
    source: {
      path: dir,
      format: 'dicom',
      orientation: orientationCode(storedAffineRas),
      seriesKey: first.seriesKey,
      seriesCount,
      storedDataType: storedTypeName(first),
      skippedFiles: scan.skippedFiles,
      ...(first.bodyPart ? { bodyPart: first.bodyPart } : {}),
    },
    corrections,
  };
}
