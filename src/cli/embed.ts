import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { embedVolume } from '../encode/embed-volume.js';
import { DEFAULT_ENCODER, openEncoder } from '../encode/registry.js';
import { SliceFeeder } from '../encode/slice-feeder.js';
import { writeFileAtomic } from '../io/nifti-writer.js';
import { writeNpyFloat32 } from '../io/npy.js';
import { keyImageGivesDisplay } from '../io/key-image.js';
import { readVolume } from '../io/read.js';
import { canonicalInt16Sha256 } from '../io/volume-stats.js';
import { Mir3dError } from '../errors.js';
import { addKeyImageOptions, keyImageReadOptions, positiveInteger, positiveNumber, type KeyImageCliOptions } from './options.js';
import { startProgress } from './progress.js';

/** JSON written beside the .npy: everything needed to use the vectors without mir3d. */
export interface EmbeddingsMetadata {
  format: 'mir3d-embeddings/1';
  encoderId: string;
  encoder: string;
  dim: number;
  count: number;
  /** File name of the float32 [count, dim] array, relative to this JSON file. */
  vectorsFile: string;
  source: { path: string; format: string; sha256Int16: string; dims: number[]; spacingMm: number[]; seriesKey?: string };
  /** Canonical slice index (k, inferior → superior) and patient z in mm of each row. */
  sliceIndices: number[];
  zMm: number[];
}

interface EmbedCommandOptions extends KeyImageCliOptions {
  encoder: string;
  out?: string;
  series?: string;
  step?: number;
  windows?: string;
  batch: number;
  worker?: boolean;
  json?: boolean;
  progress: boolean;
  force?: boolean;
}

/** Where the vectors cannot go: another run's output is there, or the folder cannot be written. */
export class EmbedOutputError extends Mir3dError<'OUTPUT_EXISTS' | 'OUTPUT_UNWRITABLE'> {
  override readonly name = 'EmbedOutputError';
}

/**
 * Beside the volume, named after it (and its series): two scans with the same file name in different
 * folders (phantom-01/ct.nii.gz, phantom-02/ct.nii.gz) get different outputs, which a default in the
 * current folder would not give them.
 */
export function defaultOutPath(input: string, seriesKey?: string): string {
  const full = resolve(input);
  const name = basename(full).replace(/\.(nii(\.gz)?|png|jpe?g|dcm)$/i, '') || 'volume';
  const series = seriesKey ? `.${seriesKey.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64)}` : '';
  return join(dirname(full), `${name}${series}.embeddings.npy`);
}

function checkOutputFree(outPath: string, jsonPath: string, force: boolean | undefined): void {
  if (force) return;
  const taken = [outPath, jsonPath].find((path) => existsSync(path));
  if (taken) throw new EmbedOutputError('OUTPUT_EXISTS', `${taken} exists (another run's output?); give --force to replace it or --out for another place`);
}

async function writeOutput(outPath: string, write: () => Promise<void>): Promise<void> {
  try {
    await mkdir(dirname(outPath), { recursive: true });
    await write();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'ENOSPC' || code === 'EDQUOT' || code === 'ENOTDIR' || code === 'EISDIR') {
      throw new EmbedOutputError('OUTPUT_UNWRITABLE', `${outPath}: cannot write the vectors (${code}); give --out with a writable place`, { cause: error });
    }
    throw error;
  }
}

