import { readFileSync, statSync } from 'node:fs';
import { DicomWebError } from './errors.js';

/**
 * Reads a file that holds a secret (PACS credentials, the pseudonymization key), refusing one that
 * other users can read: a secret that leaked through file permissions is no longer one. The content is
 * never part of a message.
 */
export function readSecretFile(path: string, what: string): string {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch {
    throw new DicomWebError('CREDENTIALS', path, `${what} file not found`);
  }
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    throw new DicomWebError('CREDENTIALS', path, `${what} file is readable by other users (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);
  }
  try {
    return readFileSync(path, 'utf8');
  } catch {
    throw new DicomWebError('CREDENTIALS', path, `${what} file cannot be read`);
  }
}
