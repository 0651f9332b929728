/**
 * Reading the DICOM JSON model (PS3.18 F.2) that QIDO-RS answers with: `{"0020000E": {"vr": "UI",
 * "Value": ["1.2…"]}}`. Only the few attributes the sync needs are read; nothing else is kept.
 */

export type DicomJsonObject = Record<string, { vr?: string; Value?: unknown[] } | undefined>;

export const TAGS = {
  studyDate: '00080020',
  imageType: '00080008',
  sopInstanceUid: '00080018',
  modality: '00080060',
  bodyPart: '00180015',
  studyInstanceUid: '0020000D',
  seriesInstanceUid: '0020000E',
  instanceNumber: '00200013',
  imagePosition: '00200032',
  imageOrientation: '00200037',
  seriesInstances: '00201209',
} as const;

function values(object: DicomJsonObject, tag: string): unknown[] {
  const element = object[tag] ?? object[tag.toLowerCase()];
  return Array.isArray(element?.Value) ? element.Value : [];
}

export function textOf(object: DicomJsonObject, tag: string): string | undefined {
  const first = values(object, tag)[0];
  if (typeof first === 'string') return first.trim() || undefined;
  if (typeof first === 'number') return String(first);
  return undefined;
}

export function textsOf(object: DicomJsonObject, tag: string): string[] {
  return values(object, tag).filter((v): v is string => typeof v === 'string').map((v) => v.trim());
}

export function numberOf(object: DicomJsonObject, tag: string): number | undefined {
  const first = values(object, tag)[0];
  const value = typeof first === 'number' ? first : typeof first === 'string' ? Number(first) : NaN;
  return Number.isFinite(value) ? value : undefined;
}

export function numbersOf(object: DicomJsonObject, tag: string, count: number): number[] | undefined {
  const raw = values(object, tag);
  if (raw.length < count) return undefined;
  const out = raw.slice(0, count).map((v) => (typeof v === 'number' ? v : Number(v)));
  return out.every(Number.isFinite) ? out : undefined;
}
