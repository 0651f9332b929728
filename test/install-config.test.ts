import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import semver from 'semver';
import { projectRoot } from './helpers/shared-data.js';

/**
 * A newcomer's `npm ci` and `npx` print no warning caused by the project's own configuration (issue 13,
 * item 11): no unknown keys in a project .npmrc, every locked package admits the Node versions the
 * project states, and every dependency with an install script is decided in `allowScripts`. A real
 * `npm ci` takes minutes (better-sqlite3 compiles), so these check what it would warn about.
 */

interface LockEntry {
  version?: string;
  engines?: { node?: string } | string[];
  hasInstallScript?: boolean;
  dev?: boolean;
}

const packageJson = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { engines: { node: string }; allowScripts?: Record<string, boolean> };
const lock = JSON.parse(readFileSync(join(projectRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };

function packageName(lockKey: string): string {
  return lockKey.slice(lockKey.lastIndexOf('node_modules/') + 'node_modules/'.length);
}

describe('install configuration', () => {
  test('npm reads the project config without a warning', () => {
    const run = spawnSync('npm', ['pkg', 'get', 'name'], { cwd: projectRoot, encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.ok(!/warn/i.test(run.stderr), `npm warned: ${run.stderr}`);
  });

  test('every locked package admits this Node and the oldest Node the project states', () => {
    const oldest = semver.minVersion(packageJson.engines.node)!.version;
    const refused: string[] = [];
    for (const [key, entry] of Object.entries(lock.packages)) {
      if (!key || Array.isArray(entry.engines) || !entry.engines?.node) continue;
      for (const node of [process.versions.node, oldest]) {
        if (!semver.satisfies(node, entry.engines.node)) refused.push(`${packageName(key)}@${entry.version} wants node ${entry.engines.node} (not ${node})`);
      }
    }
    assert.deepEqual(refused, []);
  });

  test('every dependency with an install script is allowed or denied in allowScripts', () => {
    const decided = packageJson.allowScripts ?? {};
    const open = Object.entries(lock.packages)
      .filter(([key, entry]) => key && entry.hasInstallScript)
      .map(([key]) => packageName(key))
      .filter((name) => !(name in decided));
    assert.deepEqual(open, []);
    assert.equal(decided['onnxruntime-node'], false, "onnxruntime-node's install script fetches CUDA libraries from NuGet");
  });
});
