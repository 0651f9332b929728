import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { openIndex } from '../ingest/open-index.js';
import { readEncoderSpec } from '../ingest/encoder-spec.js';
import { readVolume, type ReadOptions } from '../io/read.js';
import { MATCH_COLOR, QUERY_COLOR, writeSheet, type SheetPanel } from '../io/sheet.js';
import { SEARCH_FLAGS, searchRequestOf, textOrSource, type FlagValues, type SearchFlag, type SearchParams } from '../query/request.js';
import { runSearch } from '../query/run.js';
import type { QuerySource, ResolvedQuery } from '../query/sources.js';
import { fusedTextLine, printTextSearch } from './text-search.js';
import { SEARCH_METHODS, type SearchMethod, type SearchResult } from '../search/types.js';
import type { Store, VolumeRecord } from '../store/types.js';
import { DicomWebError } from '../source/dicomweb/errors.js';
import { isDicomWebUrl, parseDicomWebUrl } from '../source/dicomweb/url.js';
import type { DicomWebClient } from '../source/dicomweb/client.js';
import { formatTable } from './format.js';
import { viewerLinksFor } from './viewer-links.js';
import { addKeyImageOptions, collect, integer, keyImageReadOptions, positiveInteger, type KeyImageCliOptions } from './options.js';

interface SearchCommandOptions extends KeyImageCliOptions {
  db: string;
  textSpace?: string;
  series?: string;
  json?: boolean;
  pictures?: string;
  viewerUrl?: string;
  credentials?: string;
  caFile?: string;
  pseudonymize?: string;
  /** The search flags (SEARCH_FLAGS), by commander's attribute names. */
  [flag: string]: unknown;
}

const method = (label: string) => (value: string): SearchMethod => {
  if (!(SEARCH_METHODS as readonly string[]).includes(value)) throw new InvalidArgumentError(`${label}: one of ${SEARCH_METHODS.join(', ')}`);
  return value as SearchMethod;
};

const choice = (label: string, choices: readonly string[]) => (value: string): string => {
  if (!choices.includes(value)) throw new InvalidArgumentError(`${label}: ${choices.join(' or ')}`);
  return value;
};

/** "a:b" → [a, b] (numbers, either may be negative mm). */
const pair = (label: string) => (value: string): [number, number] => {
  const match = /^\s*(-?[\d.]+)\s*[:,]\s*(-?[\d.]+)\s*$/.exec(value);
  if (!match) throw new InvalidArgumentError(`${label} must look like FIRST:LAST`);
  return [Number(match[1]), Number(match[2])];
};

/** A search flag as a commander option: the query stage says what it means, this says how to parse it. */
function optionOf(flag: SearchFlag): Option {
  const option = new Option(flag.flags, flag.description);
  const name = option.long ?? flag.flags;
  switch (flag.value) {
    case 'method':
      return option.argParser(method(name));
    case 'choice':
      return option.argParser(choice(name, flag.choices ?? []));
    case 'positiveInteger':
      return option.argParser(positiveInteger(name));
    case 'integer':
      return option.argParser(integer(name));
    case 'pair':
      return option.argParser(pair(name));
    case 'list':
      return option.argParser(collect).default([]);
    case 'text':
    case 'switch':
      return option;
  }
}

/** The search parameters the command line gave. */
function paramsOf(options: SearchCommandOptions, commandOptions: readonly Option[]): SearchParams {
  const params: SearchParams = {};
  SEARCH_FLAGS.forEach((flag, n) => {
    const value = options[commandOptions[n].attributeName()];
    if (value === undefined || (Array.isArray(value) && value.length === 0)) return;
    flag.apply(value as FlagValues[keyof FlagValues], params);
  });
  return params;
}

/** Short, readable name of where a volume came from: its file (or folder) and the folder above. */
function sourceLabel(record: VolumeRecord | undefined): string {
  if (!record) return '?';
  return `${basename(dirname(record.sourcePath))}/${basename(record.sourcePath)}`;
}

export function resultTable(results: SearchResult[], store: Store): string {
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

async function writePictures(dir: string, resolved: ResolvedQuery, results: SearchResult[], store: Store, readOptions: ReadOptions): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const notes: string[] = [];
  const queryVolume = resolved.volume ?? (resolved.record ? await readVolume(resolved.record.sourcePath, { ...readOptions, ...(resolved.record.seriesKey ? { seriesKey: resolved.record.seriesKey } : {}) }).catch(() => undefined) : undefined);
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
      const volume = await readVolume(record.sourcePath, { ...readOptions, ...(record.seriesKey ? { seriesKey: record.seriesKey } : {}) });
      panels.push({ volume, ...(result.region ? { band: { firstSlice: result.region.firstSlice, lastSlice: result.region.lastSlice } } : {}), color: MATCH_COLOR });
    } catch {
      notes.push(`rank ${result.rank} (${result.volumeId}): source ${record.sourcePath} is no longer readable; left out of the picture`);
    }
  }
  const path = join(dir, 'search.png');
  await writeSheet(path, panels);
  return [path, ...notes];
}

