import { DicomWebError } from './errors.js';
import { readSecretFile } from './secret-file.js';

/**
 * PACS credentials come from the environment or from a file only readable by its owner, never from the
 * command line (shell histories, `ps`, CI logs). They are turned into one Authorization header here and
 * appear nowhere else: not in messages, not in the index.
 */

export type DicomWebCredentials =
  | { kind: 'none' }
  | { kind: 'basic'; user: string; password: string }
  | { kind: 'bearer'; token: string };

export const CREDENTIAL_ENV = {
  user: 'MIR3D_DICOMWEB_USER',
  password: 'MIR3D_DICOMWEB_PASSWORD',
  token: 'MIR3D_DICOMWEB_TOKEN',
} as const;

/**
 * A credentials file is JSON, `{"user": "…", "password": "…"}` or `{"token": "…"}`, mode 0600.
 * The file wins over the environment when both are given, as it was named explicitly.
 */
export function resolveCredentials(options: { file?: string; env?: NodeJS.ProcessEnv } = {}): DicomWebCredentials {
  if (options.file) return credentialsFromFile(options.file);
  const env = options.env ?? process.env;
  const token = env[CREDENTIAL_ENV.token];
  if (token) return { kind: 'bearer', token };
  const user = env[CREDENTIAL_ENV.user];
  const password = env[CREDENTIAL_ENV.password];
  if (user !== undefined && user !== '' && password !== undefined) return { kind: 'basic', user, password };
  if ((user ?? '') !== '' || password !== undefined) {
    throw new DicomWebError('CREDENTIALS', 'environment', `set both ${CREDENTIAL_ENV.user} and ${CREDENTIAL_ENV.password} (or ${CREDENTIAL_ENV.token})`);
  }
  return { kind: 'none' };
}

function credentialsFromFile(path: string): DicomWebCredentials {
  const text = readSecretFile(path, 'credentials');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new DicomWebError('CREDENTIALS', path, 'credentials file is not JSON ({"user": …, "password": …} or {"token": …})');
  }
  const value = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
  if (typeof value.token === 'string' && value.token !== '') return { kind: 'bearer', token: value.token };
  if (typeof value.user === 'string' && value.user !== '' && typeof value.password === 'string') return { kind: 'basic', user: value.user, password: value.password };
  throw new DicomWebError('CREDENTIALS', path, 'credentials file needs "user" and "password", or "token"');
}

export function authorizationHeader(credentials: DicomWebCredentials): string | undefined {
  if (credentials.kind === 'basic') return `Basic ${Buffer.from(`${credentials.user}:${credentials.password}`, 'utf8').toString('base64')}`;
  if (credentials.kind === 'bearer') return `Bearer ${credentials.token}`;
  return undefined;
}
