import type { SearchOutcome } from '../query/run.js';
import type { SearchRequest } from '../query/request.js';
import type { SearchResult } from '../search/types.js';
import type { Store } from '../store/types.js';

/** What `mir3d search --text "…"` prints (3D-MIR's text method: slice-count unless --method says otherwise). */
export function printTextSearch(outcome: SearchOutcome, request: SearchRequest, store: Store, textEncoderName: string, json: boolean, table: (results: SearchResult[], store: Store) => string): void {
  const { resolved, results, timings } = outcome;
  const text = resolved.text ?? '';
  const warnings = resolved.warnings ?? [];
  const method = request.options.method;
  for (const warning of warnings) process.stderr.write(`warning: ${warning}\n`);
  if (json) {
    const withRecords = results.map((r) => ({ ...r, labels: store.getVolume(r.volumeId)?.labels }));
    const out = { query: { text, textEncoder: textEncoderName }, method, warnings, timings: { queryS: timings.queryMs / 1000, searchS: timings.searchMs / 1000 }, results: withRecords };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return;
  }
  process.stdout.write(`text "${text}": ${method} over the k nearest slices, text encoder ${textEncoderName}; searched in ${timings.searchMs.toFixed(0)} ms\n\n`);
  process.stdout.write(`${results.length ? table(results, store) : 'no results (the filter or exclusions leave nothing to search)'}\n`);
}

/** The line saying which text was fused with the image query, and how. */
export function fusedTextLine(text: string, fusion: string): string {
  return `fused with the text "${text.length > 80 ? `${text.slice(0, 77)}…` : text}" (slice-count) by ${fusion}\n`;
}
