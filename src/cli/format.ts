import { relative } from 'node:path';

/** A path as a user would type it from here: relative inside the working directory, else absolute. */
export function displayPath(path: string): string {
  const fromHere = relative(process.cwd(), path);
  return fromHere === '' ? '.' : fromHere.startsWith('..') ? path : fromHere;
}

/** A plain-text table: columns as wide as their widest cell, a rule under the header; columns listed in
 * `alignRight` are right-aligned (ranks, counts). */
export function formatTable(header: string[], rows: string[][], alignRight: readonly number[] = []): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c].length)));
  const line = (cells: string[]): string => cells.map((cell, c) => (alignRight.includes(c) ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
