import { resolve } from 'node:path';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { DEFAULT_ENCODER } from '../encode/registry.js';
import { discoverVolumes, type Discovery, type VolumeSourceRef } from '../ingest/discover.js';
import { displayImageSpec, readEncoderSpec, type EncoderSpec } from '../ingest/encoder-spec.js';
import { openIndex } from '../ingest/open-index.js';
import { IngestError } from '../ingest/errors.js';
import { matchLabelsCsv, type LabelMatch } from '../ingest/labels-csv.js';
import { indexVolumes, type IndexSummary, type VolumeOutcome } from '../ingest/indexer.js';
import { keyImageGivesDisplay, type KeyImageReadOptions } from '../io/key-image.js';
import { storageError, StoreError } from '../store/errors.js';
import { takeWriterLock, type WriterLock } from '../ingest/writer-lock.js';
import { indexExists } from '../store/index.js';
import type { ApproximateIndexCalibration, ApproximateIndexReport } from '../store/types.js';
import { DicomWebError } from '../source/dicomweb/errors.js';
import { isDicomWebUrl } from '../source/dicomweb/url.js';
import { studyDateRange } from './dicomweb-options.js';
import { addKeyImageOptions, collect, keyImageReadOptions, parseLabel, positiveInteger, positiveNumber, type KeyImageCliOptions } from './options.js';
import { startProgress } from './progress.js';

interface IndexCommandOptions extends KeyImageCliOptions {
  db: string;
  encoder?: string;
  step?: number;
  windows?: string;
  label: string[];
  labels?: string;
  includeMasks?: boolean;
  modality: string;
  batch: number;
  worker?: boolean;
  json?: boolean;
  progress: boolean;
  studyDate?: string;
  bodyPart?: string;
  credentials?: string;
  caFile?: string;
  pseudonymize?: string;
  viewerUrl?: string;
  concurrency?: number;
  minSlices?: number;
}

function outcomeLine(outcome: VolumeOutcome): string {
  const where = `${outcome.source.path}${outcome.source.seriesKey ? ` (series ${outcome.source.seriesKey})` : ''}`;
  if (outcome.status === 'added') return `  added      ${outcome.volumeId}  ${String(outcome.slices).padStart(5)} slices  ${where}${outcome.replaced.length ? `  (replaces ${outcome.replaced.join(', ')})` : ''}`;
  if (outcome.status === 'unchanged') return `  unchanged  ${outcome.volumeId}                ${where}`;
  return `  failed     ${where}: ${outcome.reason}`;
}

/**
 * Creates the index folder (0700) when needed and takes its writer lock. A folder this run created is
 * removed again on release when no index came to be in it (the encoder failed to open, say).
 */
