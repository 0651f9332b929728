import type { LesionGroup, TumourLabels } from '../../labels/tumours.js';

/** Where one anatomical structure lies along z in a volume. */
export interface ZExtent {
  /** First and last canonical slice index k holding the structure. */
  firstSlice: number;
  lastSlice: number;
  /** The slab those slices cover in patient z (mm): first slice centre − half a slice … last slice
   * centre + half a slice (see metrics.slabOf). */
  zStartMm: number;
  zEndMm: number;
  /** zEndMm − zStartMm. */
  zExtentMm: number;
  voxelCount: number;
}

/** Per-volume labels as 3D-MIR defines them, plus the numbers they came from when known. */
export interface CaseLabels extends TumourLabels {
  lesionGroup: LesionGroup;
  /** Largest tumour diameter in cm (3D-MIR's max_tumor_size); 0 without tumour. */
  maxTumorSizeCm?: number;
  numberTumors?: number;
  /** Where the labels came from. */
  source: 'csv' | 'mask' | 'generated';
}

export interface Case {
  /** The file name without directories, e.g. 'liver_0.nii.gz' (3D-MIR's `name`). */
  caseId: string;
  imagePath: string;
  maskPath?: string;
  /** The organ (Decathlon task) the volume belongs to, e.g. 'liver'; other values for distractors. */
  organ?: string;
  /** The organ whose tumour status `labels` describe. In a 3D-MIR per-organ benchmark every case's
   * labels describe the benchmark's organ (a pancreas volume in the liver benchmark is "no liver
   * tumour"); in C-MIR's mixed archive each volume's labels describe its own organ. */
  labelOrgan?: string;
  labels: CaseLabels;
  /** Anatomy present in the volume and its z-extent, by structure name (TotalSegmentator datasets). */
  regions?: Record<string, ZExtent>;
}

export interface RetrievalDataset {
  name: string;
  /** What is indexed. */
  database: Case[];
  /** What is searched for; never also in `database`. */
  queries: Case[];
  /** How relevance is judged (see relevance.ts). */
  judging: 'same-label-organ' | 'region';
  /** Facts about how the dataset was assembled that a report should show (counts, exclusions). */
  notes: string[];
}
