import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { runCli } from './helpers/cli.js';
import { projectRoot } from './helpers/shared-data.js';

/** The demo ends with where to browse its results, and `--serve` serves them until Ctrl-C. */

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mir3d-demo-serve-'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('the demo prints the page URL with the token kept beside its index', async () => {
  const out = join(dir, 'plain');
  const run = runCli(['demo', '--count', '2', '--encoder', 'baseline', '--out', out], 120_000);
  assert.equal(run.status, 0, run.stderr);
  const match = /browse the results: npx mir3d serve --db (\S+)\s+→ (http:\/\/127\.0\.0\.1:8765\/#token=(\S+))$/m.exec(run.stdout);
  assert.ok(match, `no browse line in:\n${run.stdout.slice(-400)}`);
  const tokenPath = join(out, 'index', 'server-token');
  assert.equal(match[3], (await readFile(tokenPath, 'utf8')).trim());
  assert.equal((await stat(tokenPath)).mode & 0o777, 0o600);
});

test('demo --serve serves the demo index until interrupted', { timeout: 120_000 }, async () => {
  const out = join(dir, 'served');
  const child = spawn(process.execPath, [join(projectRoot, 'dist/src/cli/main.js'), 'demo', '--count', '2', '--encoder', 'baseline', '--out', out, '--serve'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    const lines = createInterface({ input: child.stdout });
    const pageUrl = await new Promise<string>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`demo --serve exited early with ${code}`)));
      lines.on('line', (line) => {
        const match = /^\s+page:\s+(http:\/\/\S+#token=\S+)/.exec(line);
        if (match) resolve(match[1]);
      });
    });
    const url = new URL(pageUrl);
    const token = url.hash.replace('#token=', '');
    const page = await fetch(`${url.origin}/`);
    assert.equal(page.status, 200);
    const list = await fetch(`${url.origin}/api/volumes`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(list.status, 200);
    assert.equal(((await list.json()) as { total: number }).total, 2);
    child.kill('SIGINT');
    assert.equal(await exited, 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
