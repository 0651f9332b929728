import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yauzl, { type Entry, type ZipFile } from 'yauzl';
import { ApiError } from './errors.js';

/**
 * Unpacks an uploaded zip of a DICOM series, defensively: entry names are never used (each regular file
 * is written flattened under a generated name into a fresh folder, so `../`, absolute paths and links
 * cannot reach outside it), and the entry count and total unpacked size are capped, checked against the
 * declared sizes before anything is written and against the real bytes while inflating (a zip bomb's
 * headers may lie).
 */

export interface UnzipLimits {
  maxEntries: number;
  maxTotalBytes: number;
}

export interface UnzipResult {
  files: number;
  bytes: number;
  /** Entries skipped: folders, links, macOS resource forks. */
  skipped: number;
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const MADE_BY_UNIX = 3;

function openZip(path: string): Promise<ZipFile> {
  return new Promise((resolve, reject) => {
    // validateEntrySizes: the inflated stream fails when it yields more (or fewer) bytes than declared.
    yauzl.open(path, { lazyEntries: true, autoClose: true, validateEntrySizes: true, decodeStrings: true, strictFileNames: false }, (error, zip) => {
      if (error || !zip) reject(new ApiError(422, 'BAD_ARCHIVE', 'the upload is not a readable zip archive'));
      else resolve(zip);
    });
  });
}

function isRegularFile(entry: Entry): boolean {
  if (entry.fileName.endsWith('/')) return false;
  const madeBy = entry.versionMadeBy >> 8;
  const mode = (entry.externalFileAttributes >>> 16) & S_IFMT;
  // Only Unix-made entries carry a file type; others (DOS, NTFS) have no links to worry about.
  if (madeBy === MADE_BY_UNIX && mode !== 0 && mode !== S_IFREG) return false;
  return true;
}

function isResourceFork(name: string): boolean {
  return name.startsWith('__MACOSX/') || name.includes('/__MACOSX/') || /(^|\/)\._[^/]*$/.test(name);
}

class ByteCap extends Transform {
  constructor(private remaining: number) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.remaining -= chunk.length;
    if (this.remaining < 0) done(new ApiError(413, 'ARCHIVE_TOO_LARGE', 'the archive unpacks to more than the allowed size'));
    else done(null, chunk);
  }
}

/** Extracts the regular files of `zipPath` into `outDir` (an existing, empty, fresh folder). */
export async function extractZip(zipPath: string, outDir: string, limits: UnzipLimits): Promise<UnzipResult> {
  const zip = await openZip(zipPath);
  if (zip.entryCount > limits.maxEntries) {
    zip.close();
    throw new ApiError(413, 'ARCHIVE_TOO_LARGE', `the archive has ${zip.entryCount} entries; at most ${limits.maxEntries} are accepted`);
  }
  let files = 0;
  let bytes = 0;
  let skipped = 0;
  let declaredBytes = 0;
  return new Promise<UnzipResult>((resolve, reject) => {
    let settled = false;
    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      zip.close();
      if (error instanceof ApiError) reject(error);
      // yauzl reports unsafe names ("invalid relative path"), bad headers and size mismatches as plain errors.
      else reject(new ApiError(422, 'BAD_ARCHIVE', `the zip archive is malformed or unsafe: ${describe(error)}`));
    };
    zip.on('error', fail);
    zip.on('end', () => {
      if (settled) return;
      settled = true;
      resolve({ files, bytes, skipped });
    });
    zip.on('entry', (entry: Entry) => {
      if (!isRegularFile(entry) || isResourceFork(entry.fileName)) {
        skipped++;
        zip.readEntry();
        return;
      }
      if (entry.isEncrypted()) {
        fail(new ApiError(422, 'BAD_ARCHIVE', 'the zip archive holds encrypted entries'));
        return;
      }
      declaredBytes += entry.uncompressedSize;
      if (declaredBytes > limits.maxTotalBytes) {
        fail(new ApiError(413, 'ARCHIVE_TOO_LARGE', `the archive unpacks to more than ${limits.maxTotalBytes} bytes`));
        return;
      }
      zip.openReadStream(entry, (error, stream) => {
        if (error || !stream) {
          fail(error ?? new Error('no stream'));
          return;
        }
        files++;
        const target = join(outDir, `f${String(files).padStart(6, '0')}`);
        pipeline(stream, new ByteCap(limits.maxTotalBytes - bytes), createWriteStream(target, { flags: 'wx' }))
          .then(() => {
            bytes += entry.uncompressedSize;
            if (!settled) zip.readEntry();
          })
          .catch(fail);
      });
    });
    zip.readEntry();
  });
}

/** A short reason without the entry's name (names in DICOM exports are often UIDs). */
function describe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (/invalid relative path|absolute path|invalid characters/i.test(message)) return 'an entry name points outside the archive';
  if (/too many|too few|bytes/i.test(message)) return 'an entry’s size does not match its header';
  return message.replace(/:.*$/, '').slice(0, 120);
}
