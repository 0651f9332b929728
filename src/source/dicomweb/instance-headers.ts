import { createRequire } from 'node:module';

// dicom-parser is UMD/CommonJS; require() is the import form that works under Node's ESM loader.
const require = createRequire(import.meta.url);
const dicomParser = require('dicom-parser') as typeof import('dicom-parser');

/**
 * The few header fields of fetched instances that the sync needs besides the voxels (which io decodes):
 * which instance lies where (for viewer links to the best-matching slice) and whether the series is a
 * localizer or not axial (skipped). Parsing stops before the pixel data, so this costs microseconds.
 */
export interface InstanceHeader {
  sopInstanceUid?: string;
  /** ImagePositionPatient, LPS mm. */
  positionMm?: [number, number, number];
  orientation?: number[];
  imageType: string[];
}

function numbers(dataSet: import('dicom-parser').DataSet, tag: string, count: number): number[] | undefined {
  if (!dataSet.elements[tag]) return undefined;
  const out: number[] = [];
  for (let n = 0; n < count; n++) {
    const v = dataSet.floatString(tag, n);
    if (v === undefined || !Number.isFinite(v)) return undefined;
    out.push(v);
  }
  return out;
}

export function instanceHeader(bytes: Uint8Array): InstanceHeader {
  try {
    const dataSet = dicomParser.parseDicom(bytes, { untilTag: 'x7fe00010' });
    const sop = dataSet.string('x00080018')?.replace(/\0/g, '').trim();
    const position = numbers(dataSet, 'x00200032', 3);
    const orientation = numbers(dataSet, 'x00200037', 6);
    const imageType = (dataSet.string('x00080008') ?? '').split('\\').map((v) => v.trim().toUpperCase()).filter((v) => v !== '');
    return {
      ...(sop ? { sopInstanceUid: sop } : {}),
      ...(position ? { positionMm: position as [number, number, number] } : {}),
      ...(orientation ? { orientation } : {}),
      imageType,
    };
  } catch {
    // io's reader reports what is wrong with the file; here it only means no link data for it.
    return { imageType: [] };
  }
}

/** Slice normals further than this from the patient's z axis are not axial (a tilted gantry is ≤ 30°). */
export const MAX_AXIAL_TILT_DEG = 45;

/** Why a series should not be indexed as an axial CT volume, or undefined. */
export function seriesSkipReason(headers: InstanceHeader[]): string | undefined {
  if (headers.length === 0) return undefined;
  const localizers = headers.filter((h) => h.imageType.includes('LOCALIZER')).length;
  if (localizers * 2 > headers.length) return 'localizer (scout) series';
  const o = headers.find((h) => h.orientation)?.orientation;
  if (o) {
    const normalZ = o[0] * o[4] - o[1] * o[3];
    const length = Math.hypot(o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], normalZ) || 1;
    const tiltDeg = (Math.acos(Math.min(1, Math.abs(normalZ) / length)) * 180) / Math.PI;
    if (tiltDeg > MAX_AXIAL_TILT_DEG) {
      const plane = Math.abs(o[0]) < 0.5 ? 'sagittal' : 'coronal';
      return `not axial (${plane}-like, slice normal ${tiltDeg.toFixed(0)}° from the patient axis)`;
    }
  }
  return undefined;
}
