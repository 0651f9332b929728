import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { storageError } from '../store/errors.js';
import { IngestError } from './errors.js';

/**
 * One writer per index. SQLite serializes single transactions, but two `mir3d index` runs on one index
 * would both embed everything, race on labels and both claim every volume as added; the second run is
 * refused instead. The lock is a file created with O_EXCL holding the owner's pid and host; a lock whose
 * process on this host is gone (kill -9, a crash) is taken over.
 */

export const WRITER_LOCK_FILE = 'writer.lock';

export interface WriterLock {
  release(): void;
}

function ownerAlive(text: string): boolean {
  const [pidText, host] = text.trim().split(' ');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (host !== hostname()) return true; // another machine's process: cannot tell, so it stands
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(pid);
}

/** A killed process stays in the process table until its parent reaps it, and kill(pid, 0) still
 * succeeds on it; a parent blocked in a synchronous call (or gone astray) may not reap it for a long
 * time. Its state letter in /proc says it is dead (Linux; elsewhere it counts as alive). */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S …": comm may hold spaces and parentheses, so the state follows the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false;
  }
}

/** Takes the index's writer lock or throws INDEX_LOCKED naming the owner. `dir` must exist. */
export function takeWriterLock(dir: string): WriterLock {
  const path = join(dir, WRITER_LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      try {
        writeSync(fd, `${process.pid} ${hostname()}\n`);
      } catch (error) {
        rmSync(path, { force: true }); // an empty lock would read as a dead owner anyway
        throw storageError(dir, error);
      } finally {
        closeSync(fd);
      }
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        process.off('exit', release);
        rmSync(path, { force: true });
      };
      process.on('exit', release);
      return { release };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw storageError(dir, error);
    }
    let owner = '';
    try {
      owner = readFileSync(path, 'utf8');
    } catch {
      continue; // released between our attempt and the read
    }
    if (ownerAlive(owner)) {
      throw new IngestError('INDEX_LOCKED', `${dir}: another mir3d process (pid ${owner.trim().split(' ')[0]}) is writing this index; run again when it has finished (searches may run meanwhile)`);
    }
    rmSync(path, { force: true }); // its owner is gone
  }
  throw new IngestError('INDEX_LOCKED', `${dir}: cannot take the writer lock ${WRITER_LOCK_FILE}`);
}
