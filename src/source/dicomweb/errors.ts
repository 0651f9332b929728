import { Mir3dError } from '../../errors.js';

/**
 * Every problem talking to a PACS becomes a DicomWebError with a stable code, one line of detail and the
 * endpoint as people wrote it (never a UID: series are named by their pseudonymous key), so the CLI can
 * print one line and the sync can tell "the PACS is gone" (stop, keep what is done) from "this series
 * cannot be delivered" (record it, go on).
 */
export type DicomWebErrorCode =
  /** The dicomweb+http(s):// address is malformed, or carries credentials. */
  | 'BAD_URL'
  /** No usable credentials (missing, incomplete, or a credentials/secret file readable by others). */
  | 'CREDENTIALS'
  /** The server refused the credentials (HTTP 401/403). */
  | 'UNAUTHORIZED'
  /** Nothing answers at that address (refused, reset, DNS, timeout): the PACS is down or unreachable. */
  | 'UNREACHABLE'
  /** TLS failed (unknown CA, bad certificate, CA file unreadable). */
  | 'TLS'
  /** Something answers, but not as a DICOMweb service (HTML, 404 on QIDO-RS, non-JSON). */
  | 'NOT_DICOMWEB'
  /** The study or series is not in the PACS. */
  | 'NOT_FOUND'
  /** The PACS found the series but could not deliver its instances (error or incomplete response). */
  | 'UNDELIVERABLE'
  /** The response is larger than the limits set for one series. */
  | 'TOO_LARGE';

export class DicomWebError extends Mir3dError<DicomWebErrorCode> {
  override readonly name = 'DicomWebError';
  constructor(
    code: DicomWebErrorCode,
    readonly where: string,
    readonly detail: string,
  ) {
    super(code, `${where}: ${detail}`);
  }
}

/** Whether the whole run must stop (the PACS is gone or refuses us) rather than skip one series. */
export function isFatalDicomWebError(error: DicomWebError): boolean {
  return error.code !== 'UNDELIVERABLE' && error.code !== 'NOT_FOUND' && error.code !== 'TOO_LARGE';
}
