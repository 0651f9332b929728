/**
 * Slices whose embeddings were computed once, before the preprocessing and DICOM decoding were rewritten
 * for speed, and kept in test/fixtures/pinned-embeddings/<name>.npy (float32 [slices, dim]). The pinning
 * test re-embeds them with today's code and asks for cosine ≥ 0.9999 per row, so a faster loop can never
 * quietly change what a vector means.
 */
export interface PinnedCase {
  /** Fixture file name without .npy. */
  name: string;
  /** A path below ../shared/data, or 'phantom' for generatePhantom({ seed: 1 }). */
  source: string;
  encoder: 'mobilenet_v2' | 'baseline';
  sliceIndices: number[];
}

export const PINNED_CASES: readonly PinnedCase[] = [
  { name: 'ircad17-nifti-mobilenet', source: 'ircad17/ct.nii.gz', encoder: 'mobilenet_v2', sliceIndices: [5, 47, 90, 118] },
  { name: 'ircad17-dicom-mobilenet', source: 'ircad17/dicom', encoder: 'mobilenet_v2', sliceIndices: [0, 12, 23] },
  { name: 'totalseg-dicom-j2k-mobilenet', source: 'totalseg/dicom', encoder: 'mobilenet_v2', sliceIndices: [0, 10, 19] },
  { name: 'ge-head-tilt-mobilenet', source: 'ge-head-ct-dicom', encoder: 'mobilenet_v2', sliceIndices: [2, 14, 25] },
  { name: 'totalseg-nifti-baseline', source: 'totalseg/example_ct.nii.gz', encoder: 'baseline', sliceIndices: [10, 56, 100] },
  { name: 'phantom-mobilenet', source: 'phantom', encoder: 'mobilenet_v2', sliceIndices: [3, 40, 80] },
  { name: 'phantom-baseline', source: 'phantom', encoder: 'baseline', sliceIndices: [3, 40, 80] },
];

export const PINNED_MIN_COSINE = 0.9999;
