/**
 * The one in-memory representation of a 3D scan that every later stage consumes.
 *
 * Canonical orientation (every reader returns this): voxel index i runs towards the patient's Left,
 * j towards Posterior, k towards Superior ("LPS" in nibabel's axis-code notation). So slice k is an axial
 * slice, k = 0 is the most inferior one, and a slice stored row-major (j rows of i columns) displays the
 * radiological way (patient right on the image left, anterior at the top), exactly as most axial DICOM
 * images are stored. Readers only permute and flip axes to reach it (no resampling), except where a
 * DICOM series cannot be represented on a regular grid (gantry tilt, uneven spacing), see `corrections`.
 */

/** Voxel storage. CT in HU is integral and fits int16, so that is the common case; anything with
 * fractional values after scaling (float NIfTI, non-integral rescale) stays float32. */
export type VoxelArray = Int16Array | Float32Array;

export type Vec3 = [number, number, number];

/** Row-major 4×4 matrix, 16 numbers. */
export type Mat4 = number[];

export type SourceFormat = 'nifti-1' | 'nifti-2' | 'dicom' | 'generated' | 'png' | 'jpeg';

export interface VolumeSource {
  /** Path of the file or DICOM directory the volume was read from. */
  path: string;
  format: SourceFormat;
  /** Orientation of the stored voxel axes before canonicalization, as three axis codes, e.g. 'LAS'. */
  orientation: string;
  /** For DICOM: a pseudonymous series key (a hash of SeriesInstanceUID), never the UID itself. */
  seriesKey?: string;
  /** Number of series found in the directory (DICOM only). */
  seriesCount?: number;
  /** NIfTI/DICOM data type of the stored voxels, e.g. 'int16', 'float32', 'uint16'. */
  storedDataType: string;
  /** Files in the DICOM directory that were not DICOM and were skipped (DICOM only). */
  skippedFiles?: number;
  /** DICOM BodyPartExamined (e.g. 'ABDOMEN', 'HEAD'), when the header has it. */
  bodyPart?: string;
  /** Key images: false when the pixel size was not given (1 mm is recorded; only the aspect is real). */
  pixelSpacingKnown?: boolean;
}

/** Something a reader had to do to bring the data onto a regular canonical grid. */
export interface Correction {
  kind: 'gantry-tilt' | 'uneven-spacing' | 'non-finite-voxels' | 'oblique';
  /** One line for people, e.g. "gantry tilt 18.5°: slices sheared back onto an orthogonal grid". */
  message: string;
  /** Numbers behind the message (degrees, mm, counts). */
  details: Record<string, number>;
}

export interface Volume {
  data: VoxelArray;
  /** Number of voxels along i, j, k of the canonical grid. */
  dims: Vec3;
  /** Voxel size along i, j, k in millimetres. */
  spacingMm: Vec3;
  /** Canonical voxel (i, j, k) → patient millimetres in the NIfTI RAS+ world (+x towards the patient's
   * Right, +y Anterior, +z Superior; DICOM's LPS world is this with x and y negated), row-major 4×4.
   * Because i runs towards Left, its column has a negative x component. */
  affineRas: Mat4;
  /** 'CT', 'MR', … from DICOM; NIfTI has no modality field, so readers say 'CT' only when told, else 'unknown'. */
  modality: string;
  /** What the voxel values are: 'hu' (the default when absent) or 'display', grey levels 0…255 of an
   * already windowed 8-bit image whose window is unknown; encoders must not apply HU windows to those. */
  intensity?: 'hu' | 'display';
  source: VolumeSource;
  corrections: Correction[];
}

/** Index of voxel (i, j, k) in `data`: i fastest, then j, then k. */
export function voxelIndex(dims: Vec3, i: number, j: number, k: number): number {
  return i + dims[0] * (j + dims[1] * k);
}

export function voxelCount(dims: Vec3): number {
  return dims[0] * dims[1] * dims[2];
}

/** Where a volume's slices lie: all that slice selection needs, held by a `Volume` and by an indexed
 * volume's record alike, so a range selects the same slices of a scan and of its stored copy. */
export type SliceGeometry = Pick<Volume, 'dims' | 'spacingMm' | 'affineRas'>;

/** Patient z (superior, mm) of the centre of canonical slice k. */
export function sliceZMm(volume: Pick<Volume, 'dims' | 'affineRas'>, k: number): number {
  const a = volume.affineRas;
  // z row of the affine applied to the centre of the slice.
  const ci = (volume.dims[0] - 1) / 2;
  const cj = (volume.dims[1] - 1) / 2;
  return a[8] * ci + a[9] * cj + a[10] * k + a[11];
}

/**
 * Why `other` (a mask) does not lie on `volume`'s canonical voxel grid, or undefined when it does: same
 * dims and the same voxel → mm affine up to 1 µm (float rounding of headers written by different tools),
 * so slice k of one is slice k of the other.
 */
export function gridDifference(volume: Pick<Volume, 'dims' | 'affineRas'>, other: Pick<Volume, 'dims' | 'affineRas'>): string | undefined {
  const [a, b] = [volume.dims, other.dims];
  if (a[0] !== b[0] || a[1] !== b[1] || a[2] !== b[2]) return `mask dims ${b.join('×')} differ from the volume's ${a.join('×')}`;
  const toleranceMm = 1e-3;
  for (let n = 0; n < 12; n++) {
    const difference = Math.abs(volume.affineRas[n] - other.affineRas[n]);
    if (!(difference <= toleranceMm)) {
      return `mask affine differs from the volume's (entry ${n}: ${other.affineRas[n]} vs ${volume.affineRas[n]}); resample the mask onto the volume's grid`;
    }
  }
  return undefined;
}
