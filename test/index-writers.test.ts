import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { writeNifti } from '../src/io/nifti-writer.js';
import { generatePhantom } from '../src/synth/index.js';
import { openStore } from '../src/store/index.js';
import { runCli } from './helpers/cli.js';
import { projectRoot } from './helpers/shared-data.js';

/** Two writers on one index, a full disk, and the modes of the files an index is made of. */

const work = mkdtempSync(join(tmpdir(), 'mir3d-writers-'));
after(() => rmSync(work, { recursive: true, force: true }));

async function writeArchive(dir: string, count: number, seed: number): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const paths: string[] = [];
  for (let n = 0; n < count; n++) {
    const { image } = generatePhantom({ seed: seed + n, matrix: [48, 48], spacingMm: [8, 8, 3], coverage: 'abdomen' });
    const path = join(dir, `scan-${n}.nii.gz`);
    await writeNifti(path, image, { gzipLevel: 1 });
    paths.push(path);
  }
  return paths;
}

/** Every volume in the index is whole (record, slice rows and vectors agree). */
function assertConsistent(db: string): number {
  const store = openStore(db, { readOnly: true });
  try {
    const records = store.listVolumes();
    const vectors = store.getVectors(records.map((r) => r.volumeId));
    for (const r of records) {
      assert.equal(vectors.get(r.volumeId)?.sliceIndices.length, r.sliceCount, `${r.volumeId} whole`);
      assert.equal(vectors.get(r.volumeId)?.vectors.length, r.sliceCount * store.dim);
    }
    return records.length;
  } finally {
    store.close();
  }
}

describe('two writers on one index', () => {
  const archive = join(work, 'archive');
  before(async () => {
    await writeArchive(archive, 6, 200);
  });

  test('the second run is refused with one line while the first writes; the first indexes everything', async () => {
    const db = join(work, 'db-two');
    const first = spawn(process.execPath, [join(projectRoot, 'dist/src/cli/main.js'), 'index', archive, '--db', db, '--encoder', 'baseline', '--json', '--no-progress'], { stdio: ['ignore', 'pipe', 'pipe'] });
    // At the lowest priority, so that on a busy machine this process sees the lock and pauses the run before
    // the run can finish (it holds the lock for about 0.4 s; under the full suite's load one poll came late).
    setPriority(first.pid!, 19);
    let stdout = '';
    first.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => first.on('exit', resolve));
    const lockFile = join(db, 'writer.lock');
    for (let waited = 0; !existsSync(lockFile) && waited < 60_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
    assert.ok(existsSync(lockFile), 'the first run holds the lock');
    // Paused while it holds the lock, so the second run surely meets a writer however fast the first is.
    first.kill('SIGSTOP');
    const second = runCli(['index', archive, '--db', db, '--encoder', 'baseline', '--no-progress']);
    first.kill('SIGCONT');
    assert.equal(second.status, 2, second.stderr);
    assert.match(second.stderr, /another mir3d process \(pid \d+\) is writing this index.*\[INDEX_LOCKED\]/);
    assert.equal(second.stderr.trim().split('\n').length, 1);
    assert.equal(await exited, 0);
    assert.equal((JSON.parse(stdout) as { added: number }).added, 6);
    assert.equal(existsSync(lockFile), false, 'released at the end');
    assert.equal(assertConsistent(db), 6);
  });

  test('a lock left by a killed run is taken over', async () => {
    const db = join(work, 'db-stale');
    mkdirSync(db);
    // A pid that is not running: spawn a process and let it end.
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    writeFileSync(join(db, 'writer.lock'), `${gone} ${(await import('node:os')).hostname()}\n`);
    const run = runCli(['index', archive, '--db', db, '--encoder', 'baseline', '--no-progress']);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(assertConsistent(db), 6);
  });

  test('a lock left by a killed run whose parent has not reaped it yet (a zombie) is taken over', async (t) => {
    if (process.platform !== 'linux') return t.skip('zombies are told from /proc on Linux only');
    const db = join(work, 'db-zombie');
    mkdirSync(db);
    // A parent that forks a child which exits at once and is never waited for: a zombie while the parent sleeps.
    const parent = spawn('/bin/sh', ['-c', 'sleep 0.01 & exec sleep 60'], { stdio: ['ignore', 'ignore', 'ignore'] });
    try {
      const zombiePid = await new Promise<number>((resolve, reject) => {
        const deadline = Date.now() + 10_000;
        const look = (): void => {
          const children = spawnSync('ps', ['-o', 'pid=,stat=', '--ppid', String(parent.pid)], { encoding: 'utf8' }).stdout.trim().split('\n');
          const zombie = children.map((l) => l.trim().split(/\s+/)).find(([, state]) => state?.startsWith('Z'));
          if (zombie) resolve(Number(zombie[0]));
          else if (Date.now() > deadline) reject(new Error(`no zombie child of ${parent.pid}: ${children.join('; ')}`));
          else setTimeout(look, 20);
        };
        look();
      });
      writeFileSync(join(db, 'writer.lock'), `${zombiePid} ${(await import('node:os')).hostname()}\n`);
      const run = runCli(['index', archive, '--db', db, '--encoder', 'baseline', '--no-progress']);
      assert.equal(run.status, 0, run.stderr);
      assert.equal(assertConsistent(db), 6);
    } finally {
      parent.kill('SIGKILL');
    }
  });

  test('index files are private: folder 0700, index.sqlite 0600', () => {
    const db = join(work, 'db-two');
    assert.equal(statSync(db).mode & 0o777, 0o700);
    for (const name of readdirSync(db).filter((n) => n.startsWith('index.sqlite'))) assert.equal(statSync(join(db, name)).mode & 0o077, 0, `${name} not readable by others`);
  });
});