export function registerEmbed(program: Command): void {
  const command = program
    .command('embed')
    .description('Embed every axial slice of a volume: writes FILE.npy (float32 [slices, dim]) and FILE.json (encoder id, slice z in mm)')
    .argument('<volume>', 'NIfTI file, DICOM series directory or PNG/JPEG key image')
    .option('--encoder <name|path>', `built-in encoder (mobilenet_v2, mobilenet_v2_mid, baseline), an .onnx file or a model folder`, DEFAULT_ENCODER)
    .option('--out <file.npy>', 'where to write the vectors (default <name>.embeddings.npy beside the volume; the metadata goes beside it as .json)')
    .option('--force', 'replace an existing output (else an existing .npy or .json is refused)')
    .option('--series <key>', 'series key, when a DICOM directory holds several')
    .option('--step <mm>', 'embed one slice every this many mm (default: every slice)', positiveNumber('--step'))
    .option('--windows <list>', 'HU windows as channels, e.g. "abdomen,lung,bone" or "40:400"')
    .option('--batch <n>', 'slices per inference call', positiveInteger('--batch'), 16)
    .option('--worker', 'preprocess in a worker thread (default from 3 CPU cores up)')
    .option('--no-worker', 'preprocess on the main thread')
    .option('--json', 'print the metadata as JSON')
    .option('--no-progress', 'no progress display');
  addKeyImageOptions(command).action(async (input: string, options: EmbedCommandOptions) => {
      const outPath = resolve(options.out ?? defaultOutPath(input, options.series));
      const jsonPath = outPath.replace(/\.npy$/i, '') + '.json';
      // Before any work: an existing output is another run's (perhaps another scan's) until --force.
      checkOutputFree(outPath, jsonPath, options.force);
      const readOptions = keyImageReadOptions(options);
      // A key image of unknown window goes through the grey pass-through (its own encoder id). Only its
      // first bytes are read here, so a bad --encoder still fails before the volume is read.
      const display = await keyImageGivesDisplay(input, readOptions);
      if (display && options.windows) throw new InvalidArgumentError('--windows applies HU windows; this image has no HU (give --hu-window LOW:HIGH, the window it was saved with)');
      const encoder = await openEncoder(options.encoder, {
        ...(options.step !== undefined ? { sliceStepMm: options.step } : {}),
        ...(display ? { windows: 'display,display,display', bodyCrop: false } : options.windows ? { windows: options.windows } : {}),
        onStatus: (message) => process.stderr.write(`${message}\n`),
      });
      const volume = await readVolume(input, { ...readOptions, ...(options.series ? { seriesKey: options.series } : {}) });
      const feeder = new SliceFeeder(options.worker);
      const progress = startProgress('embedding', volume.dims[2], 'slices', options.progress);
      try {
        const embedded = await embedVolume(volume, encoder, {
          batchSize: options.batch,
          feeder,
          onProgress: (done, total) => {
            progress.setTotal(total);
            progress.update(done);
          },
        });
        await writeOutput(outPath, () => writeNpyFloat32(outPath, embedded.vectors, [embedded.sliceIndices.length, embedded.dim]));
        const metadata: EmbeddingsMetadata = {
          format: 'mir3d-embeddings/1',
          encoderId: embedded.encoderId,
          encoder: encoder.name,
          dim: embedded.dim,
          count: embedded.sliceIndices.length,
          vectorsFile: basename(outPath),
          source: {
            path: volume.source.path,
            format: volume.source.format,
            sha256Int16: canonicalInt16Sha256(volume),
            dims: [...volume.dims],
            spacingMm: [...volume.spacingMm],
            ...(volume.source.seriesKey ? { seriesKey: volume.source.seriesKey } : {}),
          },
          sliceIndices: Array.from(embedded.sliceIndices),
          zMm: Array.from(embedded.zMm),
        };
        await writeOutput(jsonPath, () => writeFileAtomic(jsonPath, `${JSON.stringify(metadata, null, 2)}\n`));
        if (options.json) process.stdout.write(`${JSON.stringify({ ...metadata, vectorsPath: outPath, metadataPath: jsonPath }, null, 2)}\n`);
        else {
          process.stdout.write(
            `${metadata.count} slices × ${metadata.dim} dims (${encoder.name}) → ${outPath}\nmetadata → ${jsonPath}\nencoder id ${metadata.encoderId}\n`,
          );
        }
      } finally {
        progress.stop();
        await feeder.close();
        await encoder.close();
      }
    });
}
