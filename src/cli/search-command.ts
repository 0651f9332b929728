import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { resolveQuery, type QueryRangeInput, type QuerySource, type ResolvedQuery } from '../app/query.js';
import { MATCH_COLOR, QUERY_COLOR, writeSheet, type SheetPanel } from '../app/sheet.js';
import type { Encoder } from '../encode/encoder.js';
import { openIndexEncoder } from '../ingest/encoder-spec.js';
import { readVolume } from '../io/read.js';
import { search, type SearchOptions } from '../search/search.js';
import { SEARCH_METHODS, type FirstStageMethod, type FusionMethod, type SearchMethod, type SearchResult } from '../search/types.js';
import { StoreError } from '../store/errors.js';
import { indexExists, openStore } from '../store/index.js';
import type { Store, VolumeFilter, VolumeRecord } from '../store/types.js';
import { formatTable } from './format.js';
import { collect, integer, parseLabel, positiveInteger } from './options.js';

interface SearchCommandOptions {
  db: string;
  method: SearchMethod;
  firstStage?: FirstStageMethod;
  k?: number;
  candidates?: number;
  top?: number;
  approximate?: boolean;
  slices?: [number, number];
  mm?: [number, number];
  mask?: string;
  label?: number;
  slice?: number;
  series?: string;
  fuse?: SearchMethod;
  fusion: FusionMethod;
  exclude: string[];
  includeSelf?: boolean;
  modality: string[];
  bodyPart: string[];
  where: string[];
  localization: 'consistent' | 'extent';
  json?: boolean;
  pictures?: string;
}

const method = (label: string) => (value: string): SearchMethod => {
  if (!(SEARCH_METHODS as readonly string[]).includes(value)) throw new InvalidArgumentError(`${label}: one of ${SEARCH_METHODS.join(', ')}`);
  return value as SearchMethod;
};

/** "a:b" → [a, b] (numbers, either may be negative mm). */
const pair = (label: string) => (value: string): [number, number] => {
  const match = /^\s*(-?[\d.]+)\s*[:,]\s*(-?[\d.]+)\s*$/.exec(value);
  if (!match) throw new InvalidArgumentError(`${label} must look like FIRST:LAST`);
  return [Number(match[1]), Number(match[2])];
};

function rangeOf(options: SearchCommandOptions): QueryRangeInput {
  const given = [options.slices, options.mm, options.mask, options.slice].filter((v) => v !== undefined).length;
  if (given > 1) throw new InvalidArgumentError('give at most one of --slices, --mm, --mask, --slice');
  if (options.slices) return { kind: 'slices', firstSlice: options.slices[0], lastSlice: options.slices[1] };
  if (options.mm) return { kind: 'mm', zStartMm: options.mm[0], zEndMm: options.mm[1] };
  if (options.mask) {
    if (options.label === undefined) throw new InvalidArgumentError('--mask needs --label N (the label value whose z-extent is the query)');
    return { kind: 'mask', maskPath: options.mask, label: options.label };
  }
  if (options.slice !== undefined) return { kind: 'slice', slice: options.slice };
  return { kind: 'volume' };
}

function filterOf(options: SearchCommandOptions): VolumeFilter | undefined {
  const filter: VolumeFilter = {};
  if (options.modality.length) filter.modalities = options.modality;
  if (options.bodyPart.length) filter.bodyParts = options.bodyPart;
  if (options.where.length) filter.labels = Object.fromEntries(options.where.map(parseLabel));
  return Object.keys(filter).length ? filter : undefined;
}

/** Short, readable name of where a volume came from: its file (or folder) and the folder above. */
function sourceLabel(record: VolumeRecord | undefined): string {
  if (!record) return '?';
  return `${basename(dirname(record.sourcePath))}/${basename(record.sourcePath)}`;
}

