/**
 * Where converted and user-placed models live: `$MIR3D_CACHE_DIR`, else `~/.cache/mir3d/models`. Files are
 * written to a temporary name in the same folder and renamed, so a reader (another process indexing at the
 * same time) sees either no file or the whole file, never a partial one.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export function modelCacheDir(override?: string): string {
  if (override) return resolve(override);
  const fromEnv = process.env.MIR3D_CACHE_DIR;
  if (fromEnv) return resolve(fromEnv);
  return join(homedir(), '.cache', 'mir3d', 'models');
}

/** Writes `bytes` to `path` atomically (temp file + fsync + rename). */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const handle = await open(temp, 'wx');
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

const inFlight = new Map<string, Promise<{ path: string; created: boolean }>>();

/**
 * Returns `dir/fileName`, producing it with `produce` first when it is not there. Concurrent calls in one
 * process share one production; concurrent processes may both produce it, and the last rename wins with
 * identical bytes (production is deterministic).
 */
export function ensureCachedFile(dir: string, fileName: string, produce: () => Promise<Uint8Array>): Promise<{ path: string; created: boolean }> {
  const path = join(dir, fileName);
  if (existsSync(path)) return Promise.resolve({ path, created: false });
  let pending = inFlight.get(path);
  if (!pending) {
    pending = (async () => {
      await mkdir(dir, { recursive: true });
      if (existsSync(path)) return { path, created: false };
      await writeFileAtomic(path, await produce());
      return { path, created: true };
    })().finally(() => inFlight.delete(path));
    inFlight.set(path, pending);
  }
  return pending;
}
