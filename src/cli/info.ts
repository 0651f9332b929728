import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { listDicomSeries, seriesKeyOf, type DicomSeriesSummary } from '../io/dicom.js';
import { CANONICAL_ORIENTATION, applyAffine } from '../io/orientation.js';
import { readVolume } from '../io/read.js';
import type { Correction, Volume } from '../io/volume.js';
import { canonicalInt16Sha256, intensityRange } from '../io/volume-stats.js';
import { DicomWebError } from '../source/dicomweb/errors.js';
import { isDicomWebUrl, parseDicomWebUrl } from '../source/dicomweb/url.js';
import type { DicomWebCliOptions } from './dicomweb-options.js';
import { addKeyImageOptions, keyImageReadOptions, type KeyImageCliOptions } from './options.js';

/** What `mir3d info` reports. Deliberately no patient name, ID, birth date or raw UID. */
export interface VolumeInfo {
  path: string;
  format: string;
  modality: string;
  dims: [number, number, number];
  spacingMm: [number, number, number];
  extentMm: [number, number, number];
  sourceOrientation: string;
  canonicalOrientation: string;
  dataType: string;
  storedDataType: string;
  intensity: { min: number; max: number; mean: number };
  /** 'hu', or 'display' for grey levels of a key image whose window is unknown. */
  intensityUnit: 'hu' | 'display';
  /** False for key images without a given pixel size (the recorded 1 mm keeps only the aspect). */
  spacingKnown: boolean;
  zRangeMm: [number, number];
  seriesCount?: number;
  seriesKey?: string;
  corrections: Correction[];
  sha256Int16: string;
}

export function describeVolume(volume: Volume): VolumeInfo {
  const { dims, spacingMm, source } = volume;
  const range = intensityRange(volume.data);
  const zFirst = applyAffine(volume.affineRas, 0, 0, 0)[2];
  const zLast = applyAffine(volume.affineRas, 0, 0, dims[2] - 1)[2];
  return {
    path: source.path,
    format: source.format,
    modality: volume.modality,
    dims: [...dims],
    spacingMm: [...spacingMm],
    extentMm: [dims[0] * spacingMm[0], dims[1] * spacingMm[1], dims[2] * spacingMm[2]],
    sourceOrientation: source.orientation,
    canonicalOrientation: CANONICAL_ORIENTATION,
    dataType: volume.data instanceof Int16Array ? 'int16' : 'float32',
    storedDataType: source.storedDataType,
    intensity: range,
    intensityUnit: volume.intensity ?? 'hu',
    spacingKnown: source.pixelSpacingKnown ?? true,
    zRangeMm: [zFirst, zLast],
    ...(source.seriesCount !== undefined ? { seriesCount: source.seriesCount } : {}),
    ...(source.seriesKey !== undefined ? { seriesKey: source.seriesKey } : {}),
    corrections: volume.corrections,
    sha256Int16: canonicalInt16Sha256(volume),
  };
}

const fmt = (values: number[], digits: number): string => values.map((v) => v.toFixed(digits)).join(' × ');

export function formatVolumeInfo(info: VolumeInfo): string {
  const lines = [
    `path          ${info.path}`,
    `format        ${info.format}${info.seriesCount !== undefined ? ` (series ${info.seriesKey ?? '?'}, ${info.seriesCount} series in directory)` : ''}`,
    `modality      ${info.modality}`,
    `dims          ${info.dims.join(' × ')} voxels`,
    `spacing       ${fmt(info.spacingMm, 3)} mm${info.spacingKnown ? '' : ' (unknown: give --pixel-spacing; only the aspect is real)'}`,
    `extent        ${fmt(info.extentMm, 1)} mm`,
    `orientation   ${info.sourceOrientation} on disk → ${info.canonicalOrientation} canonical (axial, inferior → superior)`,
    `z range       ${info.zRangeMm[0].toFixed(1)} … ${info.zRangeMm[1].toFixed(1)} mm`,
    `data type     ${info.dataType} (stored ${info.storedDataType})`,
    `intensity     min ${info.intensity.min.toFixed(0)}  max ${info.intensity.max.toFixed(0)}  mean ${info.intensity.mean.toFixed(1)}${info.intensityUnit === 'display' ? ' grey levels (display window unknown: give --hu-window to map to HU)' : info.modality === 'CT' ? ' HU' : ''}`,
    `sha256 int16  ${info.sha256Int16}`,
  ];
  for (const correction of info.corrections) lines.push(`correction    ${correction.kind}: ${correction.message}`);
  return lines.join('\n');
}