/** What the score column means per method: scales differ, so scores are compared within one list only. */
export const SCORE_MEANINGS = `
Scores (higher is better; compare them within one result list, never across methods):
  slice-count       how many of the query slices' k nearest slices lie in the volume (0 … slices × k)
  slice-sum         the sum of those slices' cosine similarities (grows with the count)
  slice-max         the best cosine similarity of one query slice to one of the volume's slices (−1 … 1)
  volume-*          cosine of the pooled, L2-normalized volume vectors (−1 … 1); CTs look alike to a
                    general image encoder, so these sit close together (0.95 … 0.98 on the demo): the
                    order matters, not the level
  rerank            C-MIR late interaction: the mean over query slices of the best cosine in the volume
  --fuse … rrf      reciprocal-rank fusion Σ 1/(60 + rank) over the lists (at most 2/61 ≈ 0.033 for two)
  --fuse … interleave  1/rank in the merged list (3D-MIR's interleaving)
Ranges: --slices and --mm are clamped to the volume and refused only when none of them lies inside;
--slice k must name a slice of the volume.`;

export function registerSearch(program: Command): void {
  const command = program
    .command('search')
    .description('Find the indexed volumes most similar to a query volume, slab or slice, and where in each the match lies')
    .argument('[query]', 'NIfTI file, DICOM series directory, PNG/JPEG key image, the id of an indexed volume, a PACS series: dicomweb+http(s)://HOST/ROOT/studies/UID[/series/UID] (or none, with --text)')
    .requiredOption('--db <dir>', 'index directory');
  const searchOptions = SEARCH_FLAGS.map(optionOf);
  for (const option of searchOptions) command.addOption(option);
  command
    .option('--series <key>', 'series key when the query directory holds several DICOM series')
    .option('--text-space <name>', "the index's learned text space (default: captions, or the only one)")
    .option('--json', 'print JSON')
    .option('--pictures <dir>', 'write search.png: the query and each result as coronal views with the matched region tinted')
    .option('--viewer-url <template>', 'viewer link for PACS results, {study} {series} {sop} (default: the one given at index time)')
    .option('--credentials <file>', 'PACS: JSON credentials file, mode 0600 (else MIR3D_DICOMWEB_USER/PASSWORD or MIR3D_DICOMWEB_TOKEN)')
    .option('--ca-file <pem>', 'PACS: CA certificate(s) to trust for https')
    .option('--pseudonymize <secret-file>', 'PACS: the secret of a pseudonymized index, to resolve its links')
    .addHelpText('after', SCORE_MEANINGS);
  addKeyImageOptions(command).action(async (queryArg: string | undefined, options: SearchCommandOptions) => {
      const params = paramsOf(options, searchOptions);
      if (queryArg === undefined && params.text === undefined) throw new InvalidArgumentError('give a query (file, DICOM folder or indexed volume id) or --text "finding"');
      const index = await openIndex(options.db, { readOnly: true, onStatus: (m) => process.stderr.write(`${m}\n`) });
      const { store } = index;
      // Key images are read the way the index read its own (encoder.json), unless this run says otherwise.
      const readOptions: ReadOptions = { ...(readEncoderSpec(options.db)?.keyImages ?? {}), ...keyImageReadOptions(options) };
      const textEncoder = () => index.textEncoder(options.textSpace);
      let client: DicomWebClient | undefined;
      try {
        let source: QuerySource | undefined =
          queryArg === undefined ? undefined : !existsSync(queryArg) && store.getVolume(queryArg) ? { kind: 'indexed', volumeId: queryArg } : { kind: 'path', path: queryArg, ...(options.series ? { seriesKey: options.series } : {}) };
        if (queryArg !== undefined && isDicomWebUrl(queryArg)) {
          const address = parseDicomWebUrl(queryArg);
          if (!address.studyInstanceUid) throw new DicomWebError('BAD_URL', address.endpoint.display, 'name the query: …/studies/<StudyInstanceUID>[/series/<SeriesInstanceUID>]');
          // Loaded only for a PACS query: the HTTP client would slow every other start.
          const { dicomWebClient } = await import('./dicomweb-client.js');
          client = dicomWebClient(address.endpoint, options);
          source = { kind: 'dicomweb', client, studyInstanceUid: address.studyInstanceUid, ...(address.seriesInstanceUid ? { seriesInstanceUid: address.seriesInstanceUid } : {}) };
        }
        const request = searchRequestOf(textOrSource(source, params), params);
        const outcome = await runSearch(request, { store, encoder: () => index.encoder(), textEncoder, readOptions });
        if (request.source.kind === 'text') {
          printTextSearch(outcome, request, store, (await textEncoder()).name, options.json ?? false, resultTable);
          return;
        }
        source = request.source;
        const { resolved, results, timings, space } = outcome;
        if (request.withText && resolved.text !== undefined) {
          for (const warning of resolved.warnings ?? []) process.stderr.write(`warning: ${warning}\n`);
          process.stderr.write(fusedTextLine(resolved.text, request.withText.fusion));
        }
        const pictures = options.pictures ? await writePictures(resolve(options.pictures), resolved, results, store, readOptions) : [];
        const links = await viewerLinksFor(store, results, options);
        const shownSource = source.kind === 'dicomweb' ? { kind: 'dicomweb', endpoint: source.client.endpoint.display } : source;
        const info = store.info?.();
        // Small archives answer an approximate search exactly; say so rather than let the line claim HNSW.
        const exactAnyway = request.options.mode === 'approximate' && info?.exactBelowSlices !== undefined && info.slices < info.exactBelowSlices;
        if (options.json) {
          const withRecords = results.map((r) => ({ ...r, source: store.getVolume(r.volumeId)?.sourcePath, labels: store.getVolume(r.volumeId)?.labels, ...(links.has(r.volumeId) ? { viewer: links.get(r.volumeId) } : {}) }));
          const query = { source: shownSource, range: request.range, slices: resolved.sliceIndices.length, volumeId: resolved.query.volumeId, ...(resolved.text !== undefined ? { fusedText: resolved.text, warnings: resolved.warnings ?? [] } : {}) };
          process.stdout.write(`${JSON.stringify({ query, options: request.options, ...(exactAnyway ? { searchedExactly: `${info!.slices} slices, below ${info!.exactBelowSlices}: approximate search is answered exactly` } : {}), space, timings: { queryS: timings.queryMs / 1000, searchS: timings.searchMs / 1000 }, results: withRecords, pictures }, null, 2)}\n`);
          return;
        }
        const { options: o } = request;
        const knn = exactAnyway ? `exact kNN (--approximate: ${info!.slices} slices, below ${info!.exactBelowSlices}, are searched exactly)` : `${o.mode ?? 'exact'} kNN`;
        const first = Math.min(...resolved.sliceIndices);
        const last = Math.max(...resolved.sliceIndices);
        process.stdout.write(
          `query ${source.kind === 'indexed' ? source.volumeId : source.kind === 'dicomweb' ? `a series at ${source.client.endpoint.display}` : queryArg}: ${resolved.sliceIndices.length} slices (${first}–${last})` +
            `${resolved.query.volumeId ? `, indexed as ${resolved.query.volumeId}${o.includeQueryVolume ? '' : ' (excluded)'}` : ''}; ` +
            `${o.method}${o.fuseWith ? ` ⊕ ${o.fuseWith.method} (${o.fuseWith.fusion})` : ''}, ${knn}${space === 'raw' ? '' : ` in ${space}`}; ` +
            `${resolved.reusedStoredVectors ? 'stored vectors' : `embedded in ${(timings.queryMs / 1000).toFixed(1)} s`}, searched in ${timings.searchMs.toFixed(0)} ms\n\n`,
        );
        process.stdout.write(`${results.length ? resultTable(results, store) : 'no results (the filter or exclusions leave nothing to search)'}\n`);
        if (links.size > 0) {
          process.stdout.write('\nopen in the viewer (best-matching slice):\n');
          for (const r of results) {
            const link = links.get(r.volumeId);
            if (link) process.stdout.write(`  ${r.rank}  ${link.url ?? `study ${link.studyInstanceUid} series ${link.seriesInstanceUid} instance ${link.sopInstanceUid} (no --viewer-url template)`}\n`);
          }
        }
        for (const line of pictures) process.stdout.write(`${line === pictures[0] ? '\npicture' : 'note'}: ${line}\n`);
      } finally {
        await client?.close();
        await index.close();
      }
    });
}
