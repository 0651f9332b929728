import { constants as fsConstants, type Stats } from 'node:fs';
import { open, readdir, realpath, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { constants, gunzipSync } from 'node:zlib';
import { listDicomSeries } from '../io/dicom.js';
import { isVolumeReadError } from '../io/errors.js';
import { keyImageFormat } from '../io/key-image.js';

/**
 * Finds the volumes under the paths a user gives `mir3d index`: NIfTI files and PNG/JPEG key images (told
 * by their bytes) and DICOM series (every directory holding DICOM files, one source per series in it).
 *
 * Segmentation masks sit beside images in every public dataset layout (Decathlon `labelsTr/`,
 * TotalSegmentator `segmentations/`, `*_seg.nii.gz`), and indexing them as if they were CT would
 * pollute the archive, so they are left out by name unless the caller asks for them. Naming is a
 * weaker signal than content, but it is predictable, costs no read, and `--include-masks` overrides it.
 */

export interface VolumeSourceRef {
  /** File path, or DICOM directory path. */
  path: string;
  kind: 'nifti' | 'dicom' | 'image';
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
  /** Files met in folders that are neither volumes nor named like one (notes, CSVs, pictures). */
  otherFilesIgnored: number;
}

export interface DiscoverOptions {
  includeMasks?: boolean;
}

const MASK_DIRECTORIES = new Set(['labelstr', 'labelsts', 'labels', 'segmentations', 'masks', 'seg']);
const MASK_FILE = /(^|[_.-])(seg|segmentation|mask|labels?)([_.-]|$)/i;

export function looksLikeMask(path: string): boolean {
  const parts = resolve(path).split(/[\\/]/);
  const file = basename(path).replace(/\.(nii(\.gz)?|png|jpe?g)$/i, '');
  return parts.slice(0, -1).some((p) => MASK_DIRECTORIES.has(p.toLowerCase())) || MASK_FILE.test(file);
}

type FileKind = 'nifti' | 'dicom' | 'image' | 'other';

/** Names a user means as a volume: when such a file cannot be read, the reader must say why. */
const VOLUME_NAME = /\.(nii|nii\.gz|dcm|dicom|ima)$/i;

function nonRegularKind(info: Stats): string {
  if (info.isFIFO()) return 'a FIFO';
  if (info.isCharacterDevice()) return 'a character device';
  if (info.isBlockDevice()) return 'a block device';
  if (info.isSocket()) return 'a socket';
  return 'not a regular file';
}

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
    // Callers sniff regular files only; O_NONBLOCK still keeps a file swapped for a FIFO from hanging.
    handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
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
    if (keyImageFormat(bytes)) return 'image';
    if (bytes.length >= 132 && bytes.toString('latin1', 128, 132) === 'DICM') return 'dicom';
    return 'other';
  } catch {
    return 'other';
  } finally {
    await handle?.close();
  }
}

/**
 * Walks the given files and directories; sources come out in a stable, sorted order. Nothing named or
 * met is dropped without a word: a path that does not exist, a FIFO or device, a file named like a
 * volume that is none (it becomes a source, so the reader says what is wrong with it), a folder holding
 * no volume, each is a problem with its reason; other files are counted.
 */
export async function discoverVolumes(paths: string[], options: DiscoverOptions = {}): Promise<Discovery> {
  const sources: VolumeSourceRef[] = [];
  const problems: DiscoveryProblem[] = [];
  let maskFilesSkipped = 0;
  let otherFilesIgnored = 0;
  const visitedDirectories = new Set<string>();

  const addDicomDirectory = async (dir: string): Promise<void> => {
    try {
      const series = await listDicomSeries(dir);
      if (series.length === 1) sources.push({ path: dir, kind: 'dicom' });
      else for (const s of series) sources.push({ path: dir, kind: 'dicom', seriesKey: s.seriesKey });
    } catch (error) {
      problems.push({ path: dir, reason: isVolumeReadError(error) ? `${error.detail} [${error.code}]` : String(error) });
    }
  };

  const addNifti = (path: string, kind: 'nifti' | 'image' = 'nifti'): void => {
    if (!options.includeMasks && looksLikeMask(path)) maskFilesSkipped++;
    else sources.push({ path, kind });
  };

  /** A regular file: 'dicom' when it is a DICOM slice (its folder is then a series). */
  const visitFile = async (path: string, named: boolean): Promise<FileKind> => {
    const kind = await sniff(path);
    if (kind === 'nifti' || kind === 'image') addNifti(path, kind);
    else if (kind === 'dicom') {
      if (named) problems.push({ path, reason: 'a single DICOM file: give the directory holding the series [NOT_A_VOLUME]' });
    } else if (named || VOLUME_NAME.test(path)) {
      sources.push({ path, kind: 'nifti' });
    } else {
      otherFilesIgnored++;
    }
    return kind;
  };

  const visit = async (path: string, named: boolean): Promise<void> => {
    let info: Stats;
    try {
      info = await stat(path); // follows links: a link is what it points to
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      problems.push({ path, reason: code === 'ENOENT' ? (named ? 'no such file or directory [NOT_FOUND]' : 'a link to nothing [NOT_FOUND]') : `cannot read (${code ?? String(error)}) [UNREADABLE]` });
      return;
    }
    if (info.isFile()) {
      await visitFile(path, named);
      return;
    }
    if (!info.isDirectory()) {
      problems.push({ path, reason: `${nonRegularKind(info)}, not a regular file: only regular files are read [NOT_REGULAR_FILE]` });
      return;
    }
    // A link back up the tree would otherwise be walked forever.
    const real = await realpath(path).catch(() => path);
    if (visitedDirectories.has(real)) return;
    visitedDirectories.add(real);
    let entries;
    try {
      entries = await readdir(path, { withFileTypes: true });
    } catch (error) {
      problems.push({ path, reason: `cannot list directory (${(error as NodeJS.ErrnoException).code ?? String(error)}) [UNREADABLE]` });
      return;
    }
    entries.sort((a, b) => a.name.localeCompare(b.name));
    const found = sources.length + problems.length + maskFilesSkipped;
    let hasDicom = false;
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const child = join(path, entry.name);
      if (entry.isDirectory()) {
        await visit(child, false);
      } else if (entry.isFile()) {
        if ((await visitFile(child, false)) === 'dicom') hasDicom = true;
      } else if (entry.isSymbolicLink()) {
        const target = await stat(child).catch(() => undefined);
        if (target?.isFile()) {
          if ((await visitFile(child, false)) === 'dicom') hasDicom = true;
        } else if (target?.isDirectory()) {
          await visit(child, false);
        } else if (target) {
          // In a DICOM folder the series reader skips it too; said here so it is not silent.
          problems.push({ path: child, reason: `a link to ${nonRegularKind(target)}, not a regular file: skipped [NOT_REGULAR_FILE]` });
        } else {
          problems.push({ path: child, reason: 'a link to nothing [NOT_FOUND]' });
        }
      } else {
        problems.push({ path: child, reason: `${entry.isFIFO() ? 'a FIFO' : entry.isSocket() ? 'a socket' : 'a device'}, not a regular file: skipped [NOT_REGULAR_FILE]` });
      }
    }
    if (hasDicom) await addDicomDirectory(path);
    if (named && sources.length + problems.length + maskFilesSkipped === found) {
      problems.push({ path, reason: `holds no NIfTI file or DICOM series${otherFilesIgnored ? ' (only other files)' : ''} [NO_VOLUMES]` });
    }
  };

  for (const path of paths) await visit(path, true);
  return { sources, problems, maskFilesSkipped, otherFilesIgnored };
}
