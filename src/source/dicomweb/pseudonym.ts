import { createHmac } from 'node:crypto';
import { DicomWebError } from './errors.js';
import { readSecretFile } from './secret-file.js';

/**
 * With `--pseudonymize SECRET_FILE` the index keeps keyed hashes (HMAC-SHA256) of Study, Series and SOP
 * Instance UIDs instead of the UIDs. Without the secret nobody can tell which study a hash stands for,
 * not even by hashing a known UID; with it, the UIDs are found again by asking the PACS (QIDO-RS) and
 * hashing what it lists, which is how viewer links are built.
 */
export interface UidPseudonymizer {
  /** Identifies the key (a hash of a hash of it), so an index refuses a run with another secret. */
  readonly keyId: string;
  pseudonym(uid: string): string;
}

/** Fewer bytes than this is a password, not a key. */
const MIN_SECRET_BYTES = 16;

export function pseudonymizerFromFile(path: string): UidPseudonymizer {
  return pseudonymizerFromSecret(readPseudonymSecret(path));
}

/** The secret of a 0600 file, checked for length (a server hands it to its worker threads as text). */
export function readPseudonymSecret(path: string): string {
  const secret = readSecretFile(path, 'pseudonymization secret').trim();
  if (Buffer.byteLength(secret, 'utf8') < MIN_SECRET_BYTES) {
    throw new DicomWebError('CREDENTIALS', path, `pseudonymization secret is shorter than ${MIN_SECRET_BYTES} bytes (e.g. openssl rand -hex 32 > FILE)`);
  }
  return secret;
}

export function pseudonymizerFromSecret(secret: string): UidPseudonymizer {
  const keyId = createHmac('sha256', secret).update('mir3d-pseudonym-key-id').digest('hex').slice(0, 16);
  return {
    keyId,
    pseudonym: (uid) => `h${createHmac('sha256', secret).update(`mir3d-uid:${uid}`).digest('hex').slice(0, 40)}`,
  };
}