function formatSeriesList(dir: string, series: DicomSeriesSummary[]): string {
  const rows = series.map(
    (s) => `  ${s.seriesKey}  ${s.modality.padEnd(4)} ${String(s.sliceCount).padStart(5)} slices  ${s.description ?? ''}`,
  );
  return [`${dir}: ${series.length} DICOM series; pick one with --series KEY`, ...rows].join('\n');
}

export function registerInfo(program: Command): void {
  const command = program
    .command('info')
    .description('Describe a volume (NIfTI file, DICOM series directory or PNG/JPEG key image): geometry, orientation, HU range, hash')
    .argument('<path>', 'NIfTI file (.nii, .nii.gz), directory holding a DICOM series, a PNG/JPEG key image, or a PACS series: dicomweb+http(s)://HOST/ROOT/studies/UID[/series/UID]')
    .option('--series <key>', 'series key, when a DICOM directory holds several series')
    .option('--json', 'print JSON')
    .option('--credentials <file>', 'PACS: JSON credentials file, mode 0600 (else MIR3D_DICOMWEB_USER/PASSWORD or MIR3D_DICOMWEB_TOKEN)')
    .option('--ca-file <pem>', 'PACS: CA certificate(s) to trust for https');
  addKeyImageOptions(command).action(async (path: string, options: { series?: string; json?: boolean } & KeyImageCliOptions & DicomWebCliOptions) => {
      if (isDicomWebUrl(path)) {
        const info = describeVolume(await readPacsSeries(path, options));
        process.stdout.write(options.json ? `${JSON.stringify(info, null, 2)}\n` : `${formatVolumeInfo(info)}\n`);
        return;
      }
      if (!options.series && (await isDirectory(path))) {
        const series = await listDicomSeries(path);
        if (series.length > 1) {
          process.stdout.write(
            options.json
              ? `${JSON.stringify({ path, seriesCount: series.length, series }, null, 2)}\n`
              : `${formatSeriesList(path, series)}\n`,
          );
          return;
        }
      }
      const volume = await readVolume(path, { ...keyImageReadOptions(options), ...(options.series ? { seriesKey: options.series } : {}) });
      const info = describeVolume(volume);
      process.stdout.write(options.json ? `${JSON.stringify(info, null, 2)}\n` : `${formatVolumeInfo(info)}\n`);
    });
}

/** A PACS series decoded in memory by the same reader as files (so the hash is the files' hash). Its
 * path is the DICOMweb root and the series' pseudonymous key: no UID is printed. */
async function readPacsSeries(url: string, options: DicomWebCliOptions): Promise<Volume> {
  const address = parseDicomWebUrl(url);
  if (!address.studyInstanceUid) throw new DicomWebError('BAD_URL', address.endpoint.display, 'name the series: …/studies/<StudyInstanceUID>[/series/<SeriesInstanceUID>]');
  // Loaded only for a PACS address: the HTTP client would slow every other start.
  const [{ dicomWebClient }, { fetchQuerySeries }] = await Promise.all([import('./dicomweb-client.js'), import('../ingest/dicomweb-fetch.js')]);
  const client = dicomWebClient(address.endpoint, options);
  try {
    return (await fetchQuerySeries(client, address.studyInstanceUid, address.seriesInstanceUid, seriesKeyOf)).volume;
  } finally {
    await client.close();
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
