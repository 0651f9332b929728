import { open, readdir, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { constants, gunzipSync } from 'node:zlib';
import { listDicomSeries } from '../io/dicom.js';
import { isVolumeReadError } from '../io/errors.js';

/**
 * Finds the volumes under the paths a user gives `mir3d index`: NIfTI files (told by their bytes) and
 * DICOM series (every directory holding DICOM files, one source per series in it).
 *
 * Segmentation masks sit beside images in every public dataset layout (Decathlon `labelsTr/`,
 * TotalSegmentator `segmentations/`, `*_seg.nii.gz`), and indexing them as if they were CT would
 * pollute the archive, so they are left out by name unless the caller asks for them. Naming is a
 * weaker signal than content, but it is predictable, costs no read, and `--include-masks` overrides it.
 */

export interface VolumeSourceRef {
  /** File path, or DICOM directory path. */
  path: string;
  kind: 'nifti' | 'dicom';
  /** Pseudonymous series key when a DICOM directory holds several series. */
  seriesKey?: string;
}

export interface DiscoveryProblem {
  path: string;
  reason: string;
}

export interface Discovery {
  sources: VolumeSourceRef[];
  /** Paths that looked like images but could not be listed (unreadable directory, broken DICOM). */
  problems: DiscoveryProblem[];
  /** Files left out as segmentation masks. */
  maskFilesSkipped: number;
}

export interface DiscoverOptions {
  includeMasks?: boolean;
}

const MASK_DIRECTORIES = new Set(['labelstr', 'labelsts', 'labels', 'segmentations', 'masks', 'seg']);
const MASK_FILE = /(^|[_.-])(seg|segmentation|mask|labels?)([_.-]|$)/i;

export function looksLikeMask(path: string): boolean {
  const parts = resolve(path).split(/[\\/]/);
  const file = basename(path).replace(/\.nii(\.gz)?$/i, '');
  return parts.slice(0, -1).some((p) => MASK_DIRECTORIES.has(p.toLowerCase())) || MASK_FILE.test(file);
}

type FileKind = 'nifti' | 'dicom' | 'other';

function isNiftiHeader(head: Buffer): boolean {
  if (head.length < 348) return false;
  const size = head.readInt32LE(0);
  const sizeBe = head.readInt32BE(0);
  if ((size === 348 || sizeBe === 348) && head.toString('latin1', 344, 347) === 'n+1') return true;
  return (size === 540 || sizeBe === 540) && head.toString('latin1', 4, 7) === 'n+2';
}

/** Reads the first bytes only (a gzip stream is inflated just far enough to see the NIfTI header):
 * a NIfTI header means NIfTI, 'DICM' at byte 128 means DICOM, whatever the file is called. */
async function sniff(path: string): Promise<FileKind> {
  let handle;
  try {
    handle = await open(path, 'r');
    const head = Buffer.alloc(16 * 1024);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    const bytes = head.subarray(0, bytesRead);
    if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
      try {
        return isNiftiHeader(gunzipSync(bytes, { finishFlush: constants.Z_SYNC_FLUSH })) ? 'nifti' : 'other';
      } catch {
        // A corrupt gzip named like NIfTI is still reported by the reader, with the reason.
        return /\.nii\.gz$/i.test(path) ? 'nifti' : 'other';
      }
    }
    if (isNiftiHeader(bytes)) return 'nifti';
    if (bytes.length >= 132 && bytes.toString('latin1', 128, 132) === 'DICM') return 'dicom';
    return 'other';
  } catch {
    return 'other';
  } finally {
    await handle?.close();
  }
}

/** Walks the given files and directories; sources come out in a stable, sorted order. */
export async function discoverVolumes(paths: string[], options: DiscoverOptions = {}): Promise<Discovery> {
  const sources: VolumeSourceRef[] = [];
  const problems: DiscoveryProblem[] = [];
  let maskFilesSkipped = 0;

  const addDicomDirectory = async (dir: string): Promise<void> => {
    try {
      const series = await listDicomSeries(dir);
      if (series.length === 1) sources.push({ path: dir, kind: 'dicom' });
      else for (const s of series) sources.push({ path: dir, kind: 'dicom', seriesKey: s.seriesKey });
    } catch (error) {
      problems.push({ path: dir, reason: isVolumeReadError(error) ? `${error.detail} [${error.code}]` : String(error) });
    }
  };

  const visit = async (path: string): Promise<void> => {
    let info;
    try {
      info = await stat(path);
    } catch {
      problems.push({ path, reason: 'no such file or directory [NOT_FOUND]' });
      return;
    }
    if (info.isFile()) {
      const kind = await sniff(path);
      if (kind === 'nifti') {
        if (!options.includeMasks && looksLikeMask(path)) maskFilesSkipped++;
        else sources.push({ path, kind: 'nifti' });
      } else if (kind === 'dicom') {
        problems.push({ path, reason: 'a single DICOM file: give the directory holding the series' });
      }
      return;
    }
    if (!info.isDirectory()) return;
    let entries;
    try {
      entries = await readdir(path, { withFileTypes: true });
    } catch (error) {
      problems.push({ path, reason: `cannot list directory (${(error as NodeJS.ErrnoException).code ?? String(error)})` });
      return;
    }
    entries.sort((a, b) => a.name.localeCompare(b.name));
    let hasDicom = false;
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const child = join(path, entry.name);
      if (entry.isDirectory()) {
        await visit(child);
      } else if (entry.isFile()) {
        const kind = await sniff(child);
        if (kind === 'dicom') hasDicom = true;
        else if (kind === 'nifti') {
          if (!options.includeMasks && looksLikeMask(child)) maskFilesSkipped++;
          else sources.push({ path: child, kind: 'nifti' });
        }
      }
    }
    if (hasDicom) await addDicomDirectory(path);
  };

  for (const path of paths) await visit(path);
  return { sources, problems, maskFilesSkipped };
}