/** A small tmpfs, so the disk really fills; needs root and mount(2), else the tests skip saying so. */
function mountSmallFilesystem(dir: string, sizeKiB: number): string | undefined {
  mkdirSync(dir, { recursive: true });
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKiB}k`, 'tmpfs', dir], { encoding: 'utf8' });
  return mounted.status === 0 ? undefined : `cannot mount a small tmpfs here (${(mounted.stderr || mounted.error?.message || 'mount failed').trim()}); the disk-full tests need root and mount(2)`;
}

describe('a full disk', () => {
  const mountPoint = join(work, 'small-fs');
  const cannotMount = process.getuid?.() === 0 ? mountSmallFilesystem(mountPoint, 8192) : 'not root: the disk-full tests mount a small tmpfs';
  after(() => {
    if (!cannotMount) spawnSync('umount', [mountPoint]);
  });
  const archive = join(work, 'archive-full');
  before(async () => {
    await writeArchive(archive, 8, 300);
  });

  test('at index creation: one line, exit 2, no half-made index; a rerun after freeing space works', { skip: cannotMount }, () => {
    const db = join(mountPoint, 'db');
    const filler = join(mountPoint, 'filler');
    spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=4k'], { encoding: 'utf8' }); // fills the fs
    const run = runCli(['index', archive, '--db', db, '--encoder', 'baseline', '--no-progress']);
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /disk is full.*\[NO_SPACE\]/);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.equal(existsSync(join(db, 'index.sqlite')), false, 'no half-made index.sqlite');
    rmSync(filler);
    const again = runCli(['index', archive, '--db', db, '--encoder', 'baseline', '--no-progress']);
    assert.equal(again.status, 0, again.stderr);
    assert.equal(assertConsistent(db), 8);
    rmSync(db, { recursive: true });
  });

  test('while indexing: one line, exit 2, every indexed volume whole; a rerun after freeing space completes', { skip: cannotMount }, () => {
    const db = join(mountPoint, 'db2');
    const first = runCli(['index', join(archive, 'scan-0.nii.gz'), '--db', db, '--encoder', 'baseline', '--no-progress']);
    assert.equal(first.status, 0, first.stderr);
    const filler = join(mountPoint, 'filler');
    // Leave room for about one more volume's rows (~300 KB of 768-d vectors, SQLite pages and WAL frames).
    const freeKiB = Number(spawnSync('df', ['--output=avail', '-k', mountPoint], { encoding: 'utf8' }).stdout.trim().split('\n')[1]);
    spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=1k', `count=${Math.max(freeKiB - 400, 0)}`], { encoding: 'utf8' });
    const run = runCli(['index', archive, '--db', db, '--no-progress']);
    assert.equal(run.status, 2, `${run.stdout}\n${run.stderr}`);
    assert.match(run.stderr, /disk is full.*\[NO_SPACE\]/);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    const kept = assertConsistent(db);
    assert.ok(kept >= 1 && kept < 8, `${kept} volumes kept`);
    rmSync(filler);
    const again = runCli(['index', archive, '--db', db, '--no-progress']);
    assert.equal(again.status, 0, again.stderr);
    assert.equal(assertConsistent(db), 8);
  });
});