function resultTable(results: SearchResult[], store: Store): string {
  const rows = results.map((r) => {
    const record = store.getVolume(r.volumeId);
    const region = r.region
      ? `z ${r.region.zStartMm.toFixed(1)}…${r.region.zEndMm.toFixed(1)} mm (slices ${r.region.firstSlice}–${r.region.lastSlice})`
      : '-';
    const labels = record && Object.keys(record.labels).length ? Object.entries(record.labels).slice(0, 4).map(([k, v]) => `${k}=${v}`).join(' ') : '';
    return [String(r.rank), r.volumeId, r.score.toFixed(4), region, sourceLabel(record), labels];
  });
  return formatTable(['rank', 'volume', 'score', 'localized region', 'source', 'labels'], rows, [0]);
}

async function writePictures(dir: string, resolved: ResolvedQuery, results: SearchResult[], store: Store): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const notes: string[] = [];
  const queryVolume = resolved.volume ?? (resolved.record ? await readVolume(resolved.record.sourcePath, resolved.record.seriesKey ? { seriesKey: resolved.record.seriesKey } : {}).catch(() => undefined) : undefined);
  const panels: SheetPanel[] = [];
  if (queryVolume) {
    const first = Math.min(...resolved.sliceIndices);
    const last = Math.max(...resolved.sliceIndices);
    panels.push({ volume: queryVolume, band: { firstSlice: first, lastSlice: last }, color: QUERY_COLOR });
  }
  for (const result of results) {
    const record = store.getVolume(result.volumeId);
    if (!record) continue;
    try {
      const volume = await readVolume(record.sourcePath, record.seriesKey ? { seriesKey: record.seriesKey } : {});
      panels.push({ volume, ...(result.region ? { band: { firstSlice: result.region.firstSlice, lastSlice: result.region.lastSlice } } : {}), color: MATCH_COLOR });
    } catch {
      notes.push(`rank ${result.rank} (${result.volumeId}): source ${record.sourcePath} is no longer readable; left out of the picture`);
    }
  }
  const path = join(dir, 'search.png');
  await writeSheet(path, panels);
  return [path, ...notes];
}

