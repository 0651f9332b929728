import { InvalidArgumentError } from 'commander';
import { openIndexTextEncoder } from '../ingest/text-encoder-spec.js';
import { DEFAULT_TEXT_METHOD, searchByText } from '../search/text.js';
import { searchOptionsOf, type SearchParams } from '../query/request.js';
import type { SearchResult } from '../search/types.js';
import { StoreError } from '../store/errors.js';
import { indexExists, openStore } from '../store/index.js';
import type { Store, VolumeRecord } from '../store/types.js';

interface TextOnlyOptions {
  db: string;
  params: SearchParams;
  json: boolean;
  textSpace?: string;
}

/** The caption an indexed query volume carries, for the multi-modal ensemble. */
export function captionOf(record: VolumeRecord | undefined, column: string): string {
  if (!record) throw new InvalidArgumentError('--caption-label needs an indexed query (a volume id, or a file that is indexed)');
  const caption = record.labels[column];
  if (caption === undefined || String(caption).trim() === '') throw new InvalidArgumentError(`volume ${record.volumeId} has no label '${column}' to use as its caption`);
  return String(caption);
}

/** `mir3d search --text "…" --db DB`: 3D-MIR's text method (slice-count unless --method says otherwise). */
export async function runTextSearch(text: string, options: TextOnlyOptions, table: (results: SearchResult[], store: Store) => string): Promise<void> {
  if (!indexExists(options.db)) throw new StoreError('NOT_FOUND', options.db, 'no index here (create one with mir3d index)');
  const store = openStore(options.db, { readOnly: true });
  try {
    const encoder = await openIndexTextEncoder(options.db, store, options.textSpace !== undefined ? { textSpace: options.textSpace } : {});
    try {
      // 3D-MIR ranked text hits by count: that is the default here, not the image queries' rerank.
      const method = options.params.method ?? DEFAULT_TEXT_METHOD;
      const started = performance.now();
      const { results, warnings } = await searchByText(store, encoder, text, { ...searchOptionsOf(options.params), method });
      const searchS = (performance.now() - started) / 1000;
      for (const warning of warnings) process.stderr.write(`warning: ${warning}\n`);
      if (options.json) {
        const withRecords = results.map((r) => ({ ...r, labels: store.getVolume(r.volumeId)?.labels }));
        process.stdout.write(`${JSON.stringify({ query: { text, textEncoder: encoder.id }, method, warnings, timings: { searchS }, results: withRecords }, null, 2)}\n`);
        return;
      }
      process.stdout.write(`text "${text}": ${method} over the k nearest slices, text encoder ${encoder.name}; searched in ${(searchS * 1000).toFixed(0)} ms\n\n`);
      process.stdout.write(`${results.length ? table(results, store) : 'no results (the filter or exclusions leave nothing to search)'}\n`);
    } finally {
      await encoder.close();
    }
  } finally {
    store.close();
  }
}