function lockIndexDirectory(db: string): WriterLock {
  if (existsSync(db) && !statSync(db).isDirectory()) throw new StoreError('NOT_FOUND', db, 'is a file; an index is a directory');
  const created = !existsSync(db);
  try {
    mkdirSync(db, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw storageError(db, error);
  }
  const lock = takeWriterLock(db);
  return {
    release: () => {
      lock.release();
      if (created && !indexExists(db)) rmSync(db, { recursive: true, force: true });
    },
  };
}

export function registerIndex(program: Command): void {
  const command = program
    .command('index')
    .description('Add volumes (NIfTI files, DICOM series, PNG/JPEG key images; directories are walked) to an index; unchanged files are skipped, so a rerun resumes')
    .argument('<paths...>', 'files and directories to index')
    .requiredOption('--db <dir>', 'index directory (created on first use)')
    .option('--encoder <name|path>', `encoder for a new index (default ${DEFAULT_ENCODER}); an existing index keeps its own`)
    .option('--step <mm>', 'embed one slice every this many mm (new index only)', positiveNumber('--step'))
    .option('--windows <list>', 'HU windows as channels (new index only)')
    .option('--label <key=value>', 'label stored with every volume of this run (repeatable)', collect, [])
    .option('--labels <csv>', 'labels per file from a CSV with a "name" or "path" column (e.g. the 3D-MIR label files)')
    .option('--include-masks', 'also index files that look like segmentation masks (labelsTr/, *_seg.nii.gz …)')
    .option('--modality <name>', 'modality recorded for NIfTI files, which carry none', 'CT')
    .option('--batch <n>', 'slices per inference call', positiveInteger('--batch'), 16)
    .option('--worker', 'preprocess in a worker thread (default from 3 CPU cores up)')
    .option('--no-worker', 'preprocess on the main thread')
    .option('--json', 'print the summary as JSON')
    .option('--no-progress', 'no progress display')
    .option('--study-date <from-to>', 'PACS: only studies of these dates (YYYYMMDD-YYYYMMDD, either side open)', studyDateRange)
    .option('--body-part <name>', 'PACS: only series with this BodyPartExamined')
    .option('--credentials <file>', 'PACS: JSON credentials file, mode 0600 (else MIR3D_DICOMWEB_USER/PASSWORD or MIR3D_DICOMWEB_TOKEN)')
    .option('--ca-file <pem>', 'PACS: CA certificate(s) to trust for https')
    .option('--pseudonymize <secret-file>', 'PACS: store keyed hashes of UIDs instead of UIDs (secret file mode 0600)')
    .option('--viewer-url <template>', 'PACS: viewer link template with {study} {series} {sop}, e.g. OHIF\'s https://HOST/viewer?StudyInstanceUIDs={study}&SeriesInstanceUIDs={series}&initialSopInstanceUID={sop}')
    .option('--concurrency <n>', 'PACS: series fetched at once', positiveInteger('--concurrency'))
    .option('--min-slices <n>', 'PACS: skip series with fewer instances', positiveInteger('--min-slices'));
  addKeyImageOptions(command).action(async (paths: string[], options: IndexCommandOptions) => {
      const fixedLabels = Object.fromEntries(options.label.map(parseLabel));
      const requested: EncoderSpec | undefined = options.encoder || options.step || options.windows
        ? { encoder: options.encoder ?? readEncoderSpec(options.db)?.encoder ?? DEFAULT_ENCODER, ...(options.step ? { sliceStepMm: options.step } : {}), ...(options.windows ? { windows: options.windows } : {}) }
        : undefined;
      if (paths.some(isDicomWebUrl)) {
        if (paths.length !== 1) throw new DicomWebError('BAD_URL', 'mir3d index', 'a DICOMweb source is indexed on its own: give one dicomweb+http(s):// address and no files');
        if (options.labels) throw new DicomWebError('BAD_URL', 'mir3d index', '--labels matches files by name; a PACS source takes --label key=value');
        // Loaded only for a PACS: the HTTP client and multipart parser would slow every other start.
        const { indexFromDicomWeb } = await import('./index-dicomweb.js');
        const lock = lockIndexDirectory(options.db);
        try {
          await indexFromDicomWeb(paths[0], requested, { ...options, labels: fixedLabels });
        } finally {
          lock.release();
        }
        return;
      }
      const discovery = await discoverVolumes(paths, { includeMasks: options.includeMasks });
      // Refused before the index is opened, so a mistyped path creates no empty index.
      if (discovery.sources.length === 0) {
        const reasons = discovery.problems.slice(0, 3).map((p) => `${p.path}: ${p.reason}`);
        const masks = discovery.maskFilesSkipped ? `${discovery.maskFilesSkipped} mask file(s) left out (--include-masks takes them)` : '';
        throw new IngestError('NOTHING_TO_INDEX', `nothing to index: ${[...reasons, masks].filter(Boolean).join('; ') || 'no NIfTI file or DICOM series found'}${discovery.problems.length > 3 ? ` (and ${discovery.problems.length - 3} more)` : ''}`);
      }
      const picturesIgnored = leavePicturesBesideScans(discovery, paths, options);
      const chosen = await keyImageSpec(options, requested, discovery.sources);
      // Matched (and ambiguous names refused) before the index is opened.
      const csvLabels: LabelMatch | undefined = options.labels ? matchLabelsCsv(options.labels, paths, discovery.sources) : undefined;
      const lock = lockIndexDirectory(options.db);
      let index: Awaited<ReturnType<typeof openIndex>>;
      let encoder: Awaited<ReturnType<typeof index.encoder>>;
      try {
        index = await openIndex(options.db, { ...(chosen.requested ? { spec: chosen.requested } : {}), onStatus: (m) => process.stderr.write(`${m}\n`) });
        encoder = await index.encoder();
      } catch (error) {
        lock.release();
        throw error;
      }
      const { store } = index;

      // First Ctrl-C: finish the volume in hand and stop cleanly; second: stop at once. Either way every
      // volume is wholly in the index or absent, and a rerun resumes.
      const stop = new AbortController();
      const onSigint = (): void => {
        if (stop.signal.aborted) process.exit(130);
        process.stderr.write('\nstopping after the current volume (Ctrl-C again to stop now)\n');
        stop.abort();
      };
      process.on('SIGINT', onSigint);
      const progress = startProgress('indexing', discovery.sources.length, 'volumes', options.progress);
      const started = performance.now();
      let summary: IndexSummary;
      let totals: { volumes: number; slices: number };
      let annSeconds: number | undefined;
      let ann: ApproximateIndexReport | undefined;
      try {
        summary = await indexVolumes(discovery.sources, {
          store,
          encoder,
          labelsFor: (source) => ({ ...(csvLabels?.labelsFor(source) ?? {}), ...fixedLabels }),
          niftiModality: options.modality,
          readOptions: chosen.readOptions,
          batchSize: options.batch,
          ...(options.worker !== undefined ? { useWorker: options.worker } : {}),
          signal: stop.signal,
          onProgress: (p) => {
            const seconds = (performance.now() - started) / 1000;
            progress.update(p.volumesDone, `${p.slicesDone} slices, ${(p.slicesDone / Math.max(seconds, 1e-3)).toFixed(1)} slices/s`);
          },
        });
        totals = store.stats();
        // The store updates its HNSW graph when its size calls for one (only the volumes added since the
        // last save), so that no search pays for it.
        const builtAt = performance.now();
        ann = await store.prepareForSearch({ onWork: (what) => options.progress && process.stderr.write(`${what}…\n`) });
        if (ann) annSeconds = (performance.now() - builtAt) / 1000;
      } finally {
        progress.stop();
        process.off('SIGINT', onSigint);
        await index.close();
        lock.release();
      }
      const problems = discovery.problems.map((p) => ({ status: 'failed' as const, path: p.path, reason: p.reason }));
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ db: options.db, encoderId: encoder.id, ...summary, discoveryProblems: problems, ...(csvLabels ? { labels: { rows: csvLabels.rows, unmatchedRows: csvLabels.unmatchedRows, sourcesWithoutRow: csvLabels.sourcesWithoutRow } } : {}), maskFilesSkipped: discovery.maskFilesSkipped, otherFilesIgnored: discovery.otherFilesIgnored, picturesIgnored, index: totals, ...(ann?.calibration ? { approximateIndex: ann.calibration } : {}) }, null, 2)}\n`);
      } else {
        const lines = summary.outcomes.map(outcomeLine);
        for (const p of problems) lines.push(`  failed     ${p.path}: ${p.reason}`);
        lines.push(
          '',
          `${summary.added} added, ${summary.unchanged} unchanged, ${summary.failed + problems.length} failed${summary.notReached ? `, ${summary.notReached} not reached (stopped)` : ''}` +
            `${discovery.maskFilesSkipped ? `; ${discovery.maskFilesSkipped} mask file(s) left out (--include-masks)` : ''}` +
            `${discovery.otherFilesIgnored ? `; ${discovery.otherFilesIgnored} other file(s) ignored (not named like a volume)` : ''}` +
            `${picturesIgnored ? `; ${picturesIgnored} picture(s) beside the scans ignored (name them, or give --hu-window/--hu-offset, to index them as key images)` : ''}`,
          `${summary.slicesEmbedded} slices embedded in ${summary.seconds.toFixed(1)} s (${(summary.slicesEmbedded / Math.max(summary.seconds, 1e-3)).toFixed(1)} slices/s)`,
          `index ${options.db}: ${totals.volumes} volumes, ${totals.slices} slices, encoder ${encoder.name}${annSeconds !== undefined ? `; HNSW index updated in ${annSeconds.toFixed(1)} s` : ''}`,
          ...(ann?.calibration ? [calibrationLine(ann.calibration)] : []),
          ...(csvLabels ? [labelsLine(options.labels ?? '', csvLabels)] : []),
        );
        process.stdout.write(`${lines.join('\n')}\n`);
      }
      if (summary.failed + problems.length > 0 || summary.notReached > 0) process.exitCode = 1;
    });
}

/**
 * PNG/JPEG files met while walking folders that also hold CT volumes are usually previews (thumbnails,
 * screenshots, the demo's own pictures), not key images: without any key-image setting they are left out
 * and counted, rather than each failing as an image of unknown window. Images named on the command line,
 * folders of images only, and runs with --hu-window/--hu-offset/--pixel-spacing (or into an index that
 * reads key images) keep them. Returns how many were left out.
 */
function leavePicturesBesideScans(discovery: Discovery, paths: readonly string[], options: IndexCommandOptions): number {
  const hasScans = discovery.sources.some((s) => s.kind !== 'image');
  const saved = readEncoderSpec(options.db);
  const readsImages = Object.keys(keyImageReadOptions(options)).length > 0 || saved?.keyImages !== undefined || saved?.windows === displayImageSpec({ encoder: '' }).windows;
  if (!hasScans || readsImages) return 0;
  const named = new Set(paths.map((p) => resolve(p)));
  const kept = discovery.sources.filter((s) => s.kind !== 'image' || !/\.(png|jpe?g)$/i.test(s.path) || named.has(resolve(s.path)));
  const left = discovery.sources.length - kept.length;
  discovery.sources = kept;
  return left;
}

/**
 * How a run reads key images, and the encoder spec a new index gets for them. An index reads its key
 * images one way (kept in encoder.json), so a stored image is read again exactly as it was indexed. A new
 * index of 8-bit images without --hu-window gets the grey pass-through (no HU windows, no body crop).
 */
async function keyImageSpec(options: IndexCommandOptions, requested: EncoderSpec | undefined, sources: VolumeSourceRef[]): Promise<{ requested: EncoderSpec | undefined; readOptions: KeyImageReadOptions }> {
  const given = keyImageReadOptions(options);
  const saved = readEncoderSpec(options.db);
  if (indexExists(options.db)) {
    const kept = saved?.keyImages ?? {};
    if (Object.keys(given).length > 0 && JSON.stringify(given) !== JSON.stringify(kept)) {
      throw new InvalidArgumentError(`${options.db} reads key images with ${JSON.stringify(kept)}; --hu-window/--hu-offset/--pixel-spacing cannot change for an existing index (use another --db)`);
    }
    return { requested, readOptions: kept };
  }
  const base = requested ?? saved ?? { encoder: DEFAULT_ENCODER };
  const images = sources.length > 0 && sources.every((source) => source.kind === 'image');
  const display = images && (await keyImageGivesDisplay(sources[0].path, given));
  if (display && options.windows) throw new InvalidArgumentError('--windows sets HU windows, but these 8-bit images have no HU: give --hu-window LOW:HIGH (the window they were saved with)');
  if (!display && Object.keys(given).length === 0) return { requested, readOptions: {} };
  const spec = display ? displayImageSpec(base) : base;
  return { requested: Object.keys(given).length > 0 ? { ...spec, keyImages: given } : spec, readOptions: given };
}

function labelsLine(csvPath: string, match: LabelMatch): string {
  const unmatched = match.unmatchedRows.length;
  return `labels ${csvPath}: ${match.rows - unmatched} of ${match.rows} rows matched a volume of this run; ${unmatched} matched no file${unmatched ? ` (${match.unmatchedRows.slice(0, 3).join(', ')}${unmatched > 3 ? ', …' : ''})` : ''}; ${match.sourcesWithoutRow} volume(s) had no row`;
}

function calibrationLine(c: ApproximateIndexCalibration): string {
  const speed = c.exactMsPerQuery / Math.max(c.approximateMsPerQuery, 1e-9);
  const verdict = c.reached ? '' : ` (target ${c.targetRecall} not reached at the widest ef tried)`;
  return `approximate search: ef ${c.ef}, recall@${c.k} ${c.recall.toFixed(3)} against exact on ${c.queries} sampled slices, ${speed.toFixed(1)}× faster${verdict}`;
}
