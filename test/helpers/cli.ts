import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { projectRoot } from './shared-data.js';

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built `mir3d` entry point as a user would, with a time limit so a hang fails the test. */
export function runCli(args: string[], timeoutMs = 60_000): CliRun {
  const result = spawnSync(process.execPath, [join(projectRoot, 'dist/src/cli/main.js'), ...args], {
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}
