import type { SearchResponse } from './api.js';

/**
 * Words for people: a volume's name from its labels (the id is a pseudonymous hash, shown second), and
 * what a result's score means for the method that produced it.
 */

/** Label keys that name a scan, best first (label files often carry a case name or a description). */
const NAME_KEYS = ['name', 'title', 'case', 'case_id', 'description', 'series', 'study', 'phantom', 'dataset'];
/** Labels worth a word in the one-line description. */
const DETAIL_KEYS = ['organ', 'coverage', 'region', 'body_part', 'cancer_flag', 'lesion_group'];

interface Describable {
  volumeId: string;
  labels: Record<string, string | number>;
  modality: string;
  dims: [number, number, number];
  bodyPart?: string;
  /** Only when the server shows source names (`--show-source-names`). */
  sourceName?: string;
}

export function describeVolume(volume: Describable): { name: string; detail: string } {
  const labels = volume.labels;
  const key = NAME_KEYS.find((k) => labels[k] !== undefined && String(labels[k]).trim() !== '');
  const kind = [volume.modality !== 'unknown' ? volume.modality : 'scan', volume.bodyPart?.toLowerCase()].filter(Boolean).join(' ');
  // A label that names the scan first, then the source's file name, then what it is.
  const name = key ? String(labels[key]) : (volume.sourceName ?? `${kind}, ${volume.dims[2]} slices`);
  const details = DETAIL_KEYS.filter((k) => labels[k] !== undefined).map((k) => `${k.replace(/_/g, ' ')} ${labels[k]}`);
  const detail = [...(key && volume.sourceName ? [volume.sourceName] : []), ...(key || volume.sourceName ? [kind, `${volume.dims[2]} slices`] : []), ...details].join(' · ');
  return { name, detail: detail || kind };
}

const POOLING_WORDS: Record<string, string> = { 'volume-mean': 'mean', 'volume-median': 'median', 'volume-max': 'maximum', 'volume-std': 'standard deviation' };

/** One sentence on what the scores of this answer mean. */
export function scoreMeaning(options: SearchResponse['options'], querySlices: number, text?: string): string {
  const k = options.k ?? 20;
  const how = options.fusion === 'interleave' ? 'interleaving' : 'reciprocal-rank fusion';
  if (text !== undefined && querySlices > 0) {
    return `Scores: ${how} of the volume query's ${options.method} list and the text's slice-count list; higher means ranked higher by both lists, not a similarity.`;
  }
  if (text !== undefined && options.method === 'slice-count') {
    return `Score: how many of the text's ${k} nearest indexed slices lie in that scan (ties broken by their summed similarity). Scores rank the scans for this text; compare them within one list.`;
  }
  const one = (method: string): string => {
    switch (method) {
      case 'rerank':
        return `the mean, over the ${querySlices} query slice${querySlices === 1 ? '' : 's'}, of each one's best cosine similarity to a slice of that scan (1 = identical; C-MIR late interaction)`;
      case 'slice-count':
        return `how many of the query slices' ${k} nearest indexed slices lie in that scan (ties broken by their summed similarity)`;
      case 'slice-sum':
        return `the summed cosine similarity of the query slices' nearest-slice hits in that scan (of ${k} per query slice)`;
      case 'slice-max':
        return 'the highest cosine similarity of any single slice of that scan to a query slice (1 = identical)';
      default:
        return POOLING_WORDS[method]
          ? `the cosine similarity of the two scans' ${POOLING_WORDS[method]}-pooled slice vectors (1 = identical)`
          : `the ${method} score`;
    }
  };
  if (options.fuse) {
    return `Scores: ${how} of ${options.method} and ${options.fuse}; higher means ranked higher by both lists, not a similarity.`;
  }
  return `Score: ${one(options.method)}. Scores rank the scans for this query; compare them within one list, not across queries.`;
}

/** The status line of an answer: how many results, for what, how long, and what the server noted. */
export function searchSummary(response: SearchResponse, isText: boolean): string {
  const { timings, query: q } = response;
  const count = `${response.results.length} result${response.results.length === 1 ? '' : 's'}`;
  const what = isText
    ? `${count} for the text “${q.text ?? ''}”; search ${timings.searchMs.toFixed(0)} ms.`
    : `${count} for ${q.sliceCount} query slice${q.sliceCount === 1 ? '' : 's'} (${q.firstSlice}–${q.lastSlice})${q.text !== undefined ? ` fused with the text “${q.text}”` : ''}; ` +
      `search ${timings.searchMs.toFixed(0)} ms${q.reusedStoredVectors ? '' : `, embedding ${timings.queryMs.toFixed(0)} ms`}.`;
  const warnings = q.warnings?.length ? ` Note: ${q.warnings.join('; ')}.` : '';
  return what + warnings + (response.viewerLinkProblem ? ` No viewer links: ${response.viewerLinkProblem}` : '');
}
