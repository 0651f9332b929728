import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ApiError } from '../src/server/errors.js';
import { extractZip } from '../src/server/zip.js';
import { zipOf } from './helpers/zip.js';

/** The zip unpacker's bounds, checked on the files it leaves on disk, not only on its answer. */

const work = mkdtempSync(join(tmpdir(), 'mir3d-zip-'));
after(() => rmSync(work, { recursive: true, force: true }));
const MiB = 1024 * 1024;


/** Sets every entry's declared uncompressed size (local headers and central directory) to `bytes`: a
 * bomb whose headers lie, so only counting the inflated bytes can stop it. */
function lieAboutSizes(zip: Buffer, bytes: number): Buffer {
  const out = Buffer.from(zip);
  for (let at = 0; at + 46 <= out.length; at++) {
    const signature = out.readUInt32LE(at);
    if (signature === 0x04034b50) out.writeUInt32LE(bytes, at + 22);
    else if (signature === 0x02014b50) out.writeUInt32LE(bytes, at + 24);
  }
  return out;
}

function writtenBytes(dir: string): number {
  return readdirSync(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
}

async function extractInto(name: string, zip: Buffer, maxTotalBytes: number): Promise<{ error: unknown; written: number }> {
  const zipPath = join(work, `${name}.zip`);
  writeFileSync(zipPath, zip);
  const outDir = join(work, name);
  mkdirSync(outDir);
  let error: unknown;
  try {
    await extractZip(zipPath, outDir, { maxEntries: 100, maxTotalBytes });
  } catch (caught) {
    error = caught;
  }
  return { error, written: writtenBytes(outDir) };
}

describe('zip uploads are bounded while they unpack', () => {
  test('declared sizes over the cap: refused before a single byte is written', async () => {
    const bomb = await zipOf(Array.from({ length: 4 }, (_, n) => ({ name: `z${n}.dcm`, bytes: Buffer.alloc(2 * MiB) })));
    assert.ok(bomb.length < 64 * 1024, 'small when packed');
    // The first entry fits, the second does not: the sum is checked before each entry is opened.
    const { error, written } = await extractInto('declared', bomb, 3 * MiB);
    assert.ok(error instanceof ApiError && error.statusCode === 413 && error.code === 'ARCHIVE_TOO_LARGE', String(error));
    assert.ok(written <= 2 * MiB, `${written} bytes written`);
  });

  test('headers that lie (1 KiB declared, 64 MiB inside): inflation stops near the cap, never the whole bomb', async () => {
    const bomb = lieAboutSizes(await zipOf([{ name: 'zeros.dcm', bytes: Buffer.alloc(64 * MiB) }]), 1024);
    const { error, written } = await extractInto('lying', bomb, 1 * MiB);
    assert.ok(error instanceof ApiError && (error.statusCode === 413 || error.statusCode === 422), String(error));
    assert.ok(written <= 1 * MiB + 256 * 1024, `${written} bytes written for a cap of 1 MiB`);
  });
});