export function registerSearch(program: Command): void {
  program
    .command('search')
    .description('Find the indexed volumes most similar to a query volume, slab or slice, and where in each the match lies')
    .argument('<query>', 'NIfTI file, DICOM series directory, or the id of an indexed volume')
    .requiredOption('--db <dir>', 'index directory')
    .option('--method <m>', `retrieval method: ${SEARCH_METHODS.join(', ')}`, method('--method'), 'rerank' as SearchMethod)
    .option('--first-stage <m>', 'first stage of rerank (default slice-count)', method('--first-stage'))
    .option('--k <n>', 'nearest slices per query slice (slice methods; default 20)', positiveInteger('--k'))
    .option('--candidates <n>', 'candidates re-ranked (default 50)', positiveInteger('--candidates'))
    .option('--top <n>', 'results shown (default 10)', positiveInteger('--top'))
    .option('--approximate', 'HNSW nearest-slice search instead of exact')
    .option('--slices <a:b>', 'query with slices a..b (canonical, inferior → superior)', pair('--slices'))
    .option('--mm <a:b>', 'query with the slab between patient z a and b mm', pair('--mm'))
    .option('--mask <file>', 'query with the z-extent of --label in this mask (same grid as the query)')
    .option('--label <n>', 'label value in --mask', integer('--label'))
    .option('--slice <k>', 'query with one slice', integer('--slice'))
    .option('--series <key>', 'series key when the query directory holds several DICOM series')
    .option('--fuse <m>', 'fuse with a second method', method('--fuse'))
    .option('--fusion <f>', 'interleave (3D-MIR) or rrf', 'rrf')
    .option('--exclude <id>', 'leave this volume out (repeatable)', collect, [])
    .option('--include-self', 'let the query’s own volume appear in the results')
    .option('--modality <m>', 'only volumes of this modality (repeatable)', collect, [])
    .option('--body-part <p>', 'only volumes of this body part (repeatable)', collect, [])
    .option('--where <key=value>', 'only volumes with this label (repeatable)', collect, [])
    .option('--localization <l>', 'consistent (robust, default) or extent (min..max of all argmax slices)', 'consistent')
    .option('--json', 'print JSON')
    .option('--pictures <dir>', 'write search.png: the query and each result as coronal views with the matched region tinted')
    .action(async (queryArg: string, options: SearchCommandOptions) => {
      if (!indexExists(options.db)) throw new StoreError('NOT_FOUND', options.db, 'no index here (create one with mir3d index)');
      if (options.fusion !== 'rrf' && options.fusion !== 'interleave') throw new InvalidArgumentError('--fusion: rrf or interleave');
      const range = rangeOf(options);
      const store = openStore(options.db, { readOnly: true });
      let encoder: Encoder | undefined;
      try {
        const source: QuerySource = !existsSync(queryArg) && store.getVolume(queryArg) ? { kind: 'indexed', volumeId: queryArg } : { kind: 'path', path: queryArg, ...(options.series ? { seriesKey: options.series } : {}) };
        if (source.kind === 'path') encoder = await openIndexEncoder(options.db, store.encoderId, (m) => process.stderr.write(`${m}\n`));
        const started = performance.now();
        const resolved = await resolveQuery(source, range, { store, ...(encoder ? { encoder } : {}) });
        const embeddedS = (performance.now() - started) / 1000;
        const searchOptions: SearchOptions = {
          method: options.method,
          ...(options.firstStage ? { firstStage: options.firstStage } : {}),
          ...(options.k ? { k: options.k } : {}),
          ...(options.candidates ? { candidates: options.candidates } : {}),
          ...(options.top ? { top: options.top } : {}),
          mode: options.approximate ? 'approximate' : 'exact',
          ...(filterOf(options) ? { filter: filterOf(options) } : {}),
          excludeVolumeIds: options.exclude,
          includeQueryVolume: options.includeSelf ?? false,
          ...(options.fuse ? { fuseWith: { method: options.fuse, fusion: options.fusion } } : {}),
          localization: { method: options.localization },
        };
        const searchStarted = performance.now();
        const results = await search(store, resolved.query, searchOptions);
        const searchS = (performance.now() - searchStarted) / 1000;
        const pictures = options.pictures ? await writePictures(resolve(options.pictures), resolved, results, store) : [];
        if (options.json) {
          const withRecords = results.map((r) => ({ ...r, source: store.getVolume(r.volumeId)?.sourcePath, labels: store.getVolume(r.volumeId)?.labels }));
          process.stdout.write(`${JSON.stringify({ query: { source, range, slices: resolved.sliceIndices.length, volumeId: resolved.query.volumeId }, options: searchOptions, timings: { queryS: embeddedS, searchS }, results: withRecords, pictures }, null, 2)}\n`);
          return;
        }
        const first = Math.min(...resolved.sliceIndices);
        const last = Math.max(...resolved.sliceIndices);
        process.stdout.write(
          `query ${source.kind === 'indexed' ? source.volumeId : source.path}: ${resolved.sliceIndices.length} slices (${first}–${last})` +
            `${resolved.query.volumeId ? `, indexed as ${resolved.query.volumeId}${options.includeSelf ? '' : ' (excluded)'}` : ''}; ` +
            `${options.method}${options.fuse ? ` ⊕ ${options.fuse} (${options.fusion})` : ''}, ${options.approximate ? 'approximate' : 'exact'} kNN; ` +
            `${resolved.reusedStoredVectors ? 'stored vectors' : `embedded in ${embeddedS.toFixed(1)} s`}, searched in ${(searchS * 1000).toFixed(0)} ms\n\n`,
        );
        process.stdout.write(`${results.length ? resultTable(results, store) : 'no results (the filter or exclusions leave nothing to search)'}\n`);
        for (const line of pictures) process.stdout.write(`${line === pictures[0] ? '\npicture' : 'note'}: ${line}\n`);
      } finally {
        store.close();
        await encoder?.close();
      }
    });
}
