import type { InstanceRef } from './pacs-state.js';

/**
 * Links from a result back to the hospital's viewer, by DICOMweb UIDs through a URL template, so any
 * viewer that opens a study by UID works without a vendor API. Placeholders: {study}, {series}, {sop}
 * (URL-encoded). Examples:
 * - OHIF: `https://viewer.example/viewer?StudyInstanceUIDs={study}&SeriesInstanceUIDs={series}&initialSopInstanceUID={sop}`
 * - Orthanc's Stone Web Viewer: `http://orthanc:8042/stone-webviewer/index.html?study={study}&series={series}`
 */

export const OHIF_TEMPLATE_EXAMPLE = '/viewer?StudyInstanceUIDs={study}&SeriesInstanceUIDs={series}&initialSopInstanceUID={sop}';
export const ORTHANC_STONE_TEMPLATE_EXAMPLE = '/stone-webviewer/index.html?study={study}&series={series}';

export interface ViewerTarget {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  /** The instance of the best-matching slice. */
  sopInstanceUid: string;
}

const PLACEHOLDER = /\{(study|series|sop)\}/g;

export function checkViewerTemplate(template: string): string | undefined {
  const unknown = template.match(/\{[^}]*\}/g)?.filter((p) => !/^\{(study|series|sop)\}$/.test(p));
  if (unknown && unknown.length > 0) return `unknown placeholder(s) ${unknown.join(', ')}; use {study}, {series}, {sop}`;
  if (!/\{(study|series)\}/.test(template)) return 'the template names neither {study} nor {series}, so a link could not open the result';
  return undefined;
}

export function viewerLink(template: string, target: ViewerTarget): string {
  return template.replace(PLACEHOLDER, (_, name: string) =>
    encodeURIComponent(name === 'study' ? target.studyInstanceUid : name === 'series' ? target.seriesInstanceUid : target.sopInstanceUid),
  );
}

/** The instance nearest to a patient z (the best-matching slice of a result). */
export function nearestInstance(instances: InstanceRef[], zMm: number): InstanceRef | undefined {
  let best: InstanceRef | undefined;
  for (const instance of instances) {
    if (!best || Math.abs(instance.zMm - zMm) < Math.abs(best.zMm - zMm)) best = instance;
  }
  return best;
}
