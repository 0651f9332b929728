import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyRequest } from 'fastify';
import { keyImageFormat } from '../io/key-image.js';
import { readVolume, type ReadOptions } from '../io/read.js';
import type { Volume } from '../io/volume.js';
import { ApiError, toApiError } from './errors.js';
import { extractZip, type UnzipLimits } from './zip.js';

/**
 * Receives a volume file from a request and reads it. The bytes go to a fresh temp folder under a
 * generated name (the client's file name is never used, nor logged: it can carry a patient's name), the
 * kind is told from the bytes, and the folder is removed when reading is done, whatever happens.
 */

export interface UploadLimits extends UnzipLimits {
  /** Most bytes accepted in one upload (the file as sent: gzip or zip). */
  maxUploadBytes: number;
}

export type UploadKind = 'nifti' | 'dicom-zip' | 'key-image';

/** Content types a raw (non-multipart) upload may be sent with. */
export const RAW_UPLOAD_TYPES = ['application/octet-stream', 'application/gzip', 'application/x-gzip', 'application/zip', 'application/x-zip-compressed', 'application/dicom+zip'];

const HEADER_PROBE_BYTES = 352;

class UploadCap extends Transform {
  bytes = 0;
  constructor(private readonly maxBytes: number) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) done(new ApiError(413, 'UPLOAD_TOO_LARGE', `the upload exceeds ${this.maxBytes} bytes`));
    else done(null, chunk);
  }
}

/** What the first bytes say: zip (a DICOM series), gzip or NIfTI-1/2 (a volume), else unsupported. */
export function sniffUpload(head: Buffer): UploadKind {
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && (head[2] === 3 || head[2] === 5) && (head[3] === 4 || head[3] === 6)) return 'dicom-zip';
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'nifti';
  if (head.length >= 348 && head.toString('latin1', 344, 348) === 'n+1\0') return 'nifti';
  if (head.length >= 8 && head.toString('latin1', 4, 8) === 'n+2\0') return 'nifti';
  if (keyImageFormat(head)) return 'key-image';
  if (head.length >= 132 && head.toString('latin1', 128, 132) === 'DICM') {
    throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', 'a single DICOM file is one slice, not a volume: upload the series as a zip');
  }
  throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', 'the upload is neither a NIfTI file (.nii, .nii.gz), a zip of a DICOM series, nor a PNG/JPEG key image');
}

async function readHead(path: string): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(HEADER_PROBE_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, HEADER_PROBE_BYTES, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** The upload's byte stream: the first file of a multipart form, or a raw body; `truncated` says
 * (after reading) whether busboy cut the file at the size limit, which it does silently. */
async function uploadStream(request: FastifyRequest, limits: UploadLimits): Promise<{ stream: Readable; truncated: () => boolean }> {
  const declared = Number(request.headers['content-length']);
  // Refuse before reading when the client says up front that it will send too much.
  if (Number.isFinite(declared) && declared > limits.maxUploadBytes + 1024 * 1024) {
    throw new ApiError(413, 'UPLOAD_TOO_LARGE', `the upload exceeds ${limits.maxUploadBytes} bytes`);
  }
  if (request.isMultipart()) {
    const part = await request.file({ limits: { fileSize: limits.maxUploadBytes, files: 1, fields: 4, fieldSize: 1024, parts: 5 } });
    if (!part) throw new ApiError(400, 'NO_FILE', 'the form holds no file part');
    return { stream: part.file, truncated: () => part.file.truncated };
  }
  if (request.body instanceof Readable) return { stream: request.body, truncated: () => false };
  throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', `send the volume as multipart/form-data or as one of ${RAW_UPLOAD_TYPES.join(', ')}`);
}

/**
 * Saves the request's volume into a fresh temp folder, reads it, and removes the folder. `seriesKey`
 * picks one series when a zip holds several.
 */
export async function readUploadedVolume(request: FastifyRequest, limits: UploadLimits, seriesKey?: string, readOptions: ReadOptions = {}): Promise<{ volume: Volume; kind: UploadKind; bytes: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'mir3d-upload-'));
  try {
    const source = await uploadStream(request, limits);
    const cap = new UploadCap(limits.maxUploadBytes);
    const filePath = join(dir, 'upload');
    await pipeline(source.stream, cap, createWriteStream(filePath, { flags: 'wx', mode: 0o600 }));
    if (source.truncated()) throw new ApiError(413, 'UPLOAD_TOO_LARGE', `the upload exceeds ${limits.maxUploadBytes} bytes`);
    if (cap.bytes === 0) throw new ApiError(400, 'EMPTY_UPLOAD', 'the upload is empty');
    const kind = sniffUpload(await readHead(filePath));
    let volumePath = filePath;
    if (kind === 'dicom-zip') {
      volumePath = join(dir, 'series');
      await mkdir(volumePath, { mode: 0o700 });
      await extractZip(filePath, volumePath, limits);
      await rm(filePath, { force: true });
    }
    try {
      const volume = await readVolume(volumePath, { ...readOptions, modality: 'CT', ...(seriesKey ? { seriesKey } : {}) });
      return { volume, kind, bytes: cap.bytes };
    } catch (error) {
      throw toApiError(error, { volumeFromClient: true });
    }
  } catch (error) {
    // Drain what the client is still sending, so it gets our answer instead of a reset connection.
    request.raw.resume();
    throw error;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
