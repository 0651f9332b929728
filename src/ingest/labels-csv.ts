import { readFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, resolve, sep } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import type { VolumeSourceRef } from './discover.js';
import { IngestError } from './errors.js';

/**
 * Labels per volume from a CSV with a `path` or `name` column (the 3D-MIR label files use `name`); every
 * other non-empty column becomes a label. A row is matched to a source by its path relative to the CSV's
 * folder or to one of the indexed roots (or an absolute path); a bare file name matches by name only when
 * exactly one source has it. Keying by name alone put the second `phantom-02/ct.nii.gz` row's labels on
 * `phantom-01/ct.nii.gz` too, so an ambiguous name is refused rather than guessed.
 */

export type Labels = Record<string, string | number>;

/** Numbers stay numbers so label filters and metrics compare them as such. */
export function labelValue(raw: string): string | number {
  const number = Number(raw);
  return raw !== '' && Number.isFinite(number) ? number : raw;
}

export interface LabelMatch {
  labelsFor: (source: VolumeSourceRef) => Labels;
  rows: number;
  /** Row keys that match no source of this run. */
  unmatchedRows: string[];
  /** Sources of this run that no row names. */
  sourcesWithoutRow: number;
}

interface Row {
  key: string;
  labels: Labels;
}

function readRows(csvPath: string): Row[] {
  let records: Record<string, string>[];
  try {
    records = parseCsv(readFileSync(csvPath, 'utf8'), { columns: true, skip_empty_lines: true, trim: true }) as Record<string, string>[];
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new IngestError('BAD_LABELS', `${csvPath}: ${code === 'ENOENT' ? 'no such file' : `cannot be read as CSV (${(error as Error).message.split('\n')[0]})`}`);
  }
  const rows: Row[] = [];
  const seen = new Set<string>();
  for (const [n, record] of records.entries()) {
    const key = record.path ?? record.name;
    if (key === undefined) throw new IngestError('BAD_LABELS', `${csvPath}: needs a "path" or "name" column`);
    if (!key) throw new IngestError('BAD_LABELS', `${csvPath}: row ${n + 2} has an empty ${record.path !== undefined ? 'path' : 'name'}`);
    if (seen.has(key)) throw new IngestError('BAD_LABELS', `${csvPath}: ${key} appears in two rows`);
    seen.add(key);
    const labels: Labels = {};
    for (const [column, value] of Object.entries(record)) {
      if (column === 'name' || column === 'path' || column === '' || value === '') continue;
      labels[column] = labelValue(value);
    }
    rows.push({ key, labels });
  }
  return rows;
}

const sourceKey = (source: VolumeSourceRef): string => `${resolve(source.path)}\0${source.seriesKey ?? ''}`;

/** Matches the CSV's rows to this run's sources; `roots` are the paths named on the command line. */
export function matchLabelsCsv(csvPath: string, roots: string[], sources: VolumeSourceRef[]): LabelMatch {
  const rows = readRows(csvPath);
  const bases = [dirname(resolve(csvPath)), ...roots.map((r) => resolve(r))];
  const byPath = new Map<string, VolumeSourceRef[]>();
  const byName = new Map<string, VolumeSourceRef[]>();
  for (const source of sources) {
    const path = resolve(source.path);
    byPath.set(path, [...(byPath.get(path) ?? []), source]);
    byName.set(basename(path), [...(byName.get(basename(path)) ?? []), source]);
  }
  const assigned = new Map<string, Labels>();
  const unmatchedRows: string[] = [];
  for (const row of rows) {
    const candidates = isAbsolute(row.key) ? [resolve(row.key)] : bases.map((base) => resolve(base, row.key));
    let matched = [...new Set(candidates)].flatMap((path) => byPath.get(path) ?? []);
    const bareName = !row.key.includes('/') && !row.key.includes(sep);
    if (matched.length === 0 && bareName) {
      matched = byName.get(row.key) ?? [];
      if (matched.length > 1) {
        throw new IngestError(
          'BAD_LABELS',
          `${csvPath}: "${row.key}" names ${matched.length} files (${matched.slice(0, 2).map((s) => s.path).join(', ')}…); give its path relative to the CSV's folder or to the indexed folder`,
        );
      }
    }
    if (matched.length === 0) unmatchedRows.push(row.key);
    for (const source of matched) assigned.set(sourceKey(source), row.labels);
  }
  return {
    labelsFor: (source) => assigned.get(sourceKey(source)) ?? {},
    rows: rows.length,
    unmatchedRows,
    sourcesWithoutRow: sources.filter((s) => !assigned.has(sourceKey(s))).length,
  };
}
