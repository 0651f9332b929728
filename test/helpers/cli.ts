import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { projectRoot } from './shared-data.js';

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built `mir3d` entry point as a user would, with a time limit so a hang fails the test. */
export function runCli(args: string[], timeoutMs = 60_000, env?: Record<string, string>): CliRun {
  const result = spawnSync(process.execPath, [join(projectRoot, 'dist/src/cli/main.js'), ...args], {
    encoding: 'utf8',
    timeout: timeoutMs,
    ...(env ? { env: { ...process.env, ...env } } : {}),
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** runCli, also measuring the child's peak resident memory (bytes) and wall time (ms). */
export function runCliMeasured(args: string[], timeoutMs = 60_000): CliRun & { peakRssBytes: number; wallMs: number } {
  const dir = mkdtempSync(join(tmpdir(), 'mir3d-rss-'));
  const rssFile = join(dir, 'rss');
  const preload = pathToFileURL(join(projectRoot, 'dist/test/helpers/report-rss.js')).href;
  const started = performance.now();
  const result = spawnSync(process.execPath, ['--import', preload, join(projectRoot, 'dist/src/cli/main.js'), ...args], {
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, MIR3D_TEST_RSS_FILE: rssFile },
  });
  const wallMs = performance.now() - started;
  let peakRssBytes = Number.NaN;
  try {
    peakRssBytes = Number(readFileSync(rssFile, 'utf8'));
  } catch {
    // killed before exit (timeout): no figure, the caller's time assertion fails instead
  }
  rmSync(dir, { recursive: true, force: true });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, peakRssBytes, wallMs };
}
