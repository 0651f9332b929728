import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { DataSet } from 'dicom-parser';

const require = createRequire(import.meta.url);
const dicomParser = require('dicom-parser') as typeof import('dicom-parser');

/**
 * Fills blank UID elements of an explicit-VR little-endian DICOM file (the TotalSegmentator sample was
 * anonymized down to empty Study/Series/SOP Instance UIDs, which no PACS accepts) with the given values.
 * Only zero-length elements are filled, so pixel data and every other byte stay as they were.
 */
export function fillBlankUids(bytes: Uint8Array, uids: Record<string, string>): Uint8Array {
  const dataSet: DataSet = dicomParser.parseDicom(bytes, { untilTag: 'x7fe00010' });
  const edits = Object.entries(uids)
    .map(([tag, value]) => ({ element: dataSet.elements[tag], value }))
    .filter((e) => e.element !== undefined && e.element.length === 0 && e.element.vr === 'UI')
    .sort((a, b) => a.element!.dataOffset - b.element!.dataOffset);
  if (edits.length === 0) return bytes;
  const chunks: Uint8Array[] = [];
  let at = 0;
  for (const { element, value } of edits) {
    // Explicit VR, short form: tag (4) VR (2) length (2), then the value.
    const lengthAt = element!.dataOffset - 2;
    chunks.push(bytes.subarray(at, lengthAt));
    const padded = value.length % 2 === 0 ? value : `${value}\0`;
    const length = new Uint8Array(2);
    new DataView(length.buffer).setUint16(0, padded.length, true);
    chunks.push(length, new TextEncoder().encode(padded));
    at = element!.dataOffset;
  }
  chunks.push(bytes.subarray(at));
  return Buffer.concat(chunks);
}

/** A UID under 2.25 (UUID-derived) from a name, so re-uploads give the same UIDs. */
export function uidFor(name: string): string {
  return `2.25.${BigInt(`0x${createHash('sha256').update(name).digest('hex').slice(0, 30)}`).toString()}`;
}

/** The TotalSegmentator sample had its UIDs blanked by an anonymizer; a PACS needs them. */
export function totalSegWithUids(bytes: Uint8Array, name: string): Uint8Array {
  return fillBlankUids(bytes, {
    x0020000d: uidFor('totalseg-study'),
    x0020000e: uidFor('totalseg-series'),
    x00080018: uidFor(`totalseg-instance-${name}`),
    x00080016: '1.2.840.10008.5.1.4.1.1.2',
  });
}
