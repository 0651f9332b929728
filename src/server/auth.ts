import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';

/**
 * Bearer-token access. The token is made once, on the first start over an index, and kept beside the
 * index with owner-only permissions, so restarts (and the demo's printed URL) keep working while other
 * local users cannot read it.
 */

export const TOKEN_FILE = 'server-token';
const TOKEN_BYTES = 32;
const OWNER_ONLY = 0o600;

export interface TokenFile {
  token: string;
  path: string;
  /** True when this call made the file. */
  created: boolean;
  /** True when the file was readable by others and its permissions were narrowed to 0600. */
  permissionsFixed: boolean;
}

/** Reads the token at `path` (default `<indexDir>/server-token`), creating it when absent. */
export async function ensureToken(indexDir: string, path = join(indexDir, TOKEN_FILE)): Promise<TokenFile> {
  try {
    // 'wx': fail if it exists, so two servers starting at once never overwrite each other's token.
    const handle = await open(path, 'wx', OWNER_ONLY);
    const token = randomBytes(TOKEN_BYTES).toString('base64url');
    try {
      await handle.writeFile(`${token}\n`, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    return { token, path, created: true, permissionsFixed: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  // O_NOFOLLOW, then every check on the opened handle: a link (or a swap of the file for one after a
  // check) is refused, so the server never chmods another file nor prints its content as the token.
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOOP') throw new TokenFileError(path, 'is a symbolic link; give the token file itself, not a link to it');
    throw error;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new TokenFileError(path, 'is not a regular file');
    if (info.size > 4096) throw new TokenFileError(path, 'is too large to be a token file');
    let permissionsFixed = false;
    if ((info.mode & 0o077) !== 0) {
      await handle.chmod(OWNER_ONLY);
      permissionsFixed = true;
    }
    const token = (await handle.readFile('utf8')).trim();
    if (token.length < 16) throw new TokenFileError(path, 'the token in this file is too short (delete the file to make a new one)');
    return { token, path, created: false, permissionsFixed };
  } finally {
    await handle.close();
  }
}

/** A token file the server will not use (a link, not a file, too short). */
export class TokenFileError extends Error {
  override readonly name = 'TokenFileError';
  constructor(path: string, detail: string) {
    super(`${path}: ${detail}`);
  }
}

/**
 * Why a request comes from another site, or undefined when it does not (or says nothing: clients other
 * than browsers send neither header, and every browser sends Origin with a cross-origin POST).
 */
export function crossOriginReason(headers: IncomingHttpHeaders): string | undefined {
  const site = headers['sec-fetch-site'];
  if (site === 'cross-site' || site === 'same-site') return `Sec-Fetch-Site is ${site}`;
  const origin = headers.origin;
  if (origin === undefined) return undefined;
  if (origin === 'null') return 'Origin is null (a sandboxed or local page)';
  let originHost: string;
  try {
    originHost = new URL(origin).host.toLowerCase();
  } catch {
    return 'Origin is not a URL';
  }
  const host = headers.host?.toLowerCase();
  return host !== undefined && originHost === host ? undefined : `Origin ${origin} is another site`;
}

/** Compares in constant time (over fixed-length digests, so the length does not leak either). */
export function tokenMatches(expected: string, given: string): boolean {
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(given).digest();
  return timingSafeEqual(a, b);
}

/** The token from an `Authorization: Bearer …` header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1', '[::1]', '0:0:0:0:0:0:0:1', 'ip6-localhost']);

/** Whether a listen address or Host-header name is this machine only (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const name = host.trim().toLowerCase();
  if (LOOPBACK_NAMES.has(name) || name.endsWith('.localhost')) return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name) || /^::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

/** The host name of a Host header value (port removed, IPv6 brackets kept off). */
export function hostHeaderName(value: string): string {
  const v = value.trim();
  if (v.startsWith('[')) return v.slice(1, v.indexOf(']') > 0 ? v.indexOf(']') : undefined);
  const colon = v.lastIndexOf(':');
  return colon > 0 && v.indexOf(':') === colon ? v.slice(0, colon) : v;
}
