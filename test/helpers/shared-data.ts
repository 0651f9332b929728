import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Project root, found from this file whether it runs from test/ (sources) or dist/test/ (compiled). */
export const projectRoot = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
})();

/** The real CT scans, read-only, beside the checkout (never copied into it). */
export const sharedDataDir = resolve(projectRoot, process.env.MIR3D_SHARED_DATA ?? '../shared/data');

export const hasSharedData = existsSync(join(sharedDataDir, 'README.md'));

/** Pass as a test's `skip` option: false when the data is there, else the reason shown in the report. */
export const skipWithoutSharedData: false | string = hasSharedData
  ? false
  : `real CT data not found at ${sharedDataDir} (set MIR3D_SHARED_DATA to its folder)`;

export function sharedPath(...parts: string[]): string {
  return join(sharedDataDir, ...parts);
}
