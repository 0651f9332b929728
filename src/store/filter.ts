/**
 * VolumeFilter evaluation. Modality and body part compare case-insensitively (DICOM writes 'CT', users type
 * 'ct'); label values compare as text, because labels typed on a command line arrive as strings while
 * labels read from a CSV may be numbers ('1' must match 1).
 */
import type { VolumeFilter, VolumeRecord } from './types.js';

export type VolumePredicate = (record: VolumeRecord) => boolean;

/** True when the filter restricts nothing (every volume passes). */
export function isEmptyFilter(filter: VolumeFilter | undefined): boolean {
  if (!filter) return true;
  return (
    filter.modalities === undefined &&
    filter.bodyParts === undefined &&
    filter.includeVolumeIds === undefined &&
    (filter.excludeVolumeIds === undefined || filter.excludeVolumeIds.length === 0) &&
    (filter.labels === undefined || Object.keys(filter.labels).length === 0)
  );
}

export function compileFilter(filter: VolumeFilter | undefined): VolumePredicate {
  if (isEmptyFilter(filter) || !filter) return () => true;
  const modalities = filter.modalities && new Set(filter.modalities.map((m) => m.toLowerCase()));
  const bodyParts = filter.bodyParts && new Set(filter.bodyParts.map((b) => b.toLowerCase()));
  const include = filter.includeVolumeIds && new Set(filter.includeVolumeIds);
  const exclude = filter.excludeVolumeIds && new Set(filter.excludeVolumeIds);
  const labels = filter.labels ? Object.entries(filter.labels).map(([key, value]) => [key, String(value)] as const) : [];
  return (record) => {
    if (include && !include.has(record.volumeId)) return false;
    if (exclude && exclude.has(record.volumeId)) return false;
    if (modalities && !modalities.has(record.modality.toLowerCase())) return false;
    if (bodyParts && (record.bodyPart === undefined || !bodyParts.has(record.bodyPart.toLowerCase()))) return false;
    for (const [key, value] of labels) {
      const actual = record.labels[key];
      if (actual === undefined || String(actual) !== value) return false;
    }
    return true;
  };
}
