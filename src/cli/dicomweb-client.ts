import { DicomWebClient } from '../source/dicomweb/client.js';
import { resolveCredentials } from '../source/dicomweb/credentials.js';
import type { DicomWebEndpoint } from '../source/dicomweb/url.js';
import type { DicomWebCliOptions } from './dicomweb-options.js';

/** The one way CLI options become a PACS client (credentials from the environment or a 0600 file). */
export function dicomWebClient(endpoint: DicomWebEndpoint, options: DicomWebCliOptions, connections?: number): DicomWebClient {
  return new DicomWebClient(endpoint, {
    credentials: resolveCredentials(options.credentials ? { file: options.credentials } : {}),
    ...(options.caFile ? { caFile: options.caFile } : {}),
    ...(connections ? { connections } : {}),
  });
}
