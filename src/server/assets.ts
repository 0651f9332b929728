import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Where the page's files are: HTML and CSS in src/web/public, its compiled scripts in dist/web (built
 * by `npm run build` with tsconfig.web.json), and NiiVue's single-file ES module bundle from
 * node_modules. Everything is served by this process; the page loads nothing from elsewhere.
 */

function findUp(from: string, accept: (dir: string) => boolean): string | undefined {
  let dir = from;
  for (;;) {
    if (accept(dir)) return dir;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

function packageNameAt(dir: string): string | undefined {
  const path = join(dir, 'package.json');
  if (!existsSync(path)) return undefined;
  try {
    return (JSON.parse(readFileSync(path, 'utf8')) as { name?: string }).name;
  } catch {
    return undefined;
  }
}

export const PROJECT_ROOT = findUp(dirname(fileURLToPath(import.meta.url)), (dir) => packageNameAt(dir) === 'mir3d') ?? process.cwd();

export function packageVersion(): { name: string; version: string } {
  const json = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
  return { name: json.name, version: json.version };
}

export interface WebAssets {
  publicDir: string;
  scriptsDir: string;
  /** Folder holding NiiVue's `index.js` bundle, if installed. */
  niivueDir?: string;
  /** Why the page cannot be served, when it cannot. */
  problem?: string;
}

export function locateWebAssets(): WebAssets {
  const publicDir = join(PROJECT_ROOT, 'src', 'web', 'public');
  const scriptsDir = join(PROJECT_ROOT, 'dist', 'web');
  let niivueDir: string | undefined;
  try {
    const entry = fileURLToPath(import.meta.resolve('@niivue/niivue'));
    const pkg = findUp(dirname(entry), (dir) => packageNameAt(dir) === '@niivue/niivue');
    if (pkg && existsSync(join(pkg, 'dist', 'index.js'))) niivueDir = join(pkg, 'dist');
  } catch {
    niivueDir = undefined;
  }
  const problem = !existsSync(join(publicDir, 'index.html'))
    ? `${publicDir}/index.html is missing`
    : !existsSync(join(scriptsDir, 'main.js'))
      ? `the page's scripts are not built (${scriptsDir}/main.js is missing): run npm run build`
      : undefined;
  return { publicDir, scriptsDir, ...(niivueDir ? { niivueDir } : {}), ...(problem ? { problem } : {}) };
}
